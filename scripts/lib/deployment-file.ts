import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Deployment } from "../../sdk/src/index.ts";
import type { Suite } from "./deploy-suite.ts";

/** The deployment record consumers read (validated by the SDK's `parseDeployment`). */
export async function describeDeployment(chainId: number, suite: Suite, mockUsdc: boolean): Promise<Deployment> {
  const usdc = (await suite.usdc.getAddress()) as `0x${string}`;
  return {
    chainId,
    startBlock: suite.startBlock,
    usdc,
    contracts: {
      ...(mockUsdc ? { MockUSDC: usdc } : {}),
      SplitsLedger: (await suite.ledger.getAddress()) as `0x${string}`,
      ProviderRegistry: (await suite.registry.getAddress()) as `0x${string}`,
      ComputeEscrow: (await suite.escrow.getAddress()) as `0x${string}`,
      AgentMarketplace: (await suite.marketplace.getAddress()) as `0x${string}`,
      RelayerDirectory: (await suite.directory.getAddress()) as `0x${string}`,
    },
  };
}

/** Writes `value` as pretty JSON, creating the folder. */
export async function writeJson(filePath: string, value: unknown): Promise<void> {
  await mkdir(path.dirname(filePath), { recursive: true });
  await writeFile(filePath, `${JSON.stringify(value, null, 2)}\n`);
}
