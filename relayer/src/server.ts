import { createRequire } from "node:module";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { Hex } from "viem";
import { escrowDomainSeparator } from "@agentmesh/sdk";
import { createApp } from "./app.ts";
import { ChainGateway, type ChainOptions } from "./chain.ts";
import { ChainViewCache, DEFAULT_LIMITS, ReceiptSigners, type RelayerContext, type RelayerLimits } from "./context.ts";
import { InProcessRateLimits, SharedRateLimits } from "./rate-limits.ts";
import { DEFAULT_SETTLEMENT, SettlementWorker, settlementOptions, type SettlementOptions } from "./core/settlement.ts";
import { X402Gateway } from "./core/x402.ts";
import { HealthProber } from "./health.ts";
import { MarketplaceGateway, PayoutWorker } from "./marketplace.ts";
import { OutboundHttp, outboundPolicy } from "./outbound.ts";
import { ChainIndexer, type IndexerOptions } from "./indexer.ts";
import { ChainIndex } from "./store/chain-index.ts";
import { ProviderStats } from "./stats.ts";
import { openStore } from "./store/open.ts";
import { LeaseKeeper, Leases, gasAccountLease } from "./store/leases.ts";
import { Readiness } from "./readiness.ts";
import { OperatingChecks } from "./operating-checks.ts";
import { DirectoryAnnouncer } from "./directory-announcer.ts";
import { Repository } from "./store/repository.ts";
import { PayoutLogs } from "./store/agent-payments.ts";
import { txManagerOptions, type TxManagerOptions } from "./tx-manager.ts";
import { log, redactUrlInLogs } from "./log.ts";

/** This relayer's version, as `GET /v1/relayer` publishes it. */
const RELAYER_VERSION: string = createRequire(import.meta.url)("../package.json").version;

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
  /** The store: a SQLite file (":memory:" for a throwaway one), or a PostgreSQL URL several instances share. */
  databasePath: string;
  /** Connections per instance to a PostgreSQL store (default 10). */
  databasePoolSize?: number;
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
  /**
   * The relayer's URL as clients reach it, e.g. behind TLS (see `RelayerContext.publicUrl`). With a
   * `chain.directory`, it is announced there for every receipt signer (see directory-announcer.ts).
   */
  publicUrl?: string;
  /** Origins whose web pages may call the API (default: any). */
  corsOrigins?: readonly string[];
  /**
   * Call provider and agent endpoints on private and loopback addresses off the local chain too
   * (default false): for a relayer whose providers and agents run on its own network.
   */
  allowPrivateEndpoints?: boolean;
}

/** The app's dependencies as `startRelayer` wires them: the real chain gateway and marketplace. */
export interface WiredContext extends RelayerContext {
  chain: ChainGateway;
  marketplace?: MarketplaceGateway;
}

export interface Relayer {
  url: string;
  port: number;
  context: WiredContext;
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

/**
 * How long an instance's hold on its gas account outlives it: another instance started on the same
 * account waits this long after a crash (a clean stop gives it up at once).
 */
const GAS_LEASE_MS = 6_000;

/** The chain refuses the relayer's configuration (its RPC serves another chain): it can never be ready. */
export class ChainConfigurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ChainConfigurationError";
  }
}

/**
 * Starts the relayer: wires the real dependencies (store, chain gateway, indexer, workers), serves
 * `createApp(context)` (app.ts) over HTTP, and drains and closes them at shutdown. It listens at once and
 * returns; it is ready once the chain has answered and the indexer has caught up (`ready`,
 * `GET /readyz`). Until then calls that need the chain index are refused with 503
 * `relayer_not_ready`; while the RPC is unreachable, start-up retries with backoff.
 */
