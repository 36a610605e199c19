import { useState } from "react";
import { erc20Abi, getAbiItem, isAddressEqual, type Address } from "viem";
import { useBlock } from "wagmi";
import { computeEscrowAbi, splitsLedgerAbi } from "@agentmesh/sdk/browser";
import { ChainLink } from "../../components/ChainLink.tsx";
import { Field, UsdcField } from "../../components/Field.tsx";
import { EmptyState } from "../../components/States.tsx";
import { TransactionStatus } from "../../components/TransactionStatus.tsx";
import { useLedgerBalance } from "../../hooks/useBalances.ts";
import { useEventLogs } from "../../hooks/useEventLogs.ts";
import { useTransaction } from "../../hooks/useTransaction.ts";
import type { ChainDeployment } from "../../lib/config.ts";
import { formatUsdcAmount, parseUsdcInput, usdcInputValue } from "../../lib/usdc.ts";
import { parseAddressList, parseExpiry, toDateTimeLocal } from "../../lib/validation.ts";

export interface BudgetState {
  creator: Address;
  expiry: number;
  available: bigint;
  perSessionLimit: bigint;
}

interface ActionProps {
  deployment: ChainDeployment;
  budgetId: bigint;
  budget: BudgetState;
}

const agentAllowedSet = getAbiItem({ abi: computeEscrowAbi, name: "AgentAllowedSet" });

