/**
 * The local stack, started in one call: a Hardhat (EDR, OP-stack) JSON-RPC node, the contracts
 * deployed and seeded, the two reference providers, the relayer and, when asked, the dApp. `npm
 * start` and the end-to-end tests both use it; `stop()` stops everything it started.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { createRequire } from "node:module";
import path from "node:path";
import { localStackSchema, startAgentProxy, type AgentProxy, type LocalStack } from "../../sdk/src/index.ts";
import { startRelayer, type Relayer } from "../../relayer/src/server.ts";
import {
  startReferenceProvider,
  type ReferenceProvider,
  type ReferenceProviderOptions,
} from "../../relayer/src/reference-provider/server.ts";
import type { SettlementOptions } from "../../relayer/src/core/settlement.ts";
import { startDemoAgent } from "../../relayer/src/demo-agent.ts";

/** Hardhat's command line script, run with `node` (the chain node, builds, scripts). */
export const hardhatCli = path.join(path.dirname(createRequire(import.meta.url).resolve("hardhat/package.json")), "dist/src/cli.js");
const ROOT = path.resolve(import.meta.dirname, "../..");

export interface LocalStackOptions {
  /** Ports; 0 (the default) picks free ones. */
  chainPort?: number;
  relayerPort?: number;
  proxyPort?: number;
  providerPorts?: [number, number];
  demoAgentPort?: number;
  /** Where the stack file goes (default `.agentmesh/local.json`). */
  localFile?: string;
  /** The relayer's SQLite file (default next to the stack file). */
  databasePath?: string;
  settlement?: Partial<SettlementOptions>;
  /** How often the relayer distributes agents' payments (default 60 s). */
  payoutIntervalMs?: number;
  /** How often the relayer probes providers (default 15 s). */
  healthProbeIntervalMs?: number;
  /** Options of both reference providers (pacing, faults). */
  providerOptions?: Omit<ReferenceProviderOptions, "port" | "host">;
  /** Forward the chain's and the seed script's output. */
  verbose?: boolean;
  /**
   * Also serve the dApp on 127.0.0.1:`port` (0 picks a free one): Vite's dev server, or a preview of
   * `frontend/dist` (built beforehand). Not served when omitted.
   */
  ui?: { port: number; mode: "dev" | "preview" };
}

