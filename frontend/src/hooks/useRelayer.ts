import { useQuery } from "@tanstack/react-query";
import { agentListSchema, agentViewSchema, budgetViewSchema, providerListSchema, sessionViewSchema, type WireSchema } from "@agentmesh/sdk/protocol";
import { relayerGet } from "../lib/relayer.ts";
import { useMarketplaceRelayer } from "./useRelayers.ts";

/** How often live views (sessions, budgets) poll the relayer. */
export const LIVE_POLL_MS = 1_500;

/**
 * GET `path` from the relayer at `relayerUrl` (see `useRelayers.ts`), parsed with `schema` (its
 * answer's shape in the wire protocol); `live` polls it. Disabled without a relayer or a path.
 */
export function useRelayerQuery<T extends WireSchema>(relayerUrl: string | undefined, path: string | undefined, schema: T, live = false, authorization?: string) {
  return useQuery({
    queryKey: ["relayer", relayerUrl, path, authorization],
    queryFn: ({ signal }) => relayerGet(relayerUrl!, path!, schema, signal, authorization === undefined ? undefined : { authorization }),
    enabled: relayerUrl !== undefined && path !== undefined,
    refetchInterval: live ? LIVE_POLL_MS : false,
  });
}

/** GET `path` from the relayer serving the marketplace views (see {@link useRelayerQuery}). */
const useMarketplaceQuery = <T extends WireSchema>(path: string | undefined, schema: T, live = false) => useRelayerQuery(useMarketplaceRelayer().url, path, schema, live);

/** Every registered provider with its models and metrics. */
export const useProviders = () => useMarketplaceQuery("/v1/providers", providerListSchema, true);

/** Receipts the session page shows at once. */
export const SESSION_PAGE = 100;

/**
 * A session with the page of receipts after sequence `after` (and the one before it, which the
 * first shown receipt chains to), polled so new receipts appear as they arrive. The relayer shows
 * a session only to its agent or its budget's creator: `authorization` is their read signature
 * (see `useSessionReadAuthorization`); without it nothing is fetched. `relayerUrl` is the relayer
 * serving the session's provider.
 */
export const useSession = (relayerUrl: string | undefined, sessionId: string | undefined, authorization: string | undefined, after = 0) =>
  useRelayerQuery(
    relayerUrl,
    sessionId && authorization && `/v1/sessions/${sessionId}?after=${Math.max(0, after - 1)}&limit=${SESSION_PAGE + (after > 0 ? 1 : 0)}`,
    sessionViewSchema,
    true,
    authorization,
  );

/** A budget and its sessions with their live spend. */
export const useBudgetSessions = (budgetId: bigint | undefined) =>
  useMarketplaceQuery(budgetId === undefined ? undefined : `/v1/budgets/${budgetId}`, budgetViewSchema, true);

/** Every agent listing with its paid URL, polled so new listings appear. */
export const useAgents = () => useMarketplaceQuery("/v1/agents", agentListSchema, true);

/** One agent listing with its paid URL, polled so a status change shows. */
export const useAgent = (agentId: bigint) => useMarketplaceQuery(`/v1/agents/${agentId}`, agentViewSchema, true);
