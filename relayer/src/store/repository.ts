import { createHash } from "node:crypto";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Address, Hex } from "viem";
import { formatUsdc, type CompactSignature, type CompletionOutput, type Receipt, type SessionTerms, type VoucherState } from "@agentmesh/sdk";
import { statementCache } from "./database.ts";
import { log } from "../log.ts";

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
  /** The managed transaction that carries it (see tx-manager.ts), once sent. */
  txId: number | null;
  txHash: Hex | null;
  nonce: number | null;
  status: "pending" | "confirmed" | "failed";
  items: SettlementItem[];
  error: string | null;
}

type Row = Record<string, unknown>;

/** Sessions kept in memory at most; past that the cache starts over. */
const SESSION_CACHE_SIZE = 10_000;

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
 * Typed access to the relayer's tables. Amounts are bigints in memory and decimal strings on disk.
 *
 * Two ways to write, both atomic per unit of work:
 * - {@link Repository.transaction} commits before it returns. Everything that must be on disk before
 *   an outside effect (a transaction sent to the chain, say) uses it.
 * - {@link Repository.batch}, for the writes of every served call: units of the same event-loop
 *   turn share one SQLite transaction, committed at the end of the turn (group commit). A commit
 *   costs more than a call's writes, so under load this saves most of the store's cost per call.
 *   Callers `await` {@link Repository.committed} before acknowledging what they wrote.
 */
export class Repository {
  readonly db: DatabaseSync;

  private readonly statement: (sql: string) => StatementSync;
  /**
   * API keys by hash, as last read here (in memory only: the database holds nothing but hashes of
   * the keys). A key is never reassigned; revoking it updates its entry at once. Bounded like the
   * session cache.
   */
  private readonly keyCache = new Map<string, ApiKeyRecord>();
  /**
   * Sessions by id, as last read or written here: a call reads its session several times, and only
   * this connection writes them. Records are shared: treat them as read-only. Any rollback empties it.
   */
  private readonly sessionCache = new Map<Hex, SessionRecord>();
  /** How many units of work are running (nested calls join the outermost). */
  private depth = 0;
  /** This turn's open group-commit transaction, if any. */
  private openBatch: { committed: Promise<void>; resolve: () => void; reject: (error: unknown) => void } | undefined;

  constructor(db: DatabaseSync) {
    this.db = db;
    this.statement = statementCache(db);
  }

  /** Runs `work` in one transaction, committed before this returns (nested calls join the outer unit). */
  transaction<T>(work: () => T): T {
    if (this.depth > 0) return this.nested(work);
    this.commitBatch();
    this.statement("BEGIN IMMEDIATE").run();
    try {
      const result = this.nested(work);
      this.statement("COMMIT").run();
      return result;
    } catch (error) {
      if (this.db.isTransaction) this.statement("ROLLBACK").run();
      this.sessionCache.clear();
      throw error;
    }
  }

  /**
   * Runs `work` atomically inside this turn's group-commit transaction, opening it (and scheduling
   * its commit for the end of the turn) if needed. A unit that throws is rolled back alone.
   */
  batch<T>(work: () => T): T {
    if (this.depth > 0) return this.nested(work);
    if (this.openBatch === undefined) {
      this.statement("BEGIN IMMEDIATE").run();
      let resolve!: () => void;
      let reject!: (error: unknown) => void;
      const committed = new Promise<void>((onCommit, onFailure) => ((resolve = onCommit), (reject = onFailure)));
      committed.catch(() => {}); // a failed commit is logged, and reported to whoever awaits it
      this.openBatch = { committed, resolve, reject };
      setImmediate(() => this.commitBatch());
    }
    this.statement("SAVEPOINT unit").run();
    try {
      const result = this.nested(work);
      this.statement("RELEASE unit").run();
      return result;
    } catch (error) {
      this.statement("ROLLBACK TO unit").run();
      this.statement("RELEASE unit").run();
      this.sessionCache.clear();
      throw error;
    }
  }

  /** Resolves once every unit batched so far is committed; rejects if their commit failed. */
  committed(): Promise<void> {
    return this.openBatch?.committed ?? Promise.resolve();
  }

