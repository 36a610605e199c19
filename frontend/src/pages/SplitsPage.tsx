import { useMemo, useState } from "react";
import { getAbiItem, parseEventLogs, type Address } from "viem";
import { useAccount, useReadContract, useReadContracts } from "wagmi";
import { splitsLedgerAbi } from "@agentmesh/sdk/browser";
import { SplitBar } from "../components/Charts.tsx";
import { ChainLink } from "../components/ChainLink.tsx";
import { DistributeSplit } from "../components/DistributeSplit.tsx";
import { Field } from "../components/Field.tsx";
import { LedgerBalance } from "../components/LedgerBalance.tsx";
import { EmptyState, ErrorState, Loading, WithDeployment } from "../components/States.tsx";
import { TransactionStatus } from "../components/TransactionStatus.tsx";
import { UsdcAmount } from "../components/UsdcAmount.tsx";
import { useEventLogs } from "../hooks/useEventLogs.ts";
import { navigate, useRoute } from "../hooks/useRoute.ts";
import { useTransaction } from "../hooks/useTransaction.ts";
import type { ChainDeployment } from "../lib/config.ts";
import { buildSplit, creditedSlices, formatShare, splitSlices, splitsPaying, type RecipientInput } from "../lib/splits.ts";
import { parseAddress } from "../lib/validation.ts";

/** Composes a split with a live picture of who gets what, and creates it. */
function SplitEditor({ deployment, account }: { deployment: ChainDeployment; account: Address | undefined }) {
  const [rows, setRows] = useState<RecipientInput[]>([{ account: account ?? "", percent: "90" }]);
  const [remainder, setRemainder] = useState<string>(account ?? "");
  const [attempted, setAttempted] = useState(false);
  const { state, run, busy } = useTransaction();
  const split = buildSplit(rows, remainder);
  const ledger = deployment.contracts.SplitsLedger;
  const predicted = useReadContract({ address: ledger, abi: splitsLedgerAbi, functionName: "predictSplitAddress", args: split.ok ? [split.value] : undefined, query: { enabled: split.ok } });
  const setRow = (index: number, patch: Partial<RecipientInput>) => setRows(rows.map((row, at) => (at === index ? { ...row, ...patch } : row)));
  return (
    <form
      className="card"
      aria-labelledby="split-editor-heading"
      onSubmit={(event) => {
        event.preventDefault();
        setAttempted(true);
        if (!split.ok) return;
        void run(async (tx) => {
          const receipt = await tx.write("Create split", { address: ledger, abi: splitsLedgerAbi, functionName: "createSplit", args: [split.value] });
          const [created] = parseEventLogs({ abi: splitsLedgerAbi, eventName: "SplitCreated", logs: receipt.logs });
          navigate(`/splits?split=${created?.args.split ?? predicted.data}`);
        });
      }}
    >
      <h2 id="split-editor-heading">Edit a payout split</h2>
      <p className="muted">Splits are immutable: editing one creates a new split, which you then set as a provider's payout.</p>
      {rows.map((row, index) => (
        <div className="inline-form" key={index}>
          <Field label={`Recipient ${index + 1}`} value={row.account} onChange={(event) => setRow(index, { account: event.target.value })} className="mono" placeholder="0x…" />
          <Field label="Share" suffix="%" inputMode="decimal" value={row.percent} onChange={(event) => setRow(index, { percent: event.target.value })} />
          {rows.length > 1 && (
            <button type="button" className="secondary" onClick={() => setRows(rows.filter((_, at) => at !== index))} aria-label={`Remove recipient ${index + 1}`}>
              Remove
            </button>
          )}
        </div>
      ))}
      <button type="button" className="secondary" onClick={() => setRows([...rows, { account: "", percent: "" }])}>
        Add recipient
      </button>
      <Field label="Remainder recipient" hint="Receives whatever the shares leave over." value={remainder} onChange={(event) => setRemainder(event.target.value)} className="mono" />
      {split.ok ? <SplitBar slices={splitSlices(split.value)} /> : attempted && <p className="field-error" role="alert">{split.error}</p>}
      {predicted.data && (
        <p>
          Split address: <ChainLink kind="address" value={predicted.data} label={predicted.data} />
        </p>
      )}
      <button type="submit" disabled={busy}>
        Create split
      </button>
      <TransactionStatus state={state} />
    </form>
  );
}

const splitCreated = getAbiItem({ abi: splitsLedgerAbi, name: "SplitCreated" });
const splitDistributed = getAbiItem({ abi: splitsLedgerAbi, name: "SplitDistributed" });

/** A recipient's ledger balance, or for a nested split, what it holds undistributed. */
function RecipientBalance({ deployment, account }: { deployment: ChainDeployment; account: Address }) {
  const isSplit = useReadContract({ address: deployment.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "isSplit", args: [account] });
  if (isSplit.isPending) return <Loading what="the balance" />;
  return isSplit.data ? <DistributeSplit deployment={deployment} split={account} linked /> : <LedgerBalance deployment={deployment} account={account} />;
}

/**
 * A split: who gets what, what it holds undistributed (one click distributes it), what it has
 * distributed, what its distributions credited each recipient (the ledger's `SplitDistributed`
 * credits), and each recipient's balance.
 */
