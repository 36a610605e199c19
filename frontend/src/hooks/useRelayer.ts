import { useQuery } from "@tanstack/react-query";
import { relayerGet, type RelayerAgent, type RelayerBudget, type RelayerProvider, type RelayerSession } from "../lib/relayer.ts";
import { useDeployment } from "./useAppConfig.ts";

/** How often live views (sessions, budgets) poll the relayer. */
export const LIVE_POLL_MS = 1_500;

/** GET `path` from the current chain's relayer; `live` polls it. Disabled without a relayer or a path. */
export function useRelayerQuery<T>(path: string | undefined, live = false) {
  const relayerUrl = useDeployment().deployment?.relayerUrl;
  return useQuery({
    queryKey: ["relayer", relayerUrl, path],
    queryFn: ({ signal }) => relayerGet<T>(relayerUrl!, path!, signal),
    enabled: relayerUrl !== undefined && path !== undefined,
    refetchInterval: live ? LIVE_POLL_MS : false,
  });
}

/** Every registered provider with its models and metrics. */
export const useProviders = () => useRelayerQuery<{ data: RelayerProvider[] }>("/v1/providers", true);

/** A session with every receipt, polled so new receipts appear as they arrive. */
export const useSession = (sessionId: string | undefined) => useRelayerQuery<RelayerSession>(sessionId && `/v1/sessions/${sessionId}`, true);

/** A budget and its sessions with their live spend. */
export const useBudgetSessions = (budgetId: bigint | undefined) =>
  useRelayerQuery<RelayerBudget>(budgetId === undefined ? undefined : `/v1/budgets/${budgetId}`, true);

/** Every agent listing with its paid URL, polled so new listings appear. */
export const useAgents = () => useRelayerQuery<{ data: RelayerAgent[] }>("/v1/agents", true);

/** One agent listing with its paid URL, polled so a status change shows. */
export const useAgent = (agentId: bigint) => useRelayerQuery<RelayerAgent>(`/v1/agents/${agentId}`, true);