export async function startRelayer(options: RelayerOptions): Promise<Relayer> {
  redactUrlInLogs(options.chain.rpcUrl);
  const chain = new ChainGateway(options.chain);
  const txConfig = txManagerOptions(options.transactions ?? {}, chain.chainId);
  const store = await openStore(options.databasePath, { instance: chain.account.address.toLowerCase(), poolSize: options.databasePoolSize });
  const repo = new Repository(store.database);
  // Work that runs once across the instances sharing the store is leased (store/leases.ts); this
  // instance holds its gas account's lease for as long as it runs.
  const leases = new Leases(repo);
  const gasLease = new LeaseKeeper({ leases, name: gasAccountLease(chain.account.address), ttlMs: GAS_LEASE_MS });
  const transactions = chain.manageTransactions(repo, txConfig);
  const chainIndex = new ChainIndex(store.database);
  // The indexer looks at the head twice per block (Base: every second; a look with no new block is
  // one RPC), and marks this relayer's sessions closing or closed in the same transaction as it
  // applies what it saw: serving reads both per call.
  const indexer = new ChainIndexer(
    chain,
    chainIndex,
    (work) => repo.transaction(work),
    {
      confirmations: chain.chainId === 31337 ? 0 : 3,
      leases,
      pollMs: Math.min(1_000, (chain.publicClient.chain?.blockTime ?? 1_000) / 2),
      ...options.indexer,
    },
    async (changes, tx) => {
      for (const { session, finalizedTx, rolledBack } of changes) {
        const { id, settled, sequence, finalized } = session;
        if (rolledBack && session.closeRequestedBy === null) await tx.reopenAfterReorg(id);
        await tx.followChain({ id, settled, sequence, finalized, closeRequested: session.closeRequestedBy !== null, closeTx: finalizedTx });
      }
    },
  );
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const readiness = new Readiness(() => indexer.status());
  const receiptSigners = new ReceiptSigners(options.receiptSignerKeys);
  const requestedSettlement = { ...DEFAULT_SETTLEMENT, ...options.settlement }; // checked against the escrow once it answers
  const context: WiredContext = {
    repo,
    leases,
    chain,
    domainSeparator: escrowDomainSeparator(chain.chainId, chain.escrow),
    receiptSigners,
    limits,
    // Alone on its store, an instance counts in memory; instances sharing one count there.
    rateLimits: store.database.dialect === "sqlite" ? new InProcessRateLimits(limits) : new SharedRateLimits(repo, limits),
    chainViews: new ChainViewCache(chain, chainIndex, limits.chainViewCacheMs),
    stats: new ProviderStats(),
    outbound: new OutboundHttp(outboundPolicy(chain.chainId, options.allowPrivateEndpoints)),
    chainIndex,
    readiness,
    publicUrl: options.publicUrl,
    corsOrigins: options.corsOrigins,
    about: {
      version: RELAYER_VERSION,
      chainId: chain.chainId,
      contracts: {
        ComputeEscrow: chain.escrow,
        ProviderRegistry: options.chain.registry,
        AgentMarketplace: options.chain.marketplace,
        RelayerDirectory: options.chain.directory,
      },
      gasAddress: chain.account.address,
      receiptSigners: receiptSigners.addresses(),
      settlement: {
        maxBatch: requestedSettlement.maxBatch,
        maxAgeMs: requestedSettlement.maxAgeMs,
        confirmations: txConfig.confirmations,
        maxFeePerGasGwei: Number(txConfig.maxFeePerGas) / 1e9,
      },
    },
  };
  context.stats.collectProcessMetrics();
  let payouts: PayoutWorker | undefined;
  if (options.chain.marketplace !== undefined) {
    context.marketplace = new MarketplaceGateway(chain, options.chain.marketplace);
    context.x402 = new X402Gateway(context, context.marketplace);
    payouts = new PayoutWorker(context.marketplace, new PayoutLogs(repo), { startBlock: BigInt(options.indexer.startBlock), intervalMs: options.payoutIntervalMs ?? 60_000, leases });
  }
  const health = new HealthProber(context, options.healthProbeIntervalMs ?? 15_000);
  health.start();
  const operatingChecks = new OperatingChecks({ repo, publicClient: chain.publicClient, gasAddress: chain.account.address, maxFeePerGas: txConfig.maxFeePerGas, readiness });
  const { directory } = options.chain;
  const announcer =
    directory !== undefined && options.publicUrl !== undefined
      ? new DirectoryAnnouncer({ chain, directory, signerKeys: options.receiptSignerKeys, url: options.publicUrl, readiness })
      : undefined;

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
        // Never two instances on one gas account: their nonces would collide. A stopped instance's
        // lease expires within GAS_LEASE_MS; a running one's never does.
        await gasLease.take(stopping.signal, ({ expiresAt }) =>
          readiness.startupFailed(new Error(`another relayer instance holds gas account ${chain.account.address} (its lease runs until ${new Date(expiresAt).toISOString()})`)),
        );
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
    await operatingChecks.start(); // the store and the gas account, for /readyz
    await announcer?.start(); // where agents find this relayer: before it says it is ready
    indexer.start();
    indexer.catchUp().catch(() => undefined); // the first pass now; failures retry with backoff
    await Promise.race([indexer.whenSynced(), abortion(stopping.signal)]);
    settlement = new SettlementWorker(context, settlementConfig);
    await settlement.start();
    await context.x402?.start();
    payouts?.start();
  })();
  // The caller sees the refusal through `ready` (main.ts exits with it), and /readyz names it.
  ready.catch((error: unknown) => {
    if (!stopping.signal.aborted) readiness.configurationRefused(error as Error);
  });

  // Calls in flight, for the drain at shutdown.
  let inFlight = 0;
  let drained: (() => void) | undefined;
  const handle = createApp(context);
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
        await operatingChecks.stop();
        await announcer?.stop();
        if (settlement !== undefined) {
          await settlement.stop();
          await flushVouchers(settlement);
        }
        await transactions.stop();
        await gasLease.release();
        await context.outbound.close();
        await store.close();
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
