import { createHash } from "node:crypto";
import type { Address, Hex } from "viem";
import { formatUsdc, type CompactSignature, type CompletionOutput, type Receipt, type SessionTerms, type VoucherState } from "@agentmesh/sdk";
import { LRUCache } from "lru-cache";
import { SESSIONS_DUE_AT } from "./postgres-schema.ts";
import type { SqlDatabase, SqlRunner } from "./sql.ts";

export interface SessionRecord {
  id: Hex;
  agent: Address;
  providerId: number;
  modelId: number;
  model: string;
  terms: SessionTerms;
  /**
   * 'closing' once a close is requested on-chain (the provider may still settle until the window
   * ends), 'closed' once finalized on-chain, by a cooperative close here or by anyone there.
   */
  status: "open" | "closing" | "closed";
  /** State after the latest call served. */
  state: VoucherState;
  /** Highest sequence whose voucher the agent has signed. */
  signedSequence: number;
  /** Highest sequence settled on-chain. */
  settledSequence: number;
  openTx: Hex;
  closeTx: Hex | null;
  createdAt: number;
  /** What the escrow had settled (total, and sequence) when the session was finalized. */
  finalSettled: bigint | null;
  finalSequence: number | null;
  /** Why the agent's vouchers above `settledSequence` can never settle (terminal), or null. */
  unsettledReason: string | null;
}

/** A session's state on-chain, as the indexer or the escrow reported it. */
export interface OnChainSession {
  id: Hex;
  /** Total and sequence the escrow has settled. */
  settled: bigint;
  sequence: number;
  closeRequested: boolean;
  finalized: boolean;
  /** The finalizing transaction, when known. */
  closeTx: Hex | null;
}

export interface ReceiptRecord {
  hash: Hex;
  receipt: Receipt;
  /** The session's state after this receipt: the voucher both parties sign. */
  state: VoucherState;
  providerSignature: CompactSignature;
  agentSignature: CompactSignature | null;
  tokenMismatch: boolean;
  /**
   * Whether the counts are the relayer's own (the SDK's counter), not the provider's usage: a stream
   * cut before the provider reported usage, or usage beyond what the credit check allowed.
   */
  countedByRelayer: boolean;
  /**
   * For a streamed call the client stopped reading: the output the relayer delivered and billed, so
   * that the agent can check the receipt against what it did read before signing it. Else null.
   */
  deliveredOutput: CompletionOutput | null;
  settlementTx: Hex | null;
  createdAt: number;
}

/** An API key as stored: the one session it opens, and when it was revoked (ms), if it was. */
export interface ApiKeyRecord {
  sessionId: Hex;
  revokedAt: number | null;
}

export interface SettlementItem {
  sessionId: Hex;
  sequence: number;
}

export interface SettlementRecord {
  id: number;
  kind: "settle" | "close";
  /** The gas account (lowercase) of the instance that sends it; null for one recorded before instances shared a store. */
  owner: string | null;
  /** The managed transaction that carries it (see tx-manager.ts), once sent. */
  txId: number | null;
  txHash: Hex | null;
  nonce: number | null;
  status: "pending" | "confirmed" | "failed";
  items: SettlementItem[];
  error: string | null;
}

type Row = Record<string, unknown>;

/** API keys kept in memory at most (least recently used first out). */
const API_KEY_CACHE_SIZE = 10_000;
/**
 * How long an API key read from the database is trusted without reading it again. A key is never
 * reassigned; a revocation on this instance applies here at once, and on the others within this.
 */
const API_KEY_CACHE_MS = 1_000;

/** A hold on a session that is no longer this call's: its result cannot be recorded. */
export class SessionHoldLostError extends Error {
  constructor(sessionId: Hex) {
    super(`session ${sessionId} was taken over by another call (this call's hold lapsed); nothing was recorded`);
    this.name = "SessionHoldLostError";
  }
}

const termsToJson = (terms: SessionTerms) =>
  JSON.stringify({ ...terms, budgetId: terms.budgetId.toString(), maxSpend: terms.maxSpend.toString(), salt: terms.salt.toString() });
