import { useQuery } from "@tanstack/react-query";
import { getAbiItem } from "viem";
import { usePublicClient } from "wagmi";
import { agentMarketplaceAbi, computeEscrowAbi, providerRegistryAbi } from "@agentmesh/sdk/browser";
import { bucketRanges, summarizeFlows } from "../lib/accounting.ts";
import { agentPaidEvent, readAgentCredits } from "../lib/agentChain.ts";
import { getEventLogs } from "../lib/chain.ts";
import { totalsByPayee } from "../lib/contributors.ts";
import { useDeployment } from "./useAppConfig.ts";

const voucherSettled = getAbiItem({ abi: computeEscrowAbi, name: "VoucherSettled" });
const settlementRecorded = getAbiItem({ abi: providerRegistryAbi, name: "SettlementRecorded" });

/** How many periods the volume chart shows. */
const PERIODS = 12;
/** How many contributors the contributor payouts list. */
const TOP_CONTRIBUTORS = 10;

/**
 * Aggregate flows since the deployment, from the contracts' events: volume per period (with each
 * period's end time), provider earnings, protocol fees and top providers, and — where the agent
 * marketplace is deployed — agent revenue (the sum of `AgentPaid`) and contributor payouts (what
 * agents' distributions credited, in all and to the top contributors, and the platform treasury
 * among them). Polled every 5 s.
 */
export function useAccounting() {
  const client = usePublicClient();
  const { chainId, deployment } = useDeployment();
  return useQuery({
    queryKey: ["accounting", chainId],
    enabled: client !== undefined && deployment !== undefined,
    refetchInterval: 5_000,
    queryFn: async () => {
      const { contracts, startBlock } = deployment!;
      const toBlock = await client!.getBlockNumber({ cacheTime: 0 });
      const marketplace = contracts.AgentMarketplace;
      const [settled, recorded, feeBps, agentPaid, agentCredits, treasury] = await Promise.all([
        getEventLogs(client!, { address: contracts.ComputeEscrow, event: voucherSettled, fromBlock: startBlock, toBlock }),
        getEventLogs(client!, { address: contracts.ProviderRegistry, event: settlementRecorded, fromBlock: startBlock, toBlock }),
        client!.readContract({ address: contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "feeBps" }),
        marketplace === undefined ? undefined : getEventLogs(client!, { address: marketplace, event: agentPaidEvent, fromBlock: startBlock, toBlock }),
        marketplace === undefined ? undefined : readAgentCredits(client!, { ...contracts, AgentMarketplace: marketplace }, { fromBlock: startBlock, toBlock }),
        marketplace === undefined ? undefined : client!.readContract({ address: marketplace, abi: agentMarketplaceAbi, functionName: "treasury" }),
      ]);
      const ranges = bucketRanges(startBlock, toBlock, PERIODS);
      const periodEnds = await Promise.all(ranges.map(([, end]) => client!.getBlock({ blockNumber: end })));
      const summary = summarizeFlows(
        settled.map((log) => ({ blockNumber: log.blockNumber, paid: log.args.paid })),
        recorded.map((log) => ({ providerId: Number(log.args.providerId), requests: log.args.requests, earnings: log.args.earnings })),
        ranges,
      );
      const contributors = agentCredits === undefined ? undefined : totalsByPayee(agentCredits);
      const agents =
        agentPaid === undefined || contributors === undefined || treasury === undefined
          ? undefined
          : {
              revenue: agentPaid.reduce((sum, log) => sum + log.args.amount, 0n),
              payments: agentPaid.length,
              paidOut: contributors.reduce((sum, total) => sum + total.amount, 0n),
              contributors: contributors.length,
              topContributors: contributors.slice(0, TOP_CONTRIBUTORS),
              treasury,
            };
      return { summary, feeBps, periodEnds: periodEnds.map((block) => Number(block.timestamp)), agents };
    },
  });
}
