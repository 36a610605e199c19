/**
 * The relayer's PostgreSQL schema: an append-only list of migrations, like the SQLite
 * `MIGRATIONS` in database.ts. The table `schema_version` (one row) records how many have run;
 * {@link openPostgres} runs the rest at open, each in its own transaction, under an advisory lock.
 *
 * Migration 1 is the whole schema the SQLite migrations build (up to and including "Scale-out
 * (issue 14)"), with the same table, column and index names, so that the store's queries run
 * unchanged on both (a test compares the two). Translated for PostgreSQL:
 * - times in ms, block numbers, ids and counters that can pass 2^31 are `BIGINT` (read back as JS
 *   numbers, see postgres.ts);
 * - amounts are `NUMERIC(78,0)` (any uint256, exact; read back as decimal strings);
 * - settlement and transaction ids are identity columns (never reused, like AUTOINCREMENT);
 * - JSON bodies stay `TEXT` (the store writes and reads JSON text), and flags stay `INTEGER` 0/1
 *   (the store's SQL compares them to 0 and 1);
 * - SQLite's two-argument `MAX` in the `sessions_due` index is the `CASE` of {@link SESSIONS_DUE_AT}.
 *
 * A later change appends one migration here and one to the SQLite list.
 *
 * @see openPostgres
 */

/**
 * When a session is due for settlement: the later of its latest voucher's time and its retry time
 * (`MAX(voucher_signed_at, COALESCE(settle_retry_at, 0))` on SQLite). The `sessions_due` index is
 * on exactly this expression: a query that orders by it (with the index's WHERE clause) must write
 * it exactly so for PostgreSQL to use the index.
 */
export const SESSIONS_DUE_AT = "CASE WHEN COALESCE(settle_retry_at, 0) > voucher_signed_at THEN settle_retry_at ELSE voucher_signed_at END";