const termsFromJson = (text: string): SessionTerms => {
  const raw = JSON.parse(text);
  return { ...raw, budgetId: BigInt(raw.budgetId), maxSpend: BigInt(raw.maxSpend), salt: BigInt(raw.salt) };
};
const stateToJson = (state: VoucherState) => ({ ...state, cumulativeCost: state.cumulativeCost.toString() });
const stateFromJson = (raw: Record<string, unknown>): VoucherState =>
  ({ ...raw, cumulativeCost: BigInt(raw.cumulativeCost as string) }) as VoucherState;

/** sha256 of an API key: only hashes are stored. */
export function hashApiKey(apiKey: string): string {
  return createHash("sha256").update(apiKey).digest("hex");
}

/**
 * Typed access to the relayer's tables, on either backend (see sql.ts). Amounts are bigints in
 * memory and decimal strings in SQL. Every method is one atomic unit, committed before it resolves;
 * {@link Repository.transaction} makes several one unit. The database is the only source of truth:
 * several relayer instances may share it, so nothing read from it is kept in memory, except API
 * keys for {@link API_KEY_CACHE_MS}.
 */
export class Repository {
  /** The database every instance shares. */
  readonly database: SqlDatabase;
  /** Where this repository's statements run: the database, or the transaction it is bound to. */
  readonly sql: SqlRunner;
  private readonly inTransaction: boolean;
  private readonly keyCache: LRUCache<string, ApiKeyRecord>;

  constructor(database: SqlDatabase, bound?: { sql: SqlRunner; keyCache: LRUCache<string, ApiKeyRecord> }) {
    this.database = database;
    this.sql = bound?.sql ?? database;
    this.inTransaction = bound !== undefined;
    this.keyCache = bound?.keyCache ?? new LRUCache({ max: API_KEY_CACHE_SIZE, ttl: API_KEY_CACHE_MS });
  }

  /**
   * Runs `work` in one transaction, with a repository bound to it (nested calls join the outer
   * one). `work` must await nothing but the store.
   */
  transaction<T>(work: (repo: Repository) => Promise<T>): Promise<T> {
    if (this.inTransaction) return work(this);
    return this.database.transaction((sql) => work(new Repository(this.database, { sql, keyCache: this.keyCache })));
  }

  /** Runs `work` on this repository's runner as one unit (its transaction, or a new one). */
  private unit<T>(work: (sql: SqlRunner) => Promise<T>): Promise<T> {
    return this.inTransaction ? work(this.sql) : this.database.transaction(work);
  }

  /** Writes the store's probe row at once (its own transaction): throws when the store takes no writes. */
  async probeWrite(at: number): Promise<void> {
    await this.sql.run("INSERT INTO store_probe (id, written_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at", [at]);
  }

  /** Closes the database (after what is in progress). */
  close(): Promise<void> {
    return this.database.close();
  }

  // ---- API keys ------------------------------------------------------------------------------

  /** Stores a new API key for session `sessionId` (only its hash is kept). */
  async addSessionKey(apiKey: string, sessionId: Hex): Promise<void> {
    await this.sql.run("INSERT INTO api_keys (key_hash, session_id, created_at) VALUES (?, ?, ?)", [hashApiKey(apiKey), sessionId.toLowerCase(), Date.now()]);
  }

  /** The session and revocation time of `apiKey`, or undefined for a key this relayer never issued. */
  async apiKey(apiKey: string): Promise<ApiKeyRecord | undefined> {
    const hash = hashApiKey(apiKey);
    let record = this.keyCache.get(hash);
    if (record === undefined) {
      const row = await this.sql.get("SELECT session_id, revoked_at FROM api_keys WHERE key_hash = ?", [hash]);
      if (row === undefined) return undefined;
      record = { sessionId: row.session_id as Hex, revokedAt: row.revoked_at === null ? null : Number(row.revoked_at) };
      this.keyCache.set(hash, record);
    }
    return record;
  }

  /** Revokes `apiKey` for good (committed before this returns); false when it was already revoked. */
  async revokeApiKey(apiKey: string): Promise<boolean> {
    const hash = hashApiKey(apiKey);
    const { changes } = await this.sql.run("UPDATE api_keys SET revoked_at = ? WHERE key_hash = ? AND revoked_at IS NULL", [Date.now(), hash]);
    this.keyCache.delete(hash);
    return changes > 0;
  }

