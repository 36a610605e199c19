import { useQuery } from "@tanstack/react-query";
import type { AbiEvent } from "viem";
import { usePublicClient } from "wagmi";
import { getEventLogs, type EventLogsParameters } from "../lib/chain.ts";
import { useDeployment } from "./useAppConfig.ts";

const keyOf = (value: unknown) => JSON.stringify(value ?? {}, (_key, item) => (typeof item === "bigint" ? item.toString() : item));

/**
 * Every `event` log of a contract since the deployment's start block (undefined parameters wait).
 * Refetched after each confirmed transaction, and every `pollMs` when given.
 */
export function useEventLogs<const event extends AbiEvent>(parameters: Omit<EventLogsParameters<event>, "fromBlock"> | undefined, pollMs?: number) {
  const client = usePublicClient();
  const { chainId, deployment } = useDeployment();
  return useQuery({
    queryKey: ["logs", chainId, parameters?.address, parameters?.event.name, keyOf(parameters?.args)],
    queryFn: () => getEventLogs(client!, { ...parameters!, fromBlock: deployment!.startBlock }),
    enabled: client !== undefined && deployment !== undefined && parameters !== undefined,
    refetchInterval: pollMs ?? false,
  });
}
