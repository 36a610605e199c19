import { RateLimiter, TokenBuckets, type RelayerLimits } from "./context.ts";
import { hashApiKey, type Repository } from "./store/repository.ts";

/** A request refused by a rate limit: whose, and how long to wait (whole seconds, at least 1). */
export interface RateRefusal {
  limited: "address" | "key" | "provider";
  retryAfterSeconds: number;
}

/**
 * The relayer's rate limits: per client IP and per API key (`RelayerLimits.ipRateLimit`,
 * `keyRateLimit`), and per provider, the requests per minute it registered on-chain.
 */
export interface RateLimits {
  /** Counts a request from `ip` (with API key `key`, when it carries one); its refusal, if over a limit. */
  client(ip: string, key: string | undefined): Promise<RateRefusal | undefined>;
  /** Counts a call to provider `providerId`, which takes `perMinute`; its refusal, if over. */
  provider(providerId: number, perMinute: number): Promise<RateRefusal | undefined>;
}

/** One limit a request counts against: its window's scope, size and length. */
interface WindowCount {
  scope: string;
  limited: RateRefusal["limited"];
  limit: number;
  windowMs: number;
}

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

/**
 * Limits counted in this process, for a relayer alone on its store (SQLite): token buckets per IP
 * and key, and a rolling minute per provider. No I/O per request.
 */
export class InProcessRateLimits implements RateLimits {
  private readonly ip: TokenBuckets;
  private readonly key: TokenBuckets;
  private readonly providers = new RateLimiter();

  constructor(limits: Pick<RelayerLimits, "ipRateLimit" | "keyRateLimit">) {
    this.ip = new TokenBuckets(limits.ipRateLimit);
    this.key = new TokenBuckets(limits.keyRateLimit);
  }

  async client(ip: string, key: string | undefined): Promise<RateRefusal | undefined> {
    const ipWait = this.ip.take(ip);
    if (ipWait > 0) return { limited: "address", retryAfterSeconds: ipWait };
    const keyWait = key === undefined ? 0 : this.key.take(key);
    return keyWait > 0 ? { limited: "key", retryAfterSeconds: keyWait } : undefined;
  }

  async provider(providerId: number, perMinute: number): Promise<RateRefusal | undefined> {
    if (this.providers.tryAcquire(providerId, perMinute)) return undefined;
    return { limited: "provider", retryAfterSeconds: seconds(this.providers.retryAfterMs(providerId, perMinute)) };
  }
}

/** How long window counters are kept after their window ends (then pruned). */
const WINDOW_RETENTION_MS = 10 * 60_000;
/** How often an instance prunes ended windows. */
const PRUNE_EVERY_MS = 60_000;

/**
 * Limits counted in the store every instance shares (table `rate_windows`), so that they hold
 * across instances: fixed windows, one upsert per request counting every limit it falls under. A
 * token bucket (`perSecond`, `burst`) becomes a window of `burst / perSecond` seconds holding `burst`
 * requests (the same average rate; at most twice the burst across a window's edge); a provider's
 * limit is its registered count per minute window. Keys are counted by hash, never stored.
 */
export class SharedRateLimits implements RateLimits {
  private readonly repo: Repository;
  private readonly limits: Pick<RelayerLimits, "ipRateLimit" | "keyRateLimit">;
  private lastPrune = 0;

  constructor(repo: Repository, limits: Pick<RelayerLimits, "ipRateLimit" | "keyRateLimit">) {
    this.repo = repo;
    this.limits = limits;
  }

  async client(ip: string, key: string | undefined): Promise<RateRefusal | undefined> {
    const bucket = ({ perSecond, burst }: { perSecond: number; burst: number }) => ({ limit: Math.floor(burst), windowMs: Math.max(1, Math.round((burst / perSecond) * 1000)) });
    const counts: WindowCount[] = [{ scope: `ip:${ip}`, limited: "address", ...bucket(this.limits.ipRateLimit) }];
    if (key !== undefined) counts.push({ scope: `key:${hashApiKey(key)}`, limited: "key", ...bucket(this.limits.keyRateLimit) });
    return this.count(counts);
  }

  provider(providerId: number, perMinute: number): Promise<RateRefusal | undefined> {
    return this.count([{ scope: `provider:${providerId}`, limited: "provider", limit: perMinute, windowMs: 60_000 }]);
  }

  /** Counts one request in each window; the first refusal (by `counts`' order), if any. */
  private async count(counts: WindowCount[], now = Date.now()): Promise<RateRefusal | undefined> {
    if (now - this.lastPrune >= PRUNE_EVERY_MS) {
      this.lastPrune = now;
      await this.repo.sql.run("DELETE FROM rate_windows WHERE window_start < ?", [now - WINDOW_RETENTION_MS]);
    }
    const starts = counts.map(({ windowMs }) => now - (now % windowMs));
    // Every request of the fleet writes these few rows: not durable, so that each holds its row
    // lock for a moment instead of a log flush (a count a crash loses is harmless).
    const { rows } = await this.repo.database.run(
      `INSERT INTO rate_windows (scope, window_start, count) VALUES ${counts.map(() => "(?, ?, 1)").join(", ")}
       ON CONFLICT (scope, window_start) DO UPDATE SET count = rate_windows.count + 1 RETURNING scope, count`,
      counts.flatMap(({ scope }, index) => [scope, starts[index]]),
      { durable: false },
    );
    const seen = new Map(rows.map((row) => [row.scope as string, Number(row.count)]));
    for (const [index, { scope, limited, limit, windowMs }] of counts.entries()) {
      if ((seen.get(scope) ?? 0) > limit) return { limited, retryAfterSeconds: seconds(starts[index] + windowMs - now) };
    }
    return undefined;
  }
}
