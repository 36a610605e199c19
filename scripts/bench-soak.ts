/**
 * Relayer soak (a script, not a test). Run with `npm run bench:soak -- --minutes N` (fractions
 * allowed). Three parts:
 *
 * 1. Soak: the local chain, the two reference providers and the relayer, each server in its own
 *    process as `bench:relayer` runs them; the relayer's settlement worker settles by age
 *    (`--settle-age-ms`, default 2 s), so settlements go on during the soak. `--concurrency`
 *    workers, each a closed loop, act for `--agents` agents: open a session (alternating
 *    providers), make a random number of calls (mean `--calls-per-session`; `--stream-share` of them
 *    streamed), each carrying the voucher of the session's previous call, then close the session
 *    cooperatively (`--close-share`) or leave it, posting its last voucher on its own as the SDK
 *    does when idle; and again. After a warm-up (10 % of the soak, 3 to 30 s), N minutes are
 *    measured: throughput and call latency; the relayer's event-loop delay, measured inside its
 *    process by a preloaded `monitorEventLoopDelay` (`lib/event-loop-probe.ts`); its RSS growth; the
 *    largest size of its SQLite write-ahead log (sampled every 250 ms); and CPU per call.
 * 2. Settlement check: the last vouchers posted, settlement is given `--settle-wait-seconds` to
 *    finish; then every session's settled amount on-chain (`getSession`) is compared with the
 *    agent's latest signed state, and the escrow's `VoucherSettled` events are checked for a
 *    (session, sequence) paid twice.
 * 3. The settlement worker's query on a fresh database of 100,000 sessions and 20,000 settlements
 *    (`lib/settle-query.ts`).
 *
 * Progress goes to stderr; the last line of stdout is one JSON object:
 * - `rps`, `p50Ms`, `p99Ms`: calls completed per second in the measured window, and their latency
 *   (streams until their last byte);
 * - `relayerMachineCpuPerRequestMs`: CPU time of the relayer, the providers and this load generator
 *   per call, as `bench:relayer` defines it (here it also covers the relayer's settlement and
 *   indexing, and the agents' opening and closing of sessions); its parts, and the chain's CPU per
 *   call (not part of it), are beside it;
 * - `rssGrowthMb`: relayer RSS at the end of the window minus at its start (MiB);
 * - `walMaxMb`: the largest `relayer.db-wal` seen (MiB);
 * - `eventLoopMaxDelayMs`: the relayer main thread's longest event-loop delay in the window;
 * - `vouchersLost`: signed vouchers whose amount is not settled on-chain after the wait (per
 *   session, the sequences from the one settled on-chain to the agent's latest signed one);
 * - `doubleSettlements`: (session, sequence) pairs settled more than once, plus sessions whose
 *   settled total exceeds what their agent signed;
 * - `settleQueryMsAt100kSessions`: median time of the worker's due-session query at that scale.
 */
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { createPublicClient, createWalletClient, http, keccak256, stringToHex, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import {
  AgentSession,
  INITIAL_STATE,
  computeEscrowAbi,
  escrowDomainSeparator,
  signDigest,
  voucherDigest,
  type CompactSignature,
  type VoucherState,
} from "../sdk/src/index.ts";
import { BenchHttpClient, ChildProcesses, cpuSeconds, liftRateLimits, percentile, readEventLoopDelay, rssBytes, waitFor } from "./lib/bench.ts";
import { freePort, startSeededChain, type SeededChain } from "./lib/local-stack.ts";
import { measureSettleQuery } from "./lib/settle-query.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    concurrency: { type: "string", default: "16" },
    agents: { type: "string", default: "4" },
    "calls-per-session": { type: "string", default: "100" },
    "stream-share": { type: "string", default: "0.25" },
    "close-share": { type: "string", default: "0.3" },
    "settle-age-ms": { type: "string", default: "2000" },
    "settle-wait-seconds": { type: "string", default: "120" },
    "query-sessions": { type: "string", default: "100000" },
    "query-settlements": { type: "string", default: "20000" },
    "query-runs": { type: "string", default: "5" },
    "query-budget-seconds": { type: "string", default: "30" },
  },
});

function numberOption(name: keyof typeof values, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const parsed = Number(values[name]);
  if (!Number.isFinite(parsed) || parsed < min || parsed > max) {
    console.error(`--${name} must be a number from ${min} to ${max}, got "${values[name]}"`);
    process.exit(2);
  }
  return parsed;
}

