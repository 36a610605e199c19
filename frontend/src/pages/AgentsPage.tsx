import { useMemo } from "react";
import type { Address } from "viem";
import { useAccount } from "wagmi";
import { ChainLink } from "../components/ChainLink.tsx";
import { Link } from "../components/Link.tsx";
import { EmptyState, ErrorState, Loading, WithDeployment } from "../components/States.tsx";
import { UsdcAmount } from "../components/UsdcAmount.tsx";
import { useEventLogs } from "../hooks/useEventLogs.ts";
import { useAgents } from "../hooks/useRelayer.ts";
import { agentPaidEvent } from "../lib/agentChain.ts";
import type { ChainDeployment } from "../lib/config.ts";
import { totalsByAgent } from "../lib/flowOfFunds.ts";
import { AgentCall, callableAgent } from "./agents/AgentCall.tsx";
import { PublishAgentForm } from "./agents/PublishAgentForm.tsx";

/** Every listing: name (linking to its page), price, status, owner, payment address, total paid; each can be called. */
function AgentList({ deployment, marketplace }: { deployment: ChainDeployment; marketplace: Address }) {
  const agents = useAgents();
  const paid = useEventLogs({ address: marketplace, event: agentPaidEvent }, 5_000);
  const totals = useMemo(() => totalsByAgent((paid.data ?? []).map((log) => ({ agentId: log.args.agentId, amount: log.args.amount }))), [paid.data]);
  if (agents.isPending) return <Loading what="agents" />;
  if (agents.isError) return <ErrorState error={agents.error} retry={() => void agents.refetch()} />;
  if (agents.data.data.length === 0) return <EmptyState>No agent is listed yet. Publish one below.</EmptyState>;
  return (
    <ul className="plain agent-list" data-testid="agents">
      {agents.data.data.map((agent) => {
        const total = totals.get(BigInt(agent.id));
        return (
          <li key={agent.id} className="card" data-testid={`agent-${agent.id}`}>
            <h3>
              <Link to={`/agents/${agent.id}`}>{agent.name}</Link> <span className="muted">#{agent.id}</span>{" "}
              <span className={agent.status === "active" ? "badge badge-ok" : "badge"}>{agent.status}</span>
            </h3>
            <dl className="facts">
              <dt>Price per call</dt>
              <dd>
                <UsdcAmount value={BigInt(agent.pricePerCallAtomic)} />
              </dd>
              <dt>Owner</dt>
              <dd>
                <ChainLink kind="address" value={agent.owner} />
              </dd>
              <dt>Payment address</dt>
              <dd>
                <ChainLink kind="address" value={agent.paymentAddress} label={agent.paymentAddress} />
              </dd>
              <dt>Paid through the marketplace</dt>
              <dd data-testid={`agent-paid-${agent.id}`}>
                {paid.isError ? (
                  "unavailable"
                ) : paid.isPending ? (
                  "…"
                ) : (
                  <>
                    <UsdcAmount value={total?.amount ?? 0n} /> <span className="muted">({total?.payments ?? 0} payments)</span>
                  </>
                )}
              </dd>
              {agent.metadataURI && (
                <>
                  <dt>About</dt>
                  <dd>
                    <a href={agent.metadataURI} target="_blank" rel="noreferrer">
                      {agent.metadataURI}
                    </a>
                  </dd>
                </>
              )}
            </dl>
            <AgentCall agent={callableAgent(agent)} deployment={deployment} />
          </li>
        );
      })}
    </ul>
  );
}

/** Agents sold per call over x402: browse and call them (the wallet pays), or publish one. */
export default function AgentsPage() {
  const { address } = useAccount();
  return (
    <section>
      <h1>Agents</h1>
      <p className="lead">Agents paid per call in USDC over x402. Each payment is split by the agent's flow of funds among its contributors.</p>
      <WithDeployment relayer>
        {(deployment) =>
          deployment.contracts.AgentMarketplace === undefined ? (
            <EmptyState>The agent marketplace is not deployed on this network.</EmptyState>
          ) : (
            <>
              <AgentList deployment={deployment} marketplace={deployment.contracts.AgentMarketplace} />
              <PublishAgentForm key={address} marketplace={deployment.contracts.AgentMarketplace} account={address} />
            </>
          )
        }
      </WithDeployment>
    </section>
  );
}
