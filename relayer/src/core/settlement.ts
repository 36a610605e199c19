import type { Hex } from "viem";
import { formatUsdc, type SignedVoucher } from "@agentmesh/sdk";
import type { ContractRevert } from "../chain.ts";
import type { RelayerContext } from "../context.ts";
import { SettlementRejectedError, reconcileOpens, settleNow } from "./sessions.ts";
import type { SessionRecord, SettlementRecord } from "../store/repository.ts";
import { log } from "../log.ts";
import { instanceStopped, passLeaseMs } from "../store/leases.ts";

/** `claimEnd` of a finalized session (ComputeEscrow.FINALIZED). */
const FINALIZED = 1;

/**
 * The escrow's refusals that no retry can overcome, because they follow from the session's state
 * on-chain, which only moves forward: finalized (or never opened), its claim window over, or a
 * voucher at or below what it already settled (then it is settled: success).
 */
const SESSION_STATE_REFUSALS = new Set(["EscrowSessionNotOpen", "EscrowClaimWindowOver", "EscrowVoucherStale"]);

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

/** The lease of the one instance that sends what is due. */
const SETTLEMENT_LEASE = "settlement";

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

/** How a settlement stands against the chain: settled (its hash, when ours mined it), unsettled (why), or in flight. */
export type SettlementResolution = { status: "settled"; hash: Hex | null } | { status: "unsettled"; reason: string } | { status: "pending" };

/**
 * Resolves a pending settlement against the chain, once its transaction is final (see
 * tx-manager.ts): confirmed, it applies. Reverted, or its nonce taken by another transaction, the
 * escrow's state decides: a session whose settled sequence reached the voucher's is settled,
 * whichever transaction did it (and a finalized one is closed); the rest are due again. Still in
 * flight (or the chain unreadable now): pending, resolved on a later pass.
 */
export async function reconcileSettlement(ctx: RelayerContext, settlement: SettlementRecord): Promise<SettlementResolution> {
  if (settlement.status !== "pending") return settlement.status === "confirmed" ? { status: "settled", hash: settlement.txHash } : { status: "unsettled", reason: settlement.error ?? "failed" };
  const tx = settlement.txId === null ? undefined : await ctx.chain.transactions.get(settlement.txId);
  if (tx === undefined || tx.status === "pending" || tx.status === "mined") return { status: "pending" };
  if (tx.status === "confirmed") {
    await ctx.repo.confirmSettlement(settlement.id, tx.minedHash!);
    return { status: "settled", hash: tx.minedHash };
  }
  const settledByChain = await settledByEscrow(ctx, settlement);
  if (settledByChain === undefined) return { status: "pending" };
  const what = tx.status === "reverted" ? `transaction ${tx.minedHash} reverted` : `nonce ${tx.nonce} was used by another transaction`;
  const reason = settledByChain ? `${what}; the escrow shows its vouchers settled` : what;
  await ctx.repo.failSettlement(settlement.id, reason);
  return settledByChain ? { status: "settled", hash: null } : { status: "unsettled", reason };
}

/**
 * Brings `settlement`'s sessions in line with the escrow's state of them (see
 * `Repository.followChain`): whether the escrow settled every voucher the settlement carried
 * (whichever transaction did it); undefined when the escrow could not be read now.
 */
async function settledByEscrow(ctx: RelayerContext, settlement: SettlementRecord): Promise<boolean | undefined> {
  let states;
  try {
    states = await Promise.all(settlement.items.map(async (item) => ({ item, state: await ctx.chain.session(item.sessionId) })));
  } catch {
    return undefined;
  }
  for (const { item, state } of states) {
    const finalized = state.claimEnd === FINALIZED;
    await ctx.repo.followChain({ id: item.sessionId, settled: state.settled, sequence: state.sequence, closeRequested: false, finalized, closeTx: null });
  }
  return states.every(({ item, state }) => state.sequence >= item.sequence);
}

/**
 * Posts agents' signed vouchers to the escrow in batches, by size or age. Every batch is recorded
 * with its transaction before it is broadcast and resolved against the chain (see
 * {@link reconcileSettlement}), and the escrow itself refuses a voucher at or below what a session
 * settled, so neither a crash nor a lost reply can lose a signed voucher or pay one twice. Sending
 * does not wait for confirmation: a batch in flight holds only its own sessions, and a session whose
 * settlement failed backs off in the store (the due query skips it), so no session holds up another.
 *
 * The escrow settles a batch all or nothing. When it refuses one for a voucher (its revert names
 * the session), that voucher leaves the batch and the rest is sent again in the same pass. A voucher
 * refused for its session's state on-chain (finalized, claim window over) is terminal: recorded on
 * the session with the escrow's settled amount, never sent again; one already settled counts as
 * settled. Any other refusal backs that session off, alone.
 */
export class SettlementWorker {
  private readonly ctx: RelayerContext;
  private readonly options: SettlementOptions;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  /** Failures in a row per session, for its backoff (the retry time itself is in the store). */
  private readonly failures = new Map<Hex, number>();