const MINUTES = numberOption("minutes", 0.01);
const CONCURRENCY = Math.round(numberOption("concurrency", 1, 512));
const AGENTS = Math.round(numberOption("agents", 1, 64));
const CALLS_PER_SESSION = numberOption("calls-per-session", 1);
const STREAM_SHARE = numberOption("stream-share", 0, 1);
const CLOSE_SHARE = numberOption("close-share", 0, 1);
const SETTLE_AGE_MS = Math.round(numberOption("settle-age-ms", 0, 86_400_000));
const SETTLE_WAIT_MS = numberOption("settle-wait-seconds", 0) * 1000;
const SOAK_MS = MINUTES * 60_000;
const WARMUP_MS = Math.min(30_000, Math.max(3_000, SOAK_MS / 10));
/** Each session locks 0.05 USDC: a few thousand calls; the seeded budget (1,000 USDC) allows 20,000 sessions. */
const SESSION_MAX_SPEND = 50_000n;
const SESSION_SECONDS = Math.max(3600, Math.ceil((2 * (WARMUP_MS + SOAK_MS + SETTLE_WAIT_MS)) / 1000));
const MODEL = "agentmesh-small";
const PLAIN_BODY = { model: MODEL, messages: [{ role: "user", content: "Soak me." }], max_tokens: 16 };
const STREAM_BODY = { model: MODEL, messages: [{ role: "user", content: "Soak me, streamed." }], max_tokens: 64, stream: true };
const MIB = 1024 * 1024;
const WORKER_STAGGER_MS = 100;

