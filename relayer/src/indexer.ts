import type { Address, Hex } from "viem";
import type { ChainGateway } from "./chain.ts";
import { PeriodicPass } from "./periodic.ts";
import type { ChainIndex, IndexedSession } from "./store/chain-index.ts";

export interface IndexerOptions {
  /** First block to read (the deployment's start block). */
  startBlock: number;
  /** Blocks a log must be buried under before it is applied (reorg safety). */
  confirmations: number;
  /**
   * How often to look at the head. A look that finds no new block costs one RPC; keep it below the
   * chain's block time, so that a change is applied within one block of reaching `confirmations`.
   */
  pollMs: number;
  /** Most blocks per getLogs request. */
  maxRange: number;
}

/** A session whose on-chain state an indexed range changed, as it stands after the range. */
export interface ChainSessionChange {
  session: IndexedSession;
  /** The transaction that finalized it, when the range did. */
  finalizedTx: Hex | null;
}

/** Called inside the transaction that applies a range, with every session the range touched. */
export type SessionChangeListener = (changes: ChainSessionChange[]) => void;

/**
 * Follows the registry's and the escrow's events, `confirmations` blocks behind the head, and keeps
 * the chain index current: every provider (with its models, active flag and receipt signer), budget
 * (with its expiry) and session (settled, close requested, finalized), whoever opened them. Each
 * event names what changed; the indexer then reads that object's state at the block it indexed up
 * to, so a missed or reordered detail cannot leave a stale row. A pass is applied in one transaction
 * together with the block it reached, so a restart resumes exactly where it stopped. Every pass also
 * records the head's timestamp: the chain's clock, which serving reads.
 */
export class ChainIndexer {
  private readonly chain: ChainGateway;
  private readonly index: ChainIndex;
  private readonly transaction: <T>(work: () => T) => T;
  private readonly options: IndexerOptions;
  private readonly onSessions: SessionChangeListener | undefined;
  private readonly passes: PeriodicPass<void>;

  /**
   * `onSessions` sees, in the same transaction, every session a pass changed: the relayer marks its
   * own session records closing or closed from it.
   */
  constructor(
    chain: ChainGateway,
    index: ChainIndex,
    transaction: <T>(work: () => T) => T,
    options: IndexerOptions,
    onSessions?: SessionChangeListener,
  ) {
    this.chain = chain;
    this.index = index;
    this.transaction = transaction;
    this.options = options;
    this.onSessions = onSessions;
    this.passes = new PeriodicPass("indexer pass", options.pollMs, () => this.pass());
  }

  start(): void {
    this.passes.start();
  }

  stop(): Promise<void> {
    return this.passes.stop();
  }

  /** Indexes every confirmed block not indexed yet, after any pass under way (also used by tests). */
  catchUp(): Promise<void> {
    return this.passes.run();
  }

  private async pass(): Promise<void> {
    // The head's timestamp is the chain's clock, which serving reads (deadlines, budget expiry).
    const latest = await this.chain.publicClient.getBlock({ blockTag: "latest" });
    this.index.observeHead(Number(latest.number), Number(latest.timestamp));
    const head = Number(latest.number) - this.options.confirmations;
    let from = (this.index.lastBlock() ?? this.options.startBlock - 1) + 1;
    while (from <= head) {
      const to = Math.min(head, from + this.options.maxRange - 1);
      await this.indexRange(from, to);
      from = to + 1;
    }
  }

  private async indexRange(from: number, to: number): Promise<void> {
    const at = BigInt(to);
    const providers = new Set<number>();
    const budgets = new Set<number>();
    const sessions = new Set<Hex>();
    const opened: { id: Hex; budgetId: number; agent: Hex; providerId: number; maxSpend: bigint }[] = [];
    const closeRequests = new Map<Hex, Address>();
    const finalizedBy = new Map<Hex, Hex>();
    for (const event of await this.chain.events(BigInt(from), at)) {
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
      if (event.eventName === "CloseRequested") closeRequests.set(event.args.sessionId, event.args.by);
      if (event.eventName === "SessionFinalized") {
        finalizedBy.set(event.args.sessionId, event.transactionHash);
        // The unused lock went back to the session's budget.
        const { sessionId } = event.args;
        const budgetId = opened.find((session) => session.id === sessionId)?.budgetId ?? this.index.budgetOfSession(sessionId);
        if (budgetId !== undefined) budgets.add(budgetId);
      }
    }
    const [providerStates, budgetStates, sessionStates] = await Promise.all([
      Promise.all([...providers].map((id) => this.chain.provider(id, at))),
      Promise.all([...budgets].map(async (id) => ({ id, budget: await this.chain.budget(id, at) }))),
      Promise.all([...sessions].map(async (id) => ({ id, state: await this.chain.session(id, at) }))),
    ]);
    this.transaction(() => {
      for (const provider of providerStates) this.index.putProvider(provider, to);
      for (const { id, budget } of budgetStates) {
        this.index.putBudget({ id, creator: budget.creator, available: budget.available, perSessionLimit: budget.perSessionLimit, expiry: budget.expiry }, to);
      }
      for (const session of opened) this.index.openSession({ ...session, claimEnd: 0 }, to);
      for (const { id, state } of sessionStates) {
        this.index.settleSession(id, state.sequence, state.settled, to);
        if (state.claimEnd === 1) this.index.finalizeSession(id, state.settled, to);
        else this.index.setClaimEnd(id, state.claimEnd, to);
        const by = closeRequests.get(id);
        if (by !== undefined) this.index.requestClose(id, by, to);
      }
      if (this.onSessions !== undefined && sessionStates.length > 0) {
        const changes = sessionStates.flatMap(({ id }) => {
          const session = this.index.session(id);
          return session === undefined ? [] : [{ session, finalizedTx: finalizedBy.get(id) ?? null }];
        });
        this.onSessions(changes);
      }
      this.index.setLastBlock(to);
    });
  }
}
