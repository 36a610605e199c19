import { getAddress, isAddressEqual, type Address } from "viem";
import { invalid, valid, type Parsed } from "./parse.ts";
import { parseAddress } from "./validation.ts";

/** Parts a split's shares are counted in (the ledger's SHARE_SCALE): 1,000,000 = 100%. */
export const SHARE_SCALE = 1_000_000;
/** Most recipients one split may list (the ledger's MAX_RECIPIENTS). */
export const MAX_RECIPIENTS = 32;

/** A split as `SplitsLedger.createSplit` takes it. */
export interface SplitDefinition {
  recipients: { account: Address; share: number }[];
  remainderRecipient: Address;
}

/** A recipient row of the split editor, as typed. */
export interface RecipientInput {
  account: string;
  percent: string;
}

/** One slice of the "who gets what" picture. */
export interface SplitSlice {
  account: Address;
  share: number;
  /** True for the remainder recipient's slice. */
  remainder: boolean;
}

/** "12.5" (percent, up to four decimals) as parts of {@link SHARE_SCALE}. */
export function parsePercent(text: string): Parsed<number> {
  const trimmed = text.trim().replace(/%$/, "");
  const match = /^(\d{1,3})(?:\.(\d{0,4}))?$/.exec(trimmed);
  if (match === null) return invalid("Enter a percentage such as 12.5 (at most 4 decimals).");
  const share = Number(match[1]) * 10_000 + Number((match[2] ?? "").padEnd(4, "0"));
  if (share === 0) return invalid("A share must be above 0%.");
  if (share > SHARE_SCALE) return invalid("A share cannot exceed 100%.");
  return valid(share);
}

/** Parts of {@link SHARE_SCALE} as a percentage ("12.5%"). */
export function formatShare(share: number): string {
  return `${Number(((share / SHARE_SCALE) * 100).toFixed(4))}%`;
}

/** Basis points (a fee) as a percentage ("2.5%"). */
export function formatBps(bps: number | bigint): string {
  return `${Number(bps) / 100}%`;
}

/**
 * The split the editor's rows describe: recipients sorted by address as the ledger requires, shares
 * above zero adding up to at most 100%, the rest going to `remainder`.
 */
export function buildSplit(rows: readonly RecipientInput[], remainder: string): Parsed<SplitDefinition> {
  if (rows.length === 0) return invalid("Add at least one recipient.");
  if (rows.length > MAX_RECIPIENTS) return invalid(`A split has at most ${MAX_RECIPIENTS} recipients.`);
  const recipients: SplitDefinition["recipients"] = [];
  for (const [index, row] of rows.entries()) {
    const account = parseAddress(row.account);
    if (!account.ok) return invalid(`Recipient ${index + 1}: ${account.error}`);
    if (recipients.some((recipient) => isAddressEqual(recipient.account, account.value))) return invalid(`Recipient ${index + 1} is listed twice.`);
    const share = parsePercent(row.percent);
    if (!share.ok) return invalid(`Recipient ${index + 1}: ${share.error}`);
    recipients.push({ account: account.value, share: share.value });
  }
  const total = recipients.reduce((sum, recipient) => sum + recipient.share, 0);
  if (total > SHARE_SCALE) return invalid(`The shares add up to ${formatShare(total)}, above 100%.`);
  const remainderRecipient = parseAddress(remainder);
  if (!remainderRecipient.ok) return invalid(`Remainder recipient: ${remainderRecipient.error}`);
  recipients.sort((a, b) => (BigInt(a.account) < BigInt(b.account) ? -1 : 1));
  return valid({ recipients, remainderRecipient: remainderRecipient.value });
}

/** Who gets what: each recipient's share, then the remainder's (omitted when zero). */
export function splitSlices(split: SplitDefinition): SplitSlice[] {
  const slices: SplitSlice[] = split.recipients.map((recipient) => ({ account: getAddress(recipient.account), share: recipient.share, remainder: false }));
  const rest = SHARE_SCALE - slices.reduce((sum, slice) => sum + slice.share, 0);
  return rest > 0 ? [...slices, { account: getAddress(split.remainderRecipient), share: rest, remainder: true }] : slices;
}

/** A split as its `SplitCreated` event defines it. */
export interface CreatedSplit {
  split: Address;
  definition: SplitDefinition;
}

/**
 * The splits that pay `account`, directly or through the splits nested in them, in `splits`' order
 * (the ledger's `SplitCreated` order: a split nests only splits created before it, so one pass finds
 * them all). A remainder recipient left no share is not paid.
 *
 * @example
 * splitsPaying(contributor, created); // the splits whose `distribute` credits `contributor`
 */
export function splitsPaying(account: Address, splits: readonly CreatedSplit[]): Address[] {
  const paid = new Set([account.toLowerCase()]);
  const paying: Address[] = [];
  for (const { split, definition } of splits) {
    if (splitSlices(definition).some((slice) => paid.has(slice.account.toLowerCase()))) {
      paid.add(split.toLowerCase());
      paying.push(split);
    }
  }
  return paying;
}

/** A slice of a split with what its distributions credited it. */
export interface CreditedSlice extends SplitSlice {
  /** Atomic USDC. */
  credited: bigint;
}

/**
 * What the split's distributions credited each of its slices: the sums of the `credits` of its
 * `SplitDistributed` events, whose entries follow the split's order (its recipients, then its
 * remainder recipient), as the ledger computed them.
 */
export function creditedSlices(split: SplitDefinition, distributions: readonly (readonly bigint[])[]): CreditedSlice[] {
  const remainderEntry = split.recipients.length;
  return splitSlices(split).map((slice, index) => {
    const entry = slice.remainder ? remainderEntry : index;
    return { ...slice, credited: distributions.reduce((sum, credits) => sum + (credits[entry] ?? 0n), 0n) };
  });
}
