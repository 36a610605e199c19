import { zeroAddress, type Address } from "viem";
import { invalid, valid, type Parsed } from "./parse.ts";
import { formatShare, parsePercent, SHARE_SCALE } from "./splits.ts";
import { formatUsdcAmount, parseUsdcInput, usdcInputValue } from "./usdc.ts";
import { parseAddress } from "./validation.ts";

/**
 * An agent's flow of funds (`IAgentMarketplace.FlowOfFunds`): built from the publish form, checked
 * as `FlowOfFundsLib.validate` checks it, and split as `FlowOfFundsLib.splitPayment` splits a
 * payment, so the preview shows to the unit what the contract will credit.
 */

/** Most fixed amounts, and most shares, one flow may list (the marketplace's MAX_COMPONENTS). */
export const MAX_COMPONENTS = 16;
/** Longest agent name (MAX_NAME_LENGTH, bytes). */
export const MAX_AGENT_NAME_LENGTH = 64;
/** Longest endpoint or metadata URI (MAX_URI_LENGTH, bytes). */
export const MAX_AGENT_URI_LENGTH = 512;
/** Largest uint64 (prices, fixed amounts and budget ids are stored in 64 bits). */
export const UINT64_MAX = 2n ** 64n - 1n;

/** `IAgentMarketplace.RecipientKind`. */
export const RecipientKind = { Account: 0, Split: 1, Budget: 2 } as const;

/** A recipient as the contract takes it. */
export interface Recipient {
  kind: number;
  account: Address;
  budgetId: bigint;
}

/** `IAgentMarketplace.FlowOfFunds`. */
export interface FlowOfFunds {
  fixedAmounts: readonly { recipient: Recipient; amount: bigint }[];
  shares: readonly { recipient: Recipient; share: number }[];
  payerReferrerShare: number;
  payeeReferrerShare: number;
  remainder: Recipient;
}

/** What a recipient row of the editor names. "platform" is only offered for the remainder. */
export type RecipientKindName = "account" | "split" | "budget" | "platform";

/** A recipient as typed: an address (account or split) or a budget id. */
export interface RecipientInput {
  kind: RecipientKindName;
  target: string;
}

export interface FixedAmountInput extends RecipientInput {
  /** USDC per call, as typed. */
  amount: string;
}

export interface ShareInput extends RecipientInput {
  /** Percent of what is left after fixed amounts and referral rewards, as typed. */
  percent: string;
}

/** The publish form's flow of funds, as typed. */
export interface FlowInput {
  fixedAmounts: FixedAmountInput[];
  shares: ShareInput[];
  /** Percent of each payment for the payer's referrer ("" = none). */
  payerReferralPercent: string;
  /** Percent of each payment for the agent owner's referrer ("" = none). */
  payeeReferralPercent: string;
  remainder: RecipientInput;
}

/** The platform treasury: the zero Account, allowed only as the remainder. */
export const PLATFORM: Recipient = { kind: RecipientKind.Account, account: zeroAddress, budgetId: 0n };

