import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { Hex } from "viem";
import { escrowDomainSeparator, formatUsdc } from "@agentmesh/sdk";
import { ChainGateway, type ChainOptions, type RegisteredProvider } from "./chain.ts";
import { chatCompletions } from "./core/chat.ts";
import { ChainViewCache, DEFAULT_LIMITS, RateLimiter, ReceiptSigners, TokenBuckets, type RelayerContext, type RelayerLimits } from "./context.ts";
import { ApiError, bearerToken, sendError, sendJson } from "@agentmesh/sdk/http";
import { chainUnavailable } from "./chain-errors.ts";
import { closeSession, openSession, receiptStatus, revokeKey, sessionStatus, submitVoucher } from "./core/sessions.ts";
import { SettlementWorker, settlementOptions, type SettlementOptions } from "./core/settlement.ts";
import { HealthProber } from "./health.ts";
import { MarketplaceGateway, PayoutWorker } from "./marketplace.ts";
import { OutboundHttp, outboundPolicy } from "./outbound.ts";
import { callAgent, facilitatorSettle, facilitatorSupported, facilitatorVerify, listAgents, showAgent, X402Gateway } from "./core/x402.ts";
import { ChainIndexer, type IndexerOptions } from "./indexer.ts";
import { ChainIndex } from "./store/chain-index.ts";
import { ProviderStats } from "./stats.ts";
import { openDatabase, startCheckpointer } from "./store/database.ts";
import { Readiness } from "./readiness.ts";
import { Repository } from "./store/repository.ts";
import { PayoutLogs } from "./store/agent-payments.ts";
import { txManagerOptions, type TxManagerOptions } from "./tx-manager.ts";
import { log, redactUrlInLogs } from "./log.ts";

export interface RelayerOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  chain: ChainOptions;
  /**
   * The receipt-signer keys this relayer co-signs with: it serves every provider whose registered
   * receipt signer is one of them, and opens only sessions whose terms name one of them.
   */
  receiptSignerKeys: Hex[];
  /** SQLite file (":memory:" for a throwaway store). */
  databasePath: string;
  limits?: Partial<RelayerLimits>;
  /** Checked against the escrow at start-up (see `settlementOptions`). */
  settlement?: Partial<SettlementOptions>;
  /** The transaction manager: confirmation depth, max fee per gas, replacement (see tx-manager.ts). */
  transactions?: Partial<TxManagerOptions>;
  /** How often providers' endpoints are probed for the uptime score (default 15 s). */
  healthProbeIntervalMs?: number;
  /** The chain indexer: where to start (the deployment's start block) and how closely to follow. */
  indexer: { startBlock: number } & Partial<Omit<IndexerOptions, "startBlock">>;
  /** How often agents' payments are distributed (default 60 s; needs `chain.marketplace`). */
  payoutIntervalMs?: number;
  /** How long `close()` waits for calls in flight before cutting them (default 30 s). */
  drainTimeoutMs?: number;
}

export interface Relayer {
  url: string;
  port: number;
  context: RelayerContext;
  /** The settlement worker; it exists once the relayer is ready (see `ready`). */
  readonly settlement: SettlementWorker;
  health: HealthProber;
  indexer: ChainIndexer;
  /** Agent payouts, when the relayer serves a marketplace. */
  payouts?: PayoutWorker;
  readiness: Readiness;
  /**
   * Resolves once the chain has answered and the indexer has caught up (the relayer serves calls);
   * rejects when the chain refuses the configuration (wrong chain id, a settlement batch above the
   * escrow's: a {@link SettlementOptionsError}), or when the relayer is closed before.
   */
  ready: Promise<void>;
  /**
   * Graceful shutdown: stops listening, refuses new calls on open connections (503), lets the calls
   * in flight finish (up to `drainTimeoutMs`), stops the workers, posts every signed voucher not
   * settled yet to the escrow (forced settlement), and closes the store.
   */
  close(): Promise<void>;
}

type Handler = (ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, param: string) => unknown;