  /** `options` as {@link settlementOptions} checks them. */
  constructor(ctx: RelayerContext, options: SettlementOptions) {
    this.ctx = ctx;
    this.options = options;
  }

  /** Reconciles what a previous run left pending, then polls. */
  async start(): Promise<void> {
    await this.recover();
    await this.reconcile().catch((error: unknown) => log.error({ err: error }, "settlement reconciliation failed"));
    this.stopped = false;
    this.schedule();
  }

  /** Stops polling, waits for a batch in flight, and gives the lease up. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await this.ctx.leases?.release(SETTLEMENT_LEASE).catch(() => undefined);
  }

  /**
   * Settles whatever is due now (also used by tests and the close path): a batch once it is full,
   * once its oldest voucher is `maxAgeMs` old, or at once when one of its sessions serves no more
   * calls (closing, or past its deadline by the chain's clock): its latest voucher is final, and its
   * claim window is running. Returns the hash of the settlement sent, if any.
   */
  async settleDue(force = false): Promise<Hex | undefined> {
    await this.reconcile();
    const hash = await this.sendDue(force);
    if (hash !== undefined) {
      // Often final at once (a fast chain, or a confirmation depth of 1): resolve it in this pass.
      await this.ctx.chain.transactions.poll();
      await this.reconcile();
    }
    return hash;
  }

  /**
   * Resolves every pending settlement of this instance whose transaction is final, and the opens
   * left unresolved; with `adopt`, also those that stopped instances left (see {@link adoptOrphan}).
   */
  async reconcile(adopt = true): Promise<void> {
    for (const settlement of await this.ctx.repo.pendingSettlements()) {
      if (!this.mine(settlement)) {
        if (adopt) await this.adoptOrphan(settlement);
        continue;
      }
      const resolved = await reconcileSettlement(this.ctx, settlement);
      if (resolved.status === "unsettled") for (const { sessionId } of settlement.items) await this.fail(sessionId, new Error(resolved.reason));
    }
    await reconcileOpens(this.ctx);
  }

  private async sendDue(force: boolean): Promise<Hex | undefined> {
    const now = Date.now();
    const due = await this.ctx.repo.sessionsToSettle(this.options.maxBatch, now);
    if (due.length === 0) return undefined;
    const oldest = Math.min(...due.map(({ signedAt }) => signedAt));
    const chainNow = this.ctx.chainIndex.chainTime(now);
    const ending = due.some(({ session }) => session.status === "closing" || session.terms.deadline < chainNow);
    if (!force && !ending && due.length < this.options.maxBatch && now - oldest < this.options.maxAgeMs) return undefined;
    let batch = due.map(({ session }) => session);
    while (batch.length > 0) {
      try {
        const hash = await this.settle(batch);
        for (const session of batch) this.failures.delete(session.id);
        return hash;
      } catch (error) {
        const refused = refusedSession(error, batch);
        if (refused === undefined) return this.settleOneByOne(batch, error);
        await this.refused(refused.session, refused.revert, error);
        batch = batch.filter((session) => session !== refused.session); // the rest goes again, now
      }
    }
    return undefined;
  }

  /** After a failure that names no session (a revert on-chain, a transport error): one by one. */
  private async settleOneByOne(sessions: SessionRecord[], error: unknown): Promise<Hex | undefined> {
    if (sessions.length === 1) {
      await this.fail(sessions[0].id, error);
      return undefined;
    }
    let last: Hex | undefined;
    for (const session of sessions) {
      try {
        last = await this.settle([session]);
        this.failures.delete(session.id);
      } catch (singleError) {
        const refused = refusedSession(singleError, [session]);
        if (refused === undefined) await this.fail(session.id, singleError);
        else await this.refused(session, refused.revert, singleError);
      }
    }
    return last;
  }

  /**
   * The escrow refused `session`'s voucher with `revert`. A refusal for the session's state on-chain
   * is checked against that state (one read) and recorded: settled, or terminal with why. Anything
   * else backs the session off.
   */
  private async refused(session: SessionRecord, revert: ContractRevert, error: unknown): Promise<void> {
    if (!SESSION_STATE_REFUSALS.has(revert.errorName)) {
      await this.fail(session.id, error);
      return;
    }
    let state: Awaited<ReturnType<RelayerContext["chain"]["session"]>>;
    try {
      state = await this.ctx.chain.session(session.id);
    } catch (readError) {
      await this.fail(session.id, readError);
      return;
    }
    const finalized = state.claimEnd === FINALIZED;
    let why = `the escrow settled it up to sequence ${state.sequence}`;
    if (finalized) why = `the session was finalized on-chain with ${formatUsdc(state.settled)} USDC settled (sequence ${state.sequence})`;
    else if (state.claimEnd === 0) why = `the escrow has no session ${session.id}`;
    else if (revert.errorName === "EscrowClaimWindowOver") why = `its claim window ended at ${new Date(state.claimEnd * 1000).toISOString()}`;
    const reason = `${revert.errorName}: ${why}`;
    await this.ctx.repo.followChain({ id: session.id, settled: state.settled, sequence: state.sequence, closeRequested: false, finalized, closeTx: null }, reason);
    this.failures.delete(session.id);
    const after = (await this.ctx.repo.getSession(session.id))!;
    if (after.signedSequence <= after.settledSequence) return; // already settled on-chain: nothing is lost
    if (!finalized) await this.ctx.repo.markUnsettled(session.id, reason);
    this.ctx.stats.recordSettlements("unsettleable", 1);
    log.error({ sessionId: session.id, fromSequence: after.settledSequence + 1, toSequence: after.signedSequence, reason }, "vouchers can never settle");
  }

