import type { Address, Hex } from "viem";
import type { RegisteredProvider } from "../chain.ts";
import type { SqlRunner } from "./sql.ts";

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

/** How long providers read from the database are reused (the indexer's own writes drop them at once). */
const PROVIDER_CACHE_MS = 1_000;

/** The chain indexer's tables: what the contracts' events say, as of the last indexed block. */
export class ChainIndex {
  private readonly sql: SqlRunner;
  /** Shared by every view of one index (see {@link on}). */
  private readonly shared: {
    /** Parsed providers, read on every chat request, and when; dropped whenever the indexer writes one. */
    providers: { list: RegisteredProvider[]; readAt: number } | undefined;
    /** The latest head seen; in memory only (the first pass after a start sees it again). */
    head: HeadObservation | undefined;
  };

  constructor(sql: SqlRunner, shared?: ChainIndex["shared"]) {
    this.sql = sql;
    this.shared = shared ?? { providers: undefined, head: undefined };
  }

  /** This index, with its statements run on `sql` (a transaction). */
  on(sql: SqlRunner): ChainIndex {
    return new ChainIndex(sql, this.shared);
  }

  /** Records the chain head the indexer just read (`seenAt`: wall-clock ms). */
  observeHead(number: number, timestamp: number, seenAt = Date.now()): void {
    const head = this.shared.head;
    if (head !== undefined && number < head.number) return; // an older answer arriving late
    this.shared.head = { number, timestamp, seenAt };
  }

  /**
   * The chain's clock, in seconds: the latest head's timestamp plus the wall-clock time since it was
   * seen, i.e. about the timestamp the next block will carry. No RPC: the indexer keeps the head
   * current. Before the indexer has seen a head, the wall clock.
   */
  chainTime(now = Date.now()): number {
    const head = this.shared.head;
    if (head === undefined) return Math.floor(now / 1000);
    return head.timestamp + Math.max(0, Math.floor((now - head.seenAt) / 1000));
  }

  /** The number of the latest head the indexer saw, or undefined before it saw one. */
  headBlock(): number | undefined {
    return this.shared.head?.number;
  }

  /** Records the hash of indexed block `number` (the last of a range), for reorg detection. */
  async putBlockHash(number: number, hash: Hex): Promise<void> {
    await this.sql.run("INSERT INTO chain_blocks (number, hash) VALUES (?, ?) ON CONFLICT (number) DO UPDATE SET hash = excluded.hash", [number, hash]);
  }

  /** The recorded hashes of indexed blocks, latest first, at most `limit`. */
  async blockHashes(limit: number): Promise<{ number: number; hash: Hex }[]> {
    return (await this.sql.all("SELECT number, hash FROM chain_blocks ORDER BY number DESC LIMIT ?", [limit])).map((row) => ({
      number: Number(row.number),
      hash: row.hash as Hex,
    }));
  }

  /** Forgets block hashes older than the `keep` latest (a reorg deeper than that is not followed). */
  async pruneBlockHashes(keep: number): Promise<void> {
    await this.sql.run("DELETE FROM chain_blocks WHERE number < (SELECT MIN(number) FROM (SELECT number FROM chain_blocks ORDER BY number DESC LIMIT ?) AS kept)", [keep]);
  }

  /**
   * What the indexer wrote after block `ancestor`: each row keeps the block of its last change, so
   * these are exactly the rows a reorg back to `ancestor` may have made wrong.
   */
  async changedAfter(ancestor: number): Promise<{ providers: number[]; budgets: number[]; sessions: Hex[] }> {
    const ids = async (table: string) => (await this.sql.all(`SELECT id FROM ${table} WHERE block > ?`, [ancestor])).map((row) => row.id);
    return { providers: (await ids("chain_providers")).map(Number), budgets: (await ids("chain_budgets")).map(Number), sessions: (await ids("chain_sessions")) as Hex[] };
  }

