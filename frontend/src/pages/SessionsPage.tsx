import { useState } from "react";
import { getAbiItem } from "viem";
import { useReadContracts } from "wagmi";
import { computeEscrowAbi } from "@agentmesh/sdk/browser";
import { ChainLink } from "../components/ChainLink.tsx";
import { Field } from "../components/Field.tsx";
import { Link } from "../components/Link.tsx";
import { EmptyState, ErrorState, Loading, WithDeployment } from "../components/States.tsx";
import { UsdcAmount } from "../components/UsdcAmount.tsx";
import { useEventLogs } from "../hooks/useEventLogs.ts";
import { navigate, useRoute } from "../hooks/useRoute.ts";
import type { ChainDeployment } from "../lib/config.ts";
import { shortHex } from "../lib/explorer.ts";
import { parseInteger } from "../lib/validation.ts";
import { BudgetSessions } from "./budget/BudgetSessions.tsx";

const sessionOpened = getAbiItem({ abi: computeEscrowAbi, name: "SessionOpened" });

/** Sessions of one provider, from the escrow's `SessionOpened` events, with what each has settled. */
function ProviderSessions({ deployment, providerId }: { deployment: ChainDeployment; providerId: number }) {
  const opened = useEventLogs({ address: deployment.contracts.ComputeEscrow, event: sessionOpened }, 5_000);
  const sessions = (opened.data ?? []).filter((log) => log.args.terms.providerId === providerId).reverse();
  const states = useReadContracts({
    contracts: sessions.map((log) => ({ address: deployment.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getSession", args: [log.args.sessionId] }) as const),
    allowFailure: false,
  });
  if (opened.isPending) return <Loading what="sessions" />;
  if (opened.isError) return <ErrorState error={opened.error} retry={() => void opened.refetch()} />;
  if (sessions.length === 0) return <EmptyState>Provider #{providerId} has no session yet.</EmptyState>;
  return (
    <div className="table-wrap">
      <table className="responsive" data-testid="provider-sessions">
        <thead>
          <tr>
            <th scope="col">Session</th>
            <th scope="col">Budget</th>
            <th scope="col">Agent</th>
            <th scope="col">Model</th>
            <th scope="col">Locked</th>
            <th scope="col">Settled</th>
            <th scope="col">Status</th>
          </tr>
        </thead>
        <tbody>
          {sessions.map((log, index) => {
            const state = states.data?.[index] as { settled: bigint; claimEnd: number } | undefined;
            return (
              <tr key={log.args.sessionId}>
                <td data-label="Session">
                  <Link to={`/sessions/${log.args.sessionId}`} className="mono">
                    {shortHex(log.args.sessionId)}
                  </Link>
                </td>
                <td data-label="Budget">
                  <Link to={`/budgets/${log.args.budgetId}`}>#{String(log.args.budgetId)}</Link>
                </td>
                <td data-label="Agent">
                  <ChainLink kind="address" value={log.args.agent} />
                </td>
                <td data-label="Model">#{log.args.terms.modelId}</td>
                <td data-label="Locked">
                  <UsdcAmount value={log.args.terms.maxSpend} />
                </td>
                <td data-label="Settled">{state ? <UsdcAmount value={state.settled} /> : "…"}</td>
                <td data-label="Status">{state ? (state.claimEnd === 1 ? "closed" : "open") : "…"}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

/** Picks whose sessions to show: a budget's or a provider's. */
function SessionFilter({ kind, id }: { kind: "budget" | "provider"; id: string }) {
  const [selectedKind, setKind] = useState(kind);
  const [text, setText] = useState(id);
  const parsed = parseInteger(text, 1);
  return (
    <form
      className="inline-form"
      onSubmit={(event) => {
        event.preventDefault();
        if (parsed.ok) navigate(`/sessions?${selectedKind}=${parsed.value}`);
      }}
    >
      <fieldset className="checks">
        <legend>Sessions of</legend>
        <label>
          <input type="radio" name="kind" checked={selectedKind === "budget"} onChange={() => setKind("budget")} /> a budget
        </label>
        <label>
          <input type="radio" name="kind" checked={selectedKind === "provider"} onChange={() => setKind("provider")} /> a provider
        </label>
      </fieldset>
      <Field label="Id" inputMode="numeric" value={text} onChange={(event) => setText(event.target.value)} error={text && !parsed.ok ? parsed.error : undefined} />
      <button type="submit" disabled={!parsed.ok}>
        Show
      </button>
    </form>
  );
}

/** Sessions per budget (with live spend) or per provider. */
export default function SessionsPage() {
  const { query } = useRoute();
  const budget = parseInteger(query.get("budget") ?? "", 1);
  const provider = parseInteger(query.get("provider") ?? "", 1);
  return (
    <section>
      <h1>Sessions</h1>
      <SessionFilter key={query.toString()} kind={provider.ok ? "provider" : "budget"} id={provider.ok ? String(provider.value) : budget.ok ? String(budget.value) : ""} />
      <WithDeployment>
        {(deployment) =>
          provider.ok ? (
            <>
              <h2>Provider #{provider.value}</h2>
              <ProviderSessions deployment={deployment} providerId={provider.value} />
            </>
          ) : budget.ok ? (
            <>
              <h2>
                <Link to={`/budgets/${budget.value}`}>Budget #{budget.value}</Link>
              </h2>
              <BudgetSessions budgetId={BigInt(budget.value)} />
            </>
          ) : (
            <EmptyState>Choose a budget or a provider to see its sessions.</EmptyState>
          )
        }
      </WithDeployment>
    </section>
  );
}
