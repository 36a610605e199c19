/**
 * What the relayer benchmarks share (`bench-relayer.ts`, `bench-soak.ts`): servers run as child
 * processes whose CPU time and memory are read from /proc, a light keep-alive HTTP client that times
 * each call, and the seeded providers' rate limits lifted for load.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { Pool } from "undici";
import { createPublicClient, createWalletClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { providerRegistryAbi } from "../../sdk/src/index.ts";
import type { EventLoopDelayReport, EventLoopDelayRequest } from "./event-loop-probe.ts";
import type { SeededChain } from "./local-stack.ts";

const CLOCK_TICKS_PER_SECOND = 100; // Linux USER_HZ
const PAGE_BYTES = 4096;
const EVENT_LOOP_PROBE = new URL("./event-loop-probe.ts", import.meta.url).href;

/** Node child processes started for a benchmark, stopped together at its end. */
export class ChildProcesses {
  private readonly children: ChildProcess[] = [];

  /**
   * `node <script> <args>`, its stderr forwarded. With `watchEventLoop`, the process runs with
   * `event-loop-probe.ts` preloaded and an IPC channel, so {@link readEventLoopDelay} can ask it
   * for its event-loop delay. `env` replaces the environment (default: this process's); `stdout`
   * `inherit` forwards the child's standard output (its logs) instead of dropping it.
   */
  spawnNode(
    script: string,
    args: string[],
    options: { watchEventLoop?: boolean; env?: NodeJS.ProcessEnv; stdout?: "ignore" | "inherit" } = {},
  ): ChildProcess {
    const probe = options.watchEventLoop ? ["--import", EVENT_LOOP_PROBE] : [];
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", ...probe, script, ...args], {
      stdio: ["ignore", options.stdout ?? "ignore", "inherit", ...(options.watchEventLoop ? (["ipc"] as const) : [])],
      env: options.env,
    });
    this.children.push(child);
    return child;
  }

  /** SIGTERM to each child still running, waiting for it to exit. */
  async stopAll(): Promise<void> {
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await once(child, "exit");
      }
    }
  }
}

