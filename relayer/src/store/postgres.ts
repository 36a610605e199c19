import { createHash } from "node:crypto";
import pg from "pg";
import { LRUCache } from "lru-cache";
import { log } from "../log.ts";
import { POSTGRES_MIGRATIONS } from "./postgres-schema.ts";
import type { SqlDatabase, SqlRow, SqlRunner, SqlValue, WriteOptions } from "./sql.ts";

/**
 * The store's PostgreSQL backend, on `pg`'s pool: several relayer instances share one server.
 * See the README's "PostgreSQL backend" section for the choices made here.
 */

/** Options of {@link openPostgres}. */
export interface PostgresOptions {
  /** The most connections this instance opens (default 10). */
  poolSize?: number;
  /** This instance's name, shown in `pg_stat_activity` as `agentmesh-relayer/<instance>`. */
  instance?: string;
}

/** A {@link SqlDatabase} on PostgreSQL. */
export interface PostgresDatabase extends SqlDatabase {
  /** How many migrations this open ran (0 when another instance, or an earlier start, had run them). */
  readonly migrationsRun: number;
}

/** Why {@link openPostgres} could not open the database; nothing was changed. */
export type PostgresOpenFailure = "url" | "unreachable" | "credentials" | "database" | "newer-schema";

/** A database URL that cannot be used: the server is unreachable, the credentials are refused, … */
export class PostgresOpenError extends Error {
  override name = "PostgresOpenError";
  readonly failure: PostgresOpenFailure;
  constructor(failure: PostgresOpenFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.failure = failure;
  }
}

/** The key of the session-level advisory lock held while migrations run (an arbitrary fixed bigint: "agentmsh"). */
export const MIGRATION_LOCK_KEY = 0x6167656e746d7368n;

const CONNECT_TIMEOUT_MS = 5_000;
const STATEMENT_TIMEOUT_MS = 30_000;
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000;
const DEFAULT_POOL_SIZE = 10;
/** Connections for writes that need not wait for the log flush (see {@link WriteOptions}). */
const RELAXED_POOL_SIZE = 2;
const INT8_OID = 20;
const NUMERIC_OID = 1700;
/** Error codes of a server that cannot be reached (Node's, and pg's connect timeout). */
const UNREACHABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ENOENT"]);

/**
 * Opens the PostgreSQL database at `url` (`postgres://user:password@host:port/database`), and
 * brings its schema up to date: the migrations not yet run ({@link POSTGRES_MIGRATIONS}), each in
 * its own transaction, all under an advisory lock so that two instances starting at once never
 * migrate at once (the second waits, then finds nothing to do).
 *
 * Throws a {@link PostgresOpenError}, having changed nothing, when the server cannot be reached, it
 * refuses the credentials, the database does not exist, or its schema is newer than this relayer
 * knows. No message shows the URL's password.
 *
 * @example
 * const db = await openPostgres(process.env.DATABASE_URL, { instance: "relayer-1" });
 * await db.run("UPDATE leases SET expires_at = ? WHERE name = ?", [Date.now() + 10_000, "indexer"]);
 */
export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<PostgresDatabase> {
  const target = describeTarget(url);
  const poolSize = options.poolSize ?? DEFAULT_POOL_SIZE;
  if (!Number.isSafeInteger(poolSize) || poolSize < 1) throw new RangeError(`poolSize must be a positive integer, not ${poolSize}`);
  const config: pg.PoolConfig = {
    connectionString: url,
    max: poolSize,
    application_name: options.instance === undefined ? "agentmesh-relayer" : `agentmesh-relayer/${options.instance}`,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    // A transaction left open by a stalled instance must not hold its row locks for ever.
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
    types: poolTypes(),
    // Idle connections never keep a process alive on their own (the relayer's server does).
    allowExitOnIdle: true,
  };
  const pool = new pg.Pool(config);
  // Writes a crash may lose (rate-limit counters) commit on their own connections, which never wait
  // for the log flush: one round trip, and their row locks are free at once.
  const relaxed = new pg.Pool({ ...config, max: RELAXED_POOL_SIZE, options: "-c synchronous_commit=off" });
  // An idle connection that fails (the server restarted) is dropped by the pool; the next query opens another.
  for (const each of [pool, relaxed]) {
    each.on("error", (error) =>
      log.warn({ code: (error as { code?: string }).code, reason: scrubError(error, target.secrets).message }, "idle PostgreSQL connection failed"),
    );
  }
  let migrationsRun: number;
  try {
    migrationsRun = await migrate(pool, target);
  } catch (error) {
    await Promise.all([pool.end(), relaxed.end()]);
    throw error instanceof PostgresOpenError ? error : openFailure(error, target);
  }
  return postgresDatabase(pool, relaxed, migrationsRun);
}

/** What error messages may say about the URL: where it points and whose it is (never the password). */
interface Target {
  /** `host:port` (or the socket directory and port). */
  address: string;
  user: string;
  database: string;
  /** The password as the URL spells it and decoded: what no message may show. */
  secrets: string[];
}

