import { useState } from "react";
import { parseEventLogs } from "viem";
import { computeEscrowAbi } from "@agentmesh/sdk/browser";
import { Field, UsdcField } from "../../components/Field.tsx";
import { TransactionStatus } from "../../components/TransactionStatus.tsx";
import { navigate } from "../../hooks/useRoute.ts";
import { useTransaction } from "../../hooks/useTransaction.ts";
import { signUsdcPermit } from "../../lib/chain.ts";
import type { ChainDeployment } from "../../lib/config.ts";
import { parseUsdcInput } from "../../lib/usdc.ts";
import { parseAddressList, parseExpiry, toDateTimeLocal } from "../../lib/validation.ts";

/** Creates a funded budget in one transaction, approving the deposit with a USDC permit. */
export function CreateBudgetForm({ deployment }: { deployment: ChainDeployment }) {
  const [amount, setAmount] = useState("");
  const [limit, setLimit] = useState("");
  const [expiry, setExpiry] = useState(() => toDateTimeLocal(Math.floor(Date.now() / 1000) + 30 * 86_400));
  const [agents, setAgents] = useState("");
  const [attempted, setAttempted] = useState(false);
  const { state, run, busy } = useTransaction();
  const parsed = {
    amount: parseUsdcInput(amount),
    limit: parseUsdcInput(limit),
    expiry: parseExpiry(expiry, Math.floor(Date.now() / 1000)),
    agents: parseAddressList(agents),
  };
  const error = (field: keyof typeof parsed) => (attempted && !parsed[field].ok ? (parsed[field] as { error: string }).error : undefined);

  const create = () => {
    setAttempted(true);
    const { amount: a, limit: l, expiry: e, agents: g } = parsed;
    if (!a.ok || !l.ok || !e.ok || !g.ok) return;
    const escrow = deployment.contracts.ComputeEscrow;
    void run(async (tx) => {
      const permit = await tx.sign("Sign the USDC permit", () =>
        signUsdcPermit({ publicClient: tx.publicClient, walletClient: tx.walletClient, token: deployment.usdc, owner: tx.account, spender: escrow, value: a.value }),
      );
      const receipt = await tx.write("Create budget", {
        address: escrow,
        abi: computeEscrowAbi,
        functionName: "createBudgetWithPermit",
        args: [a.value, l.value, BigInt(e.value), g.value, permit.deadline, permit.v, permit.r, permit.s],
      });
      const [created] = parseEventLogs({ abi: computeEscrowAbi, eventName: "BudgetCreated", logs: receipt.logs });
      if (created) navigate(`/budgets/${created.args.budgetId}`);
    });
  };

  return (
    <form
      className="card"
      aria-labelledby="create-budget-heading"
      onSubmit={(event) => {
        event.preventDefault();
        create();
      }}
    >
      <h2 id="create-budget-heading">Create a budget</h2>
      <div className="form-grid">
        <UsdcField label="Deposit" value={amount} onChange={(event) => setAmount(event.target.value)} error={error("amount")} />
        <UsdcField label="Per-session limit" hint="The most one agent session may lock." value={limit} onChange={(event) => setLimit(event.target.value)} error={error("limit")} />
        <Field label="Expiry" type="datetime-local" value={expiry} onChange={(event) => setExpiry(event.target.value)} error={error("expiry")} hint="After it, anyone may return the unallocated funds to your ledger balance." />
        <Field label="Whitelisted agents" hint="Agent addresses, separated by commas or spaces." value={agents} onChange={(event) => setAgents(event.target.value)} error={error("agents")} className="mono" />
      </div>
      <button type="submit" disabled={busy}>
        Sign permit and create
      </button>
      <TransactionStatus state={state} />
    </form>
  );
}
