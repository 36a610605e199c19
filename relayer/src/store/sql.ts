/**
 * The one way the relayer's store talks to its database, whichever it is: SQLite (`node:sqlite`,
 * embedded, one instance) or PostgreSQL (several instances sharing one server). The store's queries
 * are written once, in the SQL both understand, with `?` placeholders; each backend runs them.
 *
 * Portable SQL, as the store uses it: `INSERT … ON CONFLICT … DO UPDATE`, `RETURNING`, `CASE`
 * (never the two-argument `MAX`/`GREATEST`), `COALESCE`, partial indexes. Integers that can pass
 * 2^31 (times in ms) are BIGINT on PostgreSQL and come back as numbers from both; amounts are
 * decimal strings in and out (`NUMERIC(78,0)` on PostgreSQL, `TEXT` on SQLite, where they are never
 * compared in SQL).
 */

/** A value bound to a `?` placeholder. */
export type SqlValue = string | number | bigint | null;

/** One row, by column name. */
export type SqlRow = Record<string, unknown>;

/** Runs statements on one connection, or inside one transaction. */
export interface SqlRunner {
  /** Runs one statement: the rows it returned (a SELECT, or RETURNING) and how many rows it changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<{ rows: SqlRow[]; changes: number }>;
  /** The first row a query returns, or undefined. */
  get(sql: string, params?: readonly SqlValue[]): Promise<SqlRow | undefined>;
  /** Every row a query returns. */
  all(sql: string, params?: readonly SqlValue[]): Promise<SqlRow[]>;
}

/** How a write commits. */
export interface WriteOptions {
  /**
   * False for writes a crash may lose without harm (a rate-limit counter): the commit does not wait
   * for the log to reach the disk, so it frees the rows it wrote sooner. Default true.
   */
  durable?: boolean;
}

/** Which backend a {@link SqlDatabase} is. */
export type SqlDialect = "sqlite" | "postgres";

/**
 * A database: reads run at once; a write outside {@link SqlDatabase.transaction} runs in a
 * transaction of its own. Either way, what this resolves is committed.
 */
export interface SqlDatabase extends SqlRunner {
  readonly dialect: SqlDialect;
  /**
   * Runs `work` in one transaction, committed before this resolves, rolled back (and rethrown) if
   * `work` throws. `work` must use `tx`, not the database, and await nothing but its statements.
   */
  transaction<T>(work: (tx: SqlRunner) => Promise<T>): Promise<T>;
  /** Runs one statement in a transaction of its own, committed as `options` say (default: durably). */
  run(sql: string, params?: readonly SqlValue[], options?: WriteOptions): Promise<{ rows: SqlRow[]; changes: number }>;
  /** Waits for what is in progress, then closes the connection(s). */
  close(): Promise<void>;
}
