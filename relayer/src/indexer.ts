import pMap from "p-map";
import type { Address, Hex } from "viem";
import { contractRevert, type ChainGateway } from "./chain.ts";
import { PeriodicPass } from "./periodic.ts";
import { passLeaseMs, type Leases } from "./store/leases.ts";

/** The lease of the one instance that indexes. */
const INDEXER_LEASE = "indexer";
import type { ChainIndex, IndexedBudget, IndexedSession } from "./store/chain-index.ts";
import type { Repository } from "./store/repository.ts";
import { log } from "./log.ts";

export interface IndexerOptions {
  /** First block to read (the deployment's start block). */
  startBlock: number;
  /** Blocks a log must be buried under before it is applied (fewer reorgs to undo). */
  confirmations: number;
  /**
   * How often to look at the head. A look that finds no new block costs one RPC; keep it below the
   * chain's block time, so that a change is applied within one block of reaching `confirmations`.
   */
  pollMs: number;
  /** Most blocks per getLogs request; the range halves when the RPC refuses one as too large. */
  maxRange: number;
  /** Deepest reorg followed: how many indexed ranges' last-block hashes are kept (default 128). */
  maxReorgDepth: number;
  /** Most state reads (eth_call) in flight at once (default 4). */
  readConcurrency: number;
  /** Longest wait between two passes after failures (default 30 s); the wait doubles per failure. */
  maxBackoffMs: number;
  /**
   * The fleet's leases: one instance indexes (the holder of lease "indexer"); the others follow
   * what it writes, and take over once its lease expires. None: this instance indexes.
   */
  leases?: Leases;
}

export const DEFAULT_INDEXER: Omit<IndexerOptions, "startBlock" | "confirmations" | "pollMs"> = {
  maxRange: 5_000,
  maxReorgDepth: 128,
  readConcurrency: 4,
  maxBackoffMs: 30_000,
};

/** A session whose on-chain state an indexed range changed, as it stands after the range. */
export interface ChainSessionChange {
  session: IndexedSession;
  /** The transaction that finalized it, when the range did. */
  finalizedTx: Hex | null;
  /** Whether a reorg rolled it back to an earlier state (a close request may be gone). */
  rolledBack: boolean;
}

/** Called inside the transaction that applies a range, with every session the range touched. */
export type SessionChangeListener = (changes: ChainSessionChange[], repo: Repository) => Promise<void>;

/** Runs `work` in one store transaction, with the repository bound to it. */
export type StoreTransaction = (work: (repo: Repository) => Promise<void>) => Promise<void>;

/** How far the indexer has come, for readiness. */
export interface IndexerStatus {
  /** Whether a pass has reached the head it saw (the index was current at least once since start). */
  synced: boolean;
  /** The last block applied, and the latest head seen less the confirmations (undefined before). */
  lastBlock: number | undefined;
  target: number | undefined;
  /** Why the last pass failed (the RPC unreachable, say), or undefined when it succeeded. */
  lastError: Error | undefined;
  /** The current getLogs range (halved on "range too large", doubled back on success). */
  range: number;
}

/** Thrown when the chain reorganized deeper than the hashes the indexer keeps: it cannot follow. */
export class ReorgTooDeepError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReorgTooDeepError";
  }
}

/**
 * Whether `error` is an RPC's refusal of a getLogs range as too large (too many blocks or results,
 * a response too big): the usual wordings of node clients and hosted RPCs, and EIP-1474's -32005.
 */
export function isRangeTooLargeError(error: unknown): boolean {
  for (let cause = error as { code?: unknown; message?: unknown; details?: unknown; cause?: unknown } | undefined; cause; cause = cause.cause as typeof cause) {
    if (cause.code === -32005) return true;
    const text = `${String(cause.message ?? "")} ${String(cause.details ?? "")}`;
    if (/block range|range (is )?too (large|wide|big)|too many (blocks|results|logs)|more than \d+ (results|logs)|exceed(s|ed)? .*(range|limit|results)|response size|limit exceeded/i.test(text)) return true;
  }
  return false;
}

