import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Hex } from "viem";
import { escrowDomainSeparator, formatUsdc } from "@agentmesh/sdk";
import { ChainGateway, type ChainOptions, type RegisteredProvider } from "./chain.ts";
import { chatCompletions } from "./chat.ts";
import { DEFAULT_LIMITS, RateLimiter, ReceiptSigners, type RelayerContext, type RelayerLimits } from "./context.ts";
import { ApiError, sendError, sendJson } from "@agentmesh/sdk/http";
import { closeSession, openSession, receiptStatus, sessionStatus, submitVoucher } from "./sessions.ts";
import { SettlementWorker, settlementOptions, type SettlementOptions } from "./settlement.ts";
import { HealthProber } from "./health.ts";
import { MarketplaceGateway, PayoutWorker } from "./marketplace.ts";
import { OutboundHttp, outboundPolicy } from "./outbound.ts";
import { callAgent, facilitatorSettle, facilitatorSupported, facilitatorVerify, listAgents, showAgent, X402Gateway } from "./x402.ts";
import { ChainIndexer, type IndexerOptions } from "./indexer.ts";
import { ChainIndex } from "./store/chain-index.ts";
import { ProviderStats } from "./stats.ts";
import { openDatabase, startCheckpointer } from "./store/database.ts";
import { Repository } from "./store/repository.ts";
import { txManagerOptions, type TxManagerOptions } from "./tx-manager.ts";

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
}

export interface Relayer {
  url: string;
  port: number;
  context: RelayerContext;
  settlement: SettlementWorker;
  health: HealthProber;
  indexer: ChainIndexer;
  /** Agent payouts, when the relayer serves a marketplace. */
  payouts?: PayoutWorker;
  close(): Promise<void>;
}

type Handler = (ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, param: string) => unknown;

const ROUTES: { method: string; pattern: RegExp; handler: Handler }[] = [
  { method: "GET", pattern: /^\/healthz$/, handler: (ctx, _req, res) => sendJson(res, 200, { status: "ok", chainId: ctx.chain.chainId }) },
  {
    method: "GET",
    pattern: /^\/metrics$/,
    handler: (ctx, _req, res) => {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      res.end(ctx.stats.prometheus());
    },
  },
  { method: "GET", pattern: /^\/v1\/models$/, handler: (ctx, _req, res) => listModels(ctx, res) },
  { method: "POST", pattern: /^\/v1\/chat\/completions$/, handler: chatCompletions },
  { method: "POST", pattern: /^\/v1\/sessions$/, handler: openSession },
  { method: "GET", pattern: /^\/v1\/sessions\/([^/]+)$/, handler: sessionStatus },
  { method: "POST", pattern: /^\/v1\/sessions\/([^/]+)\/vouchers$/, handler: submitVoucher },
  { method: "POST", pattern: /^\/v1\/sessions\/([^/]+)\/close$/, handler: closeSession },
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

/**
 * Starts the relayer: HTTP API, settlement worker, store.
 *
 * @throws {SettlementOptionsError} before starting anything, when the settlement options cannot work
 * with the escrow.
 */
export async function startRelayer(options: RelayerOptions): Promise<Relayer> {
  const chain = new ChainGateway(options.chain);
  // The chain id decides, among other things, whether private endpoints may be called: the RPC must agree.
  const rpcChainId = await chain.publicClient.getChainId();
  if (rpcChainId !== chain.chainId) throw new Error(`the RPC serves chain ${rpcChainId}, not the configured chain ${chain.chainId}`);
  const settlementConfig = settlementOptions(options.settlement ?? {}, await chain.maxBatch());
  const txConfig = txManagerOptions(options.transactions ?? {}, chain.chainId);
  const db = openDatabase(options.databasePath);
  const checkpointer = startCheckpointer(options.databasePath);
  const repo = new Repository(db);
  const transactions = chain.manageTransactions(repo, txConfig);
  await transactions.start();
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
      maxRange: 5_000,
      ...options.indexer,
    },
    (changes) => {
      for (const { session, finalizedTx } of changes) {
        const { id, settled, sequence, finalized } = session;
        repo.followChain({ id, settled, sequence, finalized, closeRequested: session.closeRequestedBy !== null, closeTx: finalizedTx });
      }
    },
  );
  await indexer.catchUp();
  indexer.start();
  const context: RelayerContext = {
    repo,
    chain,
    domainSeparator: escrowDomainSeparator(chain.chainId, chain.escrow),
    receiptSigners: new ReceiptSigners(options.receiptSignerKeys),
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    busySessions: new Set(),
    stats: new ProviderStats(),
    rateLimiter: new RateLimiter(),
    outbound: new OutboundHttp(outboundPolicy(chain.chainId)),
    chainIndex,
  };
  let payouts: PayoutWorker | undefined;
  if (options.chain.marketplace !== undefined) {
    context.marketplace = new MarketplaceGateway(chain, options.chain.marketplace);
    context.x402 = new X402Gateway(context, context.marketplace);
    payouts = new PayoutWorker(context.marketplace, BigInt(options.indexer.startBlock), options.payoutIntervalMs ?? 60_000);
    payouts.start();
  }
  const settlement = new SettlementWorker(context, settlementConfig);
  await settlement.start();
  const health = new HealthProber(context, options.healthProbeIntervalMs ?? 15_000);
  health.start();

  const server: Server = createServer((req, res) => {
    void route(context, req, res);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8787, options.host ?? "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? "127.0.0.1"}:${port}`,
    port,
    context,
    settlement,
    health,
    indexer,
    payouts,
    async close() {
      await payouts?.stop();
      await indexer.stop();
      await health.stop();
      await settlement.stop();
      await transactions.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await context.outbound.close();
      repo.close();
      await checkpointer.stop();
    },
  };
}