  /** Writes the store's probe row at once (its own transaction): throws when the store takes no writes. */
  probeWrite(at: number): void {
    this.commitBatch();
    this.db.prepare("INSERT INTO store_probe (id, written_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at").run(at);
  }

  /** Commits any open batch, then closes the database. */
  close(): void {
    this.commitBatch();
    this.db.close();
  }

  private nested<T>(work: () => T): T {
    this.depth++;
    try {
      return work();
    } finally {
      this.depth--;
    }
  }

  /** Commits this turn's batch now, if one is open. */
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
      this.sessionCache.clear();
      batch.reject(error);
    }
  }

  // ---- API keys ------------------------------------------------------------------------------

  /** Stores a new API key for session `sessionId` (only its hash is kept). */
  addSessionKey(apiKey: string, sessionId: Hex): void {
    this.transaction(() =>
      this.statement("INSERT INTO api_keys (key_hash, session_id, created_at) VALUES (?, ?, ?)").run(hashApiKey(apiKey), sessionId.toLowerCase(), Date.now()),
    );
  }

  /** The session and revocation time of `apiKey`, or undefined for a key this relayer never issued. */
  apiKey(apiKey: string): ApiKeyRecord | undefined {
    const hash = hashApiKey(apiKey);
    let record = this.keyCache.get(hash);
    if (record === undefined) {
      const row = this.statement("SELECT session_id, revoked_at FROM api_keys WHERE key_hash = ?").get(hash) as Row | undefined;
      if (row === undefined) return undefined;
      record = { sessionId: row.session_id as Hex, revokedAt: row.revoked_at === null ? null : Number(row.revoked_at) };
      if (this.keyCache.size >= SESSION_CACHE_SIZE) this.keyCache.clear();
      this.keyCache.set(hash, record);
    }
    return record;
  }

  /** Revokes `apiKey` for good (committed before this returns); false when it was already revoked. */
  revokeApiKey(apiKey: string): boolean {
    const hash = hashApiKey(apiKey);
    const changed = this.transaction(
      () => this.statement("UPDATE api_keys SET revoked_at = ? WHERE key_hash = ? AND revoked_at IS NULL").run(Date.now(), hash).changes,
    );
    this.keyCache.delete(hash);
    return Number(changed) > 0;
  }

  // ---- sessions -------------------------------------------------------------------------------

  insertSession(
    session: Omit<SessionRecord, "status" | "signedSequence" | "settledSequence" | "closeTx" | "createdAt" | "finalSettled" | "finalSequence" | "unsettledReason">,
  ): void {
    this.transaction(() =>
      this.statement(
          `INSERT INTO sessions (id, agent, provider_id, model_id, model, terms, status, receipt_head, open_tx, created_at)
           VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?)`,
        )
        .run(session.id.toLowerCase(), session.agent, session.providerId, session.modelId, session.model, termsToJson(session.terms), session.state.receiptHead, session.openTx, Date.now()),
    );
  }

  getSession(id: Hex): SessionRecord | undefined {
    const key = id.toLowerCase() as Hex;
    let session = this.sessionCache.get(key);
    if (session === undefined) {
      const row = this.statement("SELECT * FROM sessions WHERE id = ?").get(key) as Row | undefined;
      if (row === undefined) return undefined;
      if (this.sessionCache.size >= SESSION_CACHE_SIZE) this.sessionCache.clear();
      this.sessionCache.set(key, (session = toSession(row)));
    }
    return session;
  }

  /** Replaces the cached record of session `id`, if cached, by `update` of it. */
  private updateCachedSession(id: Hex, update: (session: SessionRecord) => SessionRecord): void {
    const key = id.toLowerCase() as Hex;
    const cached = this.sessionCache.get(key);
    if (cached !== undefined) this.sessionCache.set(key, update(cached));
  }

  /** The agent's sessions for `model` that are not closed (open or closing), oldest first. */
  openSessionsFor(agent: Address, model: string): SessionRecord[] {
    const rows = this.statement("SELECT * FROM sessions WHERE agent = ? AND model = ? AND status IN ('open', 'closing') ORDER BY created_at")
      .all(agent, model) as Row[];
    return rows.map(toSession);
  }

  /**
   * Records an open about to be sent (before it is), so that one that mines while the relayer is
   * down is known after a restart. False, changing nothing, when an open of `id` is already pending.
   */
  recordOpen(id: Hex, request: string): boolean {
    return this.transaction(() => {
      const existing = this.statement("SELECT status FROM session_opens WHERE session_id = ?").get(id.toLowerCase()) as Row | undefined;
      if (existing?.status === "pending") return false;
      this.statement("INSERT OR REPLACE INTO session_opens (session_id, open_request, status, created_at) VALUES (?, ?, 'pending', ?)")
        .run(id.toLowerCase(), request, Date.now());
      return true;
    });
  }

  /** Links the pending open of session `id` to its managed transaction (in the manager's recording transaction). */
  linkOpenTx(id: Hex, txId: number): void {
    this.transaction(() => this.statement("UPDATE session_opens SET tx_id = ? WHERE session_id = ?").run(txId, id.toLowerCase()));
  }

  /** Opens recorded and not resolved yet. */
  pendingOpens(): { sessionId: Hex; request: string; txId: number | null }[] {
    return (this.statement("SELECT * FROM session_opens WHERE status = 'pending' ORDER BY created_at").all() as Row[]).map((row) => ({
      sessionId: row.session_id as Hex,
      request: row.open_request as string,
      txId: row.tx_id === null ? null : Number(row.tx_id),
    }));
  }

  /** Resolves the open of session `id`: it opened (the session is recorded with it), or it failed, saying why. */
  finishOpen(id: Hex, status: "opened" | "failed", error: string | null = null): void {
    this.transaction(() =>
      this.statement("UPDATE session_opens SET status = ?, error = ? WHERE session_id = ? AND status = 'pending'").run(status, error, id.toLowerCase()),
    );
  }

  /**
   * Brings session `chain.id`'s record in line with its state on-chain (nothing for a session
   * opened elsewhere): what the escrow settled counts as settled here (whoever posted it); a close
   * request makes it 'closing'; finalization makes it 'closed' and records what the escrow settled,
   * and, when the agent signed vouchers beyond that, that they can never settle, saying why.
   */
  followChain(chain: OnChainSession, unsettledReason?: string): void {
    this.transaction(() => {
      const session = this.getSession(chain.id);
      if (session === undefined) return;
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
        this.statement(
            `UPDATE sessions SET status = 'closed', settled_sequence = ?, close_tx = COALESCE(close_tx, ?),
               final_settled = COALESCE(final_settled, ?), final_sequence = COALESCE(final_sequence, ?), unsettled_reason = ?
             WHERE id = ?`,
          )
          .run(settledSequence, chain.closeTx, chain.settled.toString(), chain.sequence, reason, key);
      } else {
        const status = session.status === "open" && chain.closeRequested ? "closing" : session.status;
        this.statement("UPDATE sessions SET status = ?, settled_sequence = ? WHERE id = ?").run(status, settledSequence, key);
      }
      this.sessionCache.delete(key as Hex);
    });
  }

  /**
   * ops: session `id` is 'open' again when it was 'closing': the close request was on a chain that
   * a reorg replaced (the indexer saw it roll back).
   */
  reopenAfterReorg(id: Hex): void {
    this.transaction(() => {
      this.statement("UPDATE sessions SET status = 'open' WHERE id = ? AND status = 'closing'").run(id.toLowerCase());
      this.sessionCache.delete(id.toLowerCase() as Hex);
    });
  }

  /** Records that session `id`'s unsettled vouchers can never settle (terminal): the worker stops. */
  markUnsettled(id: Hex, reason: string): void {
    this.transaction(() => {
      this.statement("UPDATE sessions SET unsettled_reason = COALESCE(unsettled_reason, ?) WHERE id = ?").run(reason, id.toLowerCase());
      this.sessionCache.delete(id.toLowerCase() as Hex);
    });
  }

  /** Records a served call, its receipt and the session's new state, in this turn's batch. */
  recordCall(
    record: Omit<ReceiptRecord, "agentSignature" | "settlementTx" | "createdAt" | "deliveredOutput" | "countedByRelayer"> & {
      deliveredOutput?: CompletionOutput | null;
      countedByRelayer?: boolean;
    },
  ): void {
    const { receipt, state } = record;
    this.batch(() => {
      this.statement(
          `INSERT INTO receipts (hash, session_id, sequence, body, provider_signature, token_mismatch, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
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
        );
      this.statement(
          `UPDATE sessions SET sequence = ?, cumulative_cost = ?, request_count = ?, input_tokens = ?, output_tokens = ?,
             latency_ms = ?, receipt_head = ? WHERE id = ?`,
        )
        .run(state.sequence, state.cumulativeCost.toString(), state.requestCount, state.inputTokens, state.outputTokens, state.latencyMs, state.receiptHead, receipt.sessionId.toLowerCase());
      this.updateCachedSession(receipt.sessionId, (session) => ({ ...session, state }));
    });
  }

  /** Stores the agent's signature of the voucher at `sequence` (already verified), in this turn's batch. */
  recordAgentSignature(sessionId: Hex, sequence: number, signature: CompactSignature): void {
    this.batch(() => {
      this.statement("UPDATE receipts SET agent_signature = ?, signed_at = ? WHERE session_id = ? AND sequence = ?")
        .run(JSON.stringify(signature), Date.now(), sessionId.toLowerCase(), sequence);
      this.statement(
          `UPDATE sessions SET signed_sequence = MAX(signed_sequence, ?),
             voucher_signed_at = CASE WHEN ? > signed_sequence THEN ? ELSE voucher_signed_at END WHERE id = ?`,
        )
        .run(sequence, sequence, Date.now(), sessionId.toLowerCase());
      this.updateCachedSession(sessionId, (session) => ({ ...session, signedSequence: Math.max(session.signedSequence, sequence) }));
    });
  }

  getReceipt(hash: Hex): ReceiptRecord | undefined {
    const row = this.statement("SELECT * FROM receipts WHERE hash = ?").get(hash.toLowerCase()) as Row | undefined;
    return row && toReceipt(row);
  }

  receiptAt(sessionId: Hex, sequence: number): ReceiptRecord | undefined {
    const row = this.statement("SELECT * FROM receipts WHERE session_id = ? AND sequence = ?")
      .get(sessionId.toLowerCase(), sequence) as Row | undefined;
    return row && toReceipt(row);
  }

  /** Up to `limit` receipts of session `sessionId` after sequence `after`, in order (one index range read). */
  receiptsAfter(sessionId: Hex, after: number, limit: number): ReceiptRecord[] {
    const rows = this.statement("SELECT * FROM receipts WHERE session_id = ? AND sequence > ? ORDER BY sequence LIMIT ?")
      .all(sessionId.toLowerCase(), after, limit) as Row[];
    return rows.map(toReceipt);
  }

  receiptsOf(sessionId: Hex): ReceiptRecord[] {
    const rows = this.statement("SELECT * FROM receipts WHERE session_id = ? ORDER BY sequence").all(sessionId.toLowerCase()) as Row[];
    return rows.map(toReceipt);
  }

  // ---- settlement -----------------------------------------------------------------------------

  /**
   * Open or closing sessions with a signed voucher newer than what was settled, and not recorded as
   * unable to settle, oldest signature first.
   */
  sessionsToSettle(limit: number, now = Date.now()): { session: SessionRecord; signedAt: number }[] {
    // INDEXED BY: the partial index sessions_due holds exactly these rows, in this order (the query
    // fails loudly instead of scanning if a change ever makes it unusable). Sessions backing off sort
    // after `now` and are never read, however many there are.
    const rows = this.statement(
        `SELECT * FROM sessions INDEXED BY sessions_due
          WHERE status IN ('open', 'closing') AND unsettled_reason IS NULL AND settling_id IS NULL AND signed_sequence > settled_sequence
            AND MAX(voucher_signed_at, COALESCE(settle_retry_at, 0)) <= ?
          ORDER BY MAX(voucher_signed_at, COALESCE(settle_retry_at, 0)) LIMIT ?`,
      )
      .all(now, limit) as Row[];
    return rows.map((row) => ({ session: toSession(row), signedAt: Number(row.voucher_signed_at) }));
  }

  /** Session `id`'s settlement failed: not due again before `retryAt` (0: due at once). */
  deferSettlement(id: Hex, retryAt: number): void {
    this.transaction(() => this.statement("UPDATE sessions SET settle_retry_at = ? WHERE id = ?").run(retryAt === 0 ? null : retryAt, id.toLowerCase()));
  }

  /** Records a settlement about to be sent; its sessions are not due again until it is resolved. */
  insertSettlement(kind: SettlementRecord["kind"], items: SettlementItem[]): number {
    const now = Date.now();
    return this.transaction(() => {
      const id = Number(
        this.statement("INSERT INTO settlements (kind, status, items, created_at, updated_at) VALUES (?, 'pending', ?, ?, ?)")
          .run(kind, JSON.stringify(items.map((item) => ({ ...item, sessionId: item.sessionId.toLowerCase() }))), now, now).lastInsertRowid,
      );
      for (const { sessionId } of items) this.statement("UPDATE sessions SET settling_id = ? WHERE id = ?").run(id, sessionId.toLowerCase());
      return id;
    });
  }

  /** Frees the sessions a resolved settlement held (unless a later one holds them now). */
  private releaseSettlement(settlement: SettlementRecord): void {
    for (const { sessionId } of settlement.items) {
      this.statement("UPDATE sessions SET settling_id = NULL WHERE id = ? AND settling_id = ?").run(sessionId, settlement.id);
    }
  }

  /** Links settlement `id` to the managed transaction that carries it (in the manager's recording transaction). */
  linkSettlementTx(id: number, txId: number, txHash: Hex, nonce: number): void {
    this.transaction(() =>
      this.statement("UPDATE settlements SET tx_id = ?, tx_hash = ?, nonce = ?, updated_at = ? WHERE id = ?").run(txId, txHash, nonce, Date.now(), id),
    );
  }

  getSettlement(id: number): SettlementRecord | undefined {
    const row = this.statement("SELECT * FROM settlements WHERE id = ?").get(id) as Row | undefined;
    return row && toSettlement(row);
  }

  pendingSettlements(): SettlementRecord[] {
    return (this.statement("SELECT * FROM settlements WHERE status = 'pending' ORDER BY id").all() as Row[]).map(toSettlement);
  }

  /**
   * Marks a settlement confirmed and applies it to its sessions and their receipts; `minedHash` is
   * the hash that mined when a fee-bumped replacement did.
   */
  confirmSettlement(id: number, minedHash?: Hex): void {
    this.transaction(() => {
      if (minedHash !== undefined) this.statement("UPDATE settlements SET tx_hash = ? WHERE id = ?").run(minedHash, id);
      const row = this.statement("SELECT * FROM settlements WHERE id = ?").get(id) as Row;
      const settlement = toSettlement(row);
      for (const { sessionId, sequence } of settlement.items) {
        this.statement(
            `UPDATE sessions SET settled_sequence = MAX(settled_sequence, ?)${settlement.kind === "close" ? ", status = 'closed', close_tx = ?" : ""} WHERE id = ?`,
          )
          .run(...(settlement.kind === "close" ? [sequence, settlement.txHash, sessionId] : [sequence, sessionId]));
        this.statement("UPDATE receipts SET settlement_tx = ? WHERE session_id = ? AND sequence <= ? AND settlement_tx IS NULL")
          .run(settlement.txHash, sessionId, sequence);
        this.statement("UPDATE sessions SET settle_retry_at = NULL WHERE id = ?").run(sessionId);
        this.sessionCache.delete(sessionId.toLowerCase() as Hex);
      }
      this.releaseSettlement(settlement);
      this.statement("UPDATE settlements SET status = 'confirmed', updated_at = ? WHERE id = ?").run(Date.now(), id);
    });
  }

  failSettlement(id: number, error: string): void {
    this.transaction(() => {
      this.releaseSettlement(toSettlement(this.statement("SELECT * FROM settlements WHERE id = ?").get(id) as Row));
      this.statement("UPDATE settlements SET status = 'failed', error = ?, updated_at = ? WHERE id = ?").run(error.slice(0, 2000), Date.now(), id);
    });
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
    txId: row.tx_id === null || row.tx_id === undefined ? null : Number(row.tx_id),
    txHash: (row.tx_hash as Hex | null) ?? null,
    nonce: row.nonce === null ? null : Number(row.nonce),
    status: row.status as SettlementRecord["status"],
    items: JSON.parse(row.items as string),
    error: (row.error as string | null) ?? null,
  };
}