/** A budget id: a whole number from 1 to 2^64 − 1. */
export function parseBudgetId(text: string): Parsed<bigint> {
  const trimmed = text.trim().replace(/^#/, "");
  if (!/^\d{1,20}$/.test(trimmed)) return invalid("Enter a budget id (a whole number such as 3).");
  const id = BigInt(trimmed);
  if (id === 0n || id > UINT64_MAX) return invalid("A budget id runs from 1 to 2^64 − 1.");
  return valid(id);
}

/** A recipient row as the contract's struct; "platform" is accepted only when `isRemainder`. */
export function parseRecipient(input: RecipientInput, isRemainder = false): Parsed<Recipient> {
  if (input.kind === "platform") return isRemainder ? valid(PLATFORM) : invalid("Only the remainder can go to the platform.");
  if (input.kind === "budget") {
    const id = parseBudgetId(input.target);
    return id.ok ? valid({ kind: RecipientKind.Budget, account: zeroAddress, budgetId: id.value }) : id;
  }
  const account = parseAddress(input.target);
  if (!account.ok) return account;
  return valid({ kind: input.kind === "split" ? RecipientKind.Split : RecipientKind.Account, account: account.value, budgetId: 0n });
}

/** An optional referral percentage: empty is 0. */
function parseReferral(text: string): Parsed<number> {
  if (text.trim() === "" || /^0*(\.0*)?%?$/.test(text.trim())) return valid(0);
  return parsePercent(text);
}

/** The referral rewards of one call at `price`, as `validate` counts them. */
export function referralRewards(flow: Pick<FlowOfFunds, "payerReferrerShare" | "payeeReferrerShare">, price: bigint): bigint {
  const scale = BigInt(SHARE_SCALE);
  return (price * BigInt(flow.payerReferrerShare)) / scale + (price * BigInt(flow.payeeReferrerShare)) / scale;
}

/**
 * The flow the form describes, checked as the contract checks it against `price` (atomic USDC per
 * call): at most {@link MAX_COMPONENTS} fixed amounts and shares, well-formed recipients, amounts and
 * shares above zero, shares and referral shares each at most 100%, and one call's fixed amounts plus
 * referral rewards within its price. Errors name the row to fix.
 */
export function buildFlow(input: FlowInput, price: bigint): Parsed<FlowOfFunds> {
  if (input.fixedAmounts.length > MAX_COMPONENTS) return invalid(`A flow has at most ${MAX_COMPONENTS} fixed amounts.`);
  if (input.shares.length > MAX_COMPONENTS) return invalid(`A flow has at most ${MAX_COMPONENTS} shares.`);
  const fixedAmounts: FlowOfFunds["fixedAmounts"][number][] = [];
  for (const [index, row] of input.fixedAmounts.entries()) {
    const recipient = parseRecipient(row);
    if (!recipient.ok) return invalid(`Fixed amount ${index + 1}: ${recipient.error}`);
    const amount = parseUsdcInput(row.amount, { max: UINT64_MAX });
    if (!amount.ok) return invalid(`Fixed amount ${index + 1}: ${amount.error}`);
    fixedAmounts.push({ recipient: recipient.value, amount: amount.value });
  }
  const shares: FlowOfFunds["shares"][number][] = [];
  for (const [index, row] of input.shares.entries()) {
    const recipient = parseRecipient(row);
    if (!recipient.ok) return invalid(`Share ${index + 1}: ${recipient.error}`);
    const share = parsePercent(row.percent);
    if (!share.ok) return invalid(`Share ${index + 1}: ${share.error}`);
    shares.push({ recipient: recipient.value, share: share.value });
  }
  const shareTotal = shares.reduce((sum, share) => sum + share.share, 0);
  if (shareTotal > SHARE_SCALE) return invalid(`The shares add up to ${formatShare(shareTotal)}, above 100%.`);
  const payer = parseReferral(input.payerReferralPercent);
  if (!payer.ok) return invalid(`Payer referral: ${payer.error}`);
  const payee = parseReferral(input.payeeReferralPercent);
  if (!payee.ok) return invalid(`Owner referral: ${payee.error}`);
  if (payer.value + payee.value > SHARE_SCALE) return invalid(`The two referral shares add up to ${formatShare(payer.value + payee.value)}, above 100%.`);
  const remainder = parseRecipient(input.remainder, true);
  if (!remainder.ok) return invalid(`Remainder: ${remainder.error}`);
  const flow: FlowOfFunds = { fixedAmounts, shares, payerReferrerShare: payer.value, payeeReferrerShare: payee.value, remainder: remainder.value };
  const fixedTotal = fixedAmounts.reduce((sum, part) => sum + part.amount, 0n);
  const committed = fixedTotal + referralRewards(flow, price);
  if (committed > price) {
    return invalid(
      `The fixed amounts (${formatUsdcAmount(fixedTotal)} USDC) plus the referral rewards (${formatUsdcAmount(committed - fixedTotal)} USDC) come to ${formatUsdcAmount(committed)} USDC, above the price of ${formatUsdcAmount(price)} USDC.`,
    );
  }
  return valid(flow);
}

/** A stored recipient as the editor's row: the inverse of {@link parseRecipient}. */
export function recipientInputOf(recipient: Recipient): RecipientInput {
  if (recipient.kind === RecipientKind.Budget) return { kind: "budget", target: recipient.budgetId.toString() };
  if (recipient.account === zeroAddress) return { kind: "platform", target: "" };
  return { kind: recipient.kind === RecipientKind.Split ? "split" : "account", target: recipient.account };
}

/** A share (parts per million) as the editor's percent ("12.5"). */
const percentInput = (share: number) => formatShare(share).replace(/%$/, "");

/**
 * A stored flow as the editor's rows, to change an agent's terms starting from its current ones:
 * `buildFlow(flowInputOf(flow), price)` gives `flow` back.
 */
export function flowInputOf(flow: FlowOfFunds): FlowInput {
  return {
    fixedAmounts: flow.fixedAmounts.map((part) => ({ ...recipientInputOf(part.recipient), amount: usdcInputValue(part.amount) })),
    shares: flow.shares.map((part) => ({ ...recipientInputOf(part.recipient), percent: percentInput(part.share) })),
    payerReferralPercent: percentInput(flow.payerReferrerShare),
    payeeReferralPercent: percentInput(flow.payeeReferrerShare),
    remainder: recipientInputOf(flow.remainder),
  };
}

/** Every recipient of a flow in output order: fixed amounts, shares, the remainder (`FlowOfFundsLib.recipientAt`). */
export function flowRecipients(flow: FlowOfFunds): Recipient[] {
  return [...flow.fixedAmounts.map((part) => part.recipient), ...flow.shares.map((part) => part.recipient), flow.remainder];
}

/** `IAgentMarketplace.PaymentSplit`: outputs in the flow's order (fixed, shares, remainder). */
export interface PaymentSplit {
  outputs: bigint[];
  payerReferrerReward: bigint;
  payeeReferrerReward: bigint;
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);

/** `FlowOfFundsLib.addSplit`: adds one call's split of `amount` to `outputs`, returns the referral rewards. */
function addSplit(flow: FlowOfFunds, amount: bigint, outputs: bigint[]): [bigint, bigint] {
  const scale = BigInt(SHARE_SCALE);
  const fixedCount = flow.fixedAmounts.length;
  let left = amount;
  for (let i = 0; i < fixedCount && left !== 0n; i++) {
    const part = min(flow.fixedAmounts[i].amount, left);
    outputs[i] += part;
    left -= part;
  }
  const payerReward = min((amount * BigInt(flow.payerReferrerShare)) / scale, left);
  left -= payerReward;
  const payeeReward = min((amount * BigInt(flow.payeeReferrerShare)) / scale, left);
  left -= payeeReward;
  const base = left;
  for (const [j, share] of flow.shares.entries()) {
    const part = (base * BigInt(share.share)) / scale;
    outputs[fixedCount + j] += part;
    left -= part;
  }
  outputs[outputs.length - 1] += left;
  return [payerReward, payeeReward];
}

/**
 * `AgentMarketplace.splitPayment`: a payment of `amount` to an agent priced `price` is ⌊amount /
 * price⌋ full calls plus one partial call of the rest, each split in order — fixed amounts (each
 * capped by what is left), the payer's referrer, the owner's referrer, shares of what is then left
 * (floor), the remainder the rest.
 */
export function splitPayment(flow: FlowOfFunds, price: bigint, amount: bigint): PaymentSplit {
  if (price <= 0n) throw new RangeError("The price per call must be above zero.");
  const outputs = Array.from({ length: flow.fixedAmounts.length + flow.shares.length + 1 }, () => 0n);
  const [payerOne, payeeOne] = addSplit(flow, price, outputs);
  const calls = amount / price;
  for (let k = 0; k < outputs.length; k++) outputs[k] *= calls;
  const [payerRest, payeeRest] = addSplit(flow, amount % price, outputs);
  return { outputs, payerReferrerReward: payerOne * calls + payerRest, payeeReferrerReward: payeeOne * calls + payeeRest };
}

/** One line of the "who receives what" preview. */
export interface FlowPart {
  /** What the part is for: "Fixed amount 1", "Share 2", "Payer's referrer", "Remainder". */
  label: string;
  /** Who receives it (undefined for a referrer, known only at payment time). */
  recipient?: Recipient;
  amount: bigint;
}

/**
 * Who receives what of a payment: each output in the flow's order, then the referral rewards. A
 * referral reward whose referrer is unset (`referrers.payer` / `referrers.payee` false) goes to the
 * remainder, as `distribute` pays it. The parts add up to `amount` exactly.
 */
export function paymentParts(flow: FlowOfFunds, price: bigint, amount: bigint, referrers: { payer: boolean; payee: boolean } = { payer: true, payee: true }): FlowPart[] {
  const split = splitPayment(flow, price, amount);
  const fixedCount = flow.fixedAmounts.length;
  let remainder = split.outputs[split.outputs.length - 1];
  if (!referrers.payer) remainder += split.payerReferrerReward;
  if (!referrers.payee) remainder += split.payeeReferrerReward;
  const parts: FlowPart[] = [
    ...flow.fixedAmounts.map((part, index) => ({ label: `Fixed amount ${index + 1}`, recipient: part.recipient, amount: split.outputs[index] })),
    ...flow.shares.map((part, index) => ({ label: `Share ${index + 1}`, recipient: part.recipient, amount: split.outputs[fixedCount + index] })),
  ];
  if (referrers.payer && flow.payerReferrerShare > 0) parts.push({ label: "Payer's referrer", amount: split.payerReferrerReward });
  if (referrers.payee && flow.payeeReferrerShare > 0) parts.push({ label: "Owner's referrer", amount: split.payeeReferrerReward });
  parts.push({ label: "Remainder", recipient: flow.remainder, amount: remainder });
  return parts;
}

/** A recipient in words: "the platform", "budget #3", or its address (with "split" for splits). */
export function describeRecipient(recipient: Recipient): string {
  if (recipient.kind === RecipientKind.Budget) return `budget #${recipient.budgetId}`;
  if (recipient.account === zeroAddress) return "the platform";
  return recipient.kind === RecipientKind.Split ? `split ${recipient.account}` : recipient.account;
}

/** What `AgentMarketplace.list` checks of the descriptive fields: name, endpoint, metadata URI. */
export function parseAgentMetadata(input: { name: string; metadataURI: string; endpoint: string }): Parsed<{ name: string; metadataURI: string; endpoint: string }> {
  const bytes = (text: string) => new TextEncoder().encode(text).length;
  const name = input.name.trim();
  if (name === "") return invalid("Name: enter the agent's name.");
  if (bytes(name) > MAX_AGENT_NAME_LENGTH) return invalid(`Name: use at most ${MAX_AGENT_NAME_LENGTH} bytes.`);
  const endpoint = input.endpoint.trim();
  try {
    const url = new URL(endpoint);
    if (url.protocol !== "https:" && url.protocol !== "http:") return invalid("Endpoint: use an http(s) URL.");
  } catch {
    return invalid("Endpoint: enter the URL the agent is called at, such as https://agent.example/run.");
  }
  if (bytes(endpoint) > MAX_AGENT_URI_LENGTH) return invalid(`Endpoint: use at most ${MAX_AGENT_URI_LENGTH} bytes.`);
  const metadataURI = input.metadataURI.trim();
  if (bytes(metadataURI) > MAX_AGENT_URI_LENGTH) return invalid(`Metadata URI: use at most ${MAX_AGENT_URI_LENGTH} bytes.`);
  return valid({ name, metadataURI, endpoint });
}

/** An agent's price per call: above zero, within 64 bits. */
export function parseAgentPrice(text: string): Parsed<bigint> {
  const price = parseUsdcInput(text, { max: UINT64_MAX });
  return price.ok ? price : invalid(`Price per call: ${price.error}`);
}

/** An agent's terms as a form describes them: each part parsed, and the whole with the first error. */
export interface AgentTermsCheck {
  price: Parsed<bigint>;
  /** The flow checked against the price; undefined while the price is invalid. */
  flow: Parsed<FlowOfFunds> | undefined;
  terms: Parsed<{ pricePerCall: bigint; flow: FlowOfFunds }>;
}

/** The price per call typed as `price` and the flow of funds `flow` describes, checked against it. */
export function parseAgentTerms(price: string, flow: FlowInput): AgentTermsCheck {
  const parsedPrice = parseAgentPrice(price);
  if (!parsedPrice.ok) return { price: parsedPrice, flow: undefined, terms: parsedPrice };
  const parsedFlow = buildFlow(flow, parsedPrice.value);
  return { price: parsedPrice, flow: parsedFlow, terms: parsedFlow.ok ? valid({ pricePerCall: parsedPrice.value, flow: parsedFlow.value }) : parsedFlow };
}

/** Total paid to each agent: the sum of its `AgentPaid` amounts, by agent id. */
export function totalsByAgent(payments: readonly { agentId: bigint; amount: bigint }[]): Map<bigint, { amount: bigint; payments: number }> {
  const totals = new Map<bigint, { amount: bigint; payments: number }>();
  for (const payment of payments) {
    const total = totals.get(payment.agentId) ?? { amount: 0n, payments: 0 };
    total.amount += payment.amount;
    total.payments += 1;
    totals.set(payment.agentId, total);
  }
  return totals;
}
