/**
 * Relayer benchmark (a script, not a test): at fixed concurrency against the reference provider,
 * measures the provider called directly, through a minimal Node passthrough proxy (the floor), and
 * through the relayer with metering, receipts, signing and persistence on. Every server runs in its
 * own process so its CPU time can be read from /proc. Prints a table, then one JSON object as the
 * last line. Run with `npm run bench:relayer` (options: --concurrency, --requests, --streams;
 * --system-prompt-words N sends every call a system prompt of N words, as agents resend one;
 * --provider-latency-ms N has the provider wait N ms before its first token, as a model does).
 *
 * At the fixed concurrency every process shares the machine's cores, so the figures are those of a
 * saturated machine; the table adds what each call costs the whole machine (servers and load
 * generator) and the throughput that cost allows at most, and the JSON line adds the latency
 * overhead of a single client (concurrency 1), where nothing queues.
 *
 * Scale-out (`--db postgres --instances 1,2`): it then also measures relayer fleets
 * (`scripts/lib/fleet.ts`) at the same concurrency: one instance on SQLite, and each --instances
 * count on one PostgreSQL server (`relayer/test/postgres-server.ts`, a fresh database each). Every
 * session is opened through one instance (in turn), and each call goes to the next instance in
 * turn, so a session's consecutive calls land on different instances. For each it reports rps, p50
 * and p99 latency, the CPU of every relayer instance and of every PostgreSQL server process (the
 * postmaster and its children) per request, under `scaleOut` in the JSON line.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { Hex } from "viem";
import {
  AgentSession,
  escrowDomainSeparator,
  signDigest,
  voucherDigest,
  type CompactSignature,
  type VoucherState,
} from "../sdk/src/index.ts";
import { BenchHttpClient, ChildProcesses, cpuSeconds, liftRateLimits, percentile, postmasterPid, processTreeCpuSeconds, waitFor } from "./lib/bench.ts";
import { startFleet, type Fleet, type FleetDatabase } from "./lib/fleet.ts";
import { freePort, startSeededChain, type SeededChain } from "./lib/local-stack.ts";
import { startPostgres, type PostgresServer } from "../relayer/test/postgres-server.ts";

const { values } = parseArgs({
  options: {
    concurrency: { type: "string", default: "32" },
    requests: { type: "string", default: "3000" },
    streams: { type: "string", default: "64" },
    "system-prompt-words": { type: "string", default: "0" },
    "provider-latency-ms": { type: "string", default: "0" },
    db: { type: "string" },
    instances: { type: "string", default: "1,2" },
  },
});
if (values.db !== undefined && values.db !== "postgres") throw new Error(`--db must be postgres (the scale-out measurement), not ${values.db}`);
/** The PostgreSQL fleet sizes to measure (with --db postgres). */
const INSTANCE_COUNTS = values.instances.split(",").map((count) => {
  if (!/^\d+$/.test(count.trim()) || Number(count) < 1) throw new Error(`--instances must be a comma-separated list of positive integers, not ${values.instances}`);
  return Number(count);
});
const CONCURRENCY = Number(values.concurrency);
const REQUESTS = Number(values.requests);
const STREAMS = Number(values.streams);
const WARMUP = Math.min(200, REQUESTS / 10);
/** Requests per phase of the single-client (concurrency 1) measurement. */
const SINGLE_CLIENT_REQUESTS = Math.min(1000, REQUESTS);
const CORES = availableParallelism();
/** `count` pseudo-random lowercase words, the same for the same count. */
function words(count: number): string {
  let state = 1;
  const next = (below: number) => ((state = (state * 1_103_515_245 + 12_345) % 2_147_483_648) * below) / 2_147_483_648;
  const word = () => Array.from({ length: 2 + Math.floor(next(8)) }, () => String.fromCharCode(97 + Math.floor(next(26)))).join("");
  return Array.from({ length: count }, word).join(" ");
}
const SYSTEM_PROMPT_WORDS = Number(values["system-prompt-words"]);
const BODY = {
  model: "agentmesh-small",
  messages: [...(SYSTEM_PROMPT_WORDS > 0 ? [{ role: "system", content: words(SYSTEM_PROMPT_WORDS) }] : []), { role: "user", content: "Benchmark me." }],
  max_tokens: 16,
};

const children = new ChildProcesses();
const http = new BenchHttpClient();

interface PhaseResult {
  p50: number;
  p99: number;
  rps: number;
  /** CPU time of the server measured, per request. */
  cpuPerRequestMs: number;
  /** CPU time of this load generator (HTTP client, JSON, the agent's voucher signing), per request. */
  loadGeneratorCpuPerRequestMs: number;
  /** CPU time of every process a request goes through (servers and load generator), per request. */
  machineCpuPerRequestMs: number;
}

