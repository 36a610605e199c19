import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { createServer } from "node:net";
import { inspect } from "node:util";
import pg from "pg";
import { configureLogger } from "../src/log.ts";
import { openDatabase } from "../src/store/database.ts";
import { MIGRATION_LOCK_KEY, PostgresOpenError, numberPlaceholders, openPostgres, type PostgresDatabase } from "../src/store/postgres.ts";
import { POSTGRES_MIGRATIONS, SESSIONS_DUE_AT } from "../src/store/postgres-schema.ts";
import type { SqlRunner } from "../src/store/sql.ts";
import { startPostgres, type PostgresServer } from "./postgres-server.ts";

configureLogger({ level: "silent" });

let server: PostgresServer;
before(async () => {
  server = await startPostgres();
});
after(() => server.stop());

/** Databases opened by a test, closed after it. */
const opened: PostgresDatabase[] = [];
afterEach(() => Promise.all(opened.splice(0).map((db) => db.close())));

async function open(url: string, options?: Parameters<typeof openPostgres>[1]): Promise<PostgresDatabase> {
  const db = await openPostgres(url, options);
  opened.push(db);
  return db;
}

/** A migrated, empty database of its own. */
async function freshDatabase(options?: Parameters<typeof openPostgres>[1]): Promise<{ db: PostgresDatabase; url: string }> {
  const url = await server.createDatabase();
  return { db: await open(url, options), url };
}

/** Runs `work` on a plain pg client of the database at `url` (not the code under test). */
async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** The tables of the database at `url` (but the version table), and the version it records. */
async function snapshot(url: string): Promise<{ tables: string[]; versions: unknown[] }> {
  return withClient(url, async (client) => {
    const { rows } = await client.query<{ name: string }>(
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name",
    );
    const tables = rows.map((row) => row.name);
    const versions = tables.includes("schema_version") ? (await client.query("SELECT version FROM schema_version")).rows : [];
    return { tables, versions };
  });
}

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