/**
 * Follows the registry's and the escrow's events, `confirmations` blocks behind the head, and keeps
 * the chain index current: every provider (with its models, active flag and receipt signer), budget
 * (with its expiry) and session (settled, close requested, finalized), whoever opened them. Each
 * event names what changed; the indexer then reads that object's state at the block it indexed up
 * to, so a missed or reordered detail cannot leave a stale row. A pass is applied in one transaction
 * together with the block it reached and that block's hash, so a restart resumes exactly where it
 * stopped. Every pass also records the head's timestamp: the chain's clock, which serving reads.
 *
 * Several instances on one store: the one holding the "indexer" lease indexes, and records the
 * head it saw; each other instance's pass only reads that head and the last block applied (the
 * chain's clock, and its readiness). When the indexer dies, another takes the lease once it expires.
 *
 * Reorgs: before going on, a pass checks that the last block it applied is still on the chain (by
 * hash). When it is not, it finds the latest recorded block that is (the common ancestor, at most
 * `maxReorgDepth` ranges back), rolls every row written after it back to its state there, and
 * indexes the new chain from it. getLogs ranges adapt to the RPC's limits; state reads are bounded
 * to `readConcurrency` at once. After a failed pass the next waits, doubling up to `maxBackoffMs`.
 */
export class ChainIndexer {
  private readonly chain: ChainGateway;
  private readonly index: ChainIndex;
  private readonly transaction: StoreTransaction;
  private readonly options: IndexerOptions;
  private readonly onSessions: SessionChangeListener | undefined;
  private readonly passes: PeriodicPass<void>;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private failures = 0;
  private retryAt = 0;
  private range: number;
  private synced = false;
  private lastError: Error | undefined;
  private markSynced!: () => void;
  /** Resolves once a pass has reached the head (see {@link whenSynced}). */
  private readonly syncedOnce = new Promise<void>((resolve) => (this.markSynced = resolve));
  /** The last block this indexer applied (read from the index at the start of each pass). */
  private indexedBlock: number | undefined;
  /** The head whose ancestry was last checked against the recorded hashes. */
  private verifiedHead: Hex | undefined;

  /**
   * `onSessions` sees, in the same transaction, every session a pass changed (or a reorg rolled
   * back): the relayer marks its own session records closing or closed from it.
   */
  constructor(
    chain: ChainGateway,
    index: ChainIndex,
    transaction: StoreTransaction,
    options: Pick<IndexerOptions, "startBlock" | "confirmations" | "pollMs"> & Partial<IndexerOptions>,
    onSessions?: SessionChangeListener,
  ) {
    this.chain = chain;
    this.index = index;
    this.transaction = transaction;
    this.options = { ...DEFAULT_INDEXER, ...options };
    this.range = this.options.maxRange;
    this.onSessions = onSessions;
    this.passes = new PeriodicPass("indexer pass", this.options.pollMs, () => this.pass());
  }

