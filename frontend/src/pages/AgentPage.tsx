import { isAddressEqual, type Address } from "viem";
import { useAccount, useReadContract } from "wagmi";
import { agentMarketplaceAbi } from "@agentmesh/sdk/browser";
import { ChainLink } from "../components/ChainLink.tsx";
import { EmptyState, ErrorState, Loading, WithDeployment } from "../components/States.tsx";
import { UsdcAmount } from "../components/UsdcAmount.tsx";
import { useAgentPayouts } from "../hooks/useAgentPayouts.ts";
import { useAgent } from "../hooks/useRelayer.ts";
import type { ChainDeployment } from "../lib/config.ts";
import { AGENT_STATUS_NAMES, AgentStatus } from "../lib/agentStatus.ts";
import { AgentCall } from "./agents/AgentCall.tsx";
import { AgentPayouts } from "./agents/AgentPayouts.tsx";
import { OwnerActions } from "./agents/OwnerActions.tsx";

type Listing = NonNullable<ReturnType<typeof useListing>["data"]>;

const useListing = (marketplace: Address, agentId: bigint) =>
  useReadContract({ address: marketplace, abi: agentMarketplaceAbi, functionName: "getAgent", args: [agentId], query: { refetchInterval: 5_000 } });

/** A listing read from the chain: its facts, a paid call, its payouts and, for its owner, what can be changed. */
function ListedAgent({ deployment, marketplace, agentId, listing }: { deployment: ChainDeployment; marketplace: Address; agentId: bigint; listing: Listing }) {
  const { address } = useAccount();
  const relayerListing = useAgent(agentId);
  const payouts = useAgentPayouts({ id: agentId, owner: listing.owner, paymentAddress: listing.paymentAddress });
  const isOwner = address !== undefined && isAddressEqual(address, listing.owner);
  const status = AGENT_STATUS_NAMES[listing.status];
  return (
    <>
      <h1>
        {listing.metadata.name} <span className="muted">#{agentId.toString()}</span>{" "}
        <span className={listing.status === AgentStatus.Active ? "badge badge-ok" : "badge"} data-testid="agent-status">
          {status}
        </span>
      </h1>
      <dl className="facts card">
        <dt>Price per call</dt>
        <dd>
          <UsdcAmount value={listing.pricePerCall} testId="agent-price" />
        </dd>
        <dt>Owner</dt>
        <dd data-testid="agent-owner">
          <ChainLink kind="address" value={listing.owner} />
          {isOwner && <span className="muted"> (you)</span>}
        </dd>
        <dt>Payment address</dt>
        <dd>
          <ChainLink kind="address" value={listing.paymentAddress} label={listing.paymentAddress} />
        </dd>
        <dt>Endpoint</dt>
        <dd className="mono">{listing.metadata.endpoint}</dd>
        {listing.metadata.metadataURI && (
          <>
            <dt>About</dt>
            <dd>
              <a href={listing.metadata.metadataURI} target="_blank" rel="noreferrer">
                {listing.metadata.metadataURI}
              </a>
            </dd>
          </>
        )}
      </dl>
      {relayerListing.data && (
        <section aria-labelledby="call-heading">
          <h2 id="call-heading">Call it</h2>
          {/* Status and price from the chain (the relayer's view may lag a moment); the paid URL from the relayer. */}
          <AgentCall
            agent={{ id: agentId.toString(), name: listing.metadata.name, status, pricePerCall: listing.pricePerCall, url: relayerListing.data.url }}
            deployment={deployment}
          />
        </section>
      )}
      <AgentPayouts deployment={deployment} marketplace={marketplace} agentId={agentId} pricePerCall={listing.pricePerCall} payouts={payouts} />
      {isOwner && (
        <OwnerActions
          key={address}
          deployment={deployment}
          marketplace={marketplace}
          agent={{ id: agentId, owner: listing.owner, status: listing.status, pricePerCall: listing.pricePerCall, metadata: listing.metadata }}
          flow={payouts.data?.distribution.flow}
        />
      )}
    </>
  );
}

function AgentDetail({ deployment, marketplace, agentId }: { deployment: ChainDeployment; marketplace: Address; agentId: bigint }) {
  const listing = useListing(marketplace, agentId);
  if (listing.isPending || listing.isError) {
    return (
      <>
        <h1>Agent #{agentId.toString()}</h1>
        {listing.isPending ? <Loading what={`agent #${agentId}`} /> : <ErrorState error={listing.error} retry={() => void listing.refetch()} />}
      </>
    );
  }
  return <ListedAgent deployment={deployment} marketplace={marketplace} agentId={agentId} listing={listing.data} />;
}

/** One agent: its listing, a paid call, its payouts and contributors' earnings, and its owner's actions. */
export default function AgentPage({ agentId }: { agentId: bigint }) {
  return (
    <section>
      <WithDeployment>
        {(deployment) =>
          deployment.contracts.AgentMarketplace === undefined ? (
            <EmptyState>The agent marketplace is not deployed on this network.</EmptyState>
          ) : (
            <AgentDetail key={agentId.toString()} deployment={deployment} marketplace={deployment.contracts.AgentMarketplace} agentId={agentId} />
          )
        }
      </WithDeployment>
    </section>
  );
}
