import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { appendFile, chown, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";

/**
 * A real PostgreSQL server for tests (Debian's `postgresql` package): a fresh cluster in a
 * temporary directory, listening on 127.0.0.1 on a spare port, with password (SCRAM) login for one
 * superuser; stopped and its directory removed by `stop`.
 */
export interface PostgresServer {
  /** The URL of the server's `postgres` database, with the user and password. */
  readonly url: string;
  /** The password of the server's user (tests check that no error shows it). */
  readonly password: string;
  /** The URL of `database` (default `postgres`) on this server. */
  adminUrl(database?: string): string;
  /** Creates an empty database (a fresh unique name unless given) and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Stops the server (fast shutdown) and removes its directory. */
  stop(): Promise<void>;
}

const run = promisify(execFile);
const USER = "agentmesh";
const INSTALL_ROOT = "/usr/lib/postgresql";

/** The `bin` directory of the highest PostgreSQL version installed. */
function postgresBin(): string {
  const versions = existsSync(INSTALL_ROOT)
    ? readdirSync(INSTALL_ROOT)
        .filter((version) => existsSync(path.join(INSTALL_ROOT, version, "bin", "initdb")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error(`PostgreSQL is not installed (no ${INSTALL_ROOT}/<version>/bin/initdb): apt-get install -y postgresql`);
  }
  return path.join(INSTALL_ROOT, versions[0], "bin");
}

/** A port free on 127.0.0.1 now (the kernel's pick for port 0). */
async function sparePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no TCP port was bound");
  return address.port;
}

/** The uid and gid to run the server as: the `postgres` user when this is root (PostgreSQL refuses root), else ours. */
async function serverUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const [uid, gid] = await Promise.all([run("id", ["-u", "postgres"]), run("id", ["-g", "postgres"])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

let databases = 0;

/** Starts a fresh PostgreSQL server; see {@link PostgresServer}. */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBin();
  const owner = await serverUser();
  const directory = await mkdtemp(path.join(tmpdir(), "agentmesh-pg-"));
  const dataDir = path.join(directory, "data");
  const logFile = path.join(directory, "server.log");
  const password = randomBytes(18).toString("base64url");
  const port = await sparePort();
  const asServer = (command: string, args: string[]) => run(path.join(bin, command), args, owner ?? {});
  let started = false;
  try {
    const pwfile = path.join(directory, "pwfile");
    await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    if (owner !== undefined) await Promise.all([directory, pwfile].map((file) => chown(file, owner.uid, owner.gid)));
    await asServer("initdb", ["-D", dataDir, "-U", USER, "--auth=scram-sha-256", `--pwfile=${pwfile}`, "--no-instructions", "-E", "UTF8", "--locale=C"]);
    await rm(pwfile);
    await appendFile(
      path.join(dataDir, "postgresql.conf"),
      `\nlisten_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = '${directory}'\nmax_connections = 200\n`,
    );
    await asServer("pg_ctl", ["-D", dataDir, "-l", logFile, "-w", "-t", "60", "start"]);
    started = true;
  } catch (error) {
    const serverLog = await readFile(logFile, "utf8").catch(() => "");
    if (started) await asServer("pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "stop"]).catch(() => {});
    await rm(directory, { recursive: true, force: true });
    throw new Error(`PostgreSQL did not start: ${(error as Error).message}${serverLog === "" ? "" : `\n${serverLog}`}`, { cause: error });
  }

  const adminUrl = (database = "postgres") => `postgres://${USER}:${password}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  let stopped: Promise<void> | undefined;
  return {
    url: adminUrl(),
    password,
    adminUrl,
    async createDatabase(name = `test_${process.pid}_${++databases}`) {
      const client = new pg.Client({ connectionString: adminUrl() });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      } finally {
        await client.end();
      }
      return adminUrl(name);
    },
    stop() {
      stopped ??= (async () => {
        try {
          await asServer("pg_ctl", ["-D", dataDir, "-m", "fast", "-w", "stop"]);
        } finally {
          await rm(directory, { recursive: true, force: true });
        }
      })();
      return stopped;
    },
  };
}
