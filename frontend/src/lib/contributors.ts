import { isAddressEqual, zeroAddress, type Address, type Hex } from "viem";
import { RecipientKind, type FlowOfFunds, type Recipient } from "./flowOfFunds.ts";

/**
 * What agents' contributors were credited, from the contracts' events. A distribution logs
 * `PaymentsDistributed` first, then one credit per recipient: the ledger's `Transferred` (from: the
 * marketplace) for accounts and splits (a split is credited as one balance, which its own
 * `distribute` later pays out), the escrow's `BudgetToppedUp` (from: the marketplace) for budgets. A
 * credit therefore belongs to the last distribution logged before it in its transaction.
 */

/** Who a distribution credits: a ledger account (or split), or a ComputeEscrow budget. */
export type Payee = { kind: "account"; account: Address } | { kind: "budget"; budgetId: bigint };

/** One credit of a distribution. */
export interface Credit {
  transactionHash: Hex;
  logIndex: number;
  payee: Payee;
  /** Atomic USDC. */
  amount: bigint;
}

/** `PaymentsDistributed`: a distribution of agent `agentId`'s payments, where it is logged. */
export interface DistributionEvent {
  transactionHash: Hex;
  logIndex: number;
  agentId: bigint;
}

/** What one payee was credited in all. */
export interface PayeeTotal {
  payee: Payee;
  /** Atomic USDC. */
  amount: bigint;
}

/** A contributor of one agent: what it is in the agent's flows, and what it was credited. */
export interface ContributorEarning extends PayeeTotal {
  /** "Fixed amount 1", "Share 2", "Payer's referrer", "Owner's referrer", "Remainder", …; empty when unknown. */
  roles: string[];
}

/** What an agent's flows and referrals say about who its recipients are. */
export interface RoleSources {
  /** Every flow the agent has had (its `AgentTermsSet` events), oldest first. */
  flows: readonly FlowOfFunds[];
  /** The payers' referrers its `AgentPaid` events name (zero for none). */
  payerReferrers: readonly Address[];
  /** The referrers of its owners (zero for none), the current owner's last: earlier owners' are credited for distributions made before a transfer. */
  ownerReferrers: readonly Address[];
  /** The platform treasury, which a zero remainder pays. */
  treasury: Address;
  /** The creators of the budgets its flows name: an expired budget's part is credited to its creator. */
  budgetCreators: ReadonlyMap<bigint, Address>;
}

/** Where a log is: its transaction and its index in the block. */
interface LogPosition {
  transactionHash: Hex;
  logIndex: number;
}

/** The marketplace's credits among its ledger `Transferred` and escrow `BudgetToppedUp` logs. */
export interface CreditLogs {
  /** `Transferred` logs from the marketplace. */
  transferred: readonly (LogPosition & { args: { to: Address; amount: bigint } })[];
  /** `BudgetToppedUp` logs from the marketplace. */
  toppedUp: readonly (LogPosition & { args: { budgetId: bigint; amount: bigint } })[];
  /** The escrow: a top-up also moves the marketplace's balance to it, which the `BudgetToppedUp` stands for. */
  escrow: Address;
}

/**
 * The credits of {@link CreditLogs}: each `Transferred` to an account or split, and each budget
 * top-up once (its `BudgetToppedUp`, not also the `Transferred` to the escrow that funds it).
 */
export function creditsFromLogs({ transferred, toppedUp, escrow }: CreditLogs): Credit[] {
  return [
    ...transferred
      .filter((log) => !isAddressEqual(log.args.to, escrow))
      .map((log) => ({ transactionHash: log.transactionHash, logIndex: log.logIndex, payee: { kind: "account" as const, account: log.args.to }, amount: log.args.amount })),
    ...toppedUp.map((log) => ({ transactionHash: log.transactionHash, logIndex: log.logIndex, payee: { kind: "budget" as const, budgetId: log.args.budgetId }, amount: log.args.amount })),
  ];
}

/** A payee as a map key ("account:0xabc…", "budget:3"). */
export function payeeKey(payee: Payee): string {
  return payee.kind === "budget" ? `budget:${payee.budgetId}` : `account:${payee.account.toLowerCase()}`;
}

/**
 * The credits of agent `agentId`'s distributions among `credits`: each credit goes with the last
 * distribution logged before it in the same transaction; credits without one are left out.
 *
 * @example
 * creditsOfAgent(1n, distributions, credits); // the Transferred / BudgetToppedUp entries of agent #1's payouts
 */
