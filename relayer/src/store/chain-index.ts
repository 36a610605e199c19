import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Address, Hex } from "viem";
import type { RegisteredProvider } from "../chain.ts";
import { statementCache } from "./database.ts";

/** A budget as the indexer last saw it on-chain. */
export interface IndexedBudget {
  id: number;
  creator: Address;
  available: bigint;
  perSessionLimit: bigint;
  expiry: number;
}

/** A session as the indexer last saw it on-chain (opened through any relayer, or directly). */
export interface IndexedSession {
  id: Hex;
  budgetId: number;
  agent: Address;
  providerId: number;
  maxSpend: bigint;
  settled: bigint;
  sequence: number;
  claimEnd: number;
  finalized: boolean;
  /** Who asked to close it on-chain (its agent or its budget's creator), or null. */
  closeRequestedBy: Address | null;
}

/** The chain head as the indexer last saw it, and when (wall clock, ms). */
interface HeadObservation {
  number: number;
  timestamp: number;
  seenAt: number;
}

type Row = Record<string, unknown>;

/** The chain indexer's tables: what the contracts' events say, as of the last indexed block. */
export class ChainIndex {
  private readonly db: DatabaseSync;
  /** Parsed providers, read on every chat request; dropped whenever the indexer writes one. */
  private cachedProviders: RegisteredProvider[] | undefined;

  private readonly statement: (sql: string) => StatementSync;
  /** The latest head seen; in memory only (the first pass after a start sees it again). */
  private head: HeadObservation | undefined;

  constructor(db: DatabaseSync) {
    this.db = db;
    this.statement = statementCache(db);
  }

  /** Records the chain head the indexer just read (`seenAt`: wall-clock ms). */
  observeHead(number: number, timestamp: number, seenAt = Date.now()): void {
    if (this.head !== undefined && number < this.head.number) return; // an older answer arriving late
    this.head = { number, timestamp, seenAt };
  }

  /**
   * The chain's clock, in seconds: the latest head's timestamp plus the wall-clock time since it was
   * seen, i.e. about the timestamp the next block will carry. No RPC: the indexer keeps the head
   * current. Before the indexer has seen a head, the wall clock.
   */
  chainTime(now = Date.now()): number {
    if (this.head === undefined) return Math.floor(now / 1000);
    return this.head.timestamp + Math.max(0, Math.floor((now - this.head.seenAt) / 1000));
  }

  /** The number of the latest head the indexer saw, or undefined before it saw one. */
  headBlock(): number | undefined {
    return this.head?.number;
  }

  /** Records the hash of indexed block `number` (the last of a range), for reorg detection. */
  putBlockHash(number: number, hash: Hex): void {
    this.statement("INSERT INTO chain_blocks (number, hash) VALUES (?, ?) ON CONFLICT (number) DO UPDATE SET hash = excluded.hash").run(number, hash);
  }

  /** The recorded hashes of indexed blocks, latest first, at most `limit`. */
  blockHashes(limit: number): { number: number; hash: Hex }[] {
    return (this.statement("SELECT number, hash FROM chain_blocks ORDER BY number DESC LIMIT ?").all(limit) as Row[]).map((row) => ({
      number: Number(row.number),
      hash: row.hash as Hex,
    }));
  }

  /** Forgets block hashes older than the `keep` latest (a reorg deeper than that is not followed). */
  pruneBlockHashes(keep: number): void {
    this.statement("DELETE FROM chain_blocks WHERE number < (SELECT MIN(number) FROM (SELECT number FROM chain_blocks ORDER BY number DESC LIMIT ?))").run(keep);
  }

