import { getAbiItem, type Address } from "viem";
import { useReadContracts } from "wagmi";
import { computeEscrowAbi } from "@agentmesh/sdk/browser";
import { Link } from "../components/Link.tsx";
import { EmptyState, ErrorState, Loading, WithAccount, WithDeployment } from "../components/States.tsx";
import { UsdcAmount } from "../components/UsdcAmount.tsx";
import { useEventLogs } from "../hooks/useEventLogs.ts";
import type { ChainDeployment } from "../lib/config.ts";
import { formatTimestamp } from "../lib/validation.ts";
import { CreateBudgetForm } from "./budget/CreateBudgetForm.tsx";

const budgetCreated = getAbiItem({ abi: computeEscrowAbi, name: "BudgetCreated" });

function MyBudgets({ deployment, account }: { deployment: ChainDeployment; account: Address }) {
  const created = useEventLogs({ address: deployment.contracts.ComputeEscrow, event: budgetCreated, args: { creator: account } });
  const ids = created.data?.map((log) => log.args.budgetId) ?? [];
  const budgets = useReadContracts({
    contracts: ids.map((id) => ({ address: deployment.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getBudget", args: [id] }) as const),
    allowFailure: false,
  });
  if (created.isPending || (ids.length > 0 && budgets.isPending)) return <Loading what="your budgets" />;
  if (created.isError || budgets.isError) return <ErrorState error={created.error ?? budgets.error} retry={() => void created.refetch()} />;
  if (ids.length === 0) return <EmptyState>You have not created a budget yet.</EmptyState>;
  const now = Date.now() / 1000;
  return (
    <div className="table-wrap">
      <table className="responsive" data-testid="budgets">
        <thead>
          <tr>
            <th scope="col">Budget</th>
            <th scope="col">Unallocated</th>
            <th scope="col">Per-session limit</th>
            <th scope="col">Expiry</th>
          </tr>
        </thead>
        <tbody>
          {ids.map((id, index) => {
            const budget = budgets.data?.[index] as { available: bigint; perSessionLimit: bigint; expiry: number } | undefined;
            return (
              <tr key={String(id)}>
                <td data-label="Budget">
                  <Link to={`/budgets/${id}`}>Budget #{String(id)}</Link>
                </td>
                <td data-label="Unallocated">{budget && <UsdcAmount value={budget.available} />}</td>
                <td data-label="Per-session limit">{budget && <UsdcAmount value={budget.perSessionLimit} />}</td>
                <td data-label="Expiry">
                  {budget && formatTimestamp(budget.expiry)} {budget && budget.expiry <= now && <span className="badge">expired</span>}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

/** The connected account's budgets, and a form to create one. */
export default function BudgetsPage() {
  return (
    <section>
      <h1>Budgets</h1>
      <p className="lead">Fund compute that only the agents you whitelist can spend, a capped amount per session, refundable at any time.</p>
      <WithDeployment>
        {(deployment) => (
          <WithAccount purpose="create and manage budgets">
            {(account) => (
              <>
                <MyBudgets deployment={deployment} account={account} />
                <CreateBudgetForm deployment={deployment} />
              </>
            )}
          </WithAccount>
        )}
      </WithDeployment>
    </section>
  );
}
