import { lazy, Suspense } from "react";
import { Header } from "./components/Header.tsx";
import { EmptyState, Loading } from "./components/States.tsx";
import { useRoute } from "./hooks/useRoute.ts";
import { matchRoute } from "./lib/routes.ts";
import MarketplacePage from "./pages/MarketplacePage.tsx";

// The landing page ships with the app; every other page loads when first visited.
const ProviderConsolePage = lazy(() => import("./pages/ProviderConsolePage.tsx"));
const AgentsPage = lazy(() => import("./pages/AgentsPage.tsx"));
const AgentPage = lazy(() => import("./pages/AgentPage.tsx"));
const BudgetsPage = lazy(() => import("./pages/BudgetsPage.tsx"));
const BudgetPage = lazy(() => import("./pages/BudgetPage.tsx"));
const SessionsPage = lazy(() => import("./pages/SessionsPage.tsx"));
const SessionPage = lazy(() => import("./pages/SessionPage.tsx"));
const SplitsPage = lazy(() => import("./pages/SplitsPage.tsx"));
const AccountingPage = lazy(() => import("./pages/AccountingPage.tsx"));

export function App() {
  const { path } = useRoute();
  const route = matchRoute(path);
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <Header route={route} />
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<Loading what="the page" />}>
          {route.page === "marketplace" && <MarketplacePage />}
          {route.page === "provider" && <ProviderConsolePage />}
          {route.page === "agents" && <AgentsPage />}
          {route.page === "agent" && <AgentPage agentId={route.agentId} />}
          {route.page === "budgets" && <BudgetsPage />}
          {route.page === "budget" && <BudgetPage budgetId={route.budgetId} />}
          {route.page === "sessions" && <SessionsPage />}
          {route.page === "session" && <SessionPage sessionId={route.sessionId} />}
          {route.page === "splits" && <SplitsPage />}
          {route.page === "accounting" && <AccountingPage />}
          {route.page === "not-found" && <EmptyState>There is no page at {path}.</EmptyState>}
        </Suspense>
      </main>
    </>
  );
}