function describeTarget(url: string): Target {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // new URL's error carries the input: say nothing of it
    throw new PostgresOpenError("url", "the PostgreSQL URL is not a URL (expected postgres://user:password@host:port/database)");
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new PostgresOpenError("url", `the PostgreSQL URL must start with postgres:// or postgresql://, not ${parsed.protocol}//`);
  }
  const decode = (text: string) => {
    try {
      return decodeURIComponent(text);
    } catch {
      throw new PostgresOpenError("url", "the PostgreSQL URL has a malformed %-escape (write a % in the user or password as %25)");
    }
  };
  const user = decode(parsed.username);
  const host = parsed.searchParams.get("host") ?? (decode(parsed.hostname) || "localhost");
  return {
    address: `${host}:${parsed.port || "5432"}`,
    user,
    database: decode(parsed.pathname.slice(1)) || user,
    secrets: [...new Set([parsed.password, decode(parsed.password)])].filter((secret) => secret.length > 0),
  };
}

/** The pool's own type parsers (never pg's global ones, which other code in the process may share). */
function poolTypes(): pg.CustomTypesConfig {
  const types = new pg.TypeOverrides();
  types.setTypeParser(INT8_OID, (text: string) => {
    const value = Number(text);
    if (!Number.isSafeInteger(value)) {
      throw new RangeError(`PostgreSQL returned the BIGINT ${text}, beyond what a JS number holds exactly (${Number.MAX_SAFE_INTEGER})`);
    }
    return value;
  });
  types.setTypeParser(NUMERIC_OID, (text: string) => text); // amounts: exact decimal strings, the caller's BigInt()
  return types;
}

/** Runs the migrations not yet run, under the advisory lock, on one connection of its own; returns how many ran. */
async function migrate(pool: pg.Pool, target: Target): Promise<number> {
  const client = await pool.connect();
  // A connection that fails while checked out would otherwise be an unhandled 'error' event; its
  // queries fail, and it is discarded below.
  const ignore = () => {};
  client.on("error", ignore);
  try {
    // A migration may take longer than a statement may on a serving connection, and so may the wait for the lock.
    await client.query("SET statement_timeout = 0");
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY.toString()]);
    let ran: number;
    try {
      ran = await migrateLocked(client, target);
    } catch (error) {
      // the lock also ends with the connection, discarded below
      await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY.toString()]).catch(ignore);
      throw error;
    }
    await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY.toString()]);
    return ran;
  } finally {
    client.off("error", ignore);
    // Always discarded: its session settings (no statement timeout) must not serve calls.
    client.release(true);
  }
}

/** {@link migrate}, once it holds the lock. */
async function migrateLocked(client: pg.PoolClient, target: Target): Promise<number> {
  const version = await schemaVersion(client);
  if (version > POSTGRES_MIGRATIONS.length) {
    throw new PostgresOpenError(
      "newer-schema",
      `PostgreSQL database "${target.database}" at ${target.address} was written by a newer relayer (schema ${version}; this one knows ${POSTGRES_MIGRATIONS.length})`,
    );
  }
  for (let index = version; index < POSTGRES_MIGRATIONS.length; index++) {
    await client.query("BEGIN");
    try {
      await client.query(POSTGRES_MIGRATIONS[index]);
      if (index === 0) await client.query("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1)");
      else await client.query("UPDATE schema_version SET version = $1", [index + 1]);
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {}); // a broken connection rolls back by closing
      throw new Error(`PostgreSQL migration ${index + 1} failed: ${(error as Error).message}`, { cause: error });
    }
  }
  if (version < POSTGRES_MIGRATIONS.length) {
    log.info({ database: target.database, from: version, to: POSTGRES_MIGRATIONS.length }, "migrated the PostgreSQL schema");
  }
  return POSTGRES_MIGRATIONS.length - version;
}

/** The schema version `schema_version` records: 0 on a database no relayer has migrated. */
async function schemaVersion(client: pg.PoolClient): Promise<number> {
  const { rows: exists } = await client.query<{ found: string | null }>("SELECT to_regclass('schema_version')::text AS found");
  if (exists[0].found === null) return 0;
  const { rows } = await client.query<{ version: number }>("SELECT version FROM schema_version");
  if (rows.length !== 1) throw new Error(`schema_version must hold one row, not ${rows.length}`);
  return rows[0].version;
}