/** The whitelist, from the budget's `AgentAllowedSet` events: add agents, remove one. */
export function AgentWhitelist({ deployment, budgetId, isCreator }: { deployment: ChainDeployment; budgetId: bigint; isCreator: boolean }) {
  const escrow = deployment.contracts.ComputeEscrow;
  const events = useEventLogs({ address: escrow, event: agentAllowedSet, args: { budgetId } });
  const [text, setText] = useState("");
  const { state, run, busy } = useTransaction();
  const parsed = parseAddressList(text);
  const allowed = new Map<Address, boolean>();
  for (const log of events.data ?? []) allowed.set(log.args.agent, log.args.allowed);
  const agents = [...allowed].filter(([, isAllowed]) => isAllowed).map(([agent]) => agent);
  const setAllowed = (list: Address[], value: boolean) =>
    run((tx) => tx.write(value ? "Whitelist agents" : "Remove agent", { address: escrow, abi: computeEscrowAbi, functionName: "setAgentsAllowed", args: [budgetId, list, value] }));
  return (
    <section aria-label="Whitelisted agents">
      <h2>Whitelisted agents</h2>
      {agents.length === 0 ? (
        <EmptyState>No agent may draw from this budget yet.</EmptyState>
      ) : (
        <ul className="plain" data-testid="agents">
          {agents.map((agent) => (
            <li key={agent}>
              <ChainLink kind="address" value={agent} label={agent} />{" "}
              {isCreator && (
                <button type="button" className="secondary" disabled={busy} onClick={() => void setAllowed([agent], false)} aria-label={`Remove agent ${agent}`}>
                  Remove
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {isCreator && (
        <form
          className="inline-form"
          onSubmit={(event) => {
            event.preventDefault();
            if (parsed.ok && parsed.value.length > 0) void setAllowed(parsed.value, true).then((done) => done && setText(""));
          }}
        >
          <Field label="Add agents" value={text} onChange={(event) => setText(event.target.value)} error={text && !parsed.ok ? parsed.error : undefined} className="mono" placeholder="0x…" />
          <button type="submit" disabled={busy || !parsed.ok || parsed.value.length === 0}>
            Whitelist
          </button>
        </form>
      )}
      <TransactionStatus state={state} />
    </section>
  );
}

/** Per-session limit and expiry (creator only). */
export function BudgetTermsForm({ deployment, budgetId, budget }: ActionProps) {
  const [limit, setLimit] = useState(usdcInputValue(budget.perSessionLimit));
  const [expiry, setExpiry] = useState(toDateTimeLocal(budget.expiry));
  const { state, run, busy } = useTransaction();
  const parsedLimit = parseUsdcInput(limit);
  const parsedExpiry = parseExpiry(expiry, Math.floor(Date.now() / 1000));
  return (
    <form
      className="inline-form"
      aria-label="Budget terms"
      onSubmit={(event) => {
        event.preventDefault();
        if (!parsedLimit.ok || !parsedExpiry.ok) return;
        void run((tx) =>
          tx.write("Set terms", {
            address: deployment.contracts.ComputeEscrow,
            abi: computeEscrowAbi,
            functionName: "setBudgetTerms",
            args: [budgetId, parsedLimit.value, BigInt(parsedExpiry.value)],
          }),
        );
      }}
    >
      <UsdcField label="Per-session limit" value={limit} onChange={(event) => setLimit(event.target.value)} error={parsedLimit.ok ? undefined : parsedLimit.error} />
      <Field label="Expiry" type="datetime-local" value={expiry} onChange={(event) => setExpiry(event.target.value)} error={parsedExpiry.ok ? undefined : parsedExpiry.error} />
      <button type="submit" disabled={busy}>
        Save terms
      </button>
      <TransactionStatus state={state} />
    </form>
  );
}

/** Tops the budget up from the connected account's ledger balance: approves the escrow on the ledger, then `topUpFromBalance`. */
function TopUpFromBalanceForm({ deployment, budgetId, account }: { deployment: ChainDeployment; budgetId: bigint; account: Address }) {
  const escrow = deployment.contracts.ComputeEscrow;
  const balance = useLedgerBalance(account);
  const [amount, setAmount] = useState("");
  const { state, run, busy } = useTransaction();
  const parsed = parseUsdcInput(amount, { max: balance.data ?? 0n });
  return (
    <form
      className="inline-form"
      aria-label="Fund from your ledger balance"
      onSubmit={(event) => {
        event.preventDefault();
        if (!parsed.ok) return;
        void run(async (tx) => {
          await tx.write("Approve the escrow", { address: deployment.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "approve", args: [escrow, parsed.value] });
          await tx.write("Top up from balance", { address: escrow, abi: computeEscrowAbi, functionName: "topUpFromBalance", args: [budgetId, parsed.value] });
        }).then((done) => done && setAmount(""));
      }}
    >
      <UsdcField
        label="Amount from your ledger balance"
        hint={balance.data === undefined ? undefined : `You hold ${formatUsdcAmount(balance.data)} USDC in the ledger.`}
        value={amount}
        onChange={(event) => setAmount(event.target.value)}
        error={amount && !parsed.ok ? parsed.error : undefined}
      />
      <button type="submit" disabled={busy || !parsed.ok}>
        Fund from balance
      </button>
      <TransactionStatus state={state} />
    </form>
  );
}

/**
 * Top up from the wallet or from the ledger balance (anyone), refund unallocated funds to the
 * creator's wallet (creator), return them after expiry to the creator's ledger balance (anyone).
 */
export function BudgetFunds({ deployment, budgetId, budget, account }: ActionProps & { account: Address }) {
  const escrow = deployment.contracts.ComputeEscrow;
  const [topUp, setTopUp] = useState("");
  const [refund, setRefund] = useState("");
  const { state, run, busy } = useTransaction();
  const parsedTopUp = parseUsdcInput(topUp);
  const parsedRefund = parseUsdcInput(refund, { max: budget.available });
  const isCreator = isAddressEqual(account, budget.creator);
  // Expired as the escrow sees it: by the latest block's time, which is what `returnExpired` checks.
  const latest = useBlock();
  const expired = latest.data !== undefined && BigInt(budget.expiry) <= latest.data.timestamp;
  return (
    <section aria-label="Funds">
      <h2>Funds</h2>
      <form
        className="inline-form"
        onSubmit={(event) => {
          event.preventDefault();
          if (!parsedTopUp.ok) return;
          void run(async (tx) => {
            await tx.write("Approve USDC", { address: deployment.usdc, abi: erc20Abi, functionName: "approve", args: [escrow, parsedTopUp.value] });
            await tx.write("Top up", { address: escrow, abi: computeEscrowAbi, functionName: "topUp", args: [budgetId, parsedTopUp.value] });
          }).then((done) => done && setTopUp(""));
        }}
      >
        <UsdcField label="Top up" value={topUp} onChange={(event) => setTopUp(event.target.value)} error={topUp && !parsedTopUp.ok ? parsedTopUp.error : undefined} />
        <button type="submit" disabled={busy || !parsedTopUp.ok}>
          Approve and top up
        </button>
      </form>
      <TopUpFromBalanceForm deployment={deployment} budgetId={budgetId} account={account} />
      {isCreator && (
        <form
          className="inline-form"
          onSubmit={(event) => {
            event.preventDefault();
            if (!parsedRefund.ok) return;
            void run((tx) => tx.write("Refund", { address: escrow, abi: computeEscrowAbi, functionName: "refund", args: [budgetId, parsedRefund.value] })).then(
              (done) => done && setRefund(""),
            );
          }}
        >
          <UsdcField label="Refund unallocated funds" value={refund} onChange={(event) => setRefund(event.target.value)} error={refund && !parsedRefund.ok ? parsedRefund.error : undefined} />
          <button type="submit" disabled={busy || !parsedRefund.ok}>
            Refund to my wallet
          </button>
        </form>
      )}
      <div className="actions">
        <button
          type="button"
          disabled={busy || !expired || budget.available === 0n}
          title={expired ? undefined : "Available after the budget expires"}
          onClick={() => void run((tx) => tx.write("Return expired funds", { address: escrow, abi: computeEscrowAbi, functionName: "returnExpired", args: [budgetId] }))}
        >
          Return funds after expiry
        </button>
      </div>
      <p className="hint">
        After expiry anyone may return the unallocated funds: they are credited to the creator's ledger balance (no USDC moves, so it always succeeds), which the
        creator withdraws {isCreator ? "below" : "on the Splits page"}.
      </p>
      <TransactionStatus state={state} />
    </section>
  );
}