  // ---- sessions -------------------------------------------------------------------------------

  async insertSession(
    session: Omit<SessionRecord, "status" | "signedSequence" | "settledSequence" | "closeTx" | "createdAt" | "finalSettled" | "finalSequence" | "unsettledReason">,
  ): Promise<void> {
    await this.sql.run(
      `INSERT INTO sessions (id, agent, provider_id, model_id, model, terms, status, receipt_head, open_tx, created_at)
       VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?)`,
      [session.id.toLowerCase(), session.agent, session.providerId, session.modelId, session.model, termsToJson(session.terms), session.state.receiptHead, session.openTx, Date.now()],
    );
  }

  async getSession(id: Hex): Promise<SessionRecord | undefined> {
    const row = await this.sql.get("SELECT * FROM sessions WHERE id = ?", [id.toLowerCase()]);
    return row && toSession(row);
  }

  /**
   * Holds session `id` for one call, across every instance sharing the database, until `until`
   * (ms; renew it with {@link renewSessionHold} while the call runs): the session as of now, or
   * undefined when another call holds it. Only the holder may record the session's next state
   * ({@link recordCall} checks `token`), so no two instances ever sign a state at one sequence.
   */
  async holdSession(id: Hex, token: string, until: number, now = Date.now()): Promise<SessionRecord | undefined> {
    const { rows } = await this.sql.run(
      `UPDATE sessions SET serving_token = ?, serving_until = ?
        WHERE id = ? AND (serving_token IS NULL OR serving_until < ?) RETURNING *`,
      [token, until, id.toLowerCase(), now],
    );
    return rows[0] && toSession(rows[0]);
  }

  /** Extends this call's hold on session `id`; false when it no longer holds it. */
  async renewSessionHold(id: Hex, token: string, until: number): Promise<boolean> {
    const { changes } = await this.sql.run("UPDATE sessions SET serving_until = ? WHERE id = ? AND serving_token = ?", [until, id.toLowerCase(), token]);
    return changes > 0;
  }

  /** Ends this call's hold on session `id` (nothing when another call holds it now). */
  async releaseSessionHold(id: Hex, token: string): Promise<void> {
    await this.sql.run("UPDATE sessions SET serving_token = NULL, serving_until = NULL WHERE id = ? AND serving_token = ?", [id.toLowerCase(), token]);
  }

  /** The agent's sessions for `model` that are not closed (open or closing), oldest first. */
  async openSessionsFor(agent: Address, model: string): Promise<SessionRecord[]> {
    const rows = await this.sql.all("SELECT * FROM sessions WHERE agent = ? AND model = ? AND status IN ('open', 'closing') ORDER BY created_at", [agent, model]);
    return rows.map(toSession);
  }

  /**
   * Records an open about to be sent (before it is), so that one that mines while the relayer is
   * down is known after a restart. False, changing nothing, when an open of `id` is already pending.
   */
  async recordOpen(id: Hex, request: string): Promise<boolean> {
    const { changes } = await this.sql.run(
      `INSERT INTO session_opens (session_id, open_request, status, created_at) VALUES (?, ?, 'pending', ?)
       ON CONFLICT (session_id) DO UPDATE SET open_request = excluded.open_request, status = 'pending', tx_id = NULL, error = NULL,
         created_at = excluded.created_at
       WHERE session_opens.status <> 'pending'`,
      [id.toLowerCase(), request, Date.now()],
    );
    return changes > 0;
  }

  /** Links the pending open of session `id` to its managed transaction (in the manager's recording transaction). */
  async linkOpenTx(id: Hex, txId: number): Promise<void> {
    await this.sql.run("UPDATE session_opens SET tx_id = ? WHERE session_id = ?", [txId, id.toLowerCase()]);
  }

