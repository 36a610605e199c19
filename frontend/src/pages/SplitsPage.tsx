import { useState } from "react";
import { parseEventLogs, type Address } from "viem";
import { useAccount, useReadContract, useReadContracts } from "wagmi";
import { splitsLedgerAbi } from "@agentmesh/sdk/browser";
import { SplitBar } from "../components/Charts.tsx";
import { ChainLink } from "../components/ChainLink.tsx";
import { Field } from "../components/Field.tsx";
import { LedgerBalance } from "../components/LedgerBalance.tsx";
import { EmptyState, ErrorState, Loading, WithDeployment } from "../components/States.tsx";
import { TransactionStatus } from "../components/TransactionStatus.tsx";
import { UsdcAmount } from "../components/UsdcAmount.tsx";
import { navigate, useRoute } from "../hooks/useRoute.ts";
import { useTransaction } from "../hooks/useTransaction.ts";
import type { ChainDeployment } from "../lib/config.ts";
import { buildSplit, splitSlices, type RecipientInput } from "../lib/splits.ts";
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

/** A split's recipients and balances; anyone can distribute what it holds. */
function SplitView({ deployment, split }: { deployment: ChainDeployment; split: Address }) {
  const ledger = deployment.contracts.SplitsLedger;
  const reads = useReadContracts({
    contracts: [
      { address: ledger, abi: splitsLedgerAbi, functionName: "getSplit", args: [split] },
      { address: ledger, abi: splitsLedgerAbi, functionName: "splitTotals", args: [split] },
      { address: ledger, abi: splitsLedgerAbi, functionName: "balanceOf", args: [split] },
    ],
    allowFailure: false,
  });
  const { state, run, busy } = useTransaction();
  if (reads.isPending) return <Loading what="the split" />;
  if (reads.isError) return <ErrorState error={reads.error} retry={() => void reads.refetch()} />;
  const [definition, [received], held] = reads.data;
  const slices = splitSlices({ recipients: [...definition.recipients], remainderRecipient: definition.remainderRecipient });
  return (
    <section className="card" aria-label="Split">
      <h2>
        Split <ChainLink kind="address" value={split} />
      </h2>
      <SplitBar slices={slices} />
      <dl className="facts">
        <dt>Received in its lifetime</dt>
        <dd>
          <UsdcAmount value={received} />
        </dd>
        <dt>Held, to distribute</dt>
        <dd>
          <UsdcAmount value={held} />
        </dd>
      </dl>
      <button
        type="button"
        disabled={busy || held === 0n}
        onClick={() => void run((tx) => tx.write("Distribute", { address: ledger, abi: splitsLedgerAbi, functionName: "distribute", args: [split] }))}
      >
        Distribute
      </button>
      <TransactionStatus state={state} />
      <h3>Contributors' balances</h3>
      {slices.map((slice) => (
        <LedgerBalance key={slice.account + slice.remainder} deployment={deployment} account={slice.account} />
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
        <LedgerBalance deployment={deployment} account={parsed.value} />
      )}
    </section>
  );
}

/** Payout splits: compose one, see who gets what, and each contributor's balance and withdrawals. */
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
