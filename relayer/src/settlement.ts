import type { Hex } from "viem";
import type { SignedVoucher } from "@agentmesh/sdk";
import type { RelayerContext } from "./context.ts";
import { settleNow } from "./sessions.ts";
import type { SessionRecord } from "./store/repository.ts";

export interface SettlementOptions {
  /** Settle as soon as this many sessions have newer signed vouchers (1 to the escrow's MAX_BATCH). */
  maxBatch: number;
  /** ...or when the oldest unsettled signed voucher is this old. */
  maxAgeMs: number;
  /** How often to look. */
  pollMs: number;
  /** First retry delay after a failure; doubles per failure up to 64×. */
  retryBaseMs: number;
}

export const DEFAULT_SETTLEMENT: SettlementOptions = { maxBatch: 100, maxAgeMs: 30_000, pollMs: 1_000, retryBaseMs: 2_000 };

/** Thrown when settlement options cannot work with the escrow. */
export class SettlementOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SettlementOptionsError";
  }
}

/**
 * `options` over the defaults, with the batch size checked against the escrow's `MAX_BATCH`: the
 * escrow refuses any larger batch, so every settlement of a bigger one would revert.
 *
 * @example
 * const options = settlementOptions({ maxBatch: 50 }, await chain.maxBatch());
 *
 * @throws {SettlementOptionsError} naming the bad value and the bound.
 */
export function settlementOptions(options: Partial<SettlementOptions>, escrowMaxBatch: number): SettlementOptions {
  const resolved = { ...DEFAULT_SETTLEMENT, ...options };
  if (!Number.isInteger(resolved.maxBatch) || resolved.maxBatch < 1 || resolved.maxBatch > escrowMaxBatch) {
    throw new SettlementOptionsError(
      `the settlement batch size (--settle-batch) must be an integer from 1 to ${escrowMaxBatch}, the escrow's MAX_BATCH, got ${resolved.maxBatch}`,
    );
  }
  return resolved;
}

/**
 * Posts agents' signed vouchers to the escrow in batches, by size or age. Every batch is recorded
 * before it is sent and reconciled after a restart, and the escrow itself refuses a voucher at or
 * below what a session settled, so a crash can neither lose a signed voucher nor pay one twice.
 */
export class SettlementWorker {
  private readonly ctx: RelayerContext;
  private readonly options: SettlementOptions;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  /** Sessions whose last settlement failed: not retried before the time given. */
  private readonly backoff = new Map<Hex, { failures: number; retryAt: number }>();

  /** `options` as {@link settlementOptions} checks them. */
  constructor(ctx: RelayerContext, options: SettlementOptions) {
    this.ctx = ctx;
    this.options = options;
  }

  /** Reconciles what a previous run left pending, then polls. */
  async start(): Promise<void> {
    await this.recover();
    this.stopped = false;
    this.schedule();
  }

  /** Stops polling and waits for a batch in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Settles whatever is due now (also used by tests and the close path). */
  async settleDue(force = false): Promise<Hex | undefined> {
    const now = Date.now();
    const due = this.ctx.repo
      .sessionsToSettle(this.options.maxBatch * 2)
      .filter(({ session }) => (this.backoff.get(session.id)?.retryAt ?? 0) <= now)
      .slice(0, this.options.maxBatch);
    if (due.length === 0) return undefined;
    const oldest = due[0].signedAt;
    if (!force && due.length < this.options.maxBatch && now - oldest < this.options.maxAgeMs) return undefined;
    const sessions = due.map(({ session }) => session);
    try {
      const hash = await this.settle(sessions);
      for (const session of sessions) this.backoff.delete(session.id);
      return hash;
    } catch (error) {
      if (sessions.length === 1) {
        this.fail(sessions[0], error);
        return undefined;
      }
      // Isolate what the escrow refuses: settle one by one; the good ones still go through.
      let last: Hex | undefined;
      for (const session of sessions) {
        try {
          last = await this.settle([session]);
          this.backoff.delete(session.id);
        } catch (singleError) {
          this.fail(session, singleError);
        }
      }
      return last;
    }
  }

  private settle(sessions: SessionRecord[]): Promise<Hex> {
    const vouchers: SignedVoucher[] = sessions.map((session) => {
      const record = this.ctx.repo.receiptAt(session.id, session.signedSequence)!;
      return {
        voucher: { terms: session.terms, ...record.state },
        agentSignature: record.agentSignature!,
        providerSignature: record.providerSignature,
      };
    });
    const items = sessions.map((session) => ({ sessionId: session.id, sequence: session.signedSequence }));
    return settleNow(this.ctx, "settle", vouchers, items);
  }

  private fail(session: SessionRecord, error: unknown): void {
    const failures = (this.backoff.get(session.id)?.failures ?? 0) + 1;
    const delay = this.options.retryBaseMs * 2 ** Math.min(failures - 1, 6);
    this.backoff.set(session.id, { failures, retryAt: Date.now() + delay });
    console.error(`settlement of session ${session.id} failed (retry in ${delay} ms): ${(error as Error).message}`);
  }

  /** Settlements left pending by a crash: confirmed if mined, failed (and so retried) if not. */
  private async recover(): Promise<void> {
    for (const settlement of this.ctx.repo.pendingSettlements()) {
      if (settlement.txHash === null) {
        this.ctx.repo.failSettlement(settlement.id, "never sent (relayer stopped before sending)");
        continue;
      }
      let status = await this.ctx.chain.statusOf(settlement.txHash);
      if (status === "unknown") {
        status = await this.ctx.chain.waitFor(settlement.txHash, 15_000).then(
          (ok) => (ok ? "success" : "reverted"),
          () => "unknown" as const,
        );
      }
      if (status === "success") this.ctx.repo.confirmSettlement(settlement.id);
      else this.ctx.repo.failSettlement(settlement.id, status === "reverted" ? "reverted" : "not mined; vouchers will be re-posted");
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.settleDue()
        .then(() => undefined)
        .catch((error: unknown) => console.error(`settlement pass failed: ${(error as Error).message}`))
        .finally(() => this.schedule());
    }, this.options.pollMs);
    this.timer.unref();
  }
}