const ROUTES: { method: string; pattern: RegExp; handler: Handler }[] = [
  { method: "GET", pattern: /^\/healthz$/, handler: (ctx, _req, res) => sendJson(res, 200, { status: "ok", chainId: ctx.chain.chainId }) },
  { method: "GET", pattern: /^\/readyz$/, handler: (ctx, _req, res) => readyz(ctx, res) },
  {
    method: "GET",
    pattern: /^\/metrics$/,
    handler: async (ctx, _req, res) => {
      const text = await ctx.stats.prometheus();
      res.writeHead(200, { "content-type": ctx.stats.registry.contentType });
      res.end(text);
    },
  },
  { method: "GET", pattern: /^\/v1\/models$/, handler: (ctx, _req, res) => listModels(ctx, res) },
  { method: "POST", pattern: /^\/v1\/chat\/completions$/, handler: chatCompletions },
  { method: "POST", pattern: /^\/v1\/sessions$/, handler: openSession },
  { method: "GET", pattern: /^\/v1\/sessions\/([^/]+)$/, handler: sessionStatus },
  { method: "POST", pattern: /^\/v1\/sessions\/([^/]+)\/vouchers$/, handler: submitVoucher },
  { method: "POST", pattern: /^\/v1\/sessions\/([^/]+)\/close$/, handler: closeSession },
  { method: "DELETE", pattern: /^\/v1\/sessions\/([^/]+)\/key$/, handler: revokeKey },
  { method: "GET", pattern: /^\/v1\/receipts\/([^/]+)$/, handler: (ctx, _req, res, hash) => receiptStatus(ctx, res, hash) },
  { method: "GET", pattern: /^\/v1\/budgets\/([^/]+)$/, handler: (ctx, _req, res, id) => showBudget(ctx, res, id) },
  { method: "GET", pattern: /^\/v1\/providers$/, handler: (ctx, _req, res) => listProviders(ctx, res) },
  { method: "GET", pattern: /^\/v1\/providers\/([^/]+)$/, handler: (ctx, _req, res, id) => showProvider(ctx, res, id) },
  { method: "GET", pattern: /^\/v1\/agents$/, handler: listAgents },
  { method: "GET", pattern: /^\/v1\/agents\/([^/]+)$/, handler: showAgent },
  { method: "POST", pattern: /^\/agents\/([^/]+)$/, handler: callAgent },
  { method: "GET", pattern: /^\/x402\/supported$/, handler: facilitatorSupported },
  { method: "POST", pattern: /^\/x402\/verify$/, handler: facilitatorVerify },
  { method: "POST", pattern: /^\/x402\/settle$/, handler: facilitatorSettle },
];

/** The chain refuses the relayer's configuration (its RPC serves another chain): it can never be ready. */
export class ChainConfigurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ChainConfigurationError";
  }
}

/**
 * Starts the relayer: HTTP API, store, chain indexer, settlement worker. It listens at once and
 * returns; it is ready once the chain has answered and the indexer has caught up (`ready`,
 * `GET /readyz`). Until then calls that need the chain index are refused with 503
 * `relayer_not_ready`; while the RPC is unreachable, start-up retries with backoff.
 */