describe("PostgreSQL port", () => {
  it("numbers ? placeholders in order, leaving those in quoted literals and identifiers alone", () => {
    assert.equal(
      numberPlaceholders(`SELECT '?', "a?", ? AS x, 'it''s ?', ? FROM t WHERE b = ?`),
      `SELECT '?', "a?", $1 AS x, 'it''s ?', $2 FROM t WHERE b = $3`,
    );
    assert.equal(numberPlaceholders("SELECT 1"), "SELECT 1");
    assert.equal(numberPlaceholders("SELECT ? -- isn't ?\n, ? /* it's ? */ , ?"), "SELECT $1 -- isn't ?\n, $2 /* it's ? */ , $3");
    assert.equal(numberPlaceholders("SELECT ?, 'unterminated ?"), "SELECT $1, 'unterminated ?");
  });

  it("runs, gets and lists rows, with many placeholders and a '?' in a literal", async () => {
    const { db } = await freshDatabase();
    await db.run("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    const keys = Array.from({ length: 40 }, (_, index) => index + 1);
    const inserted = await db.run(
      `INSERT INTO t (k, v) VALUES ${keys.map(() => "(?, ?)").join(", ")}`,
      keys.flatMap((k) => [k, `v${k}`]),
    );
    assert.deepEqual(inserted, { rows: [], changes: 40 });
    assert.deepEqual(await db.get("SELECT v, '?' AS q FROM t WHERE k = ?", [7]), { v: "v7", q: "?" });
    assert.equal(await db.get("SELECT v FROM t WHERE k = ?", [41]), undefined);
    assert.deepEqual(await db.all("SELECT k FROM t WHERE k > ? AND v <> ? ORDER BY k DESC", [37, "v39"]), [{ k: 40 }, { k: 38 }]);
    assert.deepEqual(await db.all("SELECT k FROM t WHERE k > ?", [100]), []);
  });

  it("returns RETURNING rows, and how many rows a write changed", async () => {
    const { db } = await freshDatabase();
    const now = Date.now();
    const first = await db.run("INSERT INTO settlements (kind, status, items, created_at, updated_at) VALUES (?, 'pending', ?, ?, ?) RETURNING id", [
      "settle",
      "[]",
      now,
      now,
    ]);
    const second = await db.run("INSERT INTO settlements (kind, status, items, created_at, updated_at) VALUES (?, 'pending', ?, ?, ?) RETURNING id", [
      "close",
      "[]",
      now,
      now,
    ]);
    assert.deepEqual(first, { rows: [{ id: 1 }], changes: 1 });
    assert.deepEqual(second, { rows: [{ id: 2 }], changes: 1 });
    assert.equal((await db.run("UPDATE settlements SET status = 'confirmed', updated_at = ? WHERE status = 'pending'", [now + 1])).changes, 2);
    assert.equal((await db.run("UPDATE settlements SET status = 'failed' WHERE status = 'pending'")).changes, 0);
    assert.deepEqual(await db.run("DELETE FROM settlements WHERE kind = ? RETURNING id, updated_at", ["close"]), {
      rows: [{ id: 2, updated_at: now + 1 }],
      changes: 1,
    });
  });

  it("reads BIGINT times as numbers, NUMERIC(78,0) amounts as exact strings, and binds bigints", async () => {
    const { db, url } = await freshDatabase();
    const max = 2n ** 256n - 1n;
    const expiry = 4_102_444_800_000; // ms, past 2^31 and 2^32
    await db.run("INSERT INTO chain_budgets (id, creator, available, per_session_limit, expiry, block) VALUES (?, ?, ?, ?, ?, ?)", [
      1,
      "0xabc",
      max,
      "1000000",
      expiry,
      BigInt(Number.MAX_SAFE_INTEGER),
    ]);
    const row = await db.get("SELECT available, per_session_limit, expiry, block FROM chain_budgets WHERE id = ?", [1n]);
    assert.deepEqual(row, { available: max.toString(), per_session_limit: "1000000", expiry, block: Number.MAX_SAFE_INTEGER });
    assert.equal(BigInt(row?.available as string), max);
    assert.deepEqual(await db.get("SELECT COUNT(*) AS n, SUM(available) AS total FROM chain_budgets"), { n: 1, total: max.toString() });
    await assert.rejects(db.get("SELECT ?::bigint AS n", [2n ** 53n + 1n]), {
      name: "RangeError",
      message: "PostgreSQL returned the BIGINT 9007199254740993, beyond what a JS number holds exactly (9007199254740991)",
    });
    // The parsers are the pool's: pg's global ones (another client in this process) are untouched.
    assert.deepEqual(await withClient(url, async (client) => (await client.query("SELECT 5::bigint AS n")).rows), [{ n: "5" }]);
  });

  it("commits a transaction's writes together, and a transaction that throws leaves nothing", async () => {
    const { db } = await freshDatabase();
    const insert = (tx: SqlRunner, name: string) => tx.run("INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?)", [name, "a", 1]);
    const result = await db.transaction(async (tx) => {
      await insert(tx, "indexer");
      await insert(tx, "settlement");
      return (await tx.get("SELECT COUNT(*) AS n FROM leases"))?.n;
    });
    assert.equal(result, 2);
    const failure = new Error("the call failed");
    await assert.rejects(
      db.transaction(async (tx) => {
        await insert(tx, "payouts");
        await tx.run("UPDATE leases SET owner = ?", ["b"]);
        throw failure;
      }),
      (error) => error === failure,
    );
    assert.deepEqual(await db.all("SELECT name, owner FROM leases ORDER BY name"), [
      { name: "indexer", owner: "a" },
      { name: "settlement", owner: "a" },
    ]);
    // a statement that fails rolls its transaction back too
    await assert.rejects(
      db.transaction(async (tx) => {
        await insert(tx, "payouts");
        await insert(tx, "indexer");
      }),
      { code: "23505" },
    );
    assert.equal((await db.get("SELECT COUNT(*) AS n FROM leases"))?.n, 2);
  });

  it("runs two transactions at once on two connections, each seeing only its own writes until it commits", async () => {
    const { db } = await freshDatabase();
    const insert = (tx: SqlRunner, name: string) => tx.run("INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?)", [name, "x", 1]);
    const firstInserted = gate();
    const secondDone = gate();
    const first = db.transaction(async (tx) => {
      const pid = (await tx.get("SELECT pg_backend_pid() AS pid"))?.pid;
      await insert(tx, "first");
      firstInserted.open();
      await secondDone.opened;
      return { pid, seen: await tx.all("SELECT name FROM leases ORDER BY name") };
    });
    await firstInserted.opened;
    const second = await db.transaction(async (tx) => {
      const pid = (await tx.get("SELECT pg_backend_pid() AS pid"))?.pid;
      await insert(tx, "second");
      return { pid, seen: await tx.all("SELECT name FROM leases ORDER BY name") };
    });
    assert.deepEqual(await db.all("SELECT name FROM leases"), [{ name: "second" }], "the first is not committed yet");
    secondDone.open();
    const firstResult = await first;
    assert.notEqual(firstResult.pid, second.pid);
    assert.deepEqual(second.seen, [{ name: "second" }]);
    assert.deepEqual(firstResult.seen, [{ name: "first" }, { name: "second" }]);
    assert.deepEqual(await db.all("SELECT name FROM leases ORDER BY name"), [{ name: "first" }, { name: "second" }]);
  });

  it("names its connections after the instance, and bounds statements and idle transactions", async () => {
    const { db } = await freshDatabase({ instance: "relayer-7" });
    assert.deepEqual(
      await db.get(
        "SELECT current_setting('application_name') AS name, current_setting('statement_timeout') AS statement, current_setting('idle_in_transaction_session_timeout') AS idle",
      ),
      { name: "agentmesh-relayer/relayer-7", statement: "30s", idle: "1min" },
    );
    await assert.rejects(openPostgres(server.url, { poolSize: 0 }), { name: "RangeError", message: "poolSize must be a positive integer, not 0" });
  });

  it("discards a connection that fails mid-transaction, and the next statement gets a new one", async () => {
    const { db } = await freshDatabase({ poolSize: 1 });
    const before = (await db.get("SELECT pg_backend_pid() AS pid"))?.pid;
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.run("INSERT INTO leases (name, owner, expires_at) VALUES ('indexer', 'a', 1)");
        await tx.run("SELECT pg_terminate_backend(pg_backend_pid())");
      }),
      { code: "57P01" },
    );
    const afterwards = (await db.get("SELECT pg_backend_pid() AS pid"))?.pid;
    assert.equal(typeof afterwards, "number");
    assert.notEqual(afterwards, before);
    assert.deepEqual(await db.all("SELECT name FROM leases"), []);
  });
});