/** The clear error for a failure to connect or to read the schema, by its cause (scrubbed of the password). */
function openFailure(cause: unknown, target: Target): Error {
  const error = scrubError(cause, target.secrets);
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  const detail = error instanceof Error ? error.message : String(error);
  if (code === "28P01" || code === "28000" || /client password must be a string/.test(detail)) {
    return new PostgresOpenError(
      "credentials",
      `PostgreSQL refused the credentials of user "${target.user}" at ${target.address}: ${detail} (check the user and password of the database URL)`,
      { cause: error },
    );
  }
  if (code === "3D000") {
    return new PostgresOpenError("database", `PostgreSQL at ${target.address} has no database "${target.database}": ${detail} (create it, or fix the database URL)`, {
      cause: error,
    });
  }
  if ((typeof code === "string" && UNREACHABLE_CODES.has(code)) || /timeout|terminated unexpectedly/i.test(detail)) {
    return new PostgresOpenError("unreachable", `cannot reach PostgreSQL at ${target.address}: ${detail}`, { cause: error });
  }
  return error instanceof Error ? error : new Error(detail);
}

/** `error` and its causes with every occurrence of each secret in their messages and stacks replaced. */
function scrubError<E>(error: E, secrets: readonly string[]): E {
  const seen = new Set<object>();
  let current: unknown = error;
  while (typeof current === "object" && current !== null && !seen.has(current)) {
    seen.add(current);
    const record = current as Record<string, unknown>;
    for (const field of ["message", "stack", "detail"]) {
      const value = record[field];
      if (typeof value === "string") record[field] = secrets.reduce((text, secret) => text.split(secret).join("***"), value);
    }
    current = record.cause;
  }
  return error;
}

/**
 * `sql` with its `?` placeholders numbered `$1`, `$2`, … in order. A `?` inside a quoted string
 * literal ('…'), a quoted identifier ("…") or a comment is text, not a placeholder. (PostgreSQL's
 * jsonb `?` operators cannot be written through this port; the store does not use them.)
 */
export function numberPlaceholders(sql: string): string {
  let result = "";
  let count = 0;
  let index = 0;
  while (index < sql.length) {
    const quoted = QUOTES.find(([opener]) => sql.startsWith(opener, index));
    if (quoted === undefined) {
      result += sql[index] === "?" ? `$${++count}` : sql[index];
      index++;
      continue;
    }
    // copied as it is up to its closer (a doubled quote, as in 'it''s', closes and reopens: the same text)
    const [opener, closer] = quoted;
    const close = sql.indexOf(closer, index + opener.length);
    const end = close === -1 ? sql.length : close + closer.length; // unterminated: the server will say so
    result += sql.slice(index, end);
    index = end;
  }
  return result;
}

/** What {@link numberPlaceholders} copies unchanged: each opener and its closer. */
const QUOTES: readonly (readonly [string, string])[] = [
  ["'", "'"],
  ['"', '"'],
  ["--", "\n"],
  ["/*", "*/"],
];

/** The values pg is given: bigints as decimal strings (pg sends numbers and strings as they are). */
function bindable(params: readonly SqlValue[]): (string | number | null)[] {
  return params.map((value) => (typeof value === "bigint" ? value.toString() : value));
}

function postgresDatabase(pool: pg.Pool, relaxed: pg.Pool, migrationsRun: number): PostgresDatabase {
  let closed: Promise<void> | undefined;
  const translations = new LRUCache<string, { name: string; text: string }>({ max: 1024 });
  // Named: each connection parses and plans a statement once, then only binds and runs it (the
  // store sends the same few dozen texts over and over).
  const prepared = (sql: string): { name: string; text: string } => {
    let statement = translations.get(sql);
    if (statement === undefined) {
      const text = numberPlaceholders(sql);
      translations.set(sql, (statement = { name: `am_${createHash("sha1").update(text).digest("hex")}`, text }));
    }
    return statement;
  };
  const runner = (queryable: pg.Pool | pg.PoolClient): SqlRunner => {
    const run = async (sql: string, params: readonly SqlValue[] = []) => {
      const result = await queryable.query<SqlRow>({ ...prepared(sql), values: bindable(params) });
      return { rows: result.rows, changes: result.rowCount ?? 0 };
    };
    return {
      run,
      get: async (sql, params) => (await run(sql, params)).rows[0],
      all: async (sql, params) => (await run(sql, params)).rows,
    };
  };
  const [poolRunner, relaxedRunner] = [runner(pool), runner(relaxed)];
  return {
    dialect: "postgres",
    migrationsRun,
    ...poolRunner,
    run: (sql, params, options?: WriteOptions) => (options?.durable === false ? relaxedRunner : poolRunner).run(sql, params),
    async transaction<T>(work: (tx: SqlRunner) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      // A connection that fails while checked out would otherwise be an unhandled 'error' event.
      let clientError: Error | undefined;
      const onError = (error: Error) => (clientError = error);
      client.on("error", onError);
      try {
        await client.query("BEGIN");
        const result = await work(runner(client));
        await client.query("COMMIT");
        return result;
      } catch (error) {
        try {
          await client.query("ROLLBACK");
        } catch (rollbackError) {
          clientError ??= rollbackError as Error;
        }
        throw error;
      } finally {
        client.off("error", onError);
        client.release(clientError); // a failed connection is discarded, not reused
      }
    },
    close: () => (closed ??= Promise.all([pool.end(), relaxed.end()]).then(() => undefined)),
  };
}
