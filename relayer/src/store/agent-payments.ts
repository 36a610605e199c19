import type { StatementSync } from "node:sqlite";
import type { Hex } from "viem";
import { statementCache } from "./database.ts";
import type { Repository } from "./repository.ts";

/**
 * Where an x402 payment (one EIP-3009 authorization, keyed by payer and nonce) stands here:
 * - `reserved`: a request holds it and is verifying it or calling the agent; nothing was sent.
 * - `settling`: the agent answered (its answer is stored) or the facilitator took it; the transfer
 *   is being sent or was sent (`txHash` once known) and may still mine.
 * - `settled`: the authorization was used on-chain: the payer paid.
 * - `failed`: nothing was charged and nothing can be any more; the payment may be used again.
 */
export type PaymentState = "reserved" | "settling" | "settled" | "failed";

/** What an x402 payment was used for: a paid call to an agent here, or `/x402/settle`. */
export type PaymentKind = "call" | "settle";

export interface PaymentKey {
  payer: Hex;
  nonce: Hex;
}

export interface PaymentRecord extends PaymentKey {
  kind: PaymentKind;
  agentId: number;
  /** Hash of the payment's signed payload (authorization and signature). */
  authorizationHash: Hex;
  /** Hash of the call's request body (calls only). */
  requestHash: string | null;
  state: PaymentState;
  /** The x402 payment payload, JSON. */
  payload: string;
  /** The agent's answer (calls, once it answered). */
  response: string | null;
  txHash: Hex | null;
  error: string | null;
  updatedAt: number;
}

type Row = Record<string, unknown>;

const keyOf = ({ payer, nonce }: PaymentKey) => [payer.toLowerCase(), nonce.toLowerCase()] as const;

/**
 * The x402 payment locks (table `x402_payments`): one row per authorization, so that one payment
 * runs one call and sends at most one transfer at a time. Every write commits before it returns
 * (a `settling` row is on disk before its transfer is sent).
 */
export class PaymentLocks {
  private readonly repo: Repository;
  private readonly statement: (sql: string) => StatementSync;

  constructor(repo: Repository) {
    this.repo = repo;
    this.statement = statementCache(repo.db);
  }

  get(key: PaymentKey): PaymentRecord | undefined {
    const row = this.statement("SELECT * FROM x402_payments WHERE payer = ? AND nonce = ?").get(...keyOf(key)) as Row | undefined;
    return row && toPayment(row);
  }

  /**
   * Takes the lock of `payment` for a new attempt: true when there was no row, or only a `failed`
   * one (nothing was charged). A failed call's stored answer is kept when the same payment retries
   * the same request, so the agent is not run again. False when the payment is held or used.
   */
  reserve(payment: Pick<PaymentRecord, "payer" | "nonce" | "kind" | "agentId" | "authorizationHash" | "requestHash" | "payload">): boolean {
    const now = Date.now();
    return this.repo.transaction(() => {
      const existing = this.get(payment);
      if (existing === undefined) {
        this.statement(
            `INSERT INTO x402_payments (payer, nonce, kind, agent_id, authorization_hash, request_hash, state, payload, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, 'reserved', ?, ?, ?)`,
          )
          .run(...keyOf(payment), payment.kind, payment.agentId, payment.authorizationHash, payment.requestHash, payment.payload, now, now);
        return true;
      }
      if (existing.state !== "failed") return false;
      const sameCall =
        existing.kind === payment.kind &&
        existing.agentId === payment.agentId &&
        existing.authorizationHash === payment.authorizationHash &&
        existing.requestHash === payment.requestHash;
      this.statement(
          `UPDATE x402_payments SET kind = ?, agent_id = ?, authorization_hash = ?, request_hash = ?, state = 'reserved', payload = ?,
             response = ?, tx_hash = NULL, error = NULL, updated_at = ? WHERE payer = ? AND nonce = ?`,
        )
        .run(payment.kind, payment.agentId, payment.authorizationHash, payment.requestHash, payment.payload, sameCall ? existing.response : null, now, ...keyOf(payment));
      return true;
    });
  }