describe("PostgreSQL migrations", () => {
  it("gives a new database the SQLite schema: the same tables, columns and indexes", async () => {
    const { db, url } = await freshDatabase();
    assert.equal(db.migrationsRun, POSTGRES_MIGRATIONS.length);
    const sqlite = openDatabase(":memory:");
    const sqliteTables = (sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map(
      (row) => row.name,
    );
    const sqliteColumns = Object.fromEntries(
      sqliteTables.map((table) => [table, (sqlite.prepare(`SELECT name FROM pragma_table_info(?) ORDER BY name`).all(table) as { name: string }[]).map((row) => row.name)]),
    );
    const sqliteIndexes = (sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name").all() as { name: string }[]).map(
      (row) => row.name,
    );
    sqlite.close();

    const { tables, versions } = await snapshot(url);
    assert.deepEqual(versions, [{ version: POSTGRES_MIGRATIONS.length }]);
    assert.deepEqual(
      tables.filter((table) => table !== "schema_version"),
      sqliteTables,
    );
    const columns = await db.all("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, column_name");
    for (const table of sqliteTables) {
      assert.deepEqual(
        columns.filter((row) => row.table_name === table).map((row) => row.column_name),
        sqliteColumns[table],
        `the columns of ${table}`,
      );
    }
    // the indexes made by CREATE INDEX (not those of primary keys and unique constraints)
    const indexes = await db.all(
      `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()
         AND indexname NOT IN (SELECT conname FROM pg_constraint) ORDER BY indexname`,
    );
    assert.deepEqual(
      indexes.map((row) => row.indexname),
      sqliteIndexes,
    );
    const due = (indexes.find((row) => row.indexname === "sessions_due")?.indexdef as string).replace(/\s+/g, " ");
    assert.match(due, /\(\( CASE WHEN \(COALESCE\(settle_retry_at, \(0\)::bigint\) > voucher_signed_at\) THEN settle_retry_at ELSE voucher_signed_at END/);
    assert.match(due, /WHERE \(\(status = ANY \(ARRAY\['open'::text, 'closing'::text\]\)\) AND \(unsettled_reason IS NULL\) AND \(settling_id IS NULL\) AND \(signed_sequence > settled_sequence\)\)/);
  });

  it("orders the due sessions by SESSIONS_DUE_AT through the sessions_due index", async () => {
    const { db } = await freshDatabase();
    // with the planner told to avoid other plans: were the expression not the index's, it would still sort
    const plan = await db.transaction(async (tx) => {
      await tx.run("SET LOCAL enable_seqscan = off");
      await tx.run("SET LOCAL enable_sort = off");
      return tx.all(
        `EXPLAIN (COSTS OFF) SELECT id FROM sessions
           WHERE status IN ('open', 'closing') AND unsettled_reason IS NULL AND settling_id IS NULL AND signed_sequence > settled_sequence
           ORDER BY ${SESSIONS_DUE_AT} LIMIT ?`,
        [10],
      );
    });
    const lines = plan.map((row) => row["QUERY PLAN"]).join("\n");
    assert.match(lines, /Index Scan using sessions_due on sessions/);
    assert.doesNotMatch(lines, /Sort/);
  });

  it("reopening a current database runs no migration", async () => {
    const { url } = await freshDatabase();
    const again = await open(url);
    assert.equal(again.migrationsRun, 0);
    assert.deepEqual((await snapshot(url)).versions, [{ version: POSTGRES_MIGRATIONS.length }]);
    await again.close();
    await again.close(); // closing twice is closing once (afterEach closes it again)
  });

  it("two instances opening an empty database at once: one migrates, the other finds it current", async () => {
    const url = await server.createDatabase();
    const [first, second] = await Promise.all([open(url, { instance: "one" }), open(url, { instance: "two" })]);
    assert.deepEqual([first.migrationsRun, second.migrationsRun].sort(), [0, POSTGRES_MIGRATIONS.length]);
    assert.deepEqual((await snapshot(url)).versions, [{ version: POSTGRES_MIGRATIONS.length }]);
    assert.equal((await first.get("SELECT COUNT(*) AS n FROM sessions"))?.n, 0);
    assert.equal((await second.get("SELECT COUNT(*) AS n FROM sessions"))?.n, 0);
  });

  it("an instance waits for the migration lock another holds, and migrates nothing meanwhile", async () => {
    const url = await server.createDatabase();
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY.toString()]);
      const opening = open(url, { instance: "waiter" });
      let waiting = false;
      for (let attempt = 0; attempt < 400 && !waiting; attempt++) {
        const { rows } = await holder.query(
          "SELECT 1 FROM pg_stat_activity WHERE application_name = 'agentmesh-relayer/waiter' AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
        );
        waiting = rows.length === 1;
        if (!waiting) await new Promise((resolve) => setTimeout(resolve, 25));
      }
      assert.equal(waiting, true, "the opening instance waits on the advisory lock");
      assert.deepEqual((await snapshot(url)).tables, [], "nothing is migrated while another holds the lock");
      await holder.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY.toString()]);
      assert.equal((await opening).migrationsRun, POSTGRES_MIGRATIONS.length);
    } finally {
      await holder.end();
    }
  });
});