  /**
   * What the indexer wrote after block `ancestor`: each row keeps the block of its last change, so
   * these are exactly the rows a reorg back to `ancestor` may have made wrong.
   */
  changedAfter(ancestor: number): { providers: number[]; budgets: number[]; sessions: Hex[] } {
    const ids = (table: string) => (this.statement(`SELECT id FROM ${table} WHERE block > ?`).all(ancestor) as Row[]).map((row) => row.id);
    return { providers: ids("chain_providers").map(Number), budgets: ids("chain_budgets").map(Number), sessions: ids("chain_sessions") as Hex[] };
  }

  /**
   * Rolls the index back to block `ancestor` (run in the indexer's transaction): each row written
   * after it is replaced by its state as of `ancestor` (read there from the chain), or deleted when
   * it did not exist then; a close request made after it is forgotten; hashes of later blocks go.
   * Indexing then resumes at `ancestor + 1`, on the new chain.
   */
  rollBack(
    ancestor: number,
    restored: {
      providers: { id: number; provider: RegisteredProvider | undefined }[];
      budgets: { id: number; budget: IndexedBudget | undefined }[];
      sessions: { id: Hex; state: { settled: bigint; sequence: number; claimEnd: number } }[];
    },
  ): void {
    for (const { id, provider } of restored.providers) {
      if (provider === undefined) this.statement("DELETE FROM chain_providers WHERE id = ?").run(id);
      else this.putProvider(provider, ancestor);
    }
    this.cachedProviders = undefined;
    for (const { id, budget } of restored.budgets) {
      if (budget === undefined) this.statement("DELETE FROM chain_budgets WHERE id = ?").run(id);
      else this.putBudget(budget, ancestor);
    }
    for (const { id, state } of restored.sessions) {
      const key = id.toLowerCase();
      // claimEnd 0: the session did not exist yet (ComputeEscrow.getSession).
      if (state.claimEnd === 0) {
        this.statement("DELETE FROM chain_sessions WHERE id = ?").run(key);
        continue;
      }
      this.statement(
        `UPDATE chain_sessions SET settled = ?, sequence = ?, claim_end = ?, finalized = ?, block = ?,
           close_requested_by = CASE WHEN close_requested_block > ? THEN NULL ELSE close_requested_by END,
           close_requested_block = CASE WHEN close_requested_block > ? THEN NULL ELSE close_requested_block END
         WHERE id = ?`,
      ).run(state.settled.toString(), state.sequence, state.claimEnd, state.claimEnd === 1 ? 1 : 0, ancestor, ancestor, ancestor, key);
    }
    this.statement("DELETE FROM chain_blocks WHERE number > ?").run(ancestor);
    this.setLastBlock(ancestor);
    // The head seen may be the replaced chain's (and higher than the new chain's): forget it.
    this.head = undefined;
  }

  /** Last block fully applied, or undefined before the first pass. */
  lastBlock(): number | undefined {
    const row = this.statement("SELECT last_block FROM indexer_state WHERE id = 1").get() as Row | undefined;
    return row === undefined ? undefined : Number(row.last_block);
  }

  setLastBlock(block: number): void {
    this.statement("INSERT INTO indexer_state (id, last_block) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET last_block = excluded.last_block").run(block);
  }

  putProvider(provider: RegisteredProvider, block: number): void {
    const data = JSON.stringify(provider, (_key, value) => (typeof value === "bigint" ? value.toString() : value));
    this.statement("INSERT INTO chain_providers (id, data, block) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data, block = excluded.block").run(provider.id, data, block);
    this.cachedProviders = undefined;
  }

  /** Every registered provider with its models, as of the last indexed block. */
  providers(): RegisteredProvider[] {
    this.cachedProviders ??= (this.statement("SELECT data FROM chain_providers ORDER BY id").all() as Row[]).map((row) => {
      const raw = JSON.parse(row.data as string);
      return { ...raw, features: BigInt(raw.features) };
    });
    return this.cachedProviders;
  }

  provider(id: number): RegisteredProvider | undefined {
    return this.providers().find((provider) => provider.id === id);
  }