/** The PostgreSQL migrations; `schema_version` holds how many have run. */
export const POSTGRES_MIGRATIONS: readonly string[] = [
  // The schema of SQLite migrations 1-12 (issue 14), in one.
  `CREATE TABLE sessions (
     id TEXT PRIMARY KEY,
     agent TEXT NOT NULL,
     provider_id BIGINT NOT NULL,
     model_id BIGINT NOT NULL,
     model TEXT NOT NULL,
     terms TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('open', 'closing', 'closed')),
     sequence BIGINT NOT NULL DEFAULT 0,
     cumulative_cost NUMERIC(78,0) NOT NULL DEFAULT 0,
     request_count BIGINT NOT NULL DEFAULT 0,
     input_tokens BIGINT NOT NULL DEFAULT 0,
     output_tokens BIGINT NOT NULL DEFAULT 0,
     latency_ms BIGINT NOT NULL DEFAULT 0,
     receipt_head TEXT NOT NULL,
     signed_sequence BIGINT NOT NULL DEFAULT 0,
     settled_sequence BIGINT NOT NULL DEFAULT 0,
     open_tx TEXT NOT NULL,
     close_tx TEXT,
     created_at BIGINT NOT NULL,
     final_settled NUMERIC(78,0),
     final_sequence BIGINT,
     unsettled_reason TEXT,
     voucher_signed_at BIGINT,
     settling_id BIGINT,
     settle_retry_at BIGINT,
     serving_token TEXT,
     serving_until BIGINT
   );
   CREATE INDEX sessions_by_agent ON sessions (agent, model, status);
   CREATE INDEX sessions_due ON sessions ((${SESSIONS_DUE_AT}))
     WHERE status IN ('open', 'closing') AND unsettled_reason IS NULL AND settling_id IS NULL AND signed_sequence > settled_sequence;
   CREATE TABLE receipts (
     hash TEXT PRIMARY KEY,
     session_id TEXT NOT NULL REFERENCES sessions (id),
     sequence BIGINT NOT NULL,
     body TEXT NOT NULL,
     provider_signature TEXT NOT NULL,
     agent_signature TEXT,
     signed_at BIGINT,
     token_mismatch INTEGER NOT NULL DEFAULT 0,
     settlement_tx TEXT,
     created_at BIGINT NOT NULL,
     UNIQUE (session_id, sequence)
   );
   CREATE TABLE settlements (
     id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     kind TEXT NOT NULL CHECK (kind IN ('settle', 'close')),
     tx_hash TEXT,
     nonce BIGINT,
     status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed')),
     items TEXT NOT NULL,
     error TEXT,
     created_at BIGINT NOT NULL,
     updated_at BIGINT NOT NULL,
     tx_id BIGINT,
     owner TEXT
   );
   CREATE TABLE indexer_state (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     last_block BIGINT NOT NULL,
     head_number BIGINT,
     head_timestamp BIGINT,
     head_seen_at BIGINT
   );
   CREATE TABLE chain_providers (
     id BIGINT PRIMARY KEY,
     data TEXT NOT NULL,
     block BIGINT NOT NULL
   );
   CREATE TABLE chain_budgets (
     id BIGINT PRIMARY KEY,
     creator TEXT NOT NULL,
     available NUMERIC(78,0) NOT NULL,
     per_session_limit NUMERIC(78,0) NOT NULL,
     expiry BIGINT NOT NULL,
     block BIGINT NOT NULL
   );
   CREATE TABLE chain_sessions (
     id TEXT PRIMARY KEY,
     budget_id BIGINT NOT NULL,
     agent TEXT NOT NULL,
     provider_id BIGINT NOT NULL,
     max_spend NUMERIC(78,0) NOT NULL,
     settled NUMERIC(78,0) NOT NULL DEFAULT 0,
     sequence BIGINT NOT NULL DEFAULT 0,
     claim_end BIGINT NOT NULL,
     finalized INTEGER NOT NULL DEFAULT 0,
     block BIGINT NOT NULL,
     close_requested_by TEXT,
     close_requested_block BIGINT
   );
   CREATE INDEX chain_sessions_by_budget ON chain_sessions (budget_id);
   CREATE TABLE x402_payments (
     payer TEXT NOT NULL,
     nonce TEXT NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('call', 'settle')),
     agent_id BIGINT NOT NULL,
     authorization_hash TEXT NOT NULL,
     request_hash TEXT,
     state TEXT NOT NULL CHECK (state IN ('reserved', 'settling', 'settled', 'failed')),
     payload TEXT NOT NULL,
     response TEXT,
     tx_hash TEXT,
     error TEXT,
     created_at BIGINT NOT NULL,
     updated_at BIGINT NOT NULL,
     PRIMARY KEY (payer, nonce)
   );
   CREATE INDEX x402_payments_unresolved ON x402_payments (updated_at) WHERE state IN ('reserved', 'settling');
   CREATE INDEX x402_payments_answers ON x402_payments (updated_at) WHERE response IS NOT NULL;
   CREATE TABLE payout_cursor (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     last_block BIGINT NOT NULL
   );
   CREATE TABLE payout_logs (
     block BIGINT NOT NULL,
     log_index INTEGER NOT NULL,
     agent_id BIGINT NOT NULL,
     event TEXT NOT NULL CHECK (event IN ('AgentTermsSet', 'AgentPaid')),
     topics TEXT NOT NULL,
     data TEXT NOT NULL,
     PRIMARY KEY (block, log_index)
   );
   CREATE INDEX payout_logs_by_agent ON payout_logs (agent_id, event, block, log_index);
   CREATE TABLE api_keys (
     key_hash TEXT PRIMARY KEY,
     session_id TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     revoked_at BIGINT
   );
   CREATE TABLE chain_blocks (
     number BIGINT PRIMARY KEY,
     hash TEXT NOT NULL
   );
   CREATE TABLE idempotent_calls (
     session_id TEXT NOT NULL,
     key TEXT NOT NULL,
     request_hash TEXT NOT NULL,
     receipt_hash TEXT NOT NULL,
     response TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     PRIMARY KEY (session_id, key)
   );
   CREATE INDEX idempotent_calls_by_age ON idempotent_calls (created_at);
   CREATE TABLE transactions (
     id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     purpose TEXT NOT NULL,
     nonce BIGINT NOT NULL,
     request TEXT NOT NULL,
     attempts TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('pending', 'mined', 'confirmed', 'reverted', 'replaced')),
     mined_hash TEXT,
     mined_block BIGINT,
     mined_block_hash TEXT,
     error TEXT,
     created_at BIGINT NOT NULL,
     updated_at BIGINT NOT NULL,
     sender TEXT
   );
   CREATE INDEX transactions_in_flight ON transactions (nonce) WHERE status IN ('pending', 'mined');
   CREATE TABLE session_opens (
     session_id TEXT PRIMARY KEY,
     open_request TEXT NOT NULL,
     tx_id BIGINT,
     status TEXT NOT NULL CHECK (status IN ('pending', 'opened', 'failed')),
     error TEXT,
     created_at BIGINT NOT NULL
   );
   CREATE TABLE store_probe (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     written_at BIGINT NOT NULL
   );
   CREATE TABLE leases (
     name TEXT PRIMARY KEY,
     owner TEXT NOT NULL,
     expires_at BIGINT NOT NULL
   );
   CREATE TABLE rate_windows (
     scope TEXT NOT NULL,
     window_start BIGINT NOT NULL,
     count BIGINT NOT NULL,
     PRIMARY KEY (scope, window_start)
   );
   CREATE INDEX rate_windows_by_age ON rate_windows (window_start);
   CREATE TABLE idempotency_claims (
     session_id TEXT NOT NULL,
     key TEXT NOT NULL,
     expires_at BIGINT NOT NULL,
     PRIMARY KEY (session_id, key)
   );
   CREATE INDEX settlements_pending ON settlements (id) WHERE status = 'pending';
   CREATE INDEX session_opens_pending ON session_opens (created_at) WHERE status = 'pending';
   CREATE INDEX transactions_by_sender ON transactions (sender, nonce);
   CREATE INDEX idempotency_claims_by_expiry ON idempotency_claims (expires_at);
   CREATE INDEX chain_sessions_by_block ON chain_sessions (block);
   CREATE INDEX chain_budgets_by_block ON chain_budgets (block);`,
];
