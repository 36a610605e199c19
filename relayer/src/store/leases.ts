import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { log } from "../log.ts";
import type { Repository } from "./repository.ts";

/**
 * Leases in the shared store (table `leases`): work that must run once across every relayer
 * instance (the indexer, settlement, payouts, health probes, x402 reconciliation) runs on the
 * instance that holds its lease. A holder renews its lease before each pass; when it dies, another
 * instance takes the lease once it has expired. Times are each instance's wall clock (ms): instances
 * keep their clocks in sync (NTP), and every lease lasts far longer than their skew.
 *
 * A lease coordinates; it is not what keeps money safe. A holder that stalls past its lease may run
 * one more pass beside its successor, so each piece of leased work is safe to run twice: index
 * writes are idempotent, a session is in one settlement at a time (`insertSettlement`), and the
 * escrow and the marketplace refuse to pay anything twice.
 */
export class Leases {
  /** Who holds leases taken here: unique per process, so that a restarted instance is a new holder. */
  readonly holder: string;
  private readonly repo: Repository;

  constructor(repo: Repository, holder = `${hostname()}/${process.pid}/${randomUUID()}`) {
    this.repo = repo;
    this.holder = holder;
  }

  /** Takes lease `name` for `ttlMs`, or renews it: whether this holder holds it now. */
  async acquire(name: string, ttlMs: number, now = Date.now()): Promise<boolean> {
    const { changes } = await this.repo.sql.run(
      `INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
       WHERE leases.owner = excluded.owner OR leases.expires_at < ?`,
      [name, this.holder, now + ttlMs, now],
    );
    return changes > 0;
  }

  /** Gives lease `name` up, if this holder holds it (a successor need not wait for it to expire). */
  async release(name: string): Promise<void> {
    await this.repo.sql.run("DELETE FROM leases WHERE name = ? AND owner = ?", [name, this.holder]);
  }

  /** Who holds lease `name` now, and until when; undefined when nobody does. */
  async current(name: string, now = Date.now()): Promise<{ holder: string; expiresAt: number } | undefined> {
    const row = await this.repo.sql.get("SELECT owner, expires_at FROM leases WHERE name = ? AND expires_at >= ?", [name, now]);
    return row && { holder: row.owner as string, expiresAt: Number(row.expires_at) };
  }
}

/** One lease's name and length, as the work it guards takes it. */
export interface LeaseTerms {
  leases: Leases;
  name: string;
  ttlMs: number;
}

/** How long a lease over a periodic pass lasts: past two missed passes, and never under 10 s. */
export function passLeaseMs(intervalMs: number): number {
  return Math.max(10_000, Math.ceil(2.5 * intervalMs));
}

/**
 * Keeps one lease for as long as this process runs: taken at start (waiting while another holder's
 * lease runs), renewed every third of its length. Each instance holds its gas account's this way, so
 * that two instances never sign with one account (their nonces would collide), and so that the
 * others know when an instance stopped (its lease expired) and take over what it left.
 */
export class LeaseKeeper {
  private readonly terms: LeaseTerms;
  private timer: NodeJS.Timeout | undefined;

  constructor(terms: LeaseTerms) {
    this.terms = terms;
  }

  /**
   * Takes the lease, retrying every second while another process holds it (it may be a stopped
   * instance's, which expires) until `signal` aborts.
   */
  async take(signal: AbortSignal, onWait: (holder: { holder: string; expiresAt: number }) => void): Promise<void> {
    const { leases, name, ttlMs } = this.terms;
    while (!(await leases.acquire(name, ttlMs))) {
      const current = await leases.current(name);
      if (current !== undefined) onWait(current);
      await sleep(1_000, undefined, { signal });
    }
    this.timer = setInterval(() => {
      leases.acquire(name, ttlMs).then(
        (held) => held || log.error({ lease: name }, "lost a lease this instance must hold (the store was unreachable longer than the lease)"),
        (error: unknown) => log.warn({ lease: name, err: error }, "renewing a lease failed (retried)"),
      );
    }, ttlMs / 3);
    this.timer.unref();
  }

  /** Stops renewing and gives the lease up. */
  async release(): Promise<void> {
    clearInterval(this.timer);
    await this.terms.leases.release(this.terms.name).catch(() => undefined);
  }
}

/** The lease each instance holds over its gas account (see {@link LeaseKeeper}). */
export const gasAccountLease = (address: string) => `gas:${address.toLowerCase()}`;

/**
 * Whether the instance whose gas account is `gasAccount` has stopped: its lease expired. Without
 * leases (a unit test's relayer alone), no other instance ever counts as stopped.
 */
export async function instanceStopped(leases: Leases | undefined, gasAccount: string): Promise<boolean> {
  return leases !== undefined && (await leases.current(gasAccountLease(gasAccount))) === undefined;
}
