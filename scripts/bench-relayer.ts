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
import { BenchHttpClient, ChildProcesses, cpuSeconds, liftRateLimits, percentile, waitFor } from "./lib/bench.ts";
import { freePort, startSeededChain, type SeededChain } from "./lib/local-stack.ts";

const { values } = parseArgs({
  options: {
    concurrency: { type: "string", default: "32" },
    requests: { type: "string", default: "3000" },
    streams: { type: "string", default: "64" },
    "system-prompt-words": { type: "string", default: "0" },
    "provider-latency-ms": { type: "string", default: "0" },
  },
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

let chain: SeededChain | undefined;
const dir = await mkdtemp(path.join(tmpdir(), "agentmesh-bench-"));
try {
  const localFile = path.join(dir, "local.json");
  const [providerPort, idlePort, passthroughPort, relayerPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  chain = await startSeededChain({ chainPort: await freePort(), providerPorts: [providerPort, idlePort], demoAgentPort: await freePort(), localFile });
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
  const sessions: AgentSession[] = [];
  for (let i = 0; i < CONCURRENCY + STREAMS; i++) {
    sessions.push(
      await AgentSession.open({
        relayerUrl,
        privateKey: agentKey,
        chainId: stack.chainId,
        escrow: stack.contracts.ComputeEscrow,
        budgetId: BigInt(stack.budgetId),
        providerId: stack.providers[0].id,
        model: BODY.model,
        maxSpend: 5_000_000n,
        durationSeconds: 3600,
      }),
    );
  }

  const direct = () => http.postJson(`${providerUrl}/chat/completions`, BODY).then((r) => r.ms);
  const viaPassthrough = () => http.postJson(`${passthroughUrl}/chat/completions`, BODY).then((r) => r.ms);
  // Each session's signed voucher for its previous call rides on its next request (the credit rule).
  const vouchers = new Map<Hex, { sequence: number; signature: CompactSignature }>();
  const viaRelayer = async (worker: number) => {
    const session = sessions[worker];
    const voucher = vouchers.get(session.sessionId);
    const { ms, json } = await http.postJson(
      `${relayerUrl}/v1/chat/completions`,
      { ...BODY, sessionId: session.sessionId, ...(voucher && { voucher }) },
      { authorization: `Bearer ${session.apiKey}` },
    );
    // The agent's share of the work: sign this call's voucher.
    const state: VoucherState = { ...json.receipt.state, cumulativeCost: BigInt(json.receipt.state.cumulativeCost) };
    vouchers.set(session.sessionId, { sequence: state.sequence, signature: signDigest(agentKey, voucherDigest(separator, session.sessionId, state)) });
    return ms;
  };

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
  console.log(JSON.stringify(figures));
} finally {
  await http.close();
  await children.stopAll();
  await chain?.stop();
  await rm(dir, { recursive: true, force: true });
}