  putBudget(budget: IndexedBudget, block: number): void {
    this.statement(
        `INSERT INTO chain_budgets (id, creator, available, per_session_limit, expiry, block) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET creator = excluded.creator, available = excluded.available,
           per_session_limit = excluded.per_session_limit, expiry = excluded.expiry, block = excluded.block`,
      )
      .run(budget.id, budget.creator, budget.available.toString(), budget.perSessionLimit.toString(), budget.expiry, block);
  }

  budget(id: number): IndexedBudget | undefined {
    const row = this.statement("SELECT * FROM chain_budgets WHERE id = ?").get(id) as Row | undefined;
    if (row === undefined) return undefined;
    return {
      id: Number(row.id),
      creator: row.creator as Address,
      available: BigInt(row.available as string),
      perSessionLimit: BigInt(row.per_session_limit as string),
      expiry: Number(row.expiry),
    };
  }

  openSession(session: Omit<IndexedSession, "settled" | "sequence" | "finalized" | "closeRequestedBy">, block: number): void {
    this.statement(
        `INSERT INTO chain_sessions (id, budget_id, agent, provider_id, max_spend, claim_end, block) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO NOTHING`,
      )
      .run(session.id.toLowerCase(), session.budgetId, session.agent, session.providerId, session.maxSpend.toString(), session.claimEnd, block);
  }

  settleSession(id: Hex, sequence: number, settled: bigint, block: number): void {
    this.statement("UPDATE chain_sessions SET sequence = ?, settled = ?, block = ? WHERE id = ?")
      .run(sequence, settled.toString(), block, id.toLowerCase());
  }

  setClaimEnd(id: Hex, claimEnd: number, block: number): void {
    this.statement("UPDATE chain_sessions SET claim_end = ?, block = ? WHERE id = ?").run(claimEnd, block, id.toLowerCase());
  }

  finalizeSession(id: Hex, settled: bigint, block: number): void {
    this.statement("UPDATE chain_sessions SET finalized = 1, settled = ?, block = ? WHERE id = ?")
      .run(settled.toString(), block, id.toLowerCase());
  }

  /** Records that `by` asked to close session `id` in block `requestedAt` (indexed up to `block`). */
  requestClose(id: Hex, by: Address, block: number, requestedAt = block): void {
    this.statement(
      `UPDATE chain_sessions SET close_requested_by = COALESCE(close_requested_by, ?),
         close_requested_block = COALESCE(close_requested_block, ?), block = ? WHERE id = ?`,
    ).run(by, requestedAt, block, id.toLowerCase());
  }

  /** Session `id` as of the last indexed block (one primary-key read: cheap enough for every call). */
  session(id: Hex): IndexedSession | undefined {
    const row = this.statement("SELECT * FROM chain_sessions WHERE id = ?").get(id.toLowerCase()) as Row | undefined;
    return row && toIndexedSession(row);
  }

  budgetOfSession(id: Hex): number | undefined {
    const row = this.statement("SELECT budget_id FROM chain_sessions WHERE id = ?").get(id.toLowerCase()) as Row | undefined;
    return row === undefined ? undefined : Number(row.budget_id);
  }

  sessionsOfBudget(budgetId: number): IndexedSession[] {
    return (this.statement("SELECT * FROM chain_sessions WHERE budget_id = ? ORDER BY block, id").all(budgetId) as Row[]).map(toIndexedSession);
  }
}

function toIndexedSession(row: Row): IndexedSession {
  return {
    id: row.id as Hex,
    budgetId: Number(row.budget_id),
    agent: row.agent as Address,
    providerId: Number(row.provider_id),
    maxSpend: BigInt(row.max_spend as string),
    settled: BigInt(row.settled as string),
    sequence: Number(row.sequence),
    claimEnd: Number(row.claim_end),
    finalized: Number(row.finalized) === 1,
    closeRequestedBy: (row.close_requested_by as Address | null) ?? null,
  };
}
