import type { Address } from "viem";
import { agentMarketplaceAbi } from "@agentmesh/sdk/browser";
import { Link } from "../../components/Link.tsx";
import { PayeeName } from "../../components/PayeeName.tsx";
import { ErrorState, Loading } from "../../components/States.tsx";
import { TransactionStatus } from "../../components/TransactionStatus.tsx";
import { UsdcAmount } from "../../components/UsdcAmount.tsx";
import type { useAgentPayouts } from "../../hooks/useAgentPayouts.ts";
import { useTransaction } from "../../hooks/useTransaction.ts";
import { readPendingDistribution } from "../../lib/agentChain.ts";
import type { ChainDeployment } from "../../lib/config.ts";
import { payeeKey, type ContributorEarning } from "../../lib/contributors.ts";
import { FlowPreview } from "./FlowEditor.tsx";

type AgentPayoutsQuery = ReturnType<typeof useAgentPayouts>;

/** Each contributor of an agent: what it is in the flow, and what the agent's distributions credited it. */
function ContributorEarnings({ earnings }: { earnings: readonly ContributorEarning[] }) {
  return (
    <div className="table-wrap">
      <table className="responsive" data-testid="contributor-earnings">
        <thead>
          <tr>
            <th scope="col">Contributor</th>
            <th scope="col">Part of the flow</th>
            <th scope="col">Credited</th>
          </tr>
        </thead>
        <tbody>
          {earnings.map((earning) => (
            <tr key={payeeKey(earning.payee)} data-testid={`earning-${payeeKey(earning.payee)}`}>
              <td data-label="Contributor">
                <PayeeName payee={earning.payee} />
              </td>
              <td data-label="Part of the flow">{earning.roles.length > 0 ? earning.roles.join("; ") : <span className="muted">not named by the flow</span>}</td>
              <td data-label="Credited">
                <UsdcAmount value={earning.amount} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

interface AgentPayoutsProps {
  deployment: ChainDeployment;
  marketplace: Address;
  agentId: bigint;
  pricePerCall: bigint;
  payouts: AgentPayoutsQuery;
}

/**
 * An agent's payouts: what it was paid, what awaits distribution (payments the marketplace holds in
 * the ledger, and USDC sent straight to the payment address), a "Distribute now" button (anyone may
 * distribute; the payments are read afresh when it is pressed), its flow of funds, and each
 * contributor's earnings.
 */
export function AgentPayouts({ deployment, marketplace, agentId, pricePerCall, payouts }: AgentPayoutsProps) {
  const { state, run, busy } = useTransaction();
  if (payouts.isPending) return <Loading what="the agent's payouts" />;
  if (payouts.isError) return <ErrorState error={payouts.error} retry={() => void payouts.refetch()} />;
  const { paid, distribution, unattributed, distributions, earnings } = payouts.data;
  const nothing = distribution.payments.length === 0 && unattributed === 0n;
  return (
    <section aria-labelledby="payouts-heading">
      <h2 id="payouts-heading">Payouts</h2>
      <dl className="facts card">
        <dt>Paid through the marketplace</dt>
        <dd data-testid="agent-paid">
          <UsdcAmount value={paid.amount} /> <span className="muted">({paid.payments.toLocaleString("en-US")} payments)</span>
        </dd>
        <dt>Awaiting distribution</dt>
        <dd data-testid="pending-payments">
          {distribution.payments.length.toLocaleString("en-US")} payments, <UsdcAmount value={distribution.amount} />
        </dd>
        <dt>Sent straight to its payment address</dt>
        <dd>
          <UsdcAmount value={unattributed} testId="payment-address-balance" /> <span className="muted">(distributed as one payment without a payer's referrer)</span>
        </dd>
        <dt>Distributions so far</dt>
        <dd data-testid="distribution-count">{distributions.toLocaleString("en-US")}</dd>
      </dl>
      <div className="actions">
        <button
          type="button"
          disabled={busy || nothing}
          onClick={() =>
            void run(async (tx) => {
              const { flow, payments } = await readPendingDistribution(tx.publicClient, marketplace, agentId, deployment.startBlock);
              await tx.write("Distribute", { address: marketplace, abi: agentMarketplaceAbi, functionName: "distribute", args: [agentId, flow, payments] });
            })
          }
        >
          Distribute now
        </button>
      </div>
      <p className="hint">
        {nothing
          ? "Nothing to distribute: no payment is pending and the payment address is empty."
          : "Anyone may distribute: the pending payments, which the marketplace holds for the agent in the ledger, and whatever its payment address holds are split among the contributors below."}
      </p>
      <TransactionStatus state={state} />
      <h3>Flow of funds</h3>
      <FlowPreview flow={distribution.flow} price={pricePerCall} />
      <h3>Contributor earnings</h3>
      <p className="muted">
        What this agent's distributions credited each contributor: ledger balances, withdrawn on the <Link to="/splits">Splits page</Link> (a split holds
        its credit until someone distributes it there), or budget top-ups.
      </p>
      <ContributorEarnings earnings={earnings} />
    </section>
  );
}