  private async settle(sessions: SessionRecord[]): Promise<Hex> {
    const vouchers: SignedVoucher[] = [];
    for (const session of sessions) {
      const record = (await this.ctx.repo.receiptAt(session.id, session.signedSequence))!;
      vouchers.push({ voucher: { terms: session.terms, ...record.state }, agentSignature: record.agentSignature!, providerSignature: record.providerSignature });
    }
    const items = sessions.map((session) => ({ sessionId: session.id, sequence: session.signedSequence }));
    return settleNow(this.ctx, "settle", vouchers, items).then((hash) => {
      this.ctx.stats.recordSettlements("settled", sessions.length);
      return hash;
    });
  }

  /** Backs session `id` off, alone, in the store: the due query skips it until its retry time. */
  private async fail(id: Hex, error: unknown): Promise<void> {
    const failures = (this.failures.get(id) ?? 0) + 1;
    this.failures.set(id, failures);
    const delay = this.options.retryBaseMs * 2 ** Math.min(failures - 1, 6);
    await this.ctx.repo.deferSettlement(id, Date.now() + delay);
    this.ctx.stats.recordSettlements("retried", 1);
    log.warn({ sessionId: id, retryInMs: delay, err: error }, "settlement of session failed; retried");
  }

  /**
   * Settlements a previous run left without a managed transaction: it stopped before sending them
   * (or an earlier version sent them, unmanaged). They are failed, so their vouchers are due again:
   * one already settled on-chain is refused as stale, which counts as settled.
   */
  private async recover(): Promise<void> {
    for (const settlement of await this.ctx.repo.pendingSettlements()) {
      if (settlement.txId === null && this.mine(settlement)) await this.ctx.repo.failSettlement(settlement.id, settlement.txHash === null ? "never sent (relayer stopped before sending)" : "sent unmanaged by an earlier relayer; re-posted");
    }
  }

  /** Whether this instance sends `settlement` (or it predates instances sharing a store). */
  private mine(settlement: SettlementRecord): boolean {
    return settlement.owner === null || settlement.owner === this.ctx.chain.account.address.toLowerCase();
  }

  /**
   * Resolves `settlement`, which another instance sent, once that instance has stopped (its gas
   * account's lease expired), by the escrow's state alone: a session whose settled sequence reached
   * the voucher's is settled (whichever transaction did it); the others are due again and this
   * instance settles them. The stopped instance's transaction may still mine after that: the escrow
   * then refuses the second settlement of those vouchers as stale, and nothing is paid twice.
   */
  private async adoptOrphan(settlement: SettlementRecord): Promise<void> {
    if (!(await instanceStopped(this.ctx.leases, settlement.owner!))) return;
    const settled = await settledByEscrow(this.ctx, settlement);
    if (settled === undefined) return; // the escrow could not be read: next pass
    if (settled) await this.ctx.repo.confirmSettlement(settlement.id);
    else await this.ctx.repo.failSettlement(settlement.id, `its instance (gas account ${settlement.owner}) stopped before it was resolved; the vouchers are due again`);
    log.warn({ settlementId: settlement.id, owner: settlement.owner, settled }, "took over a settlement a stopped instance left");
  }

  /**
   * One scheduled pass. Several instances on one store: the holder of the "settlement" lease sends
   * what is due and adopts what stopped instances left; every other one resolves its own.
   */
  private async tick(): Promise<void> {
    const { leases } = this.ctx;
    if (leases === undefined || (await leases.acquire(SETTLEMENT_LEASE, passLeaseMs(this.options.pollMs)))) await this.settleDue();
    else await this.reconcile(false);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick()
        .then(() => undefined)
        .catch((error: unknown) => log.error({ err: error }, "settlement pass failed"))
        .finally(() => this.schedule());
    }, this.options.pollMs);
    this.timer.unref();
  }
}

/** The session of `batch` whose voucher the escrow refused, as its revert names it (its first argument). */
function refusedSession(error: unknown, batch: SessionRecord[]): { session: SessionRecord; revert: ContractRevert } | undefined {
  if (!(error instanceof SettlementRejectedError) || error.revert === undefined) return undefined;
  const named = error.revert.args[0];
  if (typeof named !== "string") return undefined;
  const session = batch.find((candidate) => candidate.id.toLowerCase() === named.toLowerCase());
  return session === undefined ? undefined : { session, revert: error.revert };
}