  /** Opens recorded and not resolved yet, with the gas account that sent each (null: not sent yet). */
  async pendingOpens(): Promise<{ sessionId: Hex; request: string; txId: number | null; sender: string | null; createdAt: number }[]> {
    const rows = await this.sql.all(
      `SELECT o.session_id, o.open_request, o.tx_id, o.created_at, t.sender FROM session_opens o LEFT JOIN transactions t ON t.id = o.tx_id
        WHERE o.status = 'pending' ORDER BY o.created_at`,
    );
    return rows.map((row) => ({
      sessionId: row.session_id as Hex,
      request: row.open_request as string,
      txId: row.tx_id === null ? null : Number(row.tx_id),
      sender: (row.sender as string | null) ?? null,
      createdAt: Number(row.created_at),
    }));
  }

  /** Resolves the open of session `id`: it opened (the session is recorded with it), or it failed, saying why. */
  async finishOpen(id: Hex, status: "opened" | "failed", error: string | null = null): Promise<void> {
    await this.sql.run("UPDATE session_opens SET status = ?, error = ? WHERE session_id = ? AND status = 'pending'", [status, error, id.toLowerCase()]);
  }

  /**
   * Brings session `chain.id`'s record in line with its state on-chain (nothing for a session
   * opened elsewhere): what the escrow settled counts as settled here (whoever posted it); a close
   * request makes it 'closing'; finalization makes it 'closed' and records what the escrow settled,
   * and, when the agent signed vouchers beyond that, that they can never settle, saying why.
   */
  followChain(chain: OnChainSession, unsettledReason?: string): Promise<void> {
    return this.unit(async (sql) => {
      const row = await sql.get("SELECT * FROM sessions WHERE id = ?", [chain.id.toLowerCase()]);
      if (row === undefined) return;
      const session = toSession(row);
      // A cooperative close settles one sequence past the last receipt; receipts go only that far.
      const settledSequence = Math.max(session.settledSequence, Math.min(chain.sequence, session.state.sequence));
      const key = session.id.toLowerCase();
      if (chain.finalized) {
        const reason =
          session.signedSequence > settledSequence
            ? (session.unsettledReason ??
              unsettledReason ??
              `the session was finalized on-chain with ${formatUsdc(chain.settled)} USDC settled (sequence ${chain.sequence})`)
            : session.unsettledReason;
        await sql.run(
          `UPDATE sessions SET status = 'closed', settled_sequence = ?, close_tx = COALESCE(close_tx, ?),
             final_settled = COALESCE(final_settled, ?), final_sequence = COALESCE(final_sequence, ?), unsettled_reason = ?
           WHERE id = ?`,
          [settledSequence, chain.closeTx, chain.settled.toString(), chain.sequence, reason, key],
        );
      } else {
        const status = session.status === "open" && chain.closeRequested ? "closing" : session.status;
        await sql.run("UPDATE sessions SET status = ?, settled_sequence = ? WHERE id = ?", [status, settledSequence, key]);
      }
    });
  }

  /**
   * ops: session `id` is 'open' again when it was 'closing': the close request was on a chain that
   * a reorg replaced (the indexer saw it roll back).
   */
  async reopenAfterReorg(id: Hex): Promise<void> {
    await this.sql.run("UPDATE sessions SET status = 'open' WHERE id = ? AND status = 'closing'", [id.toLowerCase()]);
  }

  /** Records that session `id`'s unsettled vouchers can never settle (terminal): the worker stops. */
  async markUnsettled(id: Hex, reason: string): Promise<void> {
    await this.sql.run("UPDATE sessions SET unsettled_reason = COALESCE(unsettled_reason, ?) WHERE id = ?", [reason, id.toLowerCase()]);
  }

