import { useQuery } from "@tanstack/react-query";
import { useCallback, useSyncExternalStore } from "react";
import type { PublicClient } from "viem";
import { usePublicClient } from "wagmi";
import { findRelayer, findRelayers } from "@agentmesh/sdk/browser";
import { chooseRelayer, relayerOfProvider, type Relayers } from "../lib/discovery.ts";
import { useDeployment } from "./useAppConfig.ts";

/** How long relayers found on-chain are kept before the chain is asked again. */
export const DISCOVERY_REFRESH_MS = 10 * 60_000;

/** The relayer a view talks to: its URL once known, or why there is none. */
export interface RelayerChoice {
  url: string | undefined;
  /** Still looking (the chain or the relayers have not answered yet). */
  pending: boolean;
  /** Why no relayer can be used (a `RelayerDiscoveryError` names it). */
  error: unknown;
  /** Looks again (the chain and the relayers), where looking can be repeated. */
  retry?: () => void;
}

/**
 * The relayers found on-chain for the current chain's deployment (see `lib/discovery.ts`): one query
 * per chain, kept {@link DISCOVERY_REFRESH_MS}. Not run when the deployment names its relayer
 * (the local stack's override).
 */
export function useDiscoveredRelayers() {
  const client = usePublicClient();
  const { chainId, deployment } = useDeployment();
  return useQuery({
    queryKey: ["relayers", chainId, deployment?.contracts.RelayerDirectory ?? null],
    queryFn: () => findRelayers(client as PublicClient, deployment!),
    enabled: client !== undefined && deployment !== undefined && deployment.relayerUrl === undefined,
    staleTime: DISCOVERY_REFRESH_MS,
    refetchInterval: DISCOVERY_REFRESH_MS,
    refetchOnWindowFocus: false,
    retry: false,
  });
}

// The user's pick among several relayers, per chain, kept in localStorage.
const pickKey = (chainId: number) => `agentmesh:relayer:${chainId}`;
const pickListeners = new Set<() => void>();
const subscribePick = (listener: () => void) => {
  pickListeners.add(listener);
  window.addEventListener("storage", listener);
  return () => {
    pickListeners.delete(listener);
    window.removeEventListener("storage", listener);
  };
};
function storedPick(chainId: number): string | undefined {
  try {
    return localStorage.getItem(pickKey(chainId)) ?? undefined;
  } catch {
    return undefined; // storage disabled: the default applies
  }
}

/** The relayer URL the user picked for the current chain (undefined: none), and `pick` to change it. */
export function useRelayerPick(): [string | undefined, (url: string) => void] {
  const { chainId } = useDeployment();
  const picked = useSyncExternalStore(subscribePick, () => storedPick(chainId));
  const pick = useCallback(
    (url: string) => {
      try {
        localStorage.setItem(pickKey(chainId), url);
      } catch {
        // storage disabled: the pick lasts until the page reloads
      }
      for (const listener of pickListeners) listener();
    },
    [chainId],
  );
  return [picked, pick];
}

/**
 * The relayer serving the marketplace views (providers, agents, budgets' sessions): the
 * deployment's own when it names one, else the one the user picked among those found on-chain, or
 * the first.
 */
export function useMarketplaceRelayer(): RelayerChoice & { relayers: Relayers } {
  const { deployment } = useDeployment();
  const discovered = useDiscoveredRelayers();
  const [picked] = useRelayerPick();
  if (deployment?.relayerUrl !== undefined) return { url: deployment.relayerUrl, pending: false, error: undefined, relayers: [] };
  const relayers = discovered.data ?? [];
  return {
    url: chooseRelayer(relayers, picked)?.url,
    pending: discovered.isPending || (discovered.isError && discovered.isFetching), // looking again
    error: discovered.error ?? undefined,
    retry: () => void discovered.refetch(),
    relayers,
  };
}

/**
 * The relayer serving provider `providerId` (for a page about one of its sessions): the
 * deployment's own when it names one; else the one found on-chain for it, which is not
 * necessarily the marketplace's (asked of the chain on its own when the marketplace's discovery
 * did not include it). Without a provider id, the marketplace's.
 */
export function useProviderRelayer(providerId: number | undefined): RelayerChoice {
  const client = usePublicClient();
  const { chainId, deployment } = useDeployment();
  const marketplace = useMarketplaceRelayer();
  const listed = providerId === undefined ? undefined : relayerOfProvider(marketplace.relayers, providerId);
  const own = useQuery({
    queryKey: ["relayers", chainId, deployment?.contracts.RelayerDirectory ?? null, providerId],
    queryFn: () => findRelayer(client as PublicClient, deployment!, providerId),
    enabled: client !== undefined && deployment?.relayerUrl === undefined && !marketplace.pending && providerId !== undefined && listed === undefined,
    staleTime: DISCOVERY_REFRESH_MS,
    refetchOnWindowFocus: false,
    retry: false,
  });
  if (deployment?.relayerUrl !== undefined || providerId === undefined) return marketplace;
  if (listed !== undefined) return { url: listed.url, pending: false, error: undefined };
  if (marketplace.pending) return { url: undefined, pending: true, error: undefined };
  return { url: own.data?.url, pending: own.isPending || (own.isError && own.isFetching), error: own.error ?? undefined, retry: () => void own.refetch() };
}
