import { isAddressEqual } from "viem";
import { useAccount, useReadContract } from "wagmi";
import { computeEscrowAbi } from "@agentmesh/sdk/browser";
import { ChainLink } from "../components/ChainLink.tsx";
import { ErrorState, Loading, WithDeployment } from "../components/States.tsx";
import { UsdcAmount } from "../components/UsdcAmount.tsx";
import type { ChainDeployment } from "../lib/config.ts";
import { formatTimestamp } from "../lib/validation.ts";
import { AgentWhitelist, BudgetFunds, BudgetTermsForm } from "./budget/BudgetActions.tsx";
import { BudgetSessions } from "./budget/BudgetSessions.tsx";

function Budget({ deployment, budgetId }: { deployment: ChainDeployment; budgetId: bigint }) {
  const { address } = useAccount();
  const budget = useReadContract({ address: deployment.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getBudget", args: [budgetId] });
  if (budget.isPending) return <Loading what={`budget #${budgetId}`} />;
  if (budget.isError) return <ErrorState error={budget.error} retry={() => void budget.refetch()} />;
  const data = budget.data;
  const isCreator = address !== undefined && isAddressEqual(address, data.creator);
  return (
    <>
      <dl className="facts card">
        <dt>Creator</dt>
        <dd>
          <ChainLink kind="address" value={data.creator} />
        </dd>
        <dt>Unallocated</dt>
        <dd>
          <UsdcAmount value={data.available} testId="budget-available" />
        </dd>
        <dt>Per-session limit</dt>
        <dd>
          <UsdcAmount value={data.perSessionLimit} />
        </dd>
        <dt>Expiry</dt>
        <dd>{formatTimestamp(data.expiry)}</dd>
      </dl>
      <h2>Sessions</h2>
      <BudgetSessions budgetId={budgetId} />
      <AgentWhitelist deployment={deployment} budgetId={budgetId} isCreator={isCreator} />
      {isCreator && (
        <section aria-label="Terms">
          <h2>Terms</h2>
          <BudgetTermsForm key={`${data.perSessionLimit}-${data.expiry}`} deployment={deployment} budgetId={budgetId} budget={data} />
        </section>
      )}
      {address !== undefined && <BudgetFunds deployment={deployment} budgetId={budgetId} budget={data} account={address} />}
    </>
  );
}

/** One budget: funds, terms, whitelist, and its sessions with live spend. */
export default function BudgetPage({ budgetId }: { budgetId: bigint }) {
  return (
    <section>
      <h1>Budget #{String(budgetId)}</h1>
      <WithDeployment>{(deployment) => <Budget deployment={deployment} budgetId={budgetId} />}</WithDeployment>
    </section>
  );
}