/**
 * Browsers (the dApp) may call the API from any origin: nothing is authorized by cookies, only by the
 * session's bearer key, so a permissive CORS policy exposes nothing.
 */
const CORS_HEADERS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, OPTIONS",
  // @x402/fetch also sends Access-Control-Expose-Headers on its paid retry.
  "access-control-allow-headers": "authorization, content-type, payment-signature, access-control-expose-headers",
  "access-control-expose-headers": "payment-required, payment-response",
  "access-control-max-age": "86400",
};

async function route(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? "/").split("?")[0];
  for (const [name, value] of Object.entries(CORS_HEADERS)) res.setHeader(name, value);
  if (req.method === "OPTIONS") {
    res.writeHead(204).end();
    return;
  }
  try {
    const matches = ROUTES.filter((candidate) => candidate.pattern.test(path));
    if (matches.length === 0) throw new ApiError(404, "not_found", `no route ${path}`);
    const routeEntry = matches.find((candidate) => candidate.method === req.method);
    if (routeEntry === undefined) throw new ApiError(405, "method_not_allowed", `${req.method} is not allowed on ${path}`);
    const param = decodeURIComponent(routeEntry.pattern.exec(path)?.[1] ?? "");
    await routeEntry.handler(ctx, req, res, param);
  } catch (error) {
    if (error instanceof ApiError) {
      sendError(res, error);
      return;
    }
    console.error(`${req.method} ${path} failed:`, error);
    sendError(res, new ApiError(500, "internal_error", "internal error"));
  }
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
  const metrics = await ctx.chain.metrics(provider.id);
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
  const feeBps = await ctx.chain.feeBps();
  sendJson(res, 200, { object: "list", data: await Promise.all(providers.map((provider) => providerView(ctx, provider, feeBps))) });
}

async function showProvider(ctx: RelayerContext, res: ServerResponse, id: string): Promise<void> {
  const providerId = Number(id);
  if (!/^\d+$/.test(id) || providerId < 1) throw new ApiError(400, "invalid_provider_id", `"${id}" is not a provider id`);
  const provider = ctx.chainIndex.provider(providerId);
  if (provider === undefined) throw new ApiError(404, "provider_not_found", `no provider ${providerId}`);
  sendJson(res, 200, await providerView(ctx, provider, await ctx.chain.feeBps()));
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