  /** Looks at the head every `pollMs`, or later after failures (backoff). */
  start(): void {
    this.timer = setInterval(() => {
      if (this.ticking || Date.now() < this.retryAt) return;
      this.ticking = true;
      this.passes
        .run()
        .catch(() => undefined) // logged by the pass
        .finally(() => (this.ticking = false));
    }, this.options.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.passes.stop();
    await this.options.leases?.release(INDEXER_LEASE).catch(() => undefined);
  }

  /** Indexes every confirmed block not indexed yet, after any pass under way (also used by tests). */
  catchUp(): Promise<void> {
    return this.passes.run();
  }

  /** Resolves once a pass has reached the head it saw: the index was current (passes retry until then). */
  whenSynced(): Promise<void> {
    return this.syncedOnce;
  }

  status(): IndexerStatus {
    const head = this.index.headBlock();
    return {
      synced: this.synced,
      lastBlock: this.indexedBlock,
      target: head === undefined ? undefined : head - this.options.confirmations,
      lastError: this.lastError,
      range: this.range,
    };
  }

  private async pass(): Promise<void> {
    try {
      const { leases } = this.options;
      if (leases !== undefined && !(await leases.acquire(INDEXER_LEASE, passLeaseMs(this.options.pollMs)))) {
        this.indexedBlock = await this.index.followHead();
        if (this.indexedBlock === undefined) throw new Error("the indexing instance has not indexed a block yet");
      } else {
        await this.follow();
        await this.index.saveHead(this.options.startBlock);
      }
      this.failures = 0;
      this.retryAt = 0;
      this.lastError = undefined;
      this.synced = true;
      this.markSynced();
    } catch (error) {
      this.failures++;
      const delay = Math.min(this.options.maxBackoffMs, this.options.pollMs * 2 ** Math.min(this.failures, 16));
      this.retryAt = Date.now() + delay;
      this.lastError = error instanceof Error ? error : new Error(String(error));
      log.warn({ retryInMs: delay, err: this.lastError }, "indexer pass failed");
      throw error;
    }
  }

  private async follow(): Promise<void> {
    // The head's timestamp is the chain's clock, which serving reads (deadlines, budget expiry).
    const latest = await this.chain.publicClient.getBlock({ blockTag: "latest" });
    this.index.observeHead(Number(latest.number), Number(latest.timestamp));
    if (latest.hash !== this.verifiedHead) {
      await this.followReorg({ number: Number(latest.number), hash: latest.hash });
      this.index.observeHead(Number(latest.number), Number(latest.timestamp)); // again, after a rollback
      this.verifiedHead = latest.hash;
    }
    const head = Number(latest.number) - this.options.confirmations;
    this.indexedBlock = await this.index.lastBlock();
    let from = (this.indexedBlock ?? this.options.startBlock - 1) + 1;
    while (from <= head) {
      const to = Math.min(head, from + this.range - 1);
      const toHash = to === Number(latest.number) ? latest.hash : (await this.chain.publicClient.getBlock({ blockNumber: BigInt(to) })).hash;
      let events: Awaited<ReturnType<ChainGateway["events"]>>;
      try {
        events = await this.chain.events(BigInt(from), BigInt(to));
      } catch (error) {
        if (!isRangeTooLargeError(error) || to === from) throw error;
        this.range = Math.max(1, Math.floor((to - from + 1) / 2));
        continue;
      }
      this.range = Math.min(this.options.maxRange, this.range * 2);
      await this.indexRange(from, to, toHash, events);
      this.indexedBlock = to;
      from = to + 1;
    }
  }

  /** The hash of block `number` on the chain now, or undefined when the chain is shorter. */
  private async hashAt(number: number, latest: { number: number; hash: Hex }): Promise<Hex | undefined> {
    if (number === latest.number) return latest.hash;
    if (number > latest.number) return undefined;
    return (await this.chain.publicClient.getBlock({ blockNumber: BigInt(number) })).hash;
  }

  /**
   * Checks that the last indexed block is still on the chain; when it is not (a reorg), rolls the
   * index back to the latest recorded block that is.
   */
  private async followReorg(latest: { number: number; hash: Hex }): Promise<void> {
    const last = await this.index.lastBlock();
    if (last === undefined) return;
    const recorded = await this.index.blockHashes(this.options.maxReorgDepth);
    if (recorded[0]?.number !== last) {
      // Indexed before hashes were recorded: the chain as it is now is the reference.
      const hash = await this.hashAt(last, latest);
      if (hash !== undefined) await this.index.putBlockHash(last, hash);
      return;
    }
    if ((await this.hashAt(last, latest)) === recorded[0].hash) return;
    for (const { number, hash } of recorded.slice(1)) {
      if ((await this.hashAt(number, latest)) !== hash) continue;
      log.warn({ lostBlock: last, rollbackTo: number }, "chain reorganized: the index rolls back and follows the new chain");
      await this.rollBack(number);
      return;
    }
    throw new ReorgTooDeepError(
      `chain reorganized deeper than the ${recorded.length} indexed blocks whose hashes are kept (back to block ${recorded.at(-1)?.number}): ` +
        "the index cannot follow; rebuild it (delete the indexer's tables) or raise maxReorgDepth",
    );
  }

  /** Rolls every row written after `ancestor` back to its state at `ancestor`, read from the chain. */
  private async rollBack(ancestor: number): Promise<void> {
    const at = BigInt(ancestor);
    const changed = await this.index.changedAfter(ancestor);
    /** `read`'s result, or undefined when the contract reverts (the object did not exist yet). */
    const unlessUnknown = <T>(read: Promise<T>) => read.catch((error: unknown) => {
      if (contractRevert(error) !== undefined) return undefined;
      throw error;
    });
    const providers = await pMap(changed.providers, async (id) => ({ id, provider: await unlessUnknown(this.chain.provider(id, at)) }), {
      concurrency: this.options.readConcurrency,
    });
    const budgets = await pMap(
      changed.budgets,
      async (id) => {
        const budget = await unlessUnknown(this.chain.budget(id, at));
        return { id, budget: budget && ({ id, creator: budget.creator, available: budget.available, perSessionLimit: budget.perSessionLimit, expiry: budget.expiry } satisfies IndexedBudget) };
      },
      { concurrency: this.options.readConcurrency },
    );
    const sessions = await pMap(changed.sessions, async (id) => ({ id, state: await this.chain.session(id, at) }), { concurrency: this.options.readConcurrency });
    await this.transaction(async (repo) => {
      const index = this.index.on(repo.sql);
      await index.rollBack(ancestor, { providers, budgets, sessions });
      const changes: ChainSessionChange[] = [];
      for (const { id } of sessions) {
        const session = await index.session(id);
        if (session !== undefined) changes.push({ session, finalizedTx: null, rolledBack: true });
      }
      if (this.onSessions !== undefined && changes.length > 0) await this.onSessions(changes, repo);
    });
    this.indexedBlock = ancestor;
  }

  /** Applies `events`, the logs of [from, to], with every object they name read at `to` (hash `toHash`). */
  private async indexRange(from: number, to: number, toHash: Hex, events: Awaited<ReturnType<ChainGateway["events"]>>): Promise<void> {
    const at = BigInt(to);
    // A log of block `to` from another chain than the header read: the chain moved under this pass.
    const moved = events.find((event) => Number(event.blockNumber) === to && event.blockHash !== toHash);
    if (moved !== undefined) throw new Error(`block ${to} changed while it was indexed (reorg under way); the next pass follows the new chain`);
    const providers = new Set<number>();
    const budgets = new Set<number>();
    const sessions = new Set<Hex>();
    const opened: { id: Hex; budgetId: number; agent: Hex; providerId: number; maxSpend: bigint }[] = [];
    const closeRequests = new Map<Hex, { by: Address; block: number }>();
    const finalizedBy = new Map<Hex, Hex>();
    for (const event of events) {
      const args = event.args as Record<string, unknown>;
      if (typeof args.providerId === "bigint" && event.address.toLowerCase() === this.chain.registry.toLowerCase()) {
        providers.add(Number(args.providerId));
      }
      if (typeof args.budgetId === "bigint") budgets.add(Number(args.budgetId));
      if (typeof args.sessionId === "string") sessions.add(args.sessionId as Hex);
      if (event.eventName === "SessionOpened") {
        const { sessionId, budgetId, agent, terms } = event.args;
        opened.push({ id: sessionId, budgetId: Number(budgetId), agent, providerId: terms.providerId, maxSpend: terms.maxSpend });
      }
      if (event.eventName === "CloseRequested") closeRequests.set(event.args.sessionId, { by: event.args.by, block: Number(event.blockNumber) });
      if (event.eventName === "SessionFinalized") {
        finalizedBy.set(event.args.sessionId, event.transactionHash);
        // The unused lock went back to the session's budget.
        const { sessionId } = event.args;
        const budgetId = opened.find((session) => session.id === sessionId)?.budgetId ?? (await this.index.budgetOfSession(sessionId));
        if (budgetId !== undefined) budgets.add(budgetId);
      }
    }
    // A bounded number of reads in flight: a range naming thousands of sessions must not open
    // thousands of requests to the RPC at once.
    const concurrency = this.options.readConcurrency;
    const providerStates = await pMap(providers, (id) => this.chain.provider(id, at), { concurrency });
    const budgetStates = await pMap(budgets, async (id) => ({ id, budget: await this.chain.budget(id, at) }), { concurrency });
    const sessionStates = await pMap(sessions, async (id) => ({ id, state: await this.chain.session(id, at) }), { concurrency });
    await this.transaction(async (repo) => {
      const index = this.index.on(repo.sql);
      for (const provider of providerStates) await index.putProvider(provider, to);
      for (const { id, budget } of budgetStates) {
        await index.putBudget({ id, creator: budget.creator, available: budget.available, perSessionLimit: budget.perSessionLimit, expiry: budget.expiry }, to);
      }
      for (const session of opened) await index.openSession({ ...session, claimEnd: 0 }, to);
      for (const { id, state } of sessionStates) {
        await index.settleSession(id, state.sequence, state.settled, to);
        if (state.claimEnd === 1) await index.finalizeSession(id, state.settled, to);
        else await index.setClaimEnd(id, state.claimEnd, to);
        const request = closeRequests.get(id);
        if (request !== undefined) await index.requestClose(id, request.by, to, request.block);
      }
      if (this.onSessions !== undefined && sessionStates.length > 0) {
        const changes: ChainSessionChange[] = [];
        for (const { id } of sessionStates) {
          const session = await index.session(id);
          if (session !== undefined) changes.push({ session, finalizedTx: finalizedBy.get(id) ?? null, rolledBack: false });
        }
        await this.onSessions(changes, repo);
      }
      await index.setLastBlock(to);
      await index.putBlockHash(to, toHash);
      await index.pruneBlockHashes(this.options.maxReorgDepth);
    });
  }
}