export interface RunningStack {
  stack: LocalStack;
  relayer: Relayer;
  providers: ReferenceProvider[];
  /** The demo agent's OpenAI-compatible proxy. */
  proxy: AgentProxy;
  localFile: string;
  /** The dApp's URL, when `ui` was asked for. */
  uiUrl?: string;
  /** Restarts the relayer on the same port and database (as after a crash). */
  restartRelayer(): Promise<Relayer>;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

/** Waits (at most `timeoutMs`) until the JSON-RPC node at `rpcUrl`, run by `chain`, answers. */
export async function waitForRpc(rpcUrl: string, chain: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (chain.exitCode !== null) throw new Error(`the local chain exited with code ${chain.exitCode}`);
    try {
      const response = await fetch(rpcUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`the local chain did not answer on ${rpcUrl} within ${timeoutMs} ms`);
}

export interface SeededChain {
  /** The stack file as seeded (no service URLs yet). */
  stack: LocalStack;
  rpcUrl: string;
  /** The chain node's process id (benchmarks read its CPU time). */
  pid: number;
  stop(): Promise<void>;
}

/**
 * A Hardhat JSON-RPC node on `chainPort`, with the contracts deployed and seeded for providers
 * listening on `providerPorts`; the stack file is written to `localFile`. Only the contracts are
 * compiled (while the node starts), not the Solidity tests, which the stack does not need.
 */
export async function startSeededChain(options: {
  chainPort: number;
  providerPorts: readonly number[];
  /** Where the seeded agent listing's endpoint (the demo agent) will listen. */
  demoAgentPort: number;
  localFile: string;
  verbose?: boolean;
}): Promise<SeededChain> {
  const rpcUrl = `http://127.0.0.1:${options.chainPort}`;
  const stdio = options.verbose ? "inherit" : "ignore";
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await once(child, "exit");
      }
    }
  };
  /** Runs `hardhat <args>` to its end; its exit code. */
  const hardhat = async (args: string[], env?: NodeJS.ProcessEnv) => {
    const child = spawn(process.execPath, [hardhatCli, ...args], { cwd: ROOT, stdio: ["ignore", stdio, "inherit"], env });
    children.push(child);
    const [code] = (await once(child, "exit")) as [number | null];
    return code;
  };
  try {
    const chain = spawn(process.execPath, [hardhatCli, "node", "--network", "localNode", "--hostname", "127.0.0.1", "--port", String(options.chainPort)], {
      cwd: ROOT,
      stdio: ["ignore", stdio, "inherit"],
    });
    children.push(chain);
    const buildCode = await hardhat(["build", "--no-tests", "--quiet"]);
    if (buildCode !== 0) throw new Error(`compiling the contracts failed (exit code ${buildCode})`);
    await waitForRpc(rpcUrl, chain, 60_000);

    const seedCode = await hardhat(["run", "--no-compile", "scripts/seed-local.ts", "--network", "localhost"], {
      ...process.env,
      AGENTMESH_LOCAL_FILE: options.localFile,
      AGENTMESH_RPC_URL: rpcUrl,
      AGENTMESH_PROVIDER_PORTS: options.providerPorts.join(","),
      AGENTMESH_DEMO_AGENT_PORT: String(options.demoAgentPort),
    });
    if (seedCode !== 0) throw new Error(`deploying and seeding the local chain failed (exit code ${seedCode})`);
    const stack = localStackSchema.parse(JSON.parse(await readFile(options.localFile, "utf8")));
    return { stack, rpcUrl, pid: chain.pid!, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<RunningStack> {
  const chainPort = options.chainPort || (await freePort());
  const providerPorts = options.providerPorts ?? [await freePort(), await freePort()];
  const relayerPort = options.relayerPort || (await freePort());
  const proxyPort = options.proxyPort || (await freePort());
  const demoAgentPort = options.demoAgentPort || (await freePort());
  const localFile = path.resolve(options.localFile ?? path.join(ROOT, ".agentmesh/local.json"));
  const databasePath = options.databasePath ?? path.join(path.dirname(localFile), "relayer.db");
  const started: { close(): Promise<void> }[] = [];
  let chain: SeededChain | undefined;
  let relayer: Relayer | undefined;
  let proxy: AgentProxy | undefined;

  const stop = async () => {
    await proxy?.close();
    await relayer?.close();
    await Promise.all(started.map((service) => service.close()));
    await chain?.stop();
  };

  try {
    chain = await startSeededChain({ chainPort, providerPorts, demoAgentPort, localFile, verbose: options.verbose });
    const { stack: seeded, rpcUrl } = chain;

    const providers = await Promise.all(
      providerPorts.map((port) => startReferenceProvider({ ...options.providerOptions, port })),
    );
    started.push(...providers);

    const launchRelayer = async () => {
      const started = await startRelayer({
        port: relayerPort,
        databasePath,
        chain: {
          rpcUrl,
          chainId: seeded.chainId,
          escrow: seeded.contracts.ComputeEscrow,
          registry: seeded.contracts.ProviderRegistry,
          marketplace: seeded.contracts.AgentMarketplace,
          directory: seeded.contracts.RelayerDirectory,
          relayerPrivateKey: seeded.accounts.relayer.privateKey,
        },
        receiptSignerKeys: [seeded.accounts.receiptSignerA.privateKey, seeded.accounts.receiptSignerB.privateKey],
        settlement: options.settlement,
        healthProbeIntervalMs: options.healthProbeIntervalMs,
        payoutIntervalMs: options.payoutIntervalMs,
        indexer: { startBlock: seeded.startBlock },
        // Announced in the RelayerDirectory, so agents find this relayer from the chain as on Base.
        publicUrl: `http://127.0.0.1:${relayerPort}`,
      });
      // Ready: the indexer has caught up with the seeded chain.
      await started.ready.catch(async (error: unknown) => {
        await started.close();
        throw error;
      });
      return started;
    };
    relayer = await launchRelayer();
    proxy = await startAgentProxy({
      relayerUrl: relayer.url,
      privateKey: seeded.accounts.agent.privateKey,
      chainId: seeded.chainId,
      escrow: seeded.contracts.ComputeEscrow,
      budgetId: BigInt(seeded.budgetId),
      sessionMaxSpend: 5_000_000n, // 5 USDC per session; the seeded budget allows 10
      port: proxyPort,
    });
    // The seeded listing's agent thinks through the demo agent's metered proxy; callers pay it per
    // call at its x402 URL on the relayer.
    started.push(await startDemoAgent({ port: demoAgentPort, inferenceUrl: `${proxy.url}/v1`, inferenceApiKey: proxy.token, model: "agentmesh-small" }));
    const stack: LocalStack = {
      ...seeded,
      demoAgent: { ...seeded.demoAgent, url: `${relayer.url}/agents/${seeded.demoAgent.id}` },
      relayerUrl: relayer.url,
      agentProxyUrl: `${proxy.url}/v1`,
    };
    await writeFile(localFile, `${JSON.stringify(stack, null, 2)}\n`);
    let uiUrl: string | undefined;
    if (options.ui) {
      // Loaded only when asked: Vite is the frontend's dependency, not the stack's.
      const { serveFrontend } = await import("../../frontend/serve.ts");
      const ui = await serveFrontend({ mode: options.ui.mode, port: options.ui.port || (await freePort()), localFile });
      started.push(ui);
      uiUrl = ui.url;
    }

    return {
      stack,
      get relayer() {
        return relayer!;
      },
      providers,
      proxy,
      localFile,
      uiUrl,
      async restartRelayer() {
        await relayer?.close();
        relayer = await launchRelayer();
        return relayer;
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
