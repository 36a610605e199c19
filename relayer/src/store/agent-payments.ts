import type { Hex } from "viem";
import type { Repository } from "./repository.ts";
import type { SqlRunner } from "./sql.ts";

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

  constructor(repo: Repository) {
    this.repo = repo;
  }

  async get(key: PaymentKey): Promise<PaymentRecord | undefined> {
    const row = await this.repo.sql.get("SELECT * FROM x402_payments WHERE payer = ? AND nonce = ?", keyOf(key));
    return row && toPayment(row);
  }

  /**
   * Takes the lock of `payment` for a new attempt: true when there was no row, or only a `failed`
   * one (nothing was charged). A failed call's stored answer is kept when the same payment retries
   * the same request, so the agent is not run again. False when the payment is held or used. The
   * primary key (payer, nonce) makes this hold across every instance sharing the database: of two
   * taking one payment at once, one inserts and the other finds its row.
   */
  async reserve(payment: Pick<PaymentRecord, "payer" | "nonce" | "kind" | "agentId" | "authorizationHash" | "requestHash" | "payload">): Promise<boolean> {
    const now = Date.now();
    const { changes } = await this.repo.sql.run(
      `INSERT INTO x402_payments (payer, nonce, kind, agent_id, authorization_hash, request_hash, state, payload, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, 'reserved', ?, ?, ?)
       ON CONFLICT (payer, nonce) DO UPDATE SET kind = excluded.kind, agent_id = excluded.agent_id,
         authorization_hash = excluded.authorization_hash, request_hash = excluded.request_hash, state = 'reserved',
         payload = excluded.payload, tx_hash = NULL, error = NULL, updated_at = excluded.updated_at,
         response = CASE WHEN x402_payments.kind = excluded.kind AND x402_payments.agent_id = excluded.agent_id
             AND x402_payments.authorization_hash = excluded.authorization_hash
             AND COALESCE(x402_payments.request_hash, '') = COALESCE(excluded.request_hash, '')
           THEN x402_payments.response ELSE NULL END
       WHERE x402_payments.state = 'failed'`,
      [...keyOf(payment), payment.kind, payment.agentId, payment.authorizationHash, payment.requestHash, payment.payload, now, now],
    );
    return changes > 0;
  }

  /** reserved → settling, with the agent's answer (calls): the transfer may be sent once this returns. */
  async settling(key: PaymentKey, response: string | null): Promise<void> {
    await this.update(key, "state = 'settling', response = COALESCE(?, response), tx_hash = NULL, error = NULL", response);
  }

  /** Records the transfer sent for a `settling` payment (in the transaction manager's recording transaction when `repo` is given). */
  async sent(key: PaymentKey, txHash: Hex, repo: Repository = this.repo): Promise<void> {
    await repo.sql.run("UPDATE x402_payments SET tx_hash = ?, updated_at = ? WHERE payer = ? AND nonce = ?", [txHash, Date.now(), ...keyOf(key)]);
  }

  /** Records why a `settling` payment is still unresolved (an RPC error, say), keeping its state. */
  async note(key: PaymentKey, error: string): Promise<void> {
    await this.update(key, "error = ?", error.slice(0, 2000));
  }

  /** The authorization was used on-chain (by `txHash` when known). */
  async settled(key: PaymentKey, txHash: Hex | null): Promise<void> {
    await this.update(key, "state = 'settled', tx_hash = COALESCE(?, tx_hash), error = NULL", txHash);
  }

  /** Nothing was charged and nothing can be: the lock is released (the answer, if any, is kept). */
  async failed(key: PaymentKey, error: string): Promise<void> {
    await this.update(key, "state = 'failed', error = ?", error.slice(0, 2000));
  }

  /** Unresolved `settling` payments, least recently looked at first (the partial index x402_payments_unresolved). */
  async settlingPayments(limit: number): Promise<PaymentRecord[]> {
    const rows = await this.repo.sql.all(
      "SELECT * FROM x402_payments WHERE state IN ('reserved', 'settling') AND state = 'settling' ORDER BY updated_at LIMIT ?",
      [limit],
    );
    return rows.map(toPayment);
  }

  /**
   * Releases reservations older than `before` (ms): their holder stopped while verifying or calling
   * the agent (nothing was sent, since a transfer is sent only from `settling`). On one instance,
   * `before` is its start; several instances pass the longest a call may take. Returns how many.
   */
  async releaseReservations(before: number): Promise<number> {
    const { changes } = await this.repo.sql.run(
      `UPDATE x402_payments SET state = 'failed', error = 'the relayer stopped before the call was settled', updated_at = ?
        WHERE state IN ('reserved', 'settling') AND state = 'reserved' AND updated_at < ?`,
      [Date.now(), before],
    );
    return changes;
  }

  /**
   * Drops the stored answers of payments resolved (settled or failed) before `before` (ms), at most
   * 1,000 a call (the partial index x402_payments_answers): a retry after that gets no answer
   * (settled) or a new run (failed).
   */
  async forgetAnswers(before: number): Promise<number> {
    const { changes } = await this.repo.sql.run(
      `UPDATE x402_payments SET response = NULL WHERE (payer, nonce) IN
         (SELECT payer, nonce FROM x402_payments WHERE response IS NOT NULL AND updated_at < ? AND state IN ('settled', 'failed') LIMIT 1000)`,
      [before],
    );
    return changes;
  }

  private async update(key: PaymentKey, assignments: string, value: string | null): Promise<void> {
    await this.repo.sql.run(`UPDATE x402_payments SET ${assignments}, updated_at = ? WHERE payer = ? AND nonce = ?`, [value, Date.now(), ...keyOf(key)]);
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

  constructor(repo: Repository) {
    this.repo = repo;
  }

  /** The last block scanned, or undefined before the first scan. */
  async cursor(): Promise<bigint | undefined> {
    const row = await this.repo.sql.get("SELECT last_block FROM payout_cursor WHERE id = 1");
    return row === undefined ? undefined : BigInt(row.last_block as number);
  }

  /** Stores the logs of a scanned range and moves the cursor to its end. */
  append(toBlock: bigint, logs: readonly (StoredLog & { agentId: number; event: "AgentTermsSet" | "AgentPaid" })[]): Promise<void> {
    return this.repo.transaction(async ({ sql }) => {
      for (const log of logs) await putLog(sql, log.agentId, log);
      await sql.run("INSERT INTO payout_cursor (id, last_block) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET last_block = excluded.last_block", [Number(toBlock)]);
    });
  }

  /** Agent `agentId`'s stored logs of `event` up to `toBlock`, oldest first. */
  async logs(agentId: number, event: "AgentTermsSet" | "AgentPaid", toBlock: bigint): Promise<StoredLog[]> {
    const rows = await this.repo.sql.all("SELECT * FROM payout_logs WHERE agent_id = ? AND event = ? AND block <= ? ORDER BY block, log_index", [
      agentId,
      event,
      Number(toBlock),
    ]);
    return rows.map((row) => ({ blockNumber: BigInt(row.block as number), logIndex: Number(row.log_index), topics: JSON.parse(row.topics as string), data: row.data as Hex }));
  }

  /**
   * Forgets what agent `agentId` no longer needs as of `atBlock`: all but its last terms, and all
   * but its last `pending` payments (the earlier ones were distributed).
   */
  prune(agentId: number, atBlock: bigint, pending: number): Promise<void> {
    return this.repo.transaction(async ({ sql }) => {
      for (const [event, keep] of [["AgentTermsSet", 1], ["AgentPaid", pending]] as const) {
        await sql.run(
          `DELETE FROM payout_logs WHERE agent_id = ? AND event = ? AND block <= ? AND (block, log_index) NOT IN
             (SELECT block, log_index FROM payout_logs WHERE agent_id = ? AND event = ? AND block <= ? ORDER BY block DESC, log_index DESC LIMIT ?)`,
          [agentId, event, Number(atBlock), agentId, event, Number(atBlock), keep],
        );
      }
    });
  }

  /** Replaces agent `agentId`'s logs up to `toBlock` by `logs` (a rescan of that agent alone). */
  replace(agentId: number, toBlock: bigint, logs: readonly (StoredLog & { event: "AgentTermsSet" | "AgentPaid" })[]): Promise<void> {
    return this.repo.transaction(async ({ sql }) => {
      await sql.run("DELETE FROM payout_logs WHERE agent_id = ? AND block <= ?", [agentId, Number(toBlock)]);
      for (const log of logs) await putLog(sql, agentId, log);
    });
  }
}

/** Stores one marketplace log (again, when a rescan finds it: its content is the chain's). */
async function putLog(sql: SqlRunner, agentId: number, log: StoredLog & { event: "AgentTermsSet" | "AgentPaid" }): Promise<void> {
  await sql.run(
    `INSERT INTO payout_logs (block, log_index, agent_id, event, topics, data) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (block, log_index) DO UPDATE SET agent_id = excluded.agent_id, event = excluded.event, topics = excluded.topics, data = excluded.data`,
    [Number(log.blockNumber), log.logIndex, agentId, log.event, JSON.stringify(log.topics), log.data],
  );
}
