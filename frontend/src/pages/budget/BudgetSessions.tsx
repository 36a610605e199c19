import { ChainLink } from "../../components/ChainLink.tsx";
import { Link } from "../../components/Link.tsx";
import { EmptyState, ErrorState, Loading, RelayerMissing } from "../../components/States.tsx";
import { UsdcAmount } from "../../components/UsdcAmount.tsx";
import { useBudgetSessions } from "../../hooks/useRelayer.ts";
import { useMarketplaceRelayer } from "../../hooks/useRelayers.ts";
import { shortHex } from "../../lib/explorer.ts";
import { parseUsdcDecimal } from "../../lib/usdc.ts";

/** A budget's sessions with their live spend (polled from the relayer). */
export function BudgetSessions({ budgetId }: { budgetId: bigint }) {
  const view = useBudgetSessions(budgetId);
  const relayer = useMarketplaceRelayer();
  if (relayer.url === undefined) return <RelayerMissing relayer={relayer} />;
  if (view.isPending) return <Loading what="sessions" />;
  if (view.isError) return <ErrorState error={view.error} retry={() => void view.refetch()} />;
  if (view.data.sessions.length === 0) return <EmptyState>No agent has opened a session on this budget yet.</EmptyState>;
  return (
    <div className="table-wrap">
      <table className="responsive" data-testid="budget-sessions">
        <thead>
          <tr>
            <th scope="col">Session</th>
            <th scope="col">Agent</th>
            <th scope="col">Provider</th>
            <th scope="col">Locked</th>
            <th scope="col">Spent (live)</th>
            <th scope="col">Settled</th>
            <th scope="col">Calls</th>
            <th scope="col">Status</th>
          </tr>
        </thead>
        <tbody>
          {view.data.sessions.map((session) => (
            <tr key={session.id} data-testid={`budget-session-${session.id}`}>
              <td data-label="Session">
                <Link to={`/sessions/${session.id}`} className="mono">
                  {shortHex(session.id)}
                </Link>
              </td>
              <td data-label="Agent">
                <ChainLink kind="address" value={session.agent} />
              </td>
              <td data-label="Provider">#{session.providerId}</td>
              <td data-label="Locked">
                <UsdcAmount value={parseUsdcDecimal(session.maxSpend)} />
              </td>
              <td data-label="Spent (live)">
                <UsdcAmount value={parseUsdcDecimal(session.spent)} testId="session-spent" />
              </td>
              <td data-label="Settled">
                <UsdcAmount value={parseUsdcDecimal(session.settled)} />
              </td>
              <td data-label="Calls">{session.requests ?? "—"}</td>
              <td data-label="Status">{session.finalized ? "closed" : "open"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
