/** The dApp's pages and the paths that show them. */
export type Route =
  | { page: "marketplace" }
  | { page: "provider" }
  | { page: "agents" }
  | { page: "agent"; agentId: bigint }
  | { page: "budgets" }
  | { page: "budget"; budgetId: bigint }
  | { page: "sessions" }
  | { page: "session"; sessionId: `0x${string}` }
  | { page: "splits" }
  | { page: "accounting" }
  | { page: "not-found" };

/** The navigation bar's entries. */
export const NAV: readonly { path: string; label: string; pages: readonly Route["page"][] }[] = [
  { path: "/", label: "Marketplace", pages: ["marketplace"] },
  { path: "/provider", label: "Provider console", pages: ["provider"] },
  { path: "/agents", label: "Agents", pages: ["agents", "agent"] },
  { path: "/budgets", label: "Budgets", pages: ["budgets", "budget"] },
  { path: "/sessions", label: "Sessions", pages: ["sessions", "session"] },
  { path: "/splits", label: "Splits", pages: ["splits"] },
  { path: "/accounting", label: "Accounting", pages: ["accounting"] },
];

/**
 * The page a path shows.
 *
 * @example
 * matchRoute("/budgets/2"); // { page: "budget", budgetId: 2n }
 */
export function matchRoute(path: string): Route {
  const trimmed = path.replace(/\/+$/, "") || "/";
  const fixed: Record<string, Route> = {
    "/": { page: "marketplace" },
    "/provider": { page: "provider" },
    "/agents": { page: "agents" },
    "/budgets": { page: "budgets" },
    "/sessions": { page: "sessions" },
    "/splits": { page: "splits" },
    "/accounting": { page: "accounting" },
  };
  if (fixed[trimmed]) return fixed[trimmed];
  const agent = /^\/agents\/(\d{1,19})$/.exec(trimmed);
  if (agent) return { page: "agent", agentId: BigInt(agent[1]) };
  const budget = /^\/budgets\/(\d{1,19})$/.exec(trimmed);
  if (budget) return { page: "budget", budgetId: BigInt(budget[1]) };
  const session = /^\/sessions\/(0x[0-9a-fA-F]{64})$/.exec(trimmed);
  if (session) return { page: "session", sessionId: session[1].toLowerCase() as `0x${string}` };
  return { page: "not-found" };
}
