/**
 * A relayer fleet for benchmarks and end-to-end tests: N relayer processes (`node
 * relayer/src/main.ts`) on one local stack file and one store, each on its own port with its own
 * funded gas key, as an operator runs several instances behind a load balancer. Each instance can be
 * killed (`kill -9` included) and restarted on the same port, gas key and store.
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { createPublicClient, http, type Address, type Hex } from "viem";
import { mnemonicToAccount } from "viem/accounts";
import { localStackSchema } from "../../sdk/src/index.ts";
import { ChildProcesses } from "./bench.ts";
import { freePort } from "./local-stack.ts";

/** Hardhat's development mnemonic: its node funds the first 20 accounts it derives (public keys, local chain only). */
const DEV_MNEMONIC = "test test test test test test test test test test test junk";
const RELAYER_SCRIPT = path.resolve(import.meta.dirname, "../../relayer/src/main.ts");
/** How long an instance may take to answer /readyz 200: a restarted one first waits out its killed predecessor's gas lease (6 s). */
const READY_TIMEOUT_MS = 90_000;
/** How long a SIGTERM drain may take at `stop()` before the process is killed. */
const STOP_TIMEOUT_MS = 60_000;

/** Where the fleet keeps its state: one SQLite file (one instance only), or a PostgreSQL database they share. */
export type FleetDatabase = { kind: "sqlite"; file: string } | { kind: "postgres"; url: string };

export interface FleetOptions {
  /** How many instances (SQLite: 1). */
  count: number;
  /** The local stack file (`--local-file`): deployment, RPC URL and the providers' receipt-signer keys, the same for all. */
  localFile: string;
  database: FleetDatabase;
  /** More flags for every instance (such as `--settle-age-ms 3600000`). */
  extraArgs?: string[];
  /** More environment variables for every instance. */
  env?: NodeJS.ProcessEnv;
  /** Forward the instances' logs (stdout) instead of dropping them. */
  logs?: boolean;
}

/** One relayer process of a fleet. */
export interface FleetInstance {
  /** `http://127.0.0.1:<port>`, the same across restarts. */
  readonly url: string;
  readonly port: number;
  /** The instance's own gas account (its key is derived from the dev mnemonic). */
  readonly gasAddress: Address;
  /** The current process's id. */
  readonly pid: number;
  /** Whether the current process is still running. */
  readonly running: boolean;
  /**
   * Sends `signal` to the process (`SIGKILL` is a real `kill -9`: no drain, no lease released) and
   * resolves once it has exited, with how it exited. Resolves at once when it is not running.
   */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Starts the instance again on the same port, gas key and store, and resolves once its /readyz
   * answers 200 (after a `kill -9` that includes waiting out the dead process's gas lease, ≤ 6 s).
   * A still-running process is first stopped with SIGTERM.
   */
  restart(): Promise<void>;
}

export interface Fleet {
  instances: FleetInstance[];
  /** The instances' base URLs, in order (for a round-robin client). */
  urls: string[];
  /** Stops every instance (SIGTERM, so each drains; SIGKILL after 60 s). */
  stop(): Promise<void>;
}

/**
 * `count` private keys from the dev mnemonic whose addresses the stack file does not use (the
 * stack's own relayer, providers, agent…), so that no instance shares a gas account with anything
 * else on the chain; each is checked to hold ETH on the stack's chain.
 */
async function spareGasKeys(count: number, usedAddresses: Set<string>, rpcUrl: string): Promise<{ key: Hex; address: Address }[]> {
  const keys: { key: Hex; address: Address }[] = [];
  for (let addressIndex = 0; keys.length < count; addressIndex++) {
    const account = mnemonicToAccount(DEV_MNEMONIC, { addressIndex });
    if (usedAddresses.has(account.address.toLowerCase())) continue;
    const privateKey = account.getHdKey().privateKey;
    if (privateKey === null) throw new Error(`the dev mnemonic gave no private key at index ${addressIndex}`);
    keys.push({ key: `0x${Buffer.from(privateKey).toString("hex")}`, address: account.address });
  }
  const client = createPublicClient({ transport: http(rpcUrl) });
  for (const { address } of keys) {
    if ((await client.getBalance({ address })) === 0n) {
      throw new Error(`gas account ${address} has no ETH on ${rpcUrl}: the dev chain funds only its first 20 accounts; use fewer instances`);
    }
  }
  return keys;
}

/** Resolves once `url` answers 200; rejects if `child` exits first or `timeoutMs` passes. */
async function waitReady(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`relayer ${child.pid} exited (${child.exitCode ?? child.signalCode}) before ${url} answered 200 (last: ${last})`);
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      if (response.status === 200) return;
      last = `${response.status} ${await response.text()}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (last: ${last})`);
}