export async function startRelayer(options: RelayerOptions): Promise<Relayer> {
  redactUrlInLogs(options.chain.rpcUrl);
  const chain = new ChainGateway(options.chain);
  const txConfig = txManagerOptions(options.transactions ?? {}, chain.chainId);
  const db = openDatabase(options.databasePath);
  const checkpointer = startCheckpointer(options.databasePath);
  const repo = new Repository(db);
  const transactions = chain.manageTransactions(repo, txConfig);
  const chainIndex = new ChainIndex(db);
  // The indexer looks at the head twice per block (Base: every second; a look with no new block is
  // one RPC), and marks this relayer's sessions closing or closed in the same transaction as it
  // applies what it saw: serving reads both per call.
  const indexer = new ChainIndexer(
    chain,
    chainIndex,
    (work) => repo.transaction(work),
    {
      confirmations: chain.chainId === 31337 ? 0 : 3,
      pollMs: Math.min(1_000, (chain.publicClient.chain?.blockTime ?? 1_000) / 2),
      ...options.indexer,
    },
    (changes) => {
      for (const { session, finalizedTx, rolledBack } of changes) {
        const { id, settled, sequence, finalized } = session;
        if (rolledBack && session.closeRequestedBy === null) repo.reopenAfterReorg(id);
        repo.followChain({ id, settled, sequence, finalized, closeRequested: session.closeRequestedBy !== null, closeTx: finalizedTx });
      }
    },
  );
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const readiness = new Readiness(() => indexer.status());
  const context: RelayerContext = {
    repo,
    chain,
    domainSeparator: escrowDomainSeparator(chain.chainId, chain.escrow),
    receiptSigners: new ReceiptSigners(options.receiptSignerKeys),
    limits,
    clientLimits: { ip: new TokenBuckets(limits.ipRateLimit), key: new TokenBuckets(limits.keyRateLimit) },
    chainViews: new ChainViewCache(chain, chainIndex, limits.chainViewCacheMs),
    busySessions: new Set(),
    stats: new ProviderStats(),
    rateLimiter: new RateLimiter(),
    outbound: new OutboundHttp(outboundPolicy(chain.chainId)),
    chainIndex,
    readiness,
  };
  context.stats.collectProcessMetrics();
  let payouts: PayoutWorker | undefined;
  if (options.chain.marketplace !== undefined) {
    context.marketplace = new MarketplaceGateway(chain, options.chain.marketplace);
    context.x402 = new X402Gateway(context, context.marketplace);
    payouts = new PayoutWorker(context.marketplace, new PayoutLogs(repo), { startBlock: BigInt(options.indexer.startBlock), intervalMs: options.payoutIntervalMs ?? 60_000 });
  }
  const health = new HealthProber(context, options.healthProbeIntervalMs ?? 15_000);
  health.start();

  // Start-up against the chain, in the background: the chain id (which decides, among other things,
  // whether private endpoints may be called) and the escrow's batch limit, retried with backoff
  // while the RPC is unreachable; then the indexer, and the settlement worker once it caught up.
  const stopping = new AbortController();
  let settlement: SettlementWorker | undefined;
  const ready = (async () => {
    let escrowMaxBatch: number;
    for (let attempt = 0; ; attempt++) {
      try {
        const rpcChainId = await chain.publicClient.getChainId();
        if (rpcChainId !== chain.chainId) throw new ChainConfigurationError(`the RPC serves chain ${rpcChainId}, not the configured chain ${chain.chainId}`);
        escrowMaxBatch = await chain.maxBatch();
        await transactions.start(); // the gas account's next nonce, and what a previous run left in flight
        break;
      } catch (error) {
        if (error instanceof ChainConfigurationError) throw error;
        readiness.startupFailed(error as Error);
        const delay = Math.min(30_000, 250 * 2 ** Math.min(attempt, 7));
        log.warn({ retryInMs: delay, err: error }, "relayer start-up: the chain's RPC failed; retrying");
        await sleep(delay, undefined, { signal: stopping.signal });
      }
    }
    const settlementConfig = settlementOptions(options.settlement ?? {}, escrowMaxBatch);
    readiness.chainChecked();
    indexer.start();
    indexer.catchUp().catch(() => undefined); // the first pass now; failures retry with backoff
    await Promise.race([indexer.whenSynced(), abortion(stopping.signal)]);
    settlement = new SettlementWorker(context, settlementConfig);
    await settlement.start();
    context.x402?.start();
    payouts?.start();
  })();
  // The caller sees the refusal through `ready` (main.ts exits with it), and /readyz names it.
  ready.catch((error: unknown) => {
    if (!stopping.signal.aborted) readiness.configurationRefused(error as Error);
  });

  // Calls in flight, for the drain at shutdown.
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const handle = requestHandler(context);
  const server: Server = createServer((req, res) => {
    inFlight++;
    res.once("close", () => {
      if (--inFlight === 0) drained?.();
    });
    if (stopping.signal.aborted) res.setHeader("connection", "close");
    handle(req, res);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8787, options.host ?? "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${options.host ?? "127.0.0.1"}:${port}`,
    port,
    context,
    get settlement(): SettlementWorker {
      if (settlement === undefined) throw new Error("the settlement worker starts once the relayer is ready (await relayer.ready)");
      return settlement;
    },
    health,
    indexer,
    payouts,
    readiness,
    ready,
    close() {
      closing ??= (async () => {
        readiness.drain();
        stopping.abort();
        await ready.catch(() => undefined);
        // No new connections; open ones are closed after their call (connection: close).
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        if (inFlight > 0) {
          const drainTimeout = new AbortController();
          await Promise.race([
            new Promise<void>((resolve) => (drained = resolve)),
            sleep(options.drainTimeoutMs ?? 30_000, undefined, { signal: drainTimeout.signal }).catch(() => undefined),
          ]);
          drainTimeout.abort();
        }
        server.closeAllConnections(); // idle keep-alive ones, and calls past the drain timeout
        await closed;
        await payouts?.stop();
        await context.x402?.stop();
        await indexer.stop();
        await health.stop();
        if (settlement !== undefined) {
          await settlement.stop();
          await flushVouchers(settlement);
        }
        await transactions.stop();
        await context.outbound.close();
        repo.close();
        await checkpointer.stop();
      })();
      return closing;
    },
  };
}

/** A promise that rejects when `signal` aborts. */
function abortion(signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/**
 * Posts every signed voucher not settled yet to the escrow, batch after batch (forced: whatever
 * their age), so that a shutdown leaves nothing signed waiting on a restart. A failure is logged:
 * what is left stays in the store, and the next start settles it.
 */
async function flushVouchers(settlement: SettlementWorker): Promise<void> {
  try {
    // Each pass settles one batch; a bound in case the escrow keeps refusing some.
    for (let batch = 0; batch < 100 && (await settlement.settleDue(true)) !== undefined; batch++);
  } catch (error) {
    log.error({ err: error }, "settling signed vouchers at shutdown failed (the next start settles them)");
  }
}

/** `GET /readyz`: 200 when the relayer serves calls, else 503 naming what is missing. */
function readyz(ctx: RelayerContext, res: ServerResponse): void {
  const problems = ctx.readiness?.problems() ?? [];
  const status = problems.length === 0 ? 200 : 503;
  sendJson(res, status, { status: status === 200 ? "ready" : "not_ready", chainId: ctx.chain.chainId, indexedBlock: ctx.chainIndex.lastBlock() ?? null, problems });
}

/**
 * Browsers (the dApp) may call the API from any origin: nothing is authorized by cookies, only by the
 * session's bearer key, so a permissive CORS policy exposes nothing.
 */
const CORS_HEADERS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
  // @x402/fetch also sends Access-Control-Expose-Headers on its paid retry.
  "access-control-allow-headers": "authorization, content-type, payment-signature, access-control-expose-headers, idempotency-key, x-request-id",
  "access-control-expose-headers": "payment-required, payment-response, x-request-id, retry-after, idempotent-replayed",
  "access-control-max-age": "86400",
};

/**
 * Calls refused (503) until the chain index has caught up, and during shutdown: they serve, open or
 * close sessions by what the index says. Status reads and voucher submissions are always served.
 */
const NEEDS_CHAIN_INDEX = new Set<Handler>([chatCompletions, openSession, closeSession, callAgent]);

/**
 * The relayer's HTTP API over `ctx`: what `startRelayer` serves, and what tests call in-process.
 * Every response carries an `x-request-id` (the client's, when it sent a sane one).
 */
export function requestHandler(ctx: RelayerContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void route(ctx, req, res);
  };
}

