import { LRUCache } from "lru-cache";
import type { Address, Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { RegisteredProvider } from "./chain.ts";
import type { ChainPort, MarketplacePort, ProviderMetrics } from "./core/chain-port.ts";
import type { OutboundHttp } from "./outbound.ts";
import type { Readiness } from "./readiness.ts";
import type { RelayerInfo } from "@agentmesh/sdk/protocol";
import type { X402Gateway } from "./core/x402.ts";
import type { ProviderStats } from "./stats.ts";
import type { ChainIndex } from "./store/chain-index.ts";
import type { RateLimits } from "./rate-limits.ts";
import type { Leases } from "./store/leases.ts";
import type { Repository } from "./store/repository.ts";

/**
 * The receipt-signer keys this relayer holds. It serves every provider whose registered receipt
 * signer is one of them (several providers may delegate to one signer), and co-signs a session's
 * states only with the key its terms name. A session serves only while that key is still its
 * provider's registered signer (see `servingRefusal`); after a rotation it may still close.
 */
export class ReceiptSigners {
  private readonly keys = new Map<Address, Hex>();

  constructor(keys: readonly Hex[]) {
    for (const key of keys) this.keys.set(privateKeyToAccount(key).address, key);
  }

  /** The key of `signer` (a checksummed address), if this relayer holds it. */
  keyOf(signer: Address): Hex | undefined {
    return this.keys.get(signer);
  }

  /** The addresses of the keys held, in the order given. */
  addresses(): Address[] {
    return [...this.keys.keys()];
  }

  /** Whether new sessions with `provider` can be opened here: it is active and its current signer is ours. */
  serves(provider: RegisteredProvider): boolean {
    return provider.active && this.keys.has(provider.receiptSigner);
  }
}

/** Tunables, with the defaults the CLI uses. */
export interface RelayerLimits {
  /** Largest request body accepted. */
  maxBodyBytes: number;
  /** max_tokens used when a request sets none (lowered to what the session can still pay for). */
  defaultMaxTokens: number;
  /** Upper bound on any request's max_tokens. */
  maxTokensCap: number;
  /**
   * Longest wait for the first byte of a provider's response body, from sending the request: its
   * queue, the prompt's processing, a reasoning model's thinking before its first token, and for a
   * non-streamed call the whole generation. There is no limit on the whole call (see README).
   */
  firstByteTimeoutMs: number;
  /** Longest silence of a provider once its response has begun (any byte, an SSE comment too). */
  idleTimeoutMs: number;
  /**
   * While a stream's provider is silent, an SSE comment (`: keep-alive`) goes to the client this
   * often, so that proxies and clients with read timeouts keep the connection.
   */
  keepAliveIntervalMs: number;
  /** Relative difference between provider usage and our count above which a receipt is flagged. */
  tokenMismatchTolerance: number;
  /**
   * Seconds before a session's deadline or its budget's expiry (by the chain's clock) at which
   * serving stops: the error of the relayer's estimate of the chain's clock (a block, and the skew
   * between this host's clock and the sequencer's).
   */
  chainTimeMarginSeconds: number;
  /**
   * How long a paid agent call waits for its payment's transfer to mine. Past it the call answers
   * 409 `payment_pending` (never 402: the transfer may still mine) and the payer retries with the
   * same payment to get the answer; the payment is reconciled with the chain meanwhile.
   */
  x402SettleTimeoutMs: number;
  /** Requests per client IP (every route): a token bucket; past it, 429 with `Retry-After`. */
  ipRateLimit: RateLimit;
  /** Requests per API key (routes that take one), on top of the IP's limit. */
  keyRateLimit: RateLimit;
  /**
   * How long the chain reads behind provider views (the escrow's fee, each provider's on-chain
   * metrics) are reused; concurrent requests share one read.
   */
  chainViewCacheMs: number;
}

/** A token bucket: `burst` requests at once, refilled at `perSecond`. */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

export const DEFAULT_LIMITS: RelayerLimits = {
  maxBodyBytes: 1024 * 1024,
  defaultMaxTokens: 1024,
  maxTokensCap: 65_536,
  firstByteTimeoutMs: 120_000,
  idleTimeoutMs: 30_000,
  keepAliveIntervalMs: 15_000,
  tokenMismatchTolerance: 0.02,
  chainTimeMarginSeconds: 5,
  x402SettleTimeoutMs: 60_000,
  // Above what the benchmarks' single client address sends, so that they never shape a
  // measurement; they still bound a flood from one address or key. A deployment sets its own.
  ipRateLimit: { perSecond: 10_000, burst: 20_000 },
  // A key serves one session, one call at a time: a fast small call takes about a millisecond.
  keyRateLimit: { perSecond: 1_000, burst: 2_000 },
  chainViewCacheMs: 5_000,
};

/** Clients tracked per token-bucket table at most: the least recently seen are forgotten (a full bucket). */
const MAX_TRACKED_CLIENTS = 100_000;

/**
 * Token buckets by client (an IP, an API key): each holds up to `burst` tokens, refilled at
 * `perSecond`; a request takes one. At most {@link MAX_TRACKED_CLIENTS} are kept (least recently
 * used first out), so a flood of new clients costs bounded memory.
 */
export class TokenBuckets {
  private readonly buckets = new LRUCache<string, { tokens: number; at: number }>({ max: MAX_TRACKED_CLIENTS });
  private readonly limit: RateLimit;

  constructor(limit: RateLimit) {
    if (!(limit.perSecond > 0) || !(limit.burst >= 1)) throw new RangeError(`a rate limit needs perSecond > 0 and burst >= 1, got ${JSON.stringify(limit)}`);
    this.limit = limit;
  }

  /** Takes a token of `client`'s bucket: 0 when there was one, else the whole seconds until there is. */
  take(client: string, now = Date.now()): number {
    const { perSecond, burst } = this.limit;
    const bucket = this.buckets.get(client) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
    bucket.at = now;
    this.buckets.set(client, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond));
  }
}

