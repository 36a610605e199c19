import { log } from "./log.ts";
import type { LeaseTerms } from "./store/leases.ts";

/**
 * A background job's passes: one every `intervalMs` once started, and one whenever `run()` is
 * called. Passes never overlap: `run()` starts one after any under way (two overlapping passes could
 * write an older state last). A tick that finds a pass under way or queued is skipped, so slow passes
 * never pile up. A tick's failure is logged, and the next tick runs as planned.
 *
 * With a lease, a tick runs its pass only on the instance that holds (or takes, or renews) the
 * lease: the pass runs once across every instance sharing the store. `run()` runs one regardless.
 */
export class PeriodicPass<T> {
  private readonly name: string;
  private readonly intervalMs: number;
  private readonly pass: () => Promise<T>;
  private readonly lease: LeaseTerms | undefined;
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** Passes under way or queued. */
  private pending = 0;

  constructor(name: string, intervalMs: number, pass: () => Promise<T>, lease?: LeaseTerms) {
    this.name = name;
    this.intervalMs = intervalMs;
    this.pass = pass;
    this.lease = lease;
  }

  start(): void {
    this.timer = setInterval(() => {
      if (this.pending === 0) this.tick().catch((error: unknown) => log.error({ pass: this.name, err: error }, "periodic pass failed"));
    }, this.intervalMs);
    this.timer.unref(); // never what keeps the process alive
  }

  private async tick(): Promise<void> {
    const { lease } = this;
    if (lease !== undefined && !(await lease.leases.acquire(lease.name, lease.ttlMs))) return;
    await this.run();
  }

  /** Runs a pass after any under way; resolves with its result. */
  run(): Promise<T> {
    this.pending++;
    const pass = this.queue
      .catch(() => undefined)
      .then(() => this.pass())
      .finally(() => this.pending--);
    this.queue = pass;
    return pass;
  }

  /** Stops the ticks, waits for the passes under way, and gives the lease up. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.queue.catch(() => undefined);
    if (this.lease !== undefined) await this.lease.leases.release(this.lease.name).catch(() => undefined);
  }
}
