import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import { log } from "../log.ts";
import { openDatabase, statementCache } from "./database.ts";
import type { SqlDatabase, SqlRow, SqlRunner, SqlValue } from "./sql.ts";

/** One SQLite database behind the store's port: see {@link SqliteDatabase}. */
export function openSqlite(file: string): SqliteDatabase {
  return new SqliteDatabase(openDatabase(file));
}

/**
 * The SQLite backend: one `node:sqlite` connection, whose statements run synchronously.
 *
 * Transactions are group-committed: units that start in the same event-loop turn share one SQLite
 * transaction (each in a savepoint of its own, so one that throws is rolled back alone), committed
 * at the end of the turn; each unit resolves once that commit is done. A commit `fsync`s the log
 * (synchronous = FULL), which costs more than a served call's writes, so under load this saves most
 * of the store's cost per call (`npm run bench:soak` measures it). Units run one at a time: a unit
 * that awaits holds the connection until it ends.
 */
export class SqliteDatabase implements SqlDatabase {
  readonly dialect = "sqlite" as const;
  readonly db: DatabaseSync;

  private readonly statement: ReturnType<typeof statementCache>;
  private readonly runner: SqlRunner;
  /** Resolves when the last unit queued so far has ended (units never overlap). */
  private tail: Promise<void> = Promise.resolve();
  /** This turn's open transaction, if any. */
  private openBatch: { committed: Promise<void>; resolve: () => void; reject: (error: unknown) => void } | undefined;

  constructor(db: DatabaseSync) {
    this.db = db;
    this.statement = statementCache(db);
    const run = (sql: string, params: readonly SqlValue[] = []) => {
      const statement = this.statement(sql);
      if (!statement.columns().length) return { rows: [], changes: Number(statement.run(...(params as SQLInputValue[])).changes) };
      const rows = statement.all(...(params as SQLInputValue[])) as SqlRow[];
      return { rows, changes: rows.length };
    };
    this.runner = {
      run: async (sql, params) => run(sql, params),
      get: async (sql, params) => run(sql, params).rows[0],
      all: async (sql, params) => run(sql, params).rows,
    };
  }

  /** Reads see what this connection wrote, committed or about to be at the end of the turn. */
  get(sql: string, params?: readonly SqlValue[]): Promise<SqlRow | undefined> {
    return this.runner.get(sql, params);
  }

  all(sql: string, params?: readonly SqlValue[]): Promise<SqlRow[]> {
    return this.runner.all(sql, params);
  }

  /** Every write is durable here: one group commit per turn costs no more. */
  run(sql: string, params?: readonly SqlValue[]): Promise<{ rows: SqlRow[]; changes: number }> {
    return this.transaction((tx) => tx.run(sql, params));
  }

  async transaction<T>(work: (tx: SqlRunner) => Promise<T>): Promise<T> {
    const { result, committed } = await this.exclusive(async () => {
      const committed = this.joinBatch();
      this.statement("SAVEPOINT unit").run();
      try {
        const result = await work(this.runner);
        this.statement("RELEASE unit").run();
        return { result, committed };
      } catch (error) {
        this.statement("ROLLBACK TO unit").run();
        this.statement("RELEASE unit").run();
        throw error;
      }
    });
    await committed;
    return result;
  }

  close(): Promise<void> {
    return this.exclusive(async () => {
      this.commitBatch();
      this.db.close();
    });
  }

  /** Runs `work` once every unit before it has ended, and before any unit after it starts. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const running = this.tail.then(work);
    this.tail = running.then(
      () => undefined,
      () => undefined,
    );
    return running;
  }

  /** This turn's transaction: opened (its commit scheduled for the end of the turn) if none is. */
  private joinBatch(): Promise<void> {
    if (this.openBatch === undefined) {
      this.statement("BEGIN IMMEDIATE").run();
      let resolve!: () => void;
      let reject!: (error: unknown) => void;
      const committed = new Promise<void>((onCommit, onFailure) => ((resolve = onCommit), (reject = onFailure)));
      committed.catch(() => {}); // a failed commit is logged, and reported to each unit that joined it
      this.openBatch = { committed, resolve, reject };
      setImmediate(() => void this.exclusive(async () => this.commitBatch()));
    }
    return this.openBatch.committed;
  }

  /** Commits this turn's transaction now, if one is open. */
  private commitBatch(): void {
    const batch = this.openBatch;
    if (batch === undefined) return;
    this.openBatch = undefined;
    if (!this.db.isOpen) {
      batch.reject(new Error("the database was closed before this turn's writes were committed"));
      return;
    }
    try {
      this.statement("COMMIT").run();
      batch.resolve();
    } catch (error) {
      log.error({ err: error }, "group commit failed");
      if (this.db.isTransaction) this.statement("ROLLBACK").run();
      batch.reject(error);
    }
  }
}