const started = performance.now();
const log = (line: string) => process.stderr.write(`[soak ${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (value: number, digits = 2) => Number(value.toFixed(digits));

/** A deterministic generator of numbers in [0, 1) (mulberry32), one per worker. */
function randomFrom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** One of the agents' sessions, as the agent sees it. */
interface SoakSession {
  id: Hex;
  apiKey: string;
  agentKey: Hex;
  /** The latest state the agent signed (the final state, once closed cooperatively). */
  signed: VoucherState;
  /** The voucher of `signed` while the relayer has not been sent it. */
  unsent: { sequence: number; signature: CompactSignature } | undefined;
}

interface ReceiptJson {
  state: Omit<VoucherState, "cumulativeCost"> & { cumulativeCost: string };
}

/** The receipt of a 200 answer: the body's, or a stream's last data chunk's. */
function receiptOf(text: string, stream: boolean): ReceiptJson | undefined {
  if (!stream) return (JSON.parse(text) as { receipt?: ReceiptJson }).receipt;
  const last = text.split("\n").findLast((line) => line.startsWith("data: {"));
  return last === undefined ? undefined : (JSON.parse(last.slice("data: ".length)) as { receipt?: ReceiptJson }).receipt;
}

/** The seeded budget whitelists the demo agent; its creator adds the other agents. */
async function allowAgents({ stack, rpcUrl }: SeededChain, agents: Hex[]): Promise<void> {
  const transport = http(rpcUrl);
  const wallet = createWalletClient({ chain: hardhat, transport, account: privateKeyToAccount(stack.accounts.creator.privateKey) });
  const hash = await wallet.writeContract({
    address: stack.contracts.ComputeEscrow,
    abi: computeEscrowAbi,
    functionName: "setAgentsAllowed",
    args: [BigInt(stack.budgetId), agents.map((key) => privateKeyToAccount(key).address), true],
  });
  await createPublicClient({ chain: hardhat, transport }).waitForTransactionReceipt({ hash });
}

const children = new ChildProcesses();
const client = new BenchHttpClient();
let chain: SeededChain | undefined;
const dir = await mkdtemp(path.join(tmpdir(), "agentmesh-soak-"));
let soakFigures: Record<string, number>;
try {
  // ---- the stack ------------------------------------------------------------------------------
  const localFile = path.join(dir, "local.json");
  const databaseFile = path.join(dir, "relayer.db");
  const providerPorts = [await freePort(), await freePort()];
  const relayerPort = await freePort();
  log("starting the chain, deploying and seeding");
  chain = await startSeededChain({ chainPort: await freePort(), providerPorts, demoAgentPort: await freePort(), localFile });
  const { stack, rpcUrl } = chain;
  const agentKeys: Hex[] = [
    stack.accounts.agent.privateKey,
    ...Array.from({ length: AGENTS - 1 }, (_, index) => keccak256(stringToHex(`agentmesh soak agent ${index + 1}`))),
  ];
  await liftRateLimits(chain);
  if (AGENTS > 1) await allowAgents(chain, agentKeys.slice(1));
  const providers = providerPorts.map((port) => children.spawnNode("relayer/src/reference-provider/main.ts", ["--port", String(port)]));
  const relayer = children.spawnNode(
    "relayer/src/main.ts",
    ["--local-file", localFile, "--port", String(relayerPort), "--db", databaseFile, "--settle-age-ms", String(SETTLE_AGE_MS)],
    { watchEventLoop: true },
  );
  const relayerUrl = `http://127.0.0.1:${relayerPort}`;
  await Promise.all([...providerPorts.map((port) => waitFor(`http://127.0.0.1:${port}/healthz`)), waitFor(`${relayerUrl}/readyz`)]);
  const separator = escrowDomainSeparator(stack.chainId, stack.contracts.ComputeEscrow);

  // ---- what is measured -----------------------------------------------------------------------
  let phase: "warm-up" | "measured" | "stopping" = "warm-up";
  /** Read through a call, so that TypeScript does not narrow it across the workers' awaits. */
  const stopping = () => phase === "stopping";
  const sessions: SoakSession[] = [];
  const latencies: number[] = [];
  let calls = 0; // every call served, for progress
  let measuredCalls = 0;
  let closes = 0;
  let errors = 0;
  const recordError = (what: string, detail: unknown) => {
    errors++;
    if (errors <= 10) log(`${what}: ${String(detail).slice(0, 300)}`);
  };

  let walMaxBytes = 0;
  const sampleWal = async () => {
    const wal = await stat(`${databaseFile}-wal`).catch(() => undefined);
    walMaxBytes = Math.max(walMaxBytes, wal?.size ?? 0);
  };
  setInterval(() => void sampleWal(), 250).unref();

  /** CPU seconds so far of each process measured, and the relayer's RSS. */
  const snapshot = async () => ({
    at: performance.now(),
    relayerCpu: await cpuSeconds(relayer.pid!),
    providersCpu: (await Promise.all(providers.map((provider) => cpuSeconds(provider.pid!)))).reduce((sum, seconds) => sum + seconds, 0),
    chainCpu: await cpuSeconds(chain!.pid),
    ownCpu: process.cpuUsage(),
    relayerRss: await rssBytes(relayer.pid!),
  });

  // ---- the agents -----------------------------------------------------------------------------
  const openSession = async (agentKey: Hex, providerId: number): Promise<SoakSession> => {
    const session = await AgentSession.open({
      relayerUrl,
      privateKey: agentKey,
      chainId: stack.chainId,
      escrow: stack.contracts.ComputeEscrow,
      budgetId: BigInt(stack.budgetId),
      providerId,
      model: MODEL,
      maxSpend: SESSION_MAX_SPEND,
      durationSeconds: SESSION_SECONDS,
    });
    const opened: SoakSession = { id: session.sessionId, apiKey: session.apiKey, agentKey, signed: INITIAL_STATE, unsent: undefined };
    sessions.push(opened);
    return opened;
  };

  /** One call, carrying the previous call's voucher; signs this one's. False when it failed. */
  const call = async (session: SoakSession, stream: boolean): Promise<boolean> => {
    const voucher = session.unsent;
    session.unsent = undefined;
    const body = { ...(stream ? STREAM_BODY : PLAIN_BODY), sessionId: session.id, ...(voucher && { voucher }) };
    let answer;
    try {
      answer = await client.post(`${relayerUrl}/v1/chat/completions`, body, { authorization: `Bearer ${session.apiKey}` });
    } catch (error) {
      session.unsent = voucher;
      recordError("call failed", error);
      return false;
    }
    const receipt = answer.status === 200 ? receiptOf(answer.text, stream) : undefined;
    if (receipt === undefined) {
      session.unsent = voucher; // it may have been stored anyway: posting it again is answered "stale"
      recordError(`call answered ${answer.status}`, answer.text);
      return false;
    }
    const state: VoucherState = { ...receipt.state, cumulativeCost: BigInt(receipt.state.cumulativeCost) };
    session.signed = state;
    session.unsent = { sequence: state.sequence, signature: signDigest(session.agentKey, voucherDigest(separator, session.id, state)) };
    calls++;
    if (phase === "measured") {
      measuredCalls++;
      latencies.push(answer.ms);
    }
    return true;
  };

  /** Posts the session's last voucher on its own, as the SDK does once the agent is idle. */
  const flushVoucher = async (session: SoakSession): Promise<void> => {
    const voucher = session.unsent;
    if (voucher === undefined) return;
    session.unsent = undefined;
    const answer = await client.post(`${relayerUrl}/v1/sessions/${session.id}/vouchers`, voucher).catch((error: unknown) => error as Error);
    if (answer instanceof Error || (answer.status !== 200 && !answer.text.includes("stale_voucher"))) {
      session.unsent = voucher;
      recordError("voucher refused", answer instanceof Error ? answer : `${answer.status} ${answer.text}`);
    }
  };

  /** Cooperative close: the agent signs the final state, the relayer co-signs and the escrow finalizes. */
  const closeSession = async (session: SoakSession): Promise<void> => {
    const final: VoucherState = { ...session.signed, sequence: session.signed.sequence + 1, isFinal: true };
    const signature = signDigest(session.agentKey, voucherDigest(separator, session.id, final));
    const answer = await client.post(`${relayerUrl}/v1/sessions/${session.id}/close`, { signature });
    if (answer.status !== 200) {
      recordError(`close answered ${answer.status}`, answer.text);
      await flushVoucher(session);
      return;
    }
    session.signed = final;
    session.unsent = undefined;
    closes++;
  };

  const worker = async (index: number) => {
    const random = randomFrom(index + 1);
    await sleep(index * WORKER_STAGGER_MS); // agents arrive one after another, not all in the same millisecond
    for (let turn = 0; !stopping(); turn++) {
      let session: SoakSession;
      try {
        session = await openSession(agentKeys[(index + turn) % agentKeys.length], stack.providers[(index + turn) % stack.providers.length].id);
      } catch (error) {
        recordError("opening a session failed", error);
        await sleep(1000);
        continue;
      }
      const planned = 1 + Math.floor(random() * 2 * CALLS_PER_SESSION);
      let healthy = true;
      for (let done = 0; done < planned && healthy && !stopping(); done++) healthy = await call(session, random() < STREAM_SHARE);
      if (stopping()) return; // its last voucher is posted below, with the others
      if (healthy && random() < CLOSE_SHARE) await closeSession(session);
      else await flushVoucher(session);
    }
  };

  // ---- the soak -------------------------------------------------------------------------------
  log(`soak: ${CONCURRENCY} workers, ${AGENTS} agents, ${(WARMUP_MS / 1000).toFixed(0)} s warm-up, then ${MINUTES} min measured`);
  const workers = Array.from({ length: CONCURRENCY }, (_, index) => worker(index));
  let lastProgress = { at: performance.now(), calls: 0 };
  const progress = setInterval(async () => {
    const now = performance.now();
    const rss = await rssBytes(relayer.pid!).catch(() => 0);
    log(
      `${phase}: ${calls} calls (${((1000 * (calls - lastProgress.calls)) / (now - lastProgress.at)).toFixed(0)}/s), ${sessions.length} sessions` +
        ` (${closes} closed), relayer RSS ${(rss / MIB).toFixed(0)} MiB, WAL max ${(walMaxBytes / MIB).toFixed(1)} MiB, ${errors} errors`,
    );
    lastProgress = { at: now, calls };
  }, 10_000).unref();
  await sleep(WARMUP_MS);
  await readEventLoopDelay(relayer, true); // starts the histogram over
  const before = await snapshot();
  phase = "measured";
  await sleep(SOAK_MS);
  const eventLoop = await readEventLoopDelay(relayer);
  const after = await snapshot();
  phase = "stopping";
  clearInterval(progress);
  await Promise.all(workers);
  const seconds = (after.at - before.at) / 1000;
  log(`soak done: ${measuredCalls} calls measured in ${seconds.toFixed(1)} s, ${sessions.length} sessions, ${errors} errors`);

  // ---- settlement -----------------------------------------------------------------------------
  for (let index = 0; index < sessions.length; index += 64) await Promise.all(sessions.slice(index, index + 64).map(flushVoucher));
  const publicClient = createPublicClient({ chain: hardhat, transport: http(rpcUrl, { batch: { batchSize: 100 } }) });
  const onChain = new Map<Hex, { settled: bigint; sequence: number }>();
  const readOnChain = async (batch: SoakSession[]) => {
    for (let index = 0; index < batch.length; index += 100) {
      await Promise.all(
        batch.slice(index, index + 100).map(async (session) => {
          const state = await publicClient.readContract({ address: stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getSession", args: [session.id] });
          onChain.set(session.id, { settled: state.settled, sequence: state.sequence });
        }),
      );
    }
  };
  const waitStarted = performance.now();
  let unsettled = sessions.filter((session) => session.signed.cumulativeCost > 0n);
  for (;;) {
    await readOnChain(unsettled);
    unsettled = unsettled.filter((session) => onChain.get(session.id)!.settled < session.signed.cumulativeCost);
    if (unsettled.length === 0 || performance.now() - waitStarted > SETTLE_WAIT_MS) break;
    log(`waiting for settlement: ${unsettled.length} of ${sessions.length} sessions not settled up to their last signed voucher`);
    await sleep(2000);
  }
  const settleWaitSeconds = (performance.now() - waitStarted) / 1000;
  await readOnChain(sessions); // the final word, for every session

  let vouchersLost = 0;
  let overpaid = 0;
  const settledEvents = await publicClient.getContractEvents({
    address: stack.contracts.ComputeEscrow,
    abi: computeEscrowAbi,
    eventName: "VoucherSettled",
    fromBlock: BigInt(stack.startBlock),
    toBlock: "latest",
  });
  const timesSettled = new Map<string, number>();
  const paidTotal = new Map<string, bigint>();
  for (const { args } of settledEvents) {
    const sessionId = args.sessionId!.toLowerCase();
    const key = `${sessionId}/${args.sequence}`;
    timesSettled.set(key, (timesSettled.get(key) ?? 0) + 1);
    paidTotal.set(sessionId, (paidTotal.get(sessionId) ?? 0n) + args.paid!);
  }
  const settledTwice = [...timesSettled.values()].reduce((sum, times) => sum + times - 1, 0);
  for (const session of sessions) {
    const state = onChain.get(session.id)!;
    if (state.settled < session.signed.cumulativeCost) vouchersLost += Math.max(1, session.signed.sequence - state.sequence);
    const paid = paidTotal.get(session.id.toLowerCase()) ?? 0n;
    if (state.settled > session.signed.cumulativeCost || paid > session.signed.cumulativeCost) overpaid++;
  }
  log(
    `settlement: ${settledEvents.length} vouchers settled on-chain for ${sessions.length} sessions after a ${settleWaitSeconds.toFixed(1)} s wait;` +
      ` ${vouchersLost} signed vouchers unsettled, ${settledTwice} settled twice, ${overpaid} sessions paid beyond what was signed`,
  );

  // ---- figures --------------------------------------------------------------------------------
  latencies.sort((a, b) => a - b);
  const perCallMs = (cpuTimeSeconds: number) => (cpuTimeSeconds * 1000) / measuredCalls;
  const relayerCpuPerRequestMs = perCallMs(after.relayerCpu - before.relayerCpu);
  const providersCpuPerRequestMs = perCallMs(after.providersCpu - before.providersCpu);
  const loadCpuPerRequestMs = perCallMs((after.ownCpu.user + after.ownCpu.system - before.ownCpu.user - before.ownCpu.system) / 1e6);
  soakFigures = {
    minutes: MINUTES,
    requests: measuredCalls,
    rps: round(measuredCalls / seconds, 1),
    p50Ms: round(percentile(latencies, 50)),
    p99Ms: round(percentile(latencies, 99)),
    rssGrowthMb: round((after.relayerRss - before.relayerRss) / MIB, 1),
    walMaxMb: round(walMaxBytes / MIB, 1),
    eventLoopMaxDelayMs: round(eventLoop.maxMs, 1),
    eventLoopP99DelayMs: round(eventLoop.p99Ms, 1),
    vouchersLost,
    doubleSettlements: settledTwice + overpaid,
    relayerMachineCpuPerRequestMs: round(relayerCpuPerRequestMs + providersCpuPerRequestMs + loadCpuPerRequestMs, 3),
    relayerCpuPerRequestMs: round(relayerCpuPerRequestMs, 3),
    providerCpuPerRequestMs: round(providersCpuPerRequestMs, 3),
    loadGeneratorCpuPerRequestMs: round(loadCpuPerRequestMs, 3),
    chainCpuPerRequestMs: round(perCallMs(after.chainCpu - before.chainCpu), 3),
    sessions: sessions.length,
    closedSessions: closes,
    settledVouchers: settledEvents.length,
    settleWaitSeconds: round(settleWaitSeconds, 1),
    errors,
  };
} finally {
  await client.close();
  await children.stopAll();
  await chain?.stop();
  await rm(dir, { recursive: true, force: true });
}

// ---- the settlement query at scale, with the stack stopped ------------------------------------
const query = await measureSettleQuery({
  sessions: Math.round(numberOption("query-sessions", 1)),
  settlements: Math.round(numberOption("query-settlements", 1)),
  maxRuns: Math.round(numberOption("query-runs", 1)),
  budgetMs: numberOption("query-budget-seconds", 0) * 1000,
  log,
});
log(`settle query: median ${query.medianMs.toFixed(1)} ms over ${query.runsMs.length} runs; ${query.returned} of ${query.due} due sessions returned`);

console.log(JSON.stringify({ ...soakFigures, settleQueryMsAt100kSessions: round(query.medianMs, 1) }));