  /**
   * Rolls the index back to block `ancestor` (run in the indexer's transaction): each row written
   * after it is replaced by its state as of `ancestor` (read there from the chain), or deleted when
   * it did not exist then; a close request made after it is forgotten; hashes of later blocks go.
   * Indexing then resumes at `ancestor + 1`, on the new chain.
   */
  async rollBack(
    ancestor: number,
    restored: {
      providers: { id: number; provider: RegisteredProvider | undefined }[];
      budgets: { id: number; budget: IndexedBudget | undefined }[];
      sessions: { id: Hex; state: { settled: bigint; sequence: number; claimEnd: number } }[];
    },
  ): Promise<void> {
    for (const { id, provider } of restored.providers) {
      if (provider === undefined) await this.sql.run("DELETE FROM chain_providers WHERE id = ?", [id]);
      else await this.putProvider(provider, ancestor);
    }
    this.shared.providers = undefined;
    for (const { id, budget } of restored.budgets) {
      if (budget === undefined) await this.sql.run("DELETE FROM chain_budgets WHERE id = ?", [id]);
      else await this.putBudget(budget, ancestor);
    }
    for (const { id, state } of restored.sessions) {
      const key = id.toLowerCase();
      // claimEnd 0: the session did not exist yet (ComputeEscrow.getSession).
      if (state.claimEnd === 0) {
        await this.sql.run("DELETE FROM chain_sessions WHERE id = ?", [key]);
        continue;
      }
      await this.sql.run(
        `UPDATE chain_sessions SET settled = ?, sequence = ?, claim_end = ?, finalized = ?, block = ?,
           close_requested_by = CASE WHEN close_requested_block > ? THEN NULL ELSE close_requested_by END,
           close_requested_block = CASE WHEN close_requested_block > ? THEN NULL ELSE close_requested_block END
         WHERE id = ?`,
        [state.settled.toString(), state.sequence, state.claimEnd, state.claimEnd === 1 ? 1 : 0, ancestor, ancestor, ancestor, key],
      );
    }
    await this.sql.run("DELETE FROM chain_blocks WHERE number > ?", [ancestor]);
    await this.setLastBlock(ancestor);
    // The head seen may be the replaced chain's (and higher than the new chain's): forget it.
    this.shared.head = undefined;
  }

  /**
   * Records the head this instance's indexer saw, for the instances that do not index (see
   * {@link followHead}); `startBlock` stands for the last block applied before the first range.
   */
  async saveHead(startBlock: number): Promise<void> {
    const head = this.shared.head;
    if (head === undefined) return;
    await this.sql.run(
      `INSERT INTO indexer_state (id, last_block, head_number, head_timestamp, head_seen_at) VALUES (1, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET head_number = excluded.head_number, head_timestamp = excluded.head_timestamp, head_seen_at = excluded.head_seen_at`,
      [startBlock - 1, head.number, head.timestamp, head.seenAt],
    );
  }

  /**
   * Takes the head the indexing instance last recorded as this instance's own (the chain's clock
   * follows it); the last block it applied, or undefined before it applied one.
   */
  async followHead(): Promise<number | undefined> {
    const row = await this.sql.get("SELECT last_block, head_number, head_timestamp, head_seen_at FROM indexer_state WHERE id = 1");
    if (row === undefined) return undefined;
    if (row.head_number !== null) this.observeHead(Number(row.head_number), Number(row.head_timestamp), Number(row.head_seen_at));
    return Number(row.last_block);
  }

  /** Last block fully applied, or undefined before the first pass. */
  async lastBlock(): Promise<number | undefined> {
    const row = await this.sql.get("SELECT last_block FROM indexer_state WHERE id = 1");
    return row === undefined ? undefined : Number(row.last_block);
  }

  async setLastBlock(block: number): Promise<void> {
    await this.sql.run("INSERT INTO indexer_state (id, last_block) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET last_block = excluded.last_block", [block]);
  }

  async putProvider(provider: RegisteredProvider, block: number): Promise<void> {
    const data = JSON.stringify(provider, (_key, value) => (typeof value === "bigint" ? value.toString() : value));
    await this.sql.run("INSERT INTO chain_providers (id, data, block) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data, block = excluded.block", [
      provider.id,
      data,
      block,
    ]);
    this.shared.providers = undefined;
  }

