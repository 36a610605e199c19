import { createContext, use } from "react";
import { useChainId } from "wagmi";
import type { AppConfig, ChainDeployment } from "../lib/config.ts";

/** The run-time configuration loaded before the first render (see `main.tsx`). */
export const AppConfigContext = createContext<AppConfig | undefined>(undefined);

export function useAppConfig(): AppConfig {
  const config = use(AppConfigContext);
  if (config === undefined) throw new Error("useAppConfig must be used inside AppConfigContext");
  return config;
}

/** The chain the app shows (the wallet's, or the first configured one) and its deployment, if any. */
export function useDeployment(): { chainId: number; deployment: ChainDeployment | undefined } {
  const chainId = useChainId();
  return { chainId, deployment: useAppConfig().deployments[chainId] };
}
