/**
 * The store the relayer's tests run on. By default SQLite in memory; with
 * `AGENTMESH_TEST_DATABASE=postgres` (`npm run test:relayer:postgres`), a fresh database per call on
 * a real PostgreSQL server this test process starts on first use and stops when its tests end. The
 * same tests thus run on both backends.
 */
import { after } from "node:test";
import { openPostgres } from "../src/store/postgres.ts";
import type { SqlDatabase } from "../src/store/sql.ts";
import { openSqlite } from "../src/store/sqlite.ts";
import { startPostgres, type PostgresServer } from "./postgres-server.ts";

const backend = process.env.AGENTMESH_TEST_DATABASE ?? "sqlite";
if (backend !== "sqlite" && backend !== "postgres") throw new Error(`AGENTMESH_TEST_DATABASE must be sqlite or postgres, not ${backend}`);

let server: Promise<PostgresServer> | undefined;
// Registered as the test file loads (a hook registered inside a test would run when that test ends).
if (backend === "postgres") after(async () => (await server)?.stop());

/** A fresh, migrated, empty store on the backend under test. */
export async function openTestDatabase(): Promise<SqlDatabase> {
  if (backend === "sqlite") return openSqlite(":memory:");
  server ??= startPostgres();
  return openPostgres(await (await server).createDatabase());
}