/** A client's request id is echoed only if it is short and plain (it goes into logs and headers). */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Each route's label for metrics and logs: its pattern, ids as `:id` (e.g. `/v1/sessions/:id/close`). */
const ROUTE_LABELS = new Map(ROUTES.map(({ pattern }) => [pattern, pattern.source.replace(/^\^|\$$/g, "").replaceAll("\\/", "/").replaceAll("([^/]+)", ":id")]));
/** Methods that label metrics as themselves; any other is "other" (a client must not mint series). */
const METHOD_LABELS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

async function route(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now();
  const path = (req.url ?? "/").split("?")[0];
  const clientId = req.headers["x-request-id"];
  const requestId = typeof clientId === "string" && CLIENT_REQUEST_ID.test(clientId) ? clientId : `req_${randomUUID().replaceAll("-", "")}`;
  res.setHeader("x-request-id", requestId);
  // One line and one histogram sample per request, when it ends (answered, or cut by the client).
  const requestLog = log.child({ requestId });
  let label = "unmatched";
  res.once("close", () => {
    const durationMs = performance.now() - started;
    ctx.stats.recordRequest(METHOD_LABELS.has(req.method ?? "") ? req.method! : "other", label, res.statusCode, durationMs / 1000);
    requestLog.info({ method: req.method, path, route: label, status: res.statusCode, durationMs: Math.round(durationMs * 10) / 10, ...(!res.writableFinished && { aborted: true }) }, "request");
  });
  for (const [name, value] of Object.entries(CORS_HEADERS)) res.setHeader(name, value);
  if (req.method === "OPTIONS") {
    const preflighted = ROUTES.find((candidate) => candidate.pattern.test(path));
    if (preflighted !== undefined) label = ROUTE_LABELS.get(preflighted.pattern)!;
    res.writeHead(204).end();
    return;
  }
  try {
    throttle(ctx, req);
    const matches = ROUTES.filter((candidate) => candidate.pattern.test(path));
    if (matches.length === 0) throw new ApiError(404, "not_found", `no route ${path}`);
    label = ROUTE_LABELS.get(matches[0].pattern)!;
    const routeEntry = matches.find((candidate) => candidate.method === req.method);
    if (routeEntry === undefined) {
      const allow = [...new Set([...matches.map((candidate) => candidate.method), "OPTIONS"])].join(", ");
      throw new ApiError(405, "method_not_allowed", `${req.method} is not allowed on ${path} (allowed: ${allow})`, { headers: { allow } });
    }
    if (NEEDS_CHAIN_INDEX.has(routeEntry.handler)) ctx.readiness?.requireServing();
    let param: string;
    try {
      param = decodeURIComponent(routeEntry.pattern.exec(path)?.[1] ?? "");
    } catch {
      throw new ApiError(400, "invalid_path", `${path} is not a valid path: a % escape is malformed`);
    }
    await routeEntry.handler(ctx, req, res, param);
  } catch (error) {
    if (error instanceof ApiError) {
      sendError(res, withRetryAfter(error));
      return;
    }
    if (chainUnavailable(error)) {
      requestLog.error({ method: req.method, path, err: error }, "the chain's RPC is unavailable");
      sendError(res, new ApiError(503, "chain_unavailable", "the chain's RPC is unavailable; try again shortly", { headers: { "retry-after": "5" } }));
      return;
    }
    requestLog.error({ method: req.method, path, err: error }, "request failed");
    sendError(res, new ApiError(500, "internal_error", "internal error"));
  }
}