  /** reserved → settling, with the agent's answer (calls): the transfer may be sent once this returns. */
  settling(key: PaymentKey, response: string | null): void {
    this.update(key, "state = 'settling', response = COALESCE(?, response), tx_hash = NULL, error = NULL", response);
  }

  /** Records the transfer sent for a `settling` payment. */
  sent(key: PaymentKey, txHash: Hex): void {
    this.update(key, "tx_hash = ?", txHash);
  }

  /** Records why a `settling` payment is still unresolved (an RPC error, say), keeping its state. */
  note(key: PaymentKey, error: string): void {
    this.update(key, "error = ?", error.slice(0, 2000));
  }

  /** The authorization was used on-chain (by `txHash` when known). */
  settled(key: PaymentKey, txHash: Hex | null): void {
    this.update(key, "state = 'settled', tx_hash = COALESCE(?, tx_hash), error = NULL", txHash);
  }

  /** Nothing was charged and nothing can be: the lock is released (the answer, if any, is kept). */
  failed(key: PaymentKey, error: string): void {
    this.update(key, "state = 'failed', error = ?", error.slice(0, 2000));
  }

  /** Unresolved `settling` payments, least recently looked at first. */
  settlingPayments(limit: number): PaymentRecord[] {
    const rows = this.statement(
        `SELECT * FROM x402_payments INDEXED BY x402_payments_unresolved
          WHERE state IN ('reserved', 'settling') AND state = 'settling' ORDER BY updated_at LIMIT ?`,
      )
      .all(limit) as Row[];
    return rows.map(toPayment);
  }

  /**
   * Releases the reservations a previous process left (it stopped while verifying or calling the
   * agent: nothing was sent, since a transfer is sent only from `settling`). Returns how many.
   */
  releaseReservations(): number {
    return this.repo.transaction(() =>
      Number(
        this.statement(`UPDATE x402_payments SET state = 'failed', error = 'the relayer stopped before the call was settled', updated_at = ?
           WHERE state IN ('reserved', 'settling') AND state = 'reserved'`)
          .run(Date.now()).changes,
      ),
    );
  }

  /**
   * Drops the stored answers of payments resolved (settled or failed) before `before` (ms), at most
   * 1,000 a call: a retry after that gets no answer (settled) or a new run (failed).
   */
  forgetAnswers(before: number): number {
    return this.repo.transaction(() =>
      Number(
        this.statement(
            `UPDATE x402_payments SET response = NULL WHERE rowid IN
               (SELECT rowid FROM x402_payments INDEXED BY x402_payments_answers
                 WHERE response IS NOT NULL AND updated_at < ? AND state IN ('settled', 'failed') LIMIT 1000)`,
          )
          .run(before).changes,
      ),
    );
  }

  private update(key: PaymentKey, assignments: string, value: string | null): void {
    this.repo.transaction(() =>
      this.statement(`UPDATE x402_payments SET ${assignments}, updated_at = ? WHERE payer = ? AND nonce = ?`).run(value, Date.now(), ...keyOf(key)),
    );
  }
}

function toPayment(row: Row): PaymentRecord {
  return {
    payer: row.payer as Hex,
    nonce: row.nonce as Hex,
    kind: row.kind as PaymentKind,
    agentId: Number(row.agent_id),
    authorizationHash: row.authorization_hash as Hex,
    requestHash: (row.request_hash as string | null) ?? null,
    state: row.state as PaymentState,
    payload: row.payload as string,
    response: (row.response as string | null) ?? null,
    txHash: (row.tx_hash as Hex | null) ?? null,
    error: (row.error as string | null) ?? null,
    updatedAt: Number(row.updated_at),
  };
}

/** A marketplace log as stored: enough to decode it again. */
export interface StoredLog {
  blockNumber: bigint;
  logIndex: number;
  topics: [Hex, ...Hex[]];
  data: Hex;
}

