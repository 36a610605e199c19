import { getAbiItem, type Address, type PublicClient } from "viem";
import {
  agentMarketplaceAbi,
  computeEscrowAbi,
  pendingDistribution,
  splitsLedgerAbi,
  type PendingDistributionReturnType,
  type PendingPayment,
} from "@agentmesh/sdk/browser";
import { getEventLogs } from "./chain.ts";
import { creditsFromLogs, type Credit, type DistributionEvent } from "./contributors.ts";
import type { FlowOfFunds } from "./flowOfFunds.ts";

/**
 * The agent marketplace's events as the agent and accounting pages read them: an agent's terms and
 * payments (and from them, through the SDK, what `distribute` takes), and what distributions credited.
 */

/** `AgentMarketplace.AgentPaid`: one payment to an agent. */
export const agentPaidEvent = getAbiItem({ abi: agentMarketplaceAbi, name: "AgentPaid" });
const agentTermsSetEvent = getAbiItem({ abi: agentMarketplaceAbi, name: "AgentTermsSet" });
const paymentsDistributedEvent = getAbiItem({ abi: agentMarketplaceAbi, name: "PaymentsDistributed" });
const ledgerTransferredEvent = getAbiItem({ abi: splitsLedgerAbi, name: "Transferred" });
const budgetToppedUpEvent = getAbiItem({ abi: computeEscrowAbi, name: "BudgetToppedUp" });
const ownershipTransferredEvent = getAbiItem({ abi: agentMarketplaceAbi, name: "AgentOwnershipTransferred" });

/** Blocks [fromBlock, toBlock]: the deployment's start block and the block read as of. */
interface BlockRange {
  fromBlock: bigint;
  toBlock: bigint;
}

/** The marketplace, the ledger and the escrow of a deployment. */
interface PayoutContracts {
  AgentMarketplace: Address;
  SplitsLedger: Address;
  ComputeEscrow: Address;
}

/** What `distribute` and `updateTerms` take for an agent. */
export type AgentDistribution = PendingDistributionReturnType<FlowOfFunds>;

/** An agent's terms, payments and payment-chain pending count, as of one block. */
export interface AgentPayments {
  /** Its payment chain's pending count. */
  pending: bigint;
  /** Its `AgentTermsSet` arguments, oldest first. */
  termsSet: { pricePerCall: bigint; flow: FlowOfFunds }[];
  /** Its `AgentPaid` arguments, oldest first. */
  paid: PendingPayment[];
}

/** Agent `agentId`'s terms and payments, and its payment chain's pending count, as of `toBlock`. */
export async function readAgentPayments(client: PublicClient, marketplace: Address, agentId: bigint, { fromBlock, toBlock }: BlockRange): Promise<AgentPayments> {
  const [[, , pending], termsSet, paid] = await Promise.all([
    client.readContract({ address: marketplace, abi: agentMarketplaceAbi, functionName: "paymentChain", args: [agentId], blockNumber: toBlock }),
    getEventLogs(client, { address: marketplace, event: agentTermsSetEvent, args: { agentId }, fromBlock, toBlock }),
    getEventLogs(client, { address: marketplace, event: agentPaidEvent, args: { agentId }, fromBlock, toBlock }),
  ]);
  return { pending, termsSet: termsSet.map((log) => log.args), paid: paid.map((log) => log.args) };
}

/** Every owner agent `agentId` has had up to `toBlock`, oldest first (`owner` is the one at `toBlock`). */
export async function readAgentOwners(client: PublicClient, marketplace: Address, agentId: bigint, owner: Address, range: BlockRange): Promise<Address[]> {
  const transfers = await getEventLogs(client, { address: marketplace, event: ownershipTransferredEvent, args: { agentId }, ...range });
  return [...transfers.map((log) => log.args.previousOwner), owner];
}

/**
 * What `distribute` (or `updateTerms`) takes for agent `agentId` right now: its flow and pending
 * payments, rebuilt from its events since `fromBlock` by the SDK's `pendingDistribution`.
 */
export async function readPendingDistribution(client: PublicClient, marketplace: Address, agentId: bigint, fromBlock: bigint): Promise<AgentDistribution> {
  const toBlock = await client.getBlockNumber({ cacheTime: 0 });
  return pendingDistribution({ agentId, ...(await readAgentPayments(client, marketplace, agentId, { fromBlock, toBlock })) });
}

/**
 * Everything agents' distributions credited (see {@link creditsFromLogs}): the ledger's `Transferred`
 * from the marketplace (accounts and splits) and the escrow's `BudgetToppedUp` from it (budgets).
 */
export async function readAgentCredits(client: PublicClient, contracts: PayoutContracts, range: BlockRange): Promise<Credit[]> {
  const marketplace = contracts.AgentMarketplace;
  const [transferred, toppedUp] = await Promise.all([
    getEventLogs(client, { address: contracts.SplitsLedger, event: ledgerTransferredEvent, args: { from: marketplace }, ...range }),
    getEventLogs(client, { address: contracts.ComputeEscrow, event: budgetToppedUpEvent, args: { from: marketplace }, ...range }),
  ]);
  return creditsFromLogs({ transferred, toppedUp, escrow: contracts.ComputeEscrow });
}

/** Every agent's distributions (`PaymentsDistributed`), which {@link readAgentCredits}' credits follow. */
export async function readDistributions(client: PublicClient, marketplace: Address, range: BlockRange): Promise<DistributionEvent[]> {
  const logs = await getEventLogs(client, { address: marketplace, event: paymentsDistributedEvent, ...range });
  return logs.map((log) => ({ transactionHash: log.transactionHash, logIndex: log.logIndex, agentId: log.args.agentId }));
}