/**
 * Takes a token of the client IP's bucket and, when the request carries a bearer key, of the key's
 * (see `RelayerLimits`); a 429 with `Retry-After` when either is empty. The IP is the connection's
 * peer: behind a reverse proxy, every client shares the proxy's bucket (limit there, or raise this).
 */
function throttle(ctx: RelayerContext, req: IncomingMessage): void {
  const key = bearerToken(req);
  const ipWait = ctx.clientLimits.ip.take(req.socket.remoteAddress ?? "unknown");
  const keyWait = ipWait === 0 && key !== undefined ? ctx.clientLimits.key.take(key) : 0;
  const wait = Math.max(ipWait, keyWait);
  if (wait === 0) return;
  const what = ipWait > 0 ? "this address" : "this API key";
  throw new ApiError(429, "rate_limit_exceeded", `too many requests from ${what}: retry in ${wait} s`, {
    type: "rate_limit_error",
    headers: { "retry-after": String(wait) },
  });
}

/** Every 429 says when to try again (a second, unless its handler knew better). */
function withRetryAfter(error: ApiError): ApiError {
  if (error.status !== 429 || Object.keys(error.headers).some((name) => name.toLowerCase() === "retry-after")) return error;
  (error.headers as Record<string, string>)["retry-after"] = "1";
  return error;
}

