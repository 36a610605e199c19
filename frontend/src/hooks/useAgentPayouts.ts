import { useQuery } from "@tanstack/react-query";
import { erc20Abi, type Address } from "viem";
import { usePublicClient } from "wagmi";
import { agentMarketplaceAbi, computeEscrowAbi, pendingDistribution } from "@agentmesh/sdk/browser";
import { readAgentCredits, readAgentOwners, readAgentPayments, readDistributions } from "../lib/agentChain.ts";
import { contributorEarnings, creditsOfAgent, payeeRoles } from "../lib/contributors.ts";
import { flowRecipients, RecipientKind } from "../lib/flowOfFunds.ts";
import { useDeployment } from "./useAppConfig.ts";

/**
 * An agent's money, from the chain as of one block and polled every 5 s: what it was paid through
 * the marketplace, what `distribute` would take now (its flow and pending payments, which the
 * marketplace holds in the ledger), the USDC sent straight to its payment address (`unattributed`,
 * which `distribute` moves into the ledger too), and each contributor's earnings from its distributions.
 */
export function useAgentPayouts(agent: { id: bigint; owner: Address; paymentAddress: Address }) {
  const client = usePublicClient();
  const { chainId, deployment } = useDeployment();
  const marketplace = deployment?.contracts.AgentMarketplace;
  return useQuery({
    queryKey: ["agent-payouts", chainId, agent.id.toString(), agent.owner],
    enabled: client !== undefined && deployment !== undefined && marketplace !== undefined,
    refetchInterval: 5_000,
    queryFn: async () => {
      const { contracts, usdc, startBlock } = deployment!;
      const read = client!;
      const range = { fromBlock: startBlock, toBlock: await read.getBlockNumber({ cacheTime: 0 }) };
      const payoutContracts = { ...contracts, AgentMarketplace: marketplace! };
      const [payments, distributions, credits, unattributed, treasury, owners] = await Promise.all([
        readAgentPayments(read, marketplace!, agent.id, range),
        readDistributions(read, marketplace!, range),
        readAgentCredits(read, payoutContracts, range),
        read.readContract({ address: usdc, abi: erc20Abi, functionName: "balanceOf", args: [agent.paymentAddress], blockNumber: range.toBlock }),
        read.readContract({ address: marketplace!, abi: agentMarketplaceAbi, functionName: "treasury", blockNumber: range.toBlock }),
        readAgentOwners(read, marketplace!, agent.id, agent.owner, range),
      ]);
      const flows = payments.termsSet.map((terms) => terms.flow);
      const budgetIds = [...new Set(flows.flatMap(flowRecipients).filter((recipient) => recipient.kind === RecipientKind.Budget).map((recipient) => recipient.budgetId))];
      const [budgets, ownerReferrers] = await Promise.all([
        Promise.all(
          budgetIds.map((budgetId) => read.readContract({ address: contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getBudget", args: [budgetId], blockNumber: range.toBlock })),
        ),
        Promise.all(owners.map((owner) => read.readContract({ address: marketplace!, abi: agentMarketplaceAbi, functionName: "referrerOf", args: [owner], blockNumber: range.toBlock }))),
      ]);
      const roles = payeeRoles({
        flows,
        payerReferrers: payments.paid.map((payment) => payment.referrer),
        ownerReferrers,
        treasury,
        budgetCreators: new Map(budgetIds.map((budgetId, index) => [budgetId, budgets[index].creator])),
      });
      return {
        paid: { amount: payments.paid.reduce((sum, payment) => sum + payment.amount, 0n), payments: payments.paid.length },
        distribution: pendingDistribution({ agentId: agent.id, ...payments }),
        unattributed,
        distributions: distributions.filter((distribution) => distribution.agentId === agent.id).length,
        earnings: contributorEarnings(creditsOfAgent(agent.id, distributions, credits), roles),
      };
    },
  });
}
