import { useState } from "react";
import { erc20Abi, getAbiItem, isAddressEqual, type Address } from "viem";
import { computeEscrowAbi } from "@agentmesh/sdk/browser";
import { ChainLink } from "../../components/ChainLink.tsx";
import { Field, UsdcField } from "../../components/Field.tsx";
import { EmptyState } from "../../components/States.tsx";
import { TransactionStatus } from "../../components/TransactionStatus.tsx";
import { useEventLogs } from "../../hooks/useEventLogs.ts";
import { useTransaction } from "../../hooks/useTransaction.ts";
import type { ChainDeployment } from "../../lib/config.ts";
import { parseUsdcInput, usdcInputValue } from "../../lib/usdc.ts";
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

/** Top up (anyone), refund unallocated funds (creator), return funds after expiry (anyone). */
export function BudgetFunds({ deployment, budgetId, budget, account }: ActionProps & { account: Address }) {
  const escrow = deployment.contracts.ComputeEscrow;
  const [topUp, setTopUp] = useState("");
  const [refund, setRefund] = useState("");
  const { state, run, busy } = useTransaction();
  const parsedTopUp = parseUsdcInput(topUp);
  const parsedRefund = parseUsdcInput(refund, { max: budget.available });
  const isCreator = isAddressEqual(account, budget.creator);
  const expired = budget.expiry <= Date.now() / 1000;
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
            Refund to me
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
      <TransactionStatus state={state} />
    </section>
  );
}
