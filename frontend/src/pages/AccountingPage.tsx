import { isAddressEqual } from "viem";
import { BarChart, ColumnChart } from "../components/Charts.tsx";
import { Link } from "../components/Link.tsx";
import { PayeeName } from "../components/PayeeName.tsx";
import { EmptyState, ErrorState, Loading, WithDeployment } from "../components/States.tsx";
import { UsdcAmount } from "../components/UsdcAmount.tsx";
import { useAccounting } from "../hooks/useAccounting.ts";
import { payeeKey } from "../lib/contributors.ts";
import { formatBps } from "../lib/splits.ts";
import { formatUsdcAmount, usdcToNumber } from "../lib/usdc.ts";

/** A period's end as an axis label: the time of day within two days of the first, else the date. */
function periodLabel(seconds: number, spanSeconds: number): string {
  const iso = new Date(seconds * 1000).toISOString();
  return spanSeconds < 2 * 86_400 ? iso.slice(11, 16) : iso.slice(5, 10);
}

type AgentFlows = NonNullable<NonNullable<ReturnType<typeof useAccounting>["data"]>["agents"]>;

/** What agents' distributions credited their contributors: the total, and the top contributors. */
function ContributorPayouts({ agents }: { agents: AgentFlows }) {
  return (
    <section aria-labelledby="contributor-payouts-heading">
      <h2 id="contributor-payouts-heading">Contributor payouts</h2>
      <p className="muted">
        Credited to agents' contributors by the marketplace's distributions: <UsdcAmount value={agents.paidOut} testId="contributor-paid-out" /> to{" "}
        {agents.contributors.toLocaleString("en-US")} contributors.
      </p>
      {agents.topContributors.length === 0 ? (
        <EmptyState>No agent payment has been distributed on this network yet.</EmptyState>
      ) : (
        <div className="table-wrap">
          <table className="responsive" data-testid="top-contributors">
            <thead>
              <tr>
                <th scope="col">Contributor</th>
                <th scope="col">Credited</th>
              </tr>
            </thead>
            <tbody>
              {agents.topContributors.map((total) => (
                <tr key={payeeKey(total.payee)} data-testid={`contributor-${payeeKey(total.payee)}`}>
                  <td data-label="Contributor">
                    <PayeeName payee={total.payee} />
                    {total.payee.kind === "account" && isAddressEqual(total.payee.account, agents.treasury) && <span className="muted"> (platform treasury)</span>}
                  </td>
                  <td data-label="Credited">
                    <UsdcAmount value={total.amount} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Dashboard() {
  const accounting = useAccounting();
  if (accounting.isPending) return <Loading what="the chain's events" />;
  if (accounting.isError) return <ErrorState error={accounting.error} retry={() => void accounting.refetch()} />;
  const { summary, feeBps, periodEnds, agents } = accounting.data;
  const span = periodEnds.length > 1 ? periodEnds[periodEnds.length - 1] - periodEnds[0] : 0;
  return (
    <>
      <dl className="stats">
        <div>
          <dt>Volume settled</dt>
          <dd>
            <UsdcAmount value={summary.volume} testId="volume" />
          </dd>
        </div>
        <div>
          <dt>Provider earnings</dt>
          <dd>
            <UsdcAmount value={summary.providerEarnings} testId="provider-earnings" />
          </dd>
        </div>
        <div>
          <dt>Protocol fees ({formatBps(feeBps)} for new sessions)</dt>
          <dd>
            <UsdcAmount value={summary.protocolFees} testId="protocol-fees" />
          </dd>
        </div>
        <div>
          <dt>Settlements</dt>
          <dd data-testid="settlements">{summary.settlements}</dd>
        </div>
        {agents && (
          <div>
            <dt>Agent revenue ({agents.payments.toLocaleString("en-US")} payments)</dt>
            <dd>
              <UsdcAmount value={agents.revenue} testId="agent-revenue" />
            </dd>
          </div>
        )}
      </dl>
      {summary.settlements === 0 ? (
        <EmptyState>Nothing has been settled on this network yet.</EmptyState>
      ) : (
        <div className="charts">
          <ColumnChart
            title="Volume over time (USDC)"
            unit="USDC"
            data={summary.buckets.map((bucket, index) => ({ label: periodLabel(periodEnds[index], span), value: usdcToNumber(bucket.volume) }))}
          />
          <BarChart
            title="Top providers by earnings (USDC)"
            data={summary.topProviders.map((provider) => ({
              label: `Provider #${provider.providerId}`,
              value: usdcToNumber(provider.earnings),
              display: formatUsdcAmount(provider.earnings),
            }))}
          />
        </div>
      )}
      {summary.topProviders.length > 0 && (
        <div className="table-wrap">
          <table className="responsive" data-testid="top-providers">
            <thead>
              <tr>
                <th scope="col">Provider</th>
                <th scope="col">Requests settled</th>
                <th scope="col">Earnings</th>
              </tr>
            </thead>
            <tbody>
              {summary.topProviders.map((provider) => (
                <tr key={provider.providerId}>
                  <td data-label="Provider">
                    <Link to={`/sessions?provider=${provider.providerId}`}>#{provider.providerId}</Link>
                  </td>
                  <td data-label="Requests settled">{provider.requests.toLocaleString("en-US")}</td>
                  <td data-label="Earnings">
                    <UsdcAmount value={provider.earnings} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {agents && <ContributorPayouts agents={agents} />}
    </>
  );
}

/** Public accounting: aggregate flows read from the chain, no wallet needed. */
export default function AccountingPage() {
  return (
    <section>
      <h1>Accounting</h1>
      <p className="lead">Every settlement since deployment, read from the contracts' events: what sessions paid, what providers earned, what the protocol kept, what agents were paid and what their contributors were credited.</p>
      <WithDeployment>{() => <Dashboard />}</WithDeployment>
    </section>
  );
}
