import "@rainbow-me/rainbowkit/styles.css";
import "./styles.css";
import { RainbowKitProvider } from "@rainbow-me/rainbowkit";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { WagmiProvider } from "wagmi";
import { App } from "./App.tsx";
import { AppConfigContext } from "./hooks/useAppConfig.ts";
import { parseAppConfig } from "./lib/config.ts";
import { createWagmiConfig } from "./wagmi.ts";

/** The run-time configuration: deployments, and the local stack when one is served. */
async function loadAppConfig() {
  const response = await fetch("/agentmesh.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`/agentmesh.json answered ${response.status}`);
  return parseAppConfig(await response.json());
}

const root = createRoot(document.getElementById("root")!);
try {
  const app = await loadAppConfig();
  const wagmiConfig = createWagmiConfig(app);
  const queryClient = new QueryClient({ defaultOptions: { queries: { staleTime: 5_000, retry: 1 } } });
  root.render(
    <StrictMode>
      <AppConfigContext value={app}>
        <WagmiProvider config={wagmiConfig}>
          <QueryClientProvider client={queryClient}>
            <RainbowKitProvider appInfo={{ appName: "AgentMesh" }}>
              <App />
            </RainbowKitProvider>
          </QueryClientProvider>
        </WagmiProvider>
      </AppConfigContext>
    </StrictMode>,
  );
} catch (error) {
  root.render(
    <main className="state state-error" role="alert">
      <h1>AgentMesh could not start</h1>
      <p>{error instanceof Error ? error.message : String(error)}</p>
    </main>,
  );
}