/** Resolves once `url` answers 2xx (polling for up to 30 s). */
export async function waitFor(url: string): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not come up`);
}

/** CPU seconds (user + system, all threads) a process has used so far. */
export async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** A process's resident set size now, in bytes. */
export async function rssBytes(pid: number): Promise<number> {
  const [, residentPages] = (await readFile(`/proc/${pid}/statm`, "utf8")).split(" ");
  return Number(residentPages) * PAGE_BYTES;
}

/** The `p`th percentile of ascending `sorted`. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * The event-loop delay of a child spawned with `watchEventLoop`, as measured inside it since it
 * started or since the last read with `reset`.
 */
export function readEventLoopDelay(child: ChildProcess, reset = false): Promise<EventLoopDelayReport> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off("message", onMessage);
      reject(new Error(`process ${child.pid} did not report its event-loop delay within 30 s`));
    }, 30_000);
    const onMessage = (message: EventLoopDelayReport) => {
      if (message?.type !== "event-loop-delay") return;
      clearTimeout(timer);
      child.off("message", onMessage);
      resolve(message);
    };
    child.on("message", onMessage);
    const request: EventLoopDelayRequest = { type: "event-loop-delay", reset };
    child.send(request, (error) => {
      if (error === null) return;
      clearTimeout(timer);
      child.off("message", onMessage);
      reject(error);
    });
  });
}

/**
 * The load generator's client: undici pools over keep-alive connections, the lightest Node client,
 * so that on a 2-core machine it leaves as much CPU as possible to the servers being measured.
 */
export class BenchHttpClient {
  private readonly pools = new Map<string, Pool>();
  /** Each URL posted to, parsed once: its origin's pool and its path. */
  private readonly targets = new Map<string, { pool: Pool; path: string }>();

  /** POSTs `body` as JSON; the status, the whole answer, and the milliseconds until it was read. */
  async post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ ms: number; status: number; text: string }> {
    const { pool, path } = this.targetOf(url);
    const payload = JSON.stringify(body);
    const started = performance.now();
    const response = await pool.request({ path, method: "POST", headers: { "content-type": "application/json", ...headers }, body: payload });
    const text = await response.body.text();
    return { ms: performance.now() - started, status: response.statusCode, text };
  }

  /** POSTs `body` as JSON and parses the answer, timed until parsed; throws unless it is a 200. */
  async postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ ms: number; json: any }> {
    const { pool, path } = this.targetOf(url);
    const payload = JSON.stringify(body);
    const started = performance.now();
    const response = await pool.request({ path, method: "POST", headers: { "content-type": "application/json", ...headers }, body: payload });
    const text = await response.body.text();
    const json = JSON.parse(text);
    const ms = performance.now() - started;
    if (response.statusCode !== 200) throw new Error(`${url}: ${response.statusCode} ${text}`);
    return { ms, json };
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((pool) => pool.close()));
  }

  private targetOf(url: string): { pool: Pool; path: string } {
    let target = this.targets.get(url);
    if (target === undefined) {
      const { origin, pathname } = new URL(url);
      let pool = this.pools.get(origin);
      if (pool === undefined) this.pools.set(origin, (pool = new Pool(origin, { connections: 1024 })));
      this.targets.set(url, (target = { pool, path: pathname }));
    }
    return target;
  }
}

/** The seeded providers allow 600 requests a minute; their owners raise that for the benchmark. */
export async function liftRateLimits({ stack, rpcUrl }: SeededChain): Promise<void> {
  const transport = http(rpcUrl);
  const publicClient = createPublicClient({ chain: hardhat, transport });
  const registry = stack.contracts.ProviderRegistry;
  for (const provider of stack.providers) {
    const ownerKey = Object.values(stack.accounts).find((account) => account.address === provider.owner)?.privateKey;
    if (ownerKey === undefined) throw new Error(`the stack file has no key for provider ${provider.id}'s owner`);
    const wallet = createWalletClient({ chain: hardhat, transport, account: privateKeyToAccount(ownerKey) });
    const current = await publicClient.readContract({ address: registry, abi: providerRegistryAbi, functionName: "getProvider", args: [BigInt(provider.id)] });
    const hash = await wallet.writeContract({
      address: registry,
      abi: providerRegistryAbi,
      functionName: "updateProvider",
      args: [
        BigInt(provider.id),
        {
          endpoint: current.endpoint,
          providerType: current.providerType,
          rateLimitPerMinute: 10_000_000,
          minChargePerCall: current.minChargePerCall,
          features: current.features,
          receiptSigner: current.receiptSigner,
          payout: current.payout,
        },
      ],
    });
    await publicClient.waitForTransactionReceipt({ hash });
  }
}

/**
 * The process id of the PostgreSQL server (the postmaster) listening on `port`: the process whose
 * command line names a data directory (`-D <dir>`) whose `postmaster.pid` gives that process id and
 * port. Only the postmaster keeps `-D` in its command line; its children rewrite theirs.
 */
export async function postmasterPid(port: number): Promise<number> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const args: string[] = await readFile(`/proc/${entry}/cmdline`, "utf8").then((text) => text.split("\0"), () => []);
    const dataDir = args[args.indexOf("-D") + 1];
    if (!args.includes("-D") || dataDir === undefined) continue;
    const lines: string[] = await readFile(path.join(dataDir, "postmaster.pid"), "utf8").then((text) => text.split("\n"), () => []);
    if (Number(lines[0]) === Number(entry) && Number(lines[3]) === port) return Number(entry);
  }
  throw new Error(`no PostgreSQL server process listens on port ${port}`);
}

/**
 * CPU seconds (user + system) a server process and all its child processes have used so far: its
 * own, its exited children's (which the kernel adds to the parent's `cutime`/`cstime` once reaped)
 * and its running children's. For PostgreSQL's postmaster, that is every backend, the checkpointer,
 * the WAL writer and the other auxiliary processes.
 */
export async function processTreeCpuSeconds(pid: number): Promise<number> {
  const statFields = async (of: string) => (await readFile(`/proc/${of}/stat`, "utf8")).split(") ")[1].split(" ");
  const own = await statFields(String(pid));
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || entry === String(pid)) continue;
    // A child that exits meanwhile is skipped: its time then sits in the parent's cutime/cstime.
    const fields = await statFields(entry).catch(() => undefined);
    if (fields !== undefined && Number(fields[1]) === pid) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / CLOCK_TICKS_PER_SECOND;
}
