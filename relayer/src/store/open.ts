import { startCheckpointer } from "./database.ts";
import { openPostgres } from "./postgres.ts";
import { openSqlite } from "./sqlite.ts";
import type { SqlDatabase } from "./sql.ts";

/** The relayer's store as it runs: its database, and what else runs beside it until `close`. */
export interface OpenStore {
  database: SqlDatabase;
  /** Closes the database and stops what runs beside it. */
  close(): Promise<void>;
}

/** Whether `location` names a PostgreSQL server (`postgres://…` or `postgresql://…`) rather than a SQLite file. */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/**
 * Opens the store at `location`: a SQLite file (or ":memory:"), with its checkpointer, for one
 * instance; or a PostgreSQL URL, which several instances share. Either is migrated first.
 */
export async function openStore(location: string, options: { instance?: string; poolSize?: number } = {}): Promise<OpenStore> {
  if (isPostgresUrl(location)) {
    const database = await openPostgres(location, options);
    return { database, close: () => database.close() };
  }
  const database = openSqlite(location);
  const checkpointer = startCheckpointer(location);
  return {
    database,
    async close() {
      await database.close();
      await checkpointer.stop();
    },
  };
}
