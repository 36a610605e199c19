import type { Payee } from "../lib/contributors.ts";
import { ChainLink } from "./ChainLink.tsx";
import { Link } from "./Link.tsx";

/** Who a payout credits: an account or split (its address, explorer-linked) or a budget (linked to its page). */
export function PayeeName({ payee }: { payee: Payee }) {
  if (payee.kind === "budget") return <Link to={`/budgets/${payee.budgetId}`}>Budget #{payee.budgetId.toString()}</Link>;
  return <ChainLink kind="address" value={payee.account} />;
}