  /**
   * Every registered provider with its models, as of the last indexed block: read at most every
   * {@link PROVIDER_CACHE_MS} (another instance may be the one indexing), and at once after this
   * instance wrote one.
   */
  async providers(now = Date.now()): Promise<RegisteredProvider[]> {
    const cached = this.shared.providers;
    if (cached !== undefined && now - cached.readAt < PROVIDER_CACHE_MS) return cached.list;
    const list = (await this.sql.all("SELECT data FROM chain_providers ORDER BY id")).map((row) => {
      const raw = JSON.parse(row.data as string);
      return { ...raw, features: BigInt(raw.features) } as RegisteredProvider;
    });
    this.shared.providers = { list, readAt: now };
    return list;
  }

  async provider(id: number): Promise<RegisteredProvider | undefined> {
    return (await this.providers()).find((provider) => provider.id === id);
  }

  async putBudget(budget: IndexedBudget, block: number): Promise<void> {
    await this.sql.run(
      `INSERT INTO chain_budgets (id, creator, available, per_session_limit, expiry, block) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET creator = excluded.creator, available = excluded.available,
         per_session_limit = excluded.per_session_limit, expiry = excluded.expiry, block = excluded.block`,
      [budget.id, budget.creator, budget.available.toString(), budget.perSessionLimit.toString(), budget.expiry, block],
    );
  }

  async budget(id: number): Promise<IndexedBudget | undefined> {
    const row = await this.sql.get("SELECT * FROM chain_budgets WHERE id = ?", [id]);
    if (row === undefined) return undefined;
    return {
      id: Number(row.id),
      creator: row.creator as Address,
      available: BigInt(row.available as string),
      perSessionLimit: BigInt(row.per_session_limit as string),
      expiry: Number(row.expiry),
    };
  }

  async openSession(session: Omit<IndexedSession, "settled" | "sequence" | "finalized" | "closeRequestedBy">, block: number): Promise<void> {
    await this.sql.run(
      `INSERT INTO chain_sessions (id, budget_id, agent, provider_id, max_spend, claim_end, block) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO NOTHING`,
      [session.id.toLowerCase(), session.budgetId, session.agent, session.providerId, session.maxSpend.toString(), session.claimEnd, block],
    );
  }

  async settleSession(id: Hex, sequence: number, settled: bigint, block: number): Promise<void> {
    await this.sql.run("UPDATE chain_sessions SET sequence = ?, settled = ?, block = ? WHERE id = ?", [sequence, settled.toString(), block, id.toLowerCase()]);
  }

  async setClaimEnd(id: Hex, claimEnd: number, block: number): Promise<void> {
    await this.sql.run("UPDATE chain_sessions SET claim_end = ?, block = ? WHERE id = ?", [claimEnd, block, id.toLowerCase()]);
  }

  async finalizeSession(id: Hex, settled: bigint, block: number): Promise<void> {
    await this.sql.run("UPDATE chain_sessions SET finalized = 1, settled = ?, block = ? WHERE id = ?", [settled.toString(), block, id.toLowerCase()]);
  }

  /** Records that `by` asked to close session `id` in block `requestedAt` (indexed up to `block`). */
  async requestClose(id: Hex, by: Address, block: number, requestedAt = block): Promise<void> {
    await this.sql.run(
      `UPDATE chain_sessions SET close_requested_by = COALESCE(close_requested_by, ?),
         close_requested_block = COALESCE(close_requested_block, ?), block = ? WHERE id = ?`,
      [by, requestedAt, block, id.toLowerCase()],
    );
  }

  /** Session `id` as of the last indexed block (one primary-key read: cheap enough for every call). */
  async session(id: Hex): Promise<IndexedSession | undefined> {
    const row = await this.sql.get("SELECT * FROM chain_sessions WHERE id = ?", [id.toLowerCase()]);
    return row && toIndexedSession(row);
  }

  async budgetOfSession(id: Hex): Promise<number | undefined> {
    const row = await this.sql.get("SELECT budget_id FROM chain_sessions WHERE id = ?", [id.toLowerCase()]);
    return row === undefined ? undefined : Number(row.budget_id);
  }

  async sessionsOfBudget(budgetId: number): Promise<IndexedSession[]> {
    return (await this.sql.all("SELECT * FROM chain_sessions WHERE budget_id = ? ORDER BY block, id", [budgetId])).map(toIndexedSession);
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
