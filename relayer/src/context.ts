import type { Address, Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { ChainGateway, RegisteredProvider } from "./chain.ts";
import type { MarketplaceGateway } from "./marketplace.ts";
import type { OutboundHttp } from "./outbound.ts";
import type { X402Gateway } from "./x402.ts";
import type { ProviderStats } from "./stats.ts";
import type { ChainIndex } from "./store/chain-index.ts";
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
};

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

/** Everything request handlers share. */
export interface RelayerContext {
  repo: Repository;
  chain: ChainGateway;
  domainSeparator: Hex;
  receiptSigners: ReceiptSigners;
  limits: RelayerLimits;
  /** Sessions with a call in flight: a session serves one call at a time. */
  busySessions: Set<Hex>;
  stats: ProviderStats;
  rateLimiter: RateLimiter;
  /**
   * The HTTP client for every endpoint that comes from the chain (providers, agents, health probes),
   * with the outbound policy of the relayer's chain: private destinations only on the local chain.
   */
  outbound: OutboundHttp;
  /** What the chain indexer has seen: every provider (with models), budget and session on-chain. */
  chainIndex: ChainIndex;
  /** The agent marketplace and its x402 gateway, when the relayer is configured with one. */
  marketplace?: MarketplaceGateway;
  x402?: X402Gateway;
}
