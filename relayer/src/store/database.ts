import { mkdirSync } from "node:fs";
import path from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { Worker } from "node:worker_threads";
import { log } from "../log.ts";
import { SESSIONS_DUE_AT } from "./postgres-schema.ts";

/**
 * The relayer's SQLite database (node:sqlite, WAL). Migrations are an append-only list; the
 * database's `user_version` records how many have run, so opening an older file upgrades it.
 */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE agents (
     api_key_hash TEXT PRIMARY KEY,
     agent TEXT NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE TABLE sessions (
     id TEXT PRIMARY KEY,
     agent TEXT NOT NULL,
     provider_id INTEGER NOT NULL,
     model_id INTEGER NOT NULL,
     model TEXT NOT NULL,
     terms TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
     sequence INTEGER NOT NULL DEFAULT 0,
     cumulative_cost TEXT NOT NULL DEFAULT '0',
     request_count INTEGER NOT NULL DEFAULT 0,
     input_tokens INTEGER NOT NULL DEFAULT 0,
     output_tokens INTEGER NOT NULL DEFAULT 0,
     latency_ms INTEGER NOT NULL DEFAULT 0,
     receipt_head TEXT NOT NULL,
     signed_sequence INTEGER NOT NULL DEFAULT 0,
     settled_sequence INTEGER NOT NULL DEFAULT 0,
     open_tx TEXT NOT NULL,
     close_tx TEXT,
     created_at INTEGER NOT NULL
   );
   CREATE INDEX sessions_by_agent ON sessions (agent, model, status);
   CREATE TABLE receipts (
     hash TEXT PRIMARY KEY,
     session_id TEXT NOT NULL REFERENCES sessions (id),
     sequence INTEGER NOT NULL,
     body TEXT NOT NULL,
     provider_signature TEXT NOT NULL,
     agent_signature TEXT,
     signed_at INTEGER,
     token_mismatch INTEGER NOT NULL DEFAULT 0,
     settlement_tx TEXT,
     created_at INTEGER NOT NULL,
     UNIQUE (session_id, sequence)
   );
   CREATE TABLE settlements (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     kind TEXT NOT NULL CHECK (kind IN ('settle', 'close')),
     tx_hash TEXT,
     nonce INTEGER,
     status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed')),
     items TEXT NOT NULL,
     error TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );`,
  // The chain indexer's view of every provider, budget and session, whoever opened them.
  `CREATE TABLE indexer_state (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     last_block INTEGER NOT NULL
   );
   CREATE TABLE chain_providers (
     id INTEGER PRIMARY KEY,
     data TEXT NOT NULL,
     block INTEGER NOT NULL
   );
   CREATE TABLE chain_budgets (
     id INTEGER PRIMARY KEY,
     creator TEXT NOT NULL,
     available TEXT NOT NULL,
     per_session_limit TEXT NOT NULL,
     expiry INTEGER NOT NULL,
     block INTEGER NOT NULL
   );
   CREATE TABLE chain_sessions (
     id TEXT PRIMARY KEY,
     budget_id INTEGER NOT NULL,
     agent TEXT NOT NULL,
     provider_id INTEGER NOT NULL,
     max_spend TEXT NOT NULL,
     settled TEXT NOT NULL DEFAULT '0',
     sequence INTEGER NOT NULL DEFAULT 0,
     claim_end INTEGER NOT NULL,
     finalized INTEGER NOT NULL DEFAULT 0,
     block INTEGER NOT NULL
   );
   CREATE INDEX chain_sessions_by_budget ON chain_sessions (budget_id);`,
  // Serving follows the chain (issue 12). A session of this relayer is 'closing' once a close is
  // requested on-chain and 'closed' once finalized (by a cooperative close here, or on-chain by
  // anyone); final_settled/final_sequence are what the escrow holds then, and unsettled_reason says
  // why the agent's vouchers above final_sequence (or settled_sequence) can never settle. The table
  // is rebuilt to widen its status check (foreign keys are off while migrations run). The chain
  // index learns which sessions have a close request, and starts over from the deployment's start
  // block so that sessions closed before this migration are known too (its writes are idempotent).
  `CREATE TABLE sessions_new (
     id TEXT PRIMARY KEY,
     agent TEXT NOT NULL,
     provider_id INTEGER NOT NULL,
     model_id INTEGER NOT NULL,
     model TEXT NOT NULL,
     terms TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('open', 'closing', 'closed')),
     sequence INTEGER NOT NULL DEFAULT 0,
     cumulative_cost TEXT NOT NULL DEFAULT '0',
     request_count INTEGER NOT NULL DEFAULT 0,
     input_tokens INTEGER NOT NULL DEFAULT 0,
     output_tokens INTEGER NOT NULL DEFAULT 0,
     latency_ms INTEGER NOT NULL DEFAULT 0,
     receipt_head TEXT NOT NULL,
     signed_sequence INTEGER NOT NULL DEFAULT 0,
     settled_sequence INTEGER NOT NULL DEFAULT 0,
     open_tx TEXT NOT NULL,
     close_tx TEXT,
     created_at INTEGER NOT NULL,
     final_settled TEXT,
     final_sequence INTEGER,
     unsettled_reason TEXT
   );
   INSERT INTO sessions_new (id, agent, provider_id, model_id, model, terms, status, sequence, cumulative_cost, request_count,
       input_tokens, output_tokens, latency_ms, receipt_head, signed_sequence, settled_sequence, open_tx, close_tx, created_at)
     SELECT id, agent, provider_id, model_id, model, terms, status, sequence, cumulative_cost, request_count,
       input_tokens, output_tokens, latency_ms, receipt_head, signed_sequence, settled_sequence, open_tx, close_tx, created_at
     FROM sessions;
   DROP TABLE sessions;
   ALTER TABLE sessions_new RENAME TO sessions;
   CREATE INDEX sessions_by_agent ON sessions (agent, model, status);
   ALTER TABLE chain_sessions ADD COLUMN close_requested_by TEXT;
   DELETE FROM indexer_state;`,
  // Finding the sessions due for settlement reads only them (issue 12 item 4): a session keeps when
  // its latest voucher was signed and which pending settlement holds it, and a partial index holds
  // exactly the due ones, oldest voucher first. The query then reads at most its limit of rows,
  // however long the history, instead of joining every receipt and every settlement's items.
  `ALTER TABLE sessions ADD COLUMN voucher_signed_at INTEGER;
   ALTER TABLE sessions ADD COLUMN settling_id INTEGER;
   UPDATE sessions SET voucher_signed_at =
     (SELECT r.signed_at FROM receipts r WHERE r.session_id = sessions.id AND r.sequence = sessions.signed_sequence);
   UPDATE sessions SET settling_id =
     (SELECT MAX(t.id) FROM settlements t, json_each(t.items) i
       WHERE t.status = 'pending' AND json_extract(i.value, '$.sessionId') = sessions.id);
   CREATE INDEX sessions_due ON sessions (voucher_signed_at)
     WHERE status IN ('open', 'closing') AND unsettled_reason IS NULL AND settling_id IS NULL AND signed_sequence > settled_sequence;`,
  // x402: one run per payment (issue 12 item 6). Each EIP-3009 authorization (payer, nonce) the
  // relayer takes is locked by its primary key and moves reserved -> settling -> settled | failed;
  // a call's answer is kept with it, so a retry of the same payment gets the same answer and never a
  // second run. The payout worker (item 12) keeps a cursor over the marketplace's logs and the
  // AgentTermsSet / AgentPaid logs it still needs (raw, decoded when read), instead of rescanning
  // from the deployment block on every pass.
  `CREATE TABLE x402_payments (
     payer TEXT NOT NULL,
     nonce TEXT NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('call', 'settle')),
     agent_id INTEGER NOT NULL,
     authorization_hash TEXT NOT NULL,
     request_hash TEXT,
     state TEXT NOT NULL CHECK (state IN ('reserved', 'settling', 'settled', 'failed')),
     payload TEXT NOT NULL,
     response TEXT,
     tx_hash TEXT,
     error TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (payer, nonce)
   );
   CREATE INDEX x402_payments_unresolved ON x402_payments (updated_at) WHERE state IN ('reserved', 'settling');
   CREATE INDEX x402_payments_answers ON x402_payments (updated_at) WHERE response IS NOT NULL;
   CREATE TABLE payout_cursor (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     last_block INTEGER NOT NULL
   );
   CREATE TABLE payout_logs (
     block INTEGER NOT NULL,
     log_index INTEGER NOT NULL,
     agent_id INTEGER NOT NULL,
     event TEXT NOT NULL CHECK (event IN ('AgentTermsSet', 'AgentPaid')),
     topics TEXT NOT NULL,
     data TEXT NOT NULL,
     PRIMARY KEY (block, log_index)
   );
   CREATE INDEX payout_logs_by_agent ON payout_logs (agent_id, event, block, log_index);`,
  // keys: an API key opens one session (issue 12 item 7), not all of its agent's, and can be
  // revoked. A key issued before this migration is kept for the session it was issued with (opened
  // in the same transaction: the agent's session created nearest to it); agent-wide keys are gone.
  `CREATE TABLE api_keys (
     key_hash TEXT PRIMARY KEY,
     session_id TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     revoked_at INTEGER
   );
   INSERT INTO api_keys (key_hash, session_id, created_at)
     SELECT key_hash, session_id, created_at FROM (
       SELECT a.api_key_hash AS key_hash, s.id AS session_id, a.created_at AS created_at,
         ROW_NUMBER() OVER (PARTITION BY a.api_key_hash ORDER BY abs(s.created_at - a.created_at), s.created_at) AS nearest
       FROM agents a JOIN sessions s ON s.agent = a.agent)
     WHERE nearest = 1;
   DROP TABLE agents;`,
  // ops: reorg detection (issue 12 §12). The indexer keeps the hash of the last block of each range
  // it applied (a bounded window), and the block of each session's close request, so that it can
  // roll the index back to the last block both chains share and index the new chain from there.
  // Close requests indexed before this migration take their row's block (at or after the request).
  `CREATE TABLE chain_blocks (
     number INTEGER PRIMARY KEY,
     hash TEXT NOT NULL
   );
   ALTER TABLE chain_sessions ADD COLUMN close_requested_block INTEGER;
   UPDATE chain_sessions SET close_requested_block = block WHERE close_requested_by IS NOT NULL;`,
  // http: the response of each billed chat call sent with an Idempotency-Key, by session and key, so
  // that a retry after a lost response gets it again instead of a second call (kept 24 hours).
  `CREATE TABLE idempotent_calls (
     session_id TEXT NOT NULL,
     key TEXT NOT NULL,
     request_hash TEXT NOT NULL,
     receipt_hash TEXT NOT NULL,
     response TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (session_id, key)
   );
   CREATE INDEX idempotent_calls_by_age ON idempotent_calls (created_at);`,
  // tx: the transaction manager (issue 12 item 3). Every transaction the gas account signs is
  // recorded with its nonce and signed bytes before it is broadcast; a settlement points at its
  // transaction. A session whose settlement failed is not due again before settle_retry_at: the due
  // index orders by the later of that and its voucher's time, so sessions backing off stay out of
  // the query instead of filling its limit (no head-of-line blocking). An open is recorded before it
  // is sent (issue 12 item 12), so one that mines while the relayer is down is known after restart.
  `CREATE TABLE transactions (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     purpose TEXT NOT NULL,
     nonce INTEGER NOT NULL,
     request TEXT NOT NULL,
     attempts TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('pending', 'mined', 'confirmed', 'reverted', 'replaced')),
     mined_hash TEXT,
     mined_block INTEGER,
     mined_block_hash TEXT,
     error TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE INDEX transactions_in_flight ON transactions (nonce) WHERE status IN ('pending', 'mined');
   ALTER TABLE settlements ADD COLUMN tx_id INTEGER;
   ALTER TABLE sessions ADD COLUMN settle_retry_at INTEGER;
   DROP INDEX sessions_due;
   CREATE INDEX sessions_due ON sessions (MAX(voucher_signed_at, COALESCE(settle_retry_at, 0)))
     WHERE status IN ('open', 'closing') AND unsettled_reason IS NULL AND settling_id IS NULL AND signed_sequence > settled_sequence;
   CREATE TABLE session_opens (
     session_id TEXT PRIMARY KEY,
     open_request TEXT NOT NULL,
     tx_id INTEGER,
     status TEXT NOT NULL CHECK (status IN ('pending', 'opened', 'failed')),
     error TEXT,
     created_at INTEGER NOT NULL
   );`,
  // Readiness (issue 13): /readyz is ready only while the store takes writes; a periodic check
  // writes this one row.
  `CREATE TABLE store_probe (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     written_at INTEGER NOT NULL
   );`,
  // Scale-out (issue 14): what several relayer instances on one database share.
  // - A call holds its session (serving_token, until serving_until): one call per session at a
  //   time across instances, and only the holder may record the next state (a fencing token).
  // - Each instance signs with its own gas account: a transaction row names its sender. Rows from
  //   before this migration are the one gas account's (see TxManager.start).
  // - Leases: one owner at a time for fleet-wide work (the indexer, settlement, payouts).
  // - Fixed-window request counters shared by every instance (provider, key and IP rate limits).
  // - The chain head the indexer saw, so that instances that do not index keep the chain's clock.
  // - Idempotency keys in flight, so that a retry sent to another instance is refused too.
  // - A settlement names the instance (gas account) that sends it, so that another can take over
  //   the ones a stopped instance left.
  // - The due index orders by a CASE both backends index alike (SESSIONS_DUE_AT).
  // - Reads that ran over a table's whole history get an index: pending settlements and opens, a
  //   sender's highest nonce, expired idempotency claims, what a reorg rolls back.
  `ALTER TABLE sessions ADD COLUMN serving_token TEXT;
   ALTER TABLE settlements ADD COLUMN owner TEXT;
   DROP INDEX sessions_due;
   CREATE INDEX sessions_due ON sessions (${SESSIONS_DUE_AT})
     WHERE status IN ('open', 'closing') AND unsettled_reason IS NULL AND settling_id IS NULL AND signed_sequence > settled_sequence;
   ALTER TABLE sessions ADD COLUMN serving_until INTEGER;
   ALTER TABLE transactions ADD COLUMN sender TEXT;
   CREATE TABLE leases (
     name TEXT PRIMARY KEY,
     owner TEXT NOT NULL,
     expires_at INTEGER NOT NULL
   );
   CREATE TABLE rate_windows (
     scope TEXT NOT NULL,
     window_start INTEGER NOT NULL,
     count INTEGER NOT NULL,
     PRIMARY KEY (scope, window_start)
   );
   CREATE INDEX rate_windows_by_age ON rate_windows (window_start);
   ALTER TABLE indexer_state ADD COLUMN head_number INTEGER;
   ALTER TABLE indexer_state ADD COLUMN head_timestamp INTEGER;
   ALTER TABLE indexer_state ADD COLUMN head_seen_at INTEGER;
   CREATE TABLE idempotency_claims (
     session_id TEXT NOT NULL,
     key TEXT NOT NULL,
     expires_at INTEGER NOT NULL,
     PRIMARY KEY (session_id, key)
   );
   CREATE INDEX settlements_pending ON settlements (id) WHERE status = 'pending';
   CREATE INDEX session_opens_pending ON session_opens (created_at) WHERE status = 'pending';
   CREATE INDEX transactions_by_sender ON transactions (sender, nonce);
   CREATE INDEX idempotency_claims_by_expiry ON idempotency_claims (expires_at);
   CREATE INDEX chain_sessions_by_block ON chain_sessions (block);
   CREATE INDEX chain_budgets_by_block ON chain_budgets (block);`,
];

/**
 * Opens (creating and migrating as needed) the database at `file`; ":memory:" for a throwaway one.
 * The connection never checkpoints by itself: a checkpoint `fsync`s, which would stall the event
 * loop for tens of milliseconds every few hundred calls. Run {@link startCheckpointer} beside it.
 */
export function openDatabase(file: string): DatabaseSync {
  if (file !== ":memory:") mkdirSync(path.dirname(file), { recursive: true });
  const db = new DatabaseSync(file);
  db.exec(
    // synchronous = FULL: a commit is on disk (the log fsynced) before COMMIT returns, so a receipt
    // and voucher the client holds survive an OS crash or power loss, not only a process crash
    // (issue 12 item 9: after a loss the next call would sign another state at the same sequence,
    // a slashable double sign). Group commit pays one fsync per event-loop turn, not per call.
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;" +
      " PRAGMA foreign_keys = OFF; PRAGMA busy_timeout = 5000;",
  );
  const { user_version: version } = db.prepare("PRAGMA user_version").get() as { user_version: number };
  if (version > MIGRATIONS.length) {
    throw new Error(`${file} was written by a newer relayer (schema ${version}; this one knows ${MIGRATIONS.length})`);
  }
  // Foreign keys are off while migrations run, so that one may rebuild a referenced table (SQLite's
  // documented procedure); each checks them before it commits.
  for (let index = version; index < MIGRATIONS.length; index++) {
    db.exec("BEGIN");
    try {
      db.exec(MIGRATIONS[index]);
      const violations = db.prepare("PRAGMA foreign_key_check").all();
      if (violations.length > 0) throw new Error(`migration ${index + 1} broke ${violations.length} foreign keys`);
      db.exec(`PRAGMA user_version = ${index + 1}`);
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  }
  db.exec("PRAGMA foreign_keys = ON");
  return db;
}

/** A running checkpointer; `stop` runs a last checkpoint and ends its thread. */
export interface Checkpointer {
  stop(): Promise<void>;
}

/** How often the checkpointer runs: about every `targetFrames` new log frames, within the bounds. */
export interface CheckpointPacing {
  /** The shortest wait between two checkpoints (default 20 ms). */
  minIntervalMs: number;
  /** The longest wait, when little or nothing is written (default 1 s). */
  maxIntervalMs: number;
  /** How many new log frames (pages) one checkpoint should find (default 128, 512 KiB). */
  targetFrames: number;
  /**
   * The most frames the log may hold before the checkpointer starts it over (default 4096, 16 MiB):
   * under steady writes a PASSIVE checkpoint never catches up with the last commit, so the log would
   * only grow. That checkpoint (RESTART) makes the next commit wait while it finishes.
   */
  maxLogFrames: number;
}

export const DEFAULT_CHECKPOINT_PACING: CheckpointPacing = { minIntervalMs: 20, maxIntervalMs: 1000, targetFrames: 128, maxLogFrames: 4096 };

/**
 * How long to wait before the next checkpoint, when the last one found `newFrames` frames written
 * in the `elapsedMs` since the one before: long enough for about `targetFrames` more at that rate.
 */
export function nextCheckpointDelay(newFrames: number, elapsedMs: number, pacing: CheckpointPacing = DEFAULT_CHECKPOINT_PACING): number {
  if (newFrames <= 0) return pacing.maxIntervalMs;
  const delay = (pacing.targetFrames * Math.max(elapsedMs, 1)) / newFrames;
  return Math.min(pacing.maxIntervalMs, Math.max(pacing.minIntervalMs, delay));
}

/**
 * Checkpoints the write-ahead log of the database at `file` from a worker thread, so the copying
 * and `fsync`s that move committed pages into the database file never block the relayer's event
 * loop. (Commits stay durable: with `synchronous = FULL` a committed transaction is in the log, and
 * the log on disk, before `COMMIT` returns.) Under load, checkpoints come every
 * `minIntervalMs`: each stays small, so that one may finish between two commits, and the next
 * commit then starts the log over; under steady writes none does, and a RESTART checkpoint starts
 * it over once it passes `maxLogFrames`. With fewer writes checkpoints come less often (see
 * {@link nextCheckpointDelay}), down to one per `maxIntervalMs`, since each one `fsync`s however
 * little it copies. A ":memory:" database has no log: nothing is started.
 */
export function startCheckpointer(file: string, pacing: CheckpointPacing = DEFAULT_CHECKPOINT_PACING): Checkpointer {
  if (file === ":memory:") return { stop: async () => {} };
  const worker = new Worker(new URL("./checkpoint-worker.ts", import.meta.url), { workerData: { file, pacing } });
  worker.unref(); // never what keeps the process alive
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  worker.on("error", (error) => log.error({ file, err: error }, "checkpointer failed"));
  return {
    async stop() {
      worker.ref(); // wait for its last checkpoint
      worker.postMessage("stop");
      await exited;
    },
  };
}

/**
 * A statement cache for one connection: `statement(sql)` compiles each SQL text once. Compiling
 * costs more than running the small statements the relayer issues on every call.
 */
export function statementCache(db: DatabaseSync): (sql: string) => StatementSync {
  const statements = new Map<string, StatementSync>();
  return (sql) => {
    let statement = statements.get(sql);
    if (statement === undefined) statements.set(sql, (statement = db.prepare(sql)));
    return statement;
  };
}
