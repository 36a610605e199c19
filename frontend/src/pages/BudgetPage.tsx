import { isAddressEqual } from "viem";
import { useAccount, useReadContract } from "wagmi";
import { computeEscrowAbi } from "@agentmesh/sdk/browser";
import { ChainLink } from "../components/ChainLink.tsx";
import { LedgerBalance } from "../components/LedgerBalance.tsx";
import { RestrictionNotice } from "../components/RestrictionNotice.tsx";
import { ErrorState, Loading, WithDeployment } from "../components/States.tsx";
import { UsdcAmount } from "../components/UsdcAmount.tsx";
import { useAccountRestriction } from "../hooks/useBalances.ts";
import type { ChainDeployment } from "../lib/config.ts";
import { formatTimestamp } from "../lib/validation.ts";
import { AgentWhitelist, BudgetFunds, BudgetTermsForm } from "./budget/BudgetActions.tsx";
import { BudgetSessions } from "./budget/BudgetSessions.tsx";

function Budget({ deployment, budgetId }: { deployment: ChainDeployment; budgetId: bigint }) {
  const { address } = useAccount();
  const budget = useReadContract({ address: deployment.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getBudget", args: [budgetId] });
  const creatorRestriction = useAccountRestriction(budget.data?.creator);
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
          {creatorRestriction.data && (
            <RestrictionNotice restriction={creatorRestriction.data}>
              While it lasts, no session opens on this budget and refunds are refused; after expiry its funds can still be returned to the creator's ledger balance.
            </RestrictionNotice>
          )}
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
      {isCreator && (
        <section aria-labelledby="creator-balance-heading">
          <h2 id="creator-balance-heading">Your ledger balance</h2>
          <p className="muted">Where funds returned after expiry arrive; withdraw them to your wallet.</p>
          <LedgerBalance deployment={deployment} account={data.creator} />
        </section>
      )}
    </>
  );
}

/** One budget: funds, terms, whitelist, its sessions with live spend, and for its creator, the ledger balance returned funds go to. */
export default function BudgetPage({ budgetId }: { budgetId: bigint }) {
  return (
    <section>
      <h1>Budget #{String(budgetId)}</h1>
      <WithDeployment>{(deployment) => <Budget deployment={deployment} budgetId={budgetId} />}</WithDeployment>
    </section>
  );
}