/**
 * The payout worker's view of the marketplace's logs (tables `payout_cursor`, `payout_logs`): the
 * last block scanned, and each agent's `AgentTermsSet` and `AgentPaid` logs it may still need (the
 * last terms, the payments not yet distributed). Logs of a range and the cursor move in one
 * transaction, so a restart resumes where the last range ended.
 */
export class PayoutLogs {
  private readonly repo: Repository;
  private readonly statement: (sql: string) => StatementSync;

  constructor(repo: Repository) {
    this.repo = repo;
    this.statement = statementCache(repo.db);
  }

  /** The last block scanned, or undefined before the first scan. */
  cursor(): bigint | undefined {
    const row = this.statement("SELECT last_block FROM payout_cursor WHERE id = 1").get() as Row | undefined;
    return row === undefined ? undefined : BigInt(row.last_block as number);
  }

  /** Stores the logs of a scanned range and moves the cursor to its end. */
  append(toBlock: bigint, logs: readonly (StoredLog & { agentId: number; event: "AgentTermsSet" | "AgentPaid" })[]): void {
    this.repo.transaction(() => {
      for (const log of logs) {
        this.statement("INSERT OR REPLACE INTO payout_logs (block, log_index, agent_id, event, topics, data) VALUES (?, ?, ?, ?, ?, ?)")
          .run(Number(log.blockNumber), log.logIndex, log.agentId, log.event, JSON.stringify(log.topics), log.data);
      }
      this.statement("INSERT INTO payout_cursor (id, last_block) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET last_block = excluded.last_block")
        .run(Number(toBlock));
    });
  }

  /** Agent `agentId`'s stored logs of `event` up to `toBlock`, oldest first. */
  logs(agentId: number, event: "AgentTermsSet" | "AgentPaid", toBlock: bigint): StoredLog[] {
    const rows = this.statement("SELECT * FROM payout_logs WHERE agent_id = ? AND event = ? AND block <= ? ORDER BY block, log_index")
      .all(agentId, event, Number(toBlock)) as Row[];
    return rows.map((row) => ({ blockNumber: BigInt(row.block as number), logIndex: Number(row.log_index), topics: JSON.parse(row.topics as string), data: row.data as Hex }));
  }

  /**
   * Forgets what agent `agentId` no longer needs as of `atBlock`: all but its last terms, and all
   * but its last `pending` payments (the earlier ones were distributed).
   */
  prune(agentId: number, atBlock: bigint, pending: number): void {
    const keepFrom = (event: string, keep: number) =>
      this.statement(
          `DELETE FROM payout_logs WHERE agent_id = ? AND event = ? AND block <= ? AND (block, log_index) NOT IN
             (SELECT block, log_index FROM payout_logs WHERE agent_id = ? AND event = ? AND block <= ? ORDER BY block DESC, log_index DESC LIMIT ?)`,
        )
        .run(agentId, event, Number(atBlock), agentId, event, Number(atBlock), keep);
    this.repo.transaction(() => {
      keepFrom("AgentTermsSet", 1);
      keepFrom("AgentPaid", pending);
    });
  }

  /** Replaces agent `agentId`'s logs up to `toBlock` by `logs` (a rescan of that agent alone). */
  replace(agentId: number, toBlock: bigint, logs: readonly (StoredLog & { event: "AgentTermsSet" | "AgentPaid" })[]): void {
    this.repo.transaction(() => {
      this.statement("DELETE FROM payout_logs WHERE agent_id = ? AND block <= ?").run(agentId, Number(toBlock));
      for (const log of logs) {
        this.statement("INSERT OR REPLACE INTO payout_logs (block, log_index, agent_id, event, topics, data) VALUES (?, ?, ?, ?, ?, ?)")
          .run(Number(log.blockNumber), log.logIndex, agentId, log.event, JSON.stringify(log.topics), log.data);
      }
    });
  }
}