  /**
   * Records a served call, its receipt and the session's new state, and ends the call's hold on
   * the session (`holdToken`).
   *
   * @throws {SessionHoldLostError} when the call no longer holds the session, or its state moved
   *   (the receipt must then never be given out: another state may be signed at its sequence).
   */
  recordCall(
    record: Omit<ReceiptRecord, "agentSignature" | "settlementTx" | "createdAt" | "deliveredOutput" | "countedByRelayer"> & {
      deliveredOutput?: CompletionOutput | null;
      countedByRelayer?: boolean;
    },
    holdToken: string,
  ): Promise<void> {
    const { receipt, state } = record;
    return this.unit(async (sql) => {
      const { changes } = await sql.run(
        `UPDATE sessions SET sequence = ?, cumulative_cost = ?, request_count = ?, input_tokens = ?, output_tokens = ?,
           latency_ms = ?, receipt_head = ?, serving_token = NULL, serving_until = NULL
         WHERE id = ? AND serving_token = ? AND sequence = ?`,
        [
          state.sequence,
          state.cumulativeCost.toString(),
          state.requestCount,
          state.inputTokens,
          state.outputTokens,
          state.latencyMs,
          state.receiptHead,
          receipt.sessionId.toLowerCase(),
          holdToken,
          state.sequence - 1,
        ],
      );
      if (changes === 0) throw new SessionHoldLostError(receipt.sessionId);
      await sql.run(
        `INSERT INTO receipts (hash, session_id, sequence, body, provider_signature, token_mismatch, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
        [
          record.hash,
          receipt.sessionId.toLowerCase(),
          receipt.sequence,
          JSON.stringify({
            receipt: { ...receipt, cost: receipt.cost.toString() },
            state: stateToJson(state),
            ...(record.deliveredOutput != null && { deliveredOutput: record.deliveredOutput }),
            ...(record.countedByRelayer === true && { countedByRelayer: true }),
          }),
          JSON.stringify(record.providerSignature),
          record.tokenMismatch ? 1 : 0,
          Date.now(),
        ],
      );
    });
  }

  /** Stores the agent's signature of the voucher at `sequence` (already verified). */
  recordAgentSignature(sessionId: Hex, sequence: number, signature: CompactSignature): Promise<void> {
    const now = Date.now();
    return this.unit(async (sql) => {
      await sql.run("UPDATE receipts SET agent_signature = ?, signed_at = ? WHERE session_id = ? AND sequence = ?", [
        JSON.stringify(signature),
        now,
        sessionId.toLowerCase(),
        sequence,
      ]);
      await sql.run(
        `UPDATE sessions SET signed_sequence = CASE WHEN ? > signed_sequence THEN ? ELSE signed_sequence END,
           voucher_signed_at = CASE WHEN ? > signed_sequence THEN ? ELSE voucher_signed_at END WHERE id = ?`,
        [sequence, sequence, sequence, now, sessionId.toLowerCase()],
      );
    });
  }

  async getReceipt(hash: Hex): Promise<ReceiptRecord | undefined> {
    const row = await this.sql.get("SELECT * FROM receipts WHERE hash = ?", [hash.toLowerCase()]);
    return row && toReceipt(row);
  }

  async receiptAt(sessionId: Hex, sequence: number): Promise<ReceiptRecord | undefined> {
    const row = await this.sql.get("SELECT * FROM receipts WHERE session_id = ? AND sequence = ?", [sessionId.toLowerCase(), sequence]);
    return row && toReceipt(row);
  }

  /** Up to `limit` receipts of session `sessionId` after sequence `after`, in order (one index range read). */
  async receiptsAfter(sessionId: Hex, after: number, limit: number): Promise<ReceiptRecord[]> {
    const rows = await this.sql.all("SELECT * FROM receipts WHERE session_id = ? AND sequence > ? ORDER BY sequence LIMIT ?", [sessionId.toLowerCase(), after, limit]);
    return rows.map(toReceipt);
  }

  async receiptsOf(sessionId: Hex): Promise<ReceiptRecord[]> {
    return (await this.sql.all("SELECT * FROM receipts WHERE session_id = ? ORDER BY sequence", [sessionId.toLowerCase()])).map(toReceipt);
  }

  // ---- settlement -----------------------------------------------------------------------------

  /**
   * Open or closing sessions with a signed voucher newer than what was settled, and not recorded as
   * unable to settle, oldest signature first. The partial index `sessions_due` holds exactly these
   * rows, in this order: sessions backing off sort after `now` and are never read, however many.
   */
  async sessionsToSettle(limit: number, now = Date.now()): Promise<{ session: SessionRecord; signedAt: number }[]> {
    const rows = await this.sql.all(
      `SELECT * FROM sessions
        WHERE status IN ('open', 'closing') AND unsettled_reason IS NULL AND settling_id IS NULL AND signed_sequence > settled_sequence
          AND ${SESSIONS_DUE_AT} <= ?
        ORDER BY ${SESSIONS_DUE_AT} LIMIT ?`,
      [now, limit],
    );
    return rows.map((row) => ({ session: toSession(row), signedAt: Number(row.voucher_signed_at) }));
  }

  /** Session `id`'s settlement failed: not due again before `retryAt` (0: due at once). */
  async deferSettlement(id: Hex, retryAt: number): Promise<void> {
    await this.sql.run("UPDATE sessions SET settle_retry_at = ? WHERE id = ?", [retryAt === 0 ? null : retryAt, id.toLowerCase()]);
  }

  /**
   * Records a settlement about to be sent by the instance whose gas account is `owner`; its
   * sessions are not due again until it is resolved.
   * Undefined, recording nothing, when another settlement took one of them meanwhile (another
   * instance's): one settlement per session at a time, except that a close takes a session over
   * from a pending settle (the settle's resolution then leaves the session to the close).
   */
  insertSettlement(kind: SettlementRecord["kind"], items: SettlementItem[], owner: string): Promise<number | undefined> {
    const now = Date.now();
    return this.unit(async (sql) => {
      const { rows } = await sql.run("INSERT INTO settlements (kind, owner, status, items, created_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?) RETURNING id", [
        kind,
        owner.toLowerCase(),
        JSON.stringify(items.map((item) => ({ ...item, sessionId: item.sessionId.toLowerCase() }))),
        now,
        now,
      ]);
      const id = Number(rows[0].id);
      for (const { sessionId } of items) {
        // A close takes its session over from a pending settle (whose confirmation may wait for
        // blocks that only the close brings): both pay by the session's settled total, so neither pays twice.
        const { changes } = await sql.run(
          `UPDATE sessions SET settling_id = ? WHERE id = ?
             AND (settling_id IS NULL OR (? = 'close' AND settling_id IN (SELECT s.id FROM settlements s WHERE s.kind = 'settle')))`,
          [id, sessionId.toLowerCase(), kind],
        );
        if (changes === 0) throw new SettlementTakenError(sessionId);
      }
      return id;
    }).catch((error: unknown) => {
      if (error instanceof SettlementTakenError) return undefined;
      throw error;
    });
  }

  /** Links settlement `id` to the managed transaction that carries it (in the manager's recording transaction). */
  async linkSettlementTx(id: number, txId: number, txHash: Hex, nonce: number): Promise<void> {
    await this.sql.run("UPDATE settlements SET tx_id = ?, tx_hash = ?, nonce = ?, updated_at = ? WHERE id = ?", [txId, txHash, nonce, Date.now(), id]);
  }

  async getSettlement(id: number): Promise<SettlementRecord | undefined> {
    const row = await this.sql.get("SELECT * FROM settlements WHERE id = ?", [id]);
    return row && toSettlement(row);
  }

  async pendingSettlements(): Promise<SettlementRecord[]> {
    return (await this.sql.all("SELECT * FROM settlements WHERE status = 'pending' ORDER BY id")).map(toSettlement);
  }

  /**
   * Marks a settlement confirmed and applies it to its sessions and their receipts; `minedHash` is
   * the hash that mined when a fee-bumped replacement did. Nothing when it is resolved already.
   */
  confirmSettlement(id: number, minedHash?: Hex): Promise<void> {
    return this.unit(async (sql) => {
      const row = await sql.get("SELECT * FROM settlements WHERE id = ? AND status = 'pending'", [id]);
      if (row === undefined) return;
      const settlement = toSettlement(row);
      const txHash = minedHash ?? settlement.txHash;
      for (const { sessionId, sequence } of settlement.items) {
        await sql.run(
          `UPDATE sessions SET settled_sequence = CASE WHEN ? > settled_sequence THEN ? ELSE settled_sequence END, settle_retry_at = NULL,
             settling_id = CASE WHEN settling_id = ? THEN NULL ELSE settling_id END${settlement.kind === "close" ? ", status = 'closed', close_tx = ?" : ""}
           WHERE id = ?`,
          settlement.kind === "close" ? [sequence, sequence, id, txHash, sessionId] : [sequence, sequence, id, sessionId],
        );
        await sql.run("UPDATE receipts SET settlement_tx = ? WHERE session_id = ? AND sequence <= ? AND settlement_tx IS NULL", [txHash, sessionId, sequence]);
      }
      await sql.run("UPDATE settlements SET status = 'confirmed', tx_hash = ?, updated_at = ? WHERE id = ?", [txHash, Date.now(), id]);
    });
  }

  /** Marks a pending settlement failed, freeing its sessions (unless a later one holds them now). */
  failSettlement(id: number, error: string): Promise<void> {
    return this.unit(async (sql) => {
      const row = await sql.get("SELECT * FROM settlements WHERE id = ? AND status = 'pending'", [id]);
      if (row === undefined) return;
      for (const { sessionId } of toSettlement(row).items) {
        await sql.run("UPDATE sessions SET settling_id = NULL WHERE id = ? AND settling_id = ?", [sessionId, id]);
      }
      await sql.run("UPDATE settlements SET status = 'failed', error = ?, updated_at = ? WHERE id = ?", [error.slice(0, 2000), Date.now(), id]);
    });
  }
}

/** A session of a settlement being recorded is held by another settlement (rolls the recording back). */
class SettlementTakenError extends Error {
  constructor(sessionId: Hex) {
    super(`session ${sessionId} is in another settlement`);
  }
}

function toSession(row: Row): SessionRecord {
  return {
    id: row.id as Hex,
    agent: row.agent as Address,
    providerId: Number(row.provider_id),
    modelId: Number(row.model_id),
    model: row.model as string,
    terms: termsFromJson(row.terms as string),
    status: row.status as SessionRecord["status"],
    state: {
      sequence: Number(row.sequence),
      cumulativeCost: BigInt(row.cumulative_cost as string),
      requestCount: Number(row.request_count),
      inputTokens: Number(row.input_tokens),
      outputTokens: Number(row.output_tokens),
      latencyMs: Number(row.latency_ms),
      receiptHead: row.receipt_head as Hex,
      isFinal: false,
    },
    signedSequence: Number(row.signed_sequence),
    settledSequence: Number(row.settled_sequence),
    openTx: row.open_tx as Hex,
    closeTx: (row.close_tx as Hex | null) ?? null,
    createdAt: Number(row.created_at),
    finalSettled: row.final_settled === null || row.final_settled === undefined ? null : BigInt(row.final_settled as string),
    finalSequence: row.final_sequence === null || row.final_sequence === undefined ? null : Number(row.final_sequence),
    unsettledReason: (row.unsettled_reason as string | null) ?? null,
  };
}

function toReceipt(row: Row): ReceiptRecord {
  const body = JSON.parse(row.body as string);
  return {
    hash: row.hash as Hex,
    receipt: { ...body.receipt, cost: BigInt(body.receipt.cost) },
    state: stateFromJson(body.state),
    providerSignature: JSON.parse(row.provider_signature as string),
    agentSignature: row.agent_signature ? JSON.parse(row.agent_signature as string) : null,
    tokenMismatch: Number(row.token_mismatch) === 1,
    countedByRelayer: body.countedByRelayer === true,
    deliveredOutput: body.deliveredOutput ?? null,
    settlementTx: (row.settlement_tx as Hex | null) ?? null,
    createdAt: Number(row.created_at),
  };
}

function toSettlement(row: Row): SettlementRecord {
  return {
    id: Number(row.id),
    kind: row.kind as SettlementRecord["kind"],
    owner: (row.owner as string | null) ?? null,
    txId: row.tx_id === null || row.tx_id === undefined ? null : Number(row.tx_id),
    txHash: (row.tx_hash as Hex | null) ?? null,
    nonce: row.nonce === null ? null : Number(row.nonce),
    status: row.status as SettlementRecord["status"],
    items: JSON.parse(row.items as string),
    error: (row.error as string | null) ?? null,
  };
}