/** Sends `signal` to `child` unless it has exited; resolves with how it exited. */
async function killChild(child: ChildProcess, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = once(child, "exit");
    child.kill(signal);
    await exited;
  }
  return { code: child.exitCode, signal: child.signalCode };
}

/** SIGTERM (a drain), then SIGKILL if it has not exited within `timeoutMs`. */
async function stopChild(child: ChildProcess, timeoutMs: number): Promise<void> {
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    await killChild(child, "SIGTERM");
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts `count` relayer instances on `localFile`'s stack and one store, and resolves once every
 * one answers /readyz 200. SQLite (`--db <file>`) serves one instance; PostgreSQL's URL goes to each
 * through `AGENTMESH_DB` (a password never goes on a command line). Each instance gets its own port
 * and its own gas key (`AGENTMESH_GAS_KEY`): two instances on one gas account would wait for each
 * other's lease. The receipt-signer keys are the stack's providers' (the relayer's default on the
 * dev stack), the same for all. On failure, whatever started is stopped.
 */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const { count, database } = options;
  if (!Number.isInteger(count) || count < 1) throw new Error(`count must be a positive integer, not ${count}`);
  if (database.kind === "sqlite" && count > 1) throw new Error("a SQLite store serves one relayer instance; use PostgreSQL for several");
  const stack = localStackSchema.parse(JSON.parse(await readFile(options.localFile, "utf8")));
  const used = new Set(Object.values(stack.accounts).map((account) => account.address.toLowerCase()));
  const gasKeys = await spareGasKeys(count, used, stack.rpcUrl);

  const children = new ChildProcesses();
  const spawn = (port: number, gasKey: Hex) =>
    children.spawnNode(
      RELAYER_SCRIPT,
      ["--local-file", options.localFile, "--port", String(port), ...(database.kind === "sqlite" ? ["--db", database.file] : []), ...(options.extraArgs ?? [])],
      {
        env: { ...process.env, ...options.env, AGENTMESH_GAS_KEY: gasKey, ...(database.kind === "postgres" && { AGENTMESH_DB: database.url }) },
        stdout: options.logs ? "inherit" : "ignore",
      },
    );

  /** One instance: its process, replaced by `restart`. */
  const startInstance = (port: number, gasAddress: Address, gasKey: Hex) => {
    let child = spawn(port, gasKey);
    const url = `http://127.0.0.1:${port}`;
    const ready = () => waitReady(`${url}/readyz`, child, READY_TIMEOUT_MS);
    const stop = () => stopChild(child, STOP_TIMEOUT_MS);
    const instance: FleetInstance = {
      url,
      port,
      gasAddress,
      get pid() {
        return child.pid!;
      },
      get running() {
        return child.exitCode === null && child.signalCode === null;
      },
      kill: (signal = "SIGTERM") => killChild(child, signal),
      async restart() {
        await stop();
        child = spawn(port, gasKey);
        await ready();
      },
    };
    return { instance, ready, stop };
  };

  const started: ReturnType<typeof startInstance>[] = [];
  const stop = async () => {
    await Promise.all(started.map((instance) => instance.stop()));
  };
  try {
    for (const { key, address } of gasKeys) started.push(startInstance(await freePort(), address, key));
    await Promise.all(started.map((instance) => instance.ready()));
  } catch (error) {
    await stop();
    throw error;
  }
  const instances = started.map(({ instance }) => instance);
  return { instances, urls: instances.map((instance) => instance.url), stop };
}
