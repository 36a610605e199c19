import type { ReactNode } from "react";
import { ConnectButton } from "@rainbow-me/rainbowkit";
import { useAccount } from "wagmi";
import { useDeployment } from "../hooks/useAppConfig.ts";
import { useMarketplaceRelayer, type RelayerChoice } from "../hooks/useRelayers.ts";
import type { ChainDeployment } from "../lib/config.ts";
import { describeError } from "@agentmesh/sdk/browser";
import { discoverySentence } from "../lib/discovery.ts";

/** A placeholder while data loads. */
export function Loading({ what }: { what: string }) {
  return (
    <p className="state state-loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

/** Nothing to show yet, and what would make something appear. */
export function EmptyState({ children }: { children: ReactNode }) {
  return <p className="state state-empty">{children}</p>;
}

/** A failure to load, with a retry. */
export function ErrorState({ error, retry }: { error: unknown; retry?: () => void }) {
  return (
    <div className="state state-error" role="alert">
      <p>{describeError(error)}</p>
      {retry && (
        <button type="button" className="secondary" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

/**
 * Why no relayer serves this view, while it is being looked for, or (undefined) nothing: the
 * relayer is known.
 */
export function RelayerMissing({ relayer }: { relayer: RelayerChoice }): ReactNode {
  if (relayer.url !== undefined) return undefined;
  if (relayer.pending) return <Loading what="the relayer" />;
  return (
    <div className="state state-empty" role="status" data-testid="relayer-missing">
      <p>
        <strong>No relayer found for this network.</strong> <span data-testid="relayer-missing-reason">{discoverySentence(relayer.error ?? "no relayer is known", window.location.origin)}</span>
      </p>
      <p className="muted">Live marketplace data (providers, agents, sessions) is unavailable; what the chain holds still shows.</p>
      {relayer.retry && (
        <button type="button" className="secondary" onClick={relayer.retry}>
          Look again
        </button>
      )}
    </div>
  );
}

/**
 * Renders `children` with the current chain's deployment, or a "not deployed" notice; with
 * `relayer`, only once the relayer serving the marketplace views is known (else why it is not).
 */
export function WithDeployment({ children, relayer = false }: { children: (deployment: ChainDeployment) => ReactNode; relayer?: boolean }) {
  const { chainId, deployment } = useDeployment();
  const marketplaceRelayer = useMarketplaceRelayer();
  if (deployment === undefined) {
    return (
      <div className="state state-empty">
        <p>
          <strong>AgentMesh is not deployed on this network</strong> (chain {chainId}). Switch to a network with a deployment.
        </p>
      </div>
    );
  }
  if (relayer && marketplaceRelayer.url === undefined) return <RelayerMissing relayer={marketplaceRelayer} />;
  return children(deployment);
}

/** Renders `children` with the connected account, or asks to connect. */
export function WithAccount({ children, purpose }: { children: (account: `0x${string}`) => ReactNode; purpose: string }) {
  const { address } = useAccount();
  if (address === undefined) {
    return (
      <div className="state state-empty">
        <p>Connect a wallet to {purpose}.</p>
        <ConnectButton />
      </div>
    );
  }
  return children(address);
}