/**
 * The chain reads that provider views show (the escrow's fee, each provider's on-chain metrics),
 * reused until the chain index moves to a new block or `ttlMs` passes, whichever comes first: any
 * number of view requests cost at most one read of each per block and per `ttlMs`, concurrent ones
 * share the read in flight, and a change the index has seen is never hidden by the cache.
 */
export class ChainViewCache {
  private readonly fee: LRUCache<number, number>;
  private readonly providerMetrics: LRUCache<string, ProviderMetrics>;
  private readonly chainIndex: Pick<ChainIndex, "lastBlock">;

  constructor(chain: Pick<ChainPort, "feeBps" | "metrics">, chainIndex: Pick<ChainIndex, "lastBlock">, ttlMs: number) {
    this.chainIndex = chainIndex;
    this.fee = new LRUCache({ max: 4, ttl: ttlMs, fetchMethod: () => chain.feeBps() });
    this.providerMetrics = new LRUCache({ max: 10_000, ttl: ttlMs, fetchMethod: (key) => chain.metrics(Number(key.split("@")[0])) });
  }

  /** The escrow's current fee (see `ChainPort.feeBps`), as of the indexed block at most `ttlMs` ago. */
  async feeBps(): Promise<number> {
    return (await this.fee.fetch((await this.chainIndex.lastBlock()) ?? -1))!;
  }

  /** Provider `id`'s settlement totals (see `ChainPort.metrics`), as of the indexed block at most `ttlMs` ago. */
  async metrics(id: number): Promise<ProviderMetrics> {
    return (await this.providerMetrics.fetch(`${id}@${(await this.chainIndex.lastBlock()) ?? -1}`))!;
  }
}

/**
 * Requests per provider per rolling minute, as each provider registered (the registry requires > 0).
 * Each provider's window is a queue of the last minute's request times: expired ones leave from the
 * front, so a request costs O(1) amortized whatever the rate.
 */
export class RateLimiter {
  private readonly windows = new Map<number, { times: number[]; head: number }>();

  /** Counts a request to `providerId` unless it already had `perMinute` in the last 60 s. */
  tryAcquire(providerId: number, perMinute: number, now = Date.now()): boolean {
    let window = this.windows.get(providerId);
    if (window === undefined) this.windows.set(providerId, (window = { times: [], head: 0 }));
    while (window.head < window.times.length && now - window.times[window.head] >= 60_000) window.head++;
    if (window.head > 1024 && window.head * 2 > window.times.length) {
      window.times = window.times.slice(window.head); // drop the expired half at once
      window.head = 0;
    }
    if (window.times.length - window.head >= perMinute) return false;
    window.times.push(now);
    return true;
  }

  /** Milliseconds until `providerId` may take another request (0 when it may now). */
  retryAfterMs(providerId: number, perMinute: number, now = Date.now()): number {
    const window = this.windows.get(providerId);
    if (window === undefined || window.times.length - window.head < perMinute) return 0;
    return Math.max(0, window.times[window.times.length - perMinute] + 60_000 - now);
  }
}

/**
 * Everything the request handler and the services share: the app's dependencies (`createApp(deps)`,
 * app.ts). `startRelayer` wires the real ones; unit tests pass a fake {@link ChainPort}.
 */
export interface RelayerContext {
  repo: Repository;
  /**
   * Leases over the work that runs once across every instance sharing the store (see
   * store/leases.ts); undefined in unit tests, where every pass runs here.
   */
  leases?: Leases;
  /** The chain, through the methods the services use (the real one: `ChainGateway`). */
  chain: ChainPort;
  domainSeparator: Hex;
  receiptSigners: ReceiptSigners;
  limits: RelayerLimits;
  stats: ProviderStats;
  /** Requests per client IP, per API key and per provider (see rate-limits.ts). */
  rateLimits: RateLimits;
  /** The fee and provider metrics that provider views show, cached briefly. */
  chainViews: ChainViewCache;
  /**
   * The HTTP client for every endpoint that comes from the chain (providers, agents, health probes),
   * with the outbound policy of the relayer's chain: private destinations only on the local chain.
   */
  outbound: OutboundHttp;
  /** What the chain indexer has seen: every provider (with models), budget and session on-chain. */
  chainIndex: ChainIndex;
  /** The agent marketplace and its x402 gateway, when the relayer is configured with one. */
  marketplace?: MarketplacePort;
  x402?: X402Gateway;
  /** Whether the relayer serves calls yet (start-up, shutdown); absent in unit tests of rules. */
  readiness?: Readiness;
  /**
   * The relayer's URL as clients reach it (behind TLS: `https://…`), which x402 resource URLs and
   * agents' paid URLs name; without it, `http://` and the request's Host header (local use).
   */
  publicUrl?: string;
  /** Origins whose web pages may call the API (CORS); absent: any (`*`). */
  corsOrigins?: readonly string[];
  /** What `GET /v1/relayer` publishes: chain, contracts, gas and signer addresses, version, settlement policy. */
  about: RelayerInfo;
}