describe("PostgreSQL bad configuration: a clear error, nothing changed, no password shown", () => {
  /** Asserts that `error` is the open error of `failure` with `message`, and that no secret appears anywhere in it. */
  function check(failure: string, message: RegExp, secrets: string[]) {
    return (error: unknown) => {
      assert.ok(error instanceof PostgresOpenError, inspect(error));
      assert.equal(error.failure, failure);
      assert.match(error.message, message);
      const everything = inspect(error, { depth: 8, showHidden: true });
      for (const secret of secrets) assert.ok(!everything.includes(secret), `the error shows a secret: ${everything}`);
      return true;
    };
  }

  it("an unreachable server", async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    await assert.rejects(
      openPostgres(`postgres://agentmesh:${server.password}@127.0.0.1:${port}/postgres`),
      check("unreachable", new RegExp(`^cannot reach PostgreSQL at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`), [server.password]),
    );
  });

  it("a host that does not resolve", async () => {
    await assert.rejects(
      openPostgres(`postgres://agentmesh:${server.password}@no-such-host.invalid:5432/postgres`),
      check("unreachable", /^cannot reach PostgreSQL at no-such-host\.invalid:5432: .*ENOTFOUND/, [server.password]),
    );
  });

  it("a wrong password, or none", async () => {
    const url = await server.createDatabase();
    const wrong = "not-the-p%40ssword-7f3a";
    await assert.rejects(
      openPostgres(url.replace(server.password, wrong)),
      check("credentials", /^PostgreSQL refused the credentials of user "agentmesh" at 127\.0\.0\.1:\d+: password authentication failed/, [
        wrong,
        decodeURIComponent(wrong),
        server.password,
      ]),
    );
    await assert.rejects(
      openPostgres(url.replace(`:${server.password}@`, "@")),
      check("credentials", /^PostgreSQL refused the credentials of user "agentmesh" at 127\.0\.0\.1:\d+: /, [server.password]),
    );
    assert.deepEqual((await snapshot(url)).tables, [], "nothing migrated");
  });

  it("a database that does not exist", async () => {
    await assert.rejects(
      openPostgres(server.adminUrl("no_such_database")),
      check("database", /^PostgreSQL at 127\.0\.0\.1:\d+ has no database "no_such_database": /, [server.password]),
    );
  });

  it("a URL that is not a PostgreSQL URL", async () => {
    await assert.rejects(openPostgres(`postgres://agentmesh:${server.password}@127.0.0.1:port/x`), check("url", /is not a URL/, [server.password]));
    await assert.rejects(openPostgres(`postgres://agentmesh:${server.password}%zz@127.0.0.1/x`), check("url", /malformed %-escape/, [server.password]));
    await assert.rejects(openPostgres(`mysql://agentmesh:${server.password}@127.0.0.1/x`), check("url", /must start with postgres:\/\//, [server.password]));
  });

  it("a database from a newer relayer, which is left as it was", async () => {
    const { url, db } = await freshDatabase();
    await db.run("INSERT INTO leases (name, owner, expires_at) VALUES ('indexer', 'a', 1)");
    await db.run("UPDATE schema_version SET version = ?", [POSTGRES_MIGRATIONS.length + 1]);
    const before = await snapshot(url);
    await assert.rejects(
      openPostgres(url),
      check(
        "newer-schema",
        new RegExp(`^PostgreSQL database "[^"]+" at 127\\.0\\.0\\.1:\\d+ was written by a newer relayer \\(schema ${POSTGRES_MIGRATIONS.length + 1}; this one knows ${POSTGRES_MIGRATIONS.length}\\)$`),
        [server.password],
      ),
    );
    assert.deepEqual(await snapshot(url), before);
    assert.deepEqual(await db.all("SELECT name, owner FROM leases"), [{ name: "indexer", owner: "a" }]);

    // a newer database whose tables this relayer does not know: none are created
    const bare = await server.createDatabase();
    await withClient(bare, (client) => client.query("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (99)"));
    await assert.rejects(openPostgres(bare), check("newer-schema", /\(schema 99; this one knows \d+\)$/, [server.password]));
    assert.deepEqual(await snapshot(bare), { tables: ["schema_version"], versions: [{ version: 99 }] });
  });
});
