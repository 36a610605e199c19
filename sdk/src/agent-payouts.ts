import type { Address } from "viem";

/**
 * What `AgentMarketplace.distribute` (and `updateTerms`) must be given for an agent, rebuilt from the
 * marketplace's events: its current flow of funds (the last `AgentTermsSet`) and the payments pending
 * on its payment chain (the last `pending` `AgentPaid`, oldest first). The contract re-hashes them
 * against the chain, so anything else reverts. Shared by the relayer's payout worker and the dApp.
 *
 * `distribute` credits ledger balances (`Transferred` from the marketplace) and funds budgets. A
 * recipient or referrer that is a ledger split is credited as one account: the split's own recipients
 * see their share once `SplitsLedger.distribute(split)` runs (anyone may call it).
 */

/** `IAgentMarketplace.PendingPayment`: one payment appended to an agent's payment chain. */
export interface PendingPayment {
  payer: Address;
  /** The payer's referrer when it paid (zero if none). */
  referrer: Address;
  /** Atomic USDC. */
  amount: bigint;
}

export interface PendingDistributionParameters<flow> {
  agentId: bigint;
  /** The agent's `AgentTermsSet` arguments, oldest first. */
  termsSet: readonly { flow: flow }[];
  /** The agent's `AgentPaid` arguments, oldest first: at least its last `pending` ones. */
  paid: readonly PendingPayment[];
  /** The pending count of the agent's payment chain (`paymentChain(agentId)`'s third value). */
  pending: bigint;
}

export interface PendingDistributionReturnType<flow> {
  /** The flow `distribute` checks against the agent's stored flow hash. */
  flow: flow;
  /** The pending payments, oldest first, as `distribute` takes them. */
  payments: PendingPayment[];
  /** Their sum, atomic USDC. */
  amount: bigint;
}

/** Thrown when the events given cannot rebuild an agent's pending payments. */
export class PendingDistributionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PendingDistributionError";
  }
}

/**
 * The flow and pending payments to pass to `distribute(agentId, flow, payments)` for an agent.
 *
 * @example
 * const { flow, payments } = pendingDistribution({ agentId, termsSet, paid, pending });
 * await wallet.writeContract({ address, abi: agentMarketplaceAbi, functionName: "distribute", args: [agentId, flow, payments] });
 */
export function pendingDistribution<flow>({ agentId, termsSet, paid, pending }: PendingDistributionParameters<flow>): PendingDistributionReturnType<flow> {
  const terms = termsSet.at(-1);
  if (terms === undefined) throw new PendingDistributionError(`No terms were found for agent #${agentId}: the events scanned start after it was listed.`);
  if (BigInt(paid.length) < pending) {
    throw new PendingDistributionError(`Agent #${agentId} has ${pending} pending payments, but only ${paid.length} were found: the events scanned start too late.`);
  }
  const payments = paid.slice(paid.length - Number(pending)).map(({ payer, referrer, amount }) => ({ payer, referrer, amount }));
  return { flow: terms.flow, payments, amount: payments.reduce((sum, payment) => sum + payment.amount, 0n) };
}