/**
 * `requests` calls at `concurrency`, each worker running `call(worker)`; latencies of the timed
 * part. `servers` are the processes a call goes through, the one measured first.
 */
async function phase(servers: ChildProcess[], concurrency: number, requests: number, call: (worker: number) => Promise<number>): Promise<PhaseResult> {
  let next = 0;
  const latencies: number[] = [];
  const work = async (worker: number) => {
    while (next < requests) {
      next++;
      latencies.push(await call(worker));
    }
  };
  const serversCpu = () => Promise.all(servers.map((server) => cpuSeconds(server.pid!)));
  const cpuBefore = await serversCpu();
  const ownCpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, worker) => work(worker)));
  const seconds = (performance.now() - started) / 1000;
  const cpu = (await serversCpu()).map((after, index) => after - cpuBefore[index]);
  const ownCpu = process.cpuUsage(ownCpuBefore);
  const perRequestMs = (cpuTimeSeconds: number) => (cpuTimeSeconds * 1000) / requests;
  const loadGeneratorCpuPerRequestMs = perRequestMs((ownCpu.user + ownCpu.system) / 1e6);
  latencies.sort((a, b) => a - b);
  return {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    rps: requests / seconds,
    cpuPerRequestMs: perRequestMs(cpu[0]),
    loadGeneratorCpuPerRequestMs,
    machineCpuPerRequestMs: perRequestMs(cpu.reduce((sum, cpuTime) => sum + cpuTime, 0)) + loadGeneratorCpuPerRequestMs,
  };
}

/** One relayer configuration's figures in the scale-out measurement. */
interface ScaleOutResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time of every relayer instance, summed, per request. */
  relayerCpuPerRequestMs: number;
  /** CPU time of every PostgreSQL server process (postmaster and children), per request; absent on SQLite. */
  postgresCpuPerRequestMs?: number;
}