export function creditsOfAgent(agentId: bigint, distributions: readonly DistributionEvent[], credits: readonly Credit[]): Credit[] {
  const byTransaction = new Map<Hex, DistributionEvent[]>();
  for (const distribution of distributions) {
    const list = byTransaction.get(distribution.transactionHash) ?? [];
    list.push(distribution);
    byTransaction.set(distribution.transactionHash, list);
  }
  return credits.filter((credit) => {
    let owner: DistributionEvent | undefined;
    for (const distribution of byTransaction.get(credit.transactionHash) ?? []) {
      if (distribution.logIndex < credit.logIndex && (owner === undefined || distribution.logIndex > owner.logIndex)) owner = distribution;
    }
    return owner?.agentId === agentId;
  });
}

/** Largest amount first; equal amounts in key order, so the order is stable. */
function byAmount(a: PayeeTotal, b: PayeeTotal): number {
  if (a.amount !== b.amount) return b.amount > a.amount ? 1 : -1;
  return payeeKey(a.payee) < payeeKey(b.payee) ? -1 : 1;
}

/** Each payee's total over `credits`, largest first. */
export function totalsByPayee(credits: readonly Credit[]): PayeeTotal[] {
  const totals = new Map<string, PayeeTotal>();
  for (const credit of credits) {
    const key = payeeKey(credit.payee);
    const total = totals.get(key) ?? { payee: credit.payee, amount: 0n };
    total.amount += credit.amount;
    totals.set(key, total);
  }
  return [...totals.values()].sort(byAmount);
}

/** The payee a flow recipient is credited as: itself, or the treasury for the zero remainder. */
function payeeOf(recipient: Recipient, treasury: Address): Payee {
  if (recipient.kind === RecipientKind.Budget) return { kind: "budget", budgetId: recipient.budgetId };
  return { kind: "account", account: recipient.account === zeroAddress ? treasury : recipient.account };
}

/** A payee's roles for one agent. */
export interface PayeeRoles {
  payee: Payee;
  roles: string[];
  /** Whether a flow or a referral names the payee itself (not only as an expired budget's creator). */
  named: boolean;
}

/**
 * Who is what for an agent, by payee: the parts its flows give each recipient (the labels of the
 * flow preview), its payers' and owner's referrers, and the creators of its budgets (credited a
 * budget's part instead when the budget had expired).
 */
export function payeeRoles(sources: RoleSources): Map<string, PayeeRoles> {
  const roles = new Map<string, PayeeRoles>();
  const add = (payee: Payee, role: string, named = true) => {
    const entry = roles.get(payeeKey(payee)) ?? { payee, roles: [], named: false };
    if (!entry.roles.includes(role)) entry.roles.push(role);
    entry.named ||= named;
    roles.set(payeeKey(payee), entry);
  };
  const addRecipient = (recipient: Recipient, role: string) => {
    add(payeeOf(recipient, sources.treasury), recipient.kind === RecipientKind.Account && recipient.account === zeroAddress ? `${role} (platform)` : role);
    const creator = recipient.kind === RecipientKind.Budget ? sources.budgetCreators.get(recipient.budgetId) : undefined;
    if (creator !== undefined) add({ kind: "account", account: creator }, `${role} (creator of expired budget #${recipient.budgetId})`, false);
  };
  for (const flow of sources.flows) {
    flow.fixedAmounts.forEach((part, index) => addRecipient(part.recipient, `Fixed amount ${index + 1}`));
    flow.shares.forEach((part, index) => addRecipient(part.recipient, `Share ${index + 1}`));
    addRecipient(flow.remainder, "Remainder");
  }
  for (const referrer of sources.payerReferrers) if (referrer !== zeroAddress) add({ kind: "account", account: referrer }, "Payer's referrer");
  sources.ownerReferrers.forEach((referrer, index) => {
    const current = index === sources.ownerReferrers.length - 1;
    if (referrer !== zeroAddress) add({ kind: "account", account: referrer }, current ? "Owner's referrer" : "Former owner's referrer");
  });
  return roles;
}

/**
 * Each contributor of an agent with what its distributions credited them (`credits`, already narrowed
 * to the agent with {@link creditsOfAgent}): everyone credited, and every recipient its flows and
 * referrals name (zero until paid), largest first.
 */
export function contributorEarnings(credits: readonly Credit[], roles: ReadonlyMap<string, PayeeRoles>): ContributorEarning[] {
  const totals = new Map(totalsByPayee(credits).map((total) => [payeeKey(total.payee), total]));
  const named = [...roles].filter(([, entry]) => entry.named).map(([key]) => key);
  const keys = new Set([...totals.keys(), ...named]);
  return [...keys]
    .map((key) => {
      const payee = totals.get(key)?.payee ?? roles.get(key)!.payee;
      return { payee, amount: totals.get(key)?.amount ?? 0n, roles: roles.get(key)?.roles ?? [] };
    })
    .sort(byAmount);
}