function SplitView({ deployment, split }: { deployment: ChainDeployment; split: Address }) {
  const ledger = deployment.contracts.SplitsLedger;
  const reads = useReadContracts({
    contracts: [
      { address: ledger, abi: splitsLedgerAbi, functionName: "getSplit", args: [split] },
      { address: ledger, abi: splitsLedgerAbi, functionName: "splitTotals", args: [split] },
    ],
    allowFailure: false,
  });
  const distributions = useEventLogs({ address: ledger, event: splitDistributed, args: { split } });
  if (reads.isPending) return <Loading what="the split" />;
  if (reads.isError) return <ErrorState error={reads.error} retry={() => void reads.refetch()} />;
  const [definition, [distributed, dust]] = reads.data;
  const slices = creditedSlices(
    { recipients: [...definition.recipients], remainderRecipient: definition.remainderRecipient },
    (distributions.data ?? []).map((log) => log.args.credits),
  );
  return (
    <section className="card" aria-label="Split">
      <h2>
        Split <ChainLink kind="address" value={split} />
      </h2>
      <SplitBar slices={slices} />
      <DistributeSplit deployment={deployment} split={split} />
      <dl className="facts">
        <dt>Distributed in its lifetime</dt>
        <dd>
          <UsdcAmount value={distributed} testId="split-distributed" />
          {distributions.data && <span className="muted"> in {distributions.data.length.toLocaleString("en-US")} distributions</span>}
          {dust > 0n && <span className="muted"> ({dust.toLocaleString("en-US")} units of rounding dust wait for the next distribution)</span>}
        </dd>
      </dl>
      <div className="table-wrap">
        <table className="responsive" data-testid="split-credits">
          <thead>
            <tr>
              <th scope="col">Recipient</th>
              <th scope="col">Share</th>
              <th scope="col">Credited by its distributions</th>
            </tr>
          </thead>
          <tbody>
            {slices.map((slice) => (
              <tr key={slice.account + slice.remainder}>
                <td data-label="Recipient">
                  <ChainLink kind="address" value={slice.account} />
                  {slice.remainder && <span className="muted"> (remainder)</span>}
                </td>
                <td data-label="Share">{formatShare(slice.share)}</td>
                <td data-label="Credited by its distributions">{distributions.data ? <UsdcAmount value={slice.credited} /> : "…"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h3>Recipients' balances</h3>
      {[...new Set(slices.map((slice) => slice.account))].map((account) => (
        <RecipientBalance key={account} deployment={deployment} account={account} />
      ))}
    </section>
  );
}

/** The splits that pay `account` (directly or through nested splits), each with what it holds undistributed. */
function PayingSplits({ deployment, account }: { deployment: ChainDeployment; account: Address }) {
  const created = useEventLogs({ address: deployment.contracts.SplitsLedger, event: splitCreated });
  const paying = useMemo(
    () =>
      splitsPaying(
        account,
        (created.data ?? []).map((log) => ({ split: log.args.split, definition: { recipients: [...log.args.definition.recipients], remainderRecipient: log.args.definition.remainderRecipient } })),
      ),
    [account, created.data],
  );
  if (created.isPending) return <Loading what="the splits that pay this account" />;
  if (created.isError) return <ErrorState error={created.error} retry={() => void created.refetch()} />;
  if (paying.length === 0) return null;
  return (
    <section aria-labelledby="paying-splits-heading" data-testid="paying-splits">
      <h3 id="paying-splits-heading">Splits that pay this account</h3>
      <p className="muted">What a split is paid waits in it until someone distributes it; anyone may.</p>
      {paying.map((split) => (
        <DistributeSplit key={split} deployment={deployment} split={split} linked />
      ))}
    </section>
  );
}

/** Looks up a split or any contributor by address. */
function Lookup({ deployment, initial }: { deployment: ChainDeployment; initial: string }) {
  const [text, setText] = useState(initial);
  const parsed = parseAddress(text);
  const isSplit = useReadContract({
    address: deployment.contracts.SplitsLedger,
    abi: splitsLedgerAbi,
    functionName: "isSplit",
    args: parsed.ok ? [parsed.value] : undefined,
    query: { enabled: parsed.ok },
  });
  return (
    <section aria-label="Balances and splits">
      <h2>Balances and withdrawals</h2>
      <Field label="Account or split" value={text} onChange={(event) => setText(event.target.value)} error={text && !parsed.ok ? parsed.error : undefined} className="mono" placeholder="0x…" />
      {!parsed.ok ? (
        <EmptyState>Enter an address to see its balance, or a split to see who gets what.</EmptyState>
      ) : isSplit.data ? (
        <SplitView deployment={deployment} split={parsed.value} />
      ) : (
        <>
          <LedgerBalance deployment={deployment} account={parsed.value} />
          <PayingSplits deployment={deployment} account={parsed.value} />
        </>
      )}
    </section>
  );
}

/**
 * Payout splits: compose one; see who gets what, what a split holds undistributed and distribute it;
 * each contributor's balance and withdrawals, with the splits that pay it.
 */
export default function SplitsPage() {
  const { query } = useRoute();
  const { address } = useAccount();
  return (
    <section>
      <h1>Splits</h1>
      <WithDeployment>
        {(deployment) => (
          <>
            <Lookup key={query.get("split") ?? address} deployment={deployment} initial={query.get("split") ?? address ?? ""} />
            <SplitEditor key={address} deployment={deployment} account={address} />
          </>
        )}
      </WithDeployment>
    </section>
  );
}