/** `GET /v1/models`: every model of every active served provider, grouped by name. */
function listModels(ctx: RelayerContext, res: ServerResponse): void {
  const byName = new Map<string, unknown[]>();
  for (const provider of servedProviders(ctx)) {
    for (const model of provider.models.filter((candidate) => candidate.active)) {
      const offers = byName.get(model.name) ?? [];
      offers.push({
        providerId: provider.id,
        modelId: model.id,
        inputPricePer1K: formatUsdc(BigInt(model.inputPricePer1K)),
        outputPricePer1K: formatUsdc(BigInt(model.outputPricePer1K)),
        minChargePerCall: formatUsdc(BigInt(provider.minChargePerCall)),
        contextLength: model.maxContextTokens,
        features: provider.features.toString(),
      });
      byName.set(model.name, offers);
    }
  }
  sendJson(res, 200, {
    object: "list",
    data: [...byName].map(([id, providers]) => ({ id, object: "model", created: 0, owned_by: "agentmesh", providers })),
  });
}

function servedProviders(ctx: RelayerContext): RegisteredProvider[] {
  return ctx.chainIndex.providers().filter((provider) => ctx.receiptSigners.serves(provider));
}

/**
 * A provider with its metrics, and `feeBps`, the escrow's current protocol fee: with the provider's
 * prices, minimum charge and receipt signer, what the terms of a session opened now must carry.
 */
async function providerView(ctx: RelayerContext, provider: RegisteredProvider, feeBps: number) {
  const metrics = await ctx.chainViews.metrics(provider.id);
  return {
    ...provider,
    feeBps,
    metrics: {
      ...metrics,
      earnings: formatUsdc(metrics.earnings),
      averageLatencyMs: metrics.requests === 0n ? null : Number(metrics.latencyMs) / Number(metrics.requests),
      p50LatencyMs: ctx.stats.latencyPercentile(provider.id, 50),
      p95LatencyMs: ctx.stats.latencyPercentile(provider.id, 95),
      outputTokensPerSecond: ctx.stats.throughput(provider.id),
      uptimeScore: ctx.stats.uptime(provider.id),
    },
  };
}

async function listProviders(ctx: RelayerContext, res: ServerResponse): Promise<void> {
  const providers = ctx.chainIndex.providers();
  const feeBps = await ctx.chainViews.feeBps();
  sendJson(res, 200, { object: "list", data: await Promise.all(providers.map((provider) => providerView(ctx, provider, feeBps))) });
}

async function showProvider(ctx: RelayerContext, res: ServerResponse, id: string): Promise<void> {
  const providerId = Number(id);
  if (!/^\d+$/.test(id) || providerId < 1) throw new ApiError(400, "invalid_provider_id", `"${id}" is not a provider id`);
  const provider = ctx.chainIndex.provider(providerId);
  if (provider === undefined) throw new ApiError(404, "provider_not_found", `no provider ${providerId}`);
  sendJson(res, 200, await providerView(ctx, provider, await ctx.chainViews.feeBps()));
}

/**
 * `GET /v1/budgets/{id}`: the budget and its sessions as the indexer last saw them on-chain, each
 * with its live spend when this relayer serves it (signed and served but not yet settled).
 */
function showBudget(ctx: RelayerContext, res: ServerResponse, id: string): void {
  const budgetId = Number(id);
  if (!/^\d+$/.test(id) || budgetId < 1) throw new ApiError(400, "invalid_budget_id", `"${id}" is not a budget id`);
  const budget = ctx.chainIndex.budget(budgetId);
  if (budget === undefined) throw new ApiError(404, "budget_not_found", `no budget ${budgetId} (as of block ${ctx.chainIndex.lastBlock()})`);
  const sessions = ctx.chainIndex.sessionsOfBudget(budgetId).map((session) => {
    const served = ctx.repo.getSession(session.id);
    const spent = served?.state.cumulativeCost ?? session.settled;
    return {
      ...session,
      maxSpend: formatUsdc(session.maxSpend),
      settled: formatUsdc(session.settled),
      spent: formatUsdc(spent > session.settled ? spent : session.settled),
      requests: served?.state.requestCount ?? null,
    };
  });
  sendJson(res, 200, {
    ...budget,
    available: formatUsdc(budget.available),
    perSessionLimit: formatUsdc(budget.perSessionLimit),
    indexedBlock: ctx.chainIndex.lastBlock(),
    sessions,
  });
}