let chainStarting: Promise<SeededChain> | undefined;
/** The fleets and the PostgreSQL server, started or starting, in order. */
const services: Promise<Fleet | PostgresServer>[] = [];
/** `service`, stopped at the end of the run once it has started (also when it is still starting then). */
function stoppedAtEnd<T extends Fleet | PostgresServer>(service: Promise<T>): Promise<T> {
  services.push(service);
  return service;
}
const dir = await mkdtemp(path.join(tmpdir(), "agentmesh-bench-"));
/** Stops everything started (once), whether the run ends, fails or is interrupted. */
let cleaning: Promise<void> | undefined;
const cleanUp = () =>
  (cleaning ??= (async () => {
    await http.close();
    // Last started first (a fleet before its PostgreSQL). pg_ctl runs the server detached: it
    // outlives this process unless stopped. A service that failed to start stopped itself.
    for (const service of services.toReversed()) await service.then((started) => started.stop(), () => undefined);
    await children.stopAll();
    await chainStarting?.then((chain) => chain.stop(), () => undefined);
    await rm(dir, { recursive: true, force: true });
  })());
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`${signal}: stopping the benchmark's processes`);
    cleanUp().finally(() => process.exit(130));
  });
}
try {
  const localFile = path.join(dir, "local.json");
  const [providerPort, idlePort, passthroughPort, relayerPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const chain = await (chainStarting = startSeededChain({ chainPort: await freePort(), providerPorts: [providerPort, idlePort], demoAgentPort: await freePort(), localFile }));
  await liftRateLimits(chain);
  const provider = children.spawnNode("relayer/src/reference-provider/main.ts", ["--port", String(providerPort), "--first-token-latency-ms", values["provider-latency-ms"]]);
  const passthrough = children.spawnNode("scripts/lib/passthrough-proxy.ts", ["--port", String(passthroughPort), "--target", `http://127.0.0.1:${providerPort}`]);
  const relayer = children.spawnNode("relayer/src/main.ts", ["--local-file", localFile, "--port", String(relayerPort), "--db", path.join(dir, "relayer.db"), "--settle-age-ms", "3600000"]);
  const providerUrl = `http://127.0.0.1:${providerPort}/v1`;
  const passthroughUrl = `http://127.0.0.1:${passthroughPort}/v1`;
  const relayerUrl = `http://127.0.0.1:${relayerPort}`;
  await Promise.all([waitFor(`http://127.0.0.1:${providerPort}/healthz`), waitFor(`${relayerUrl}/readyz`), waitFor(`${passthroughUrl}/models`)]);

  // One session per worker and per concurrent stream: a session serves one call at a time. The
  // SDK opens them (at the provider's registered prices); calls then go out by hand, so the load
  // generator does only the agent's share of the work: sign each call's voucher.
  const { stack } = chain;
  const agentKey = stack.accounts.agent.privateKey;
  const separator = escrowDomainSeparator(stack.chainId, stack.contracts.ComputeEscrow);
  /** `count` sessions, the `i`th opened through `urls[i % urls.length]`, each allowed to spend `maxSpend`. */
  const openSessions = async (count: number, urls: string[], maxSpend: bigint) => {
    const opened: AgentSession[] = [];
    for (let i = 0; i < count; i++) {
      opened.push(
        await AgentSession.open({
          relayerUrl: urls[i % urls.length],
          privateKey: agentKey,
          chainId: stack.chainId,
          escrow: stack.contracts.ComputeEscrow,
          budgetId: BigInt(stack.budgetId),
          providerId: stack.providers[0].id,
          model: BODY.model,
          maxSpend,
          durationSeconds: 3600,
        }),
      );
    }
    return opened;
  };
  const sessions = await openSessions(CONCURRENCY + STREAMS, [relayerUrl], 5_000_000n);

  const direct = () => http.postJson(`${providerUrl}/chat/completions`, BODY).then((r) => r.ms);
  const viaPassthrough = () => http.postJson(`${passthroughUrl}/chat/completions`, BODY).then((r) => r.ms);
  // Each session's signed voucher for its previous call rides on its next request (the credit rule).
  const vouchers = new Map<Hex, { sequence: number; signature: CompactSignature }>();
  /** Worker `worker`'s next call on its session in `workerSessions`, sent to the relayer at `baseUrl()`. */
  const relayerCall = (workerSessions: AgentSession[], baseUrl: () => string) => async (worker: number) => {
    const session = workerSessions[worker];
    const voucher = vouchers.get(session.sessionId);
    const { ms, json } = await http.postJson(
      `${baseUrl()}/v1/chat/completions`,
      { ...BODY, sessionId: session.sessionId, ...(voucher && { voucher }) },
      { authorization: `Bearer ${session.apiKey}` },
    );
    // The agent's share of the work: sign this call's voucher.
    const state: VoucherState = { ...json.receipt.state, cumulativeCost: BigInt(json.receipt.state.cumulativeCost) };
    vouchers.set(session.sessionId, { sequence: state.sequence, signature: signDigest(agentKey, voucherDigest(separator, session.sessionId, state)) });
    return ms;
  };
  const viaRelayer = relayerCall(sessions, () => relayerUrl);

  await phase([], CONCURRENCY, WARMUP, direct);
  await phase([], CONCURRENCY, WARMUP, viaPassthrough);
  await phase([], CONCURRENCY, WARMUP, viaRelayer);
  const directResult = await phase([provider], CONCURRENCY, REQUESTS, direct);
  const passthroughResult = await phase([passthrough, provider], CONCURRENCY, REQUESTS, viaPassthrough);
  const relayerResult = await phase([relayer, provider], CONCURRENCY, REQUESTS, viaRelayer);
  const singleClientDirect = await phase([provider], 1, SINGLE_CLIENT_REQUESTS, direct);
  const singleClientRelayer = await phase([relayer, provider], 1, SINGLE_CLIENT_REQUESTS, viaRelayer);

  // Concurrent streams through the relayer: CPU per forwarded chunk.
  const cpuBefore = await cpuSeconds(relayer.pid!);
  let chunks = 0;
  await Promise.all(
    sessions.slice(CONCURRENCY).map(async (session) => {
      const response = await fetch(`${relayerUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${session.apiKey}` },
        body: JSON.stringify({ ...BODY, max_tokens: 256, stream: true, sessionId: session.sessionId }),
      });
      const text = await response.text();
      chunks += text.split("\n").filter((line) => line.startsWith("data: {")).length;
    }),
  );
  const cpuPerChunkUs = (((await cpuSeconds(relayer.pid!)) - cpuBefore) * 1e6) / chunks;

  const round = (value: number, digits = 2) => Number(value.toFixed(digits));

  /**
   * Scale-out: a fleet of `count` instances on `database`, loaded at CONCURRENCY through sessions
   * opened across its instances, each call sent to the next instance in turn.
   */
  const measureFleet = async (count: number, database: FleetDatabase): Promise<ScaleOutResult> => {
    const started = await stoppedAtEnd(startFleet({ count, localFile, database, extraArgs: ["--settle-age-ms", "3600000"] }));
    try {
      const { urls, instances } = started;
      // 1 USDC each: the seeded budget (1000 USDC) also holds the sessions above.
      const fleetSessions = await openSessions(CONCURRENCY, urls, 1_000_000n);
      let turn = 0;
      const call = relayerCall(fleetSessions, () => urls[turn++ % urls.length]);
      await phase([], CONCURRENCY, WARMUP, call);
      const pgPid = database.kind === "postgres" ? await postmasterPid(Number(new URL(database.url).port)) : undefined;
      const relayersCpu = async () => (await Promise.all(instances.map((instance) => cpuSeconds(instance.pid)))).reduce((sum, seconds) => sum + seconds, 0);
      const postgresCpu = async () => (pgPid === undefined ? 0 : processTreeCpuSeconds(pgPid));
      const [relayersBefore, postgresBefore] = [await relayersCpu(), await postgresCpu()];
      const result = await phase([], CONCURRENCY, REQUESTS, call);
      const [relayersAfter, postgresAfter] = [await relayersCpu(), await postgresCpu()];
      const perRequestMs = (seconds: number) => round((seconds * 1000) / REQUESTS, 3);
      return {
        rps: round(result.rps, 0),
        p50Ms: round(result.p50),
        p99Ms: round(result.p99),
        relayerCpuPerRequestMs: perRequestMs(relayersAfter - relayersBefore),
        ...(pgPid !== undefined && { postgresCpuPerRequestMs: perRequestMs(postgresAfter - postgresBefore) }),
      };
    } finally {
      await started.stop();
    }
  };
  let scaleOut: Record<string, ScaleOutResult> | undefined;
  if (values.db === "postgres") {
    // The single relayer above idles from here on, and does not take part.
    scaleOut = { sqlite1: await measureFleet(1, { kind: "sqlite", file: path.join(dir, "scale-out.db") }) };
    const postgres = await stoppedAtEnd(startPostgres());
    for (const count of INSTANCE_COUNTS) scaleOut[`postgres${count}`] = await measureFleet(count, { kind: "postgres", url: await postgres.createDatabase() });
  }
  /** The most requests per second the machine could serve if every core did nothing but this. */
  const rpsCeiling = (result: PhaseResult) => (CORES * 1000) / result.machineCpuPerRequestMs;
  const figures = {
    directP50Ms: round(directResult.p50),
    passthroughAddedP50Ms: round(passthroughResult.p50 - directResult.p50),
    relayerAddedP50Ms: round(relayerResult.p50 - directResult.p50),
    relayerAddedP99Ms: round(relayerResult.p99 - directResult.p99),
    relayerRps: round(relayerResult.rps, 0),
    passthroughRps: round(passthroughResult.rps, 0),
    cpuPerRequestRatio: round(relayerResult.cpuPerRequestMs / passthroughResult.cpuPerRequestMs),
    concurrentStreams: STREAMS,
    cpuPerChunkUs: round(cpuPerChunkUs, 1),
    relayerMachineCpuPerRequestMs: round(relayerResult.machineCpuPerRequestMs, 3),
    relayerCpuBoundRpsCeiling: round(rpsCeiling(relayerResult), 0),
    singleClientRelayerAddedP50Ms: round(singleClientRelayer.p50 - singleClientDirect.p50),
    singleClientRelayerAddedP99Ms: round(singleClientRelayer.p99 - singleClientDirect.p99),
    ...(scaleOut && { scaleOut }),
  };
  const row = (result: PhaseResult) =>
    Object.fromEntries(Object.entries({ ...result, cpuBoundRpsCeiling: rpsCeiling(result) }).map(([name, value]) => [name, round(value, 3)]));
  console.table({
    direct: row(directResult),
    passthrough: row(passthroughResult),
    relayer: row(relayerResult),
    "direct, 1 client": row(singleClientDirect),
    "relayer, 1 client": row(singleClientRelayer),
  });
  console.log(
    `concurrency ${CONCURRENCY}, ${REQUESTS} requests per phase (${SINGLE_CLIENT_REQUESTS} with 1 client), ${STREAMS} concurrent streams (${chunks} chunks),` +
      ` system prompt of ${SYSTEM_PROMPT_WORDS} words, provider latency ${values["provider-latency-ms"]} ms;` +
      ` cpuBoundRpsCeiling = ${CORES} cores / machineCpuPerRequestMs`,
  );
  if (scaleOut) {
    console.table(scaleOut);
    console.log(`scale-out: concurrency ${CONCURRENCY}, ${REQUESTS} requests per configuration, calls round-robin across each fleet's instances`);
  }
  console.log(JSON.stringify(figures));
} finally {
  await cleanUp();
}
