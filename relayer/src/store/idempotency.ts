import { createHash } from "node:crypto";
import type { Hex } from "viem";
import type { Repository } from "./repository.ts";

/** How long a key's response is kept (OpenAI's and Stripe's idempotency window). */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000;
/** Old keys are pruned at most this often (one indexed range delete). */
const PRUNE_EVERY_MS = 60_000;

/** What a billed call answered, enough to answer it again. */
export type StoredResponse =
  | { kind: "json"; body: unknown }
  | {
      kind: "stream";
      /** The stream's output as one chunk (`chat.completion.chunk` with one delta). */
      chunk: unknown;
      /** The final chunk: usage, cost and receipt (and an error when the stream was cut). */
      final: unknown;
      /** Whether the stream ended with `[DONE]` (not when it was cut). */
      done: boolean;
    };

export interface IdempotentCall {
  requestHash: Hex;
  receiptHash: Hex;
  response: StoredResponse;
}

/**
 * The responses of billed chat calls sent with an `Idempotency-Key`, by session and key, and the
 * keys in flight, in the database every instance shares. A response is stored in the same
 * transaction as the call's receipt, so a key is never stored without its call nor a call's receipt
 * without its key.
 */
export class IdempotencyStore {
  private lastPrune = 0;

  /** The call stored for `key` of `session`, if any within the window. */
  async get(repo: Repository, session: Hex, key: string, now = Date.now()): Promise<IdempotentCall | undefined> {
    const row = await repo.sql.get("SELECT request_hash, receipt_hash, response FROM idempotent_calls WHERE session_id = ? AND key = ? AND created_at >= ?", [
      session.toLowerCase(),
      key,
      now - IDEMPOTENCY_WINDOW_MS,
    ]);
    if (row === undefined) return undefined;
    return { requestHash: row.request_hash as Hex, receiptHash: row.receipt_hash as Hex, response: JSON.parse(row.response as string) as StoredResponse };
  }

  /**
   * Marks `key` of `session` in flight until `until` (ms; a holder that died lets go then); false
   * when another request holds it, on any instance.
   */
  async claim(repo: Repository, session: Hex, key: string, until: number, now = Date.now()): Promise<boolean> {
    const { changes } = await repo.sql.run(
      `INSERT INTO idempotency_claims (session_id, key, expires_at) VALUES (?, ?, ?)
       ON CONFLICT (session_id, key) DO UPDATE SET expires_at = excluded.expires_at WHERE idempotency_claims.expires_at < ?`,
      [session.toLowerCase(), key, until, now],
    );
    return changes > 0;
  }

  /** Keeps the claim of `key` of `session` until `until`. */
  async renew(repo: Repository, session: Hex, key: string, until: number): Promise<void> {
    await repo.sql.run("UPDATE idempotency_claims SET expires_at = ? WHERE session_id = ? AND key = ?", [until, session.toLowerCase(), key]);
  }

  async release(repo: Repository, session: Hex, key: string): Promise<void> {
    await repo.sql.run("DELETE FROM idempotency_claims WHERE session_id = ? AND key = ?", [session.toLowerCase(), key]);
  }

  /** Stores `call` for `key` (with `repo` bound to the transaction that records the call). */
  async put(repo: Repository, session: Hex, key: string, call: IdempotentCall, now = Date.now()): Promise<void> {
    if (now - this.lastPrune >= PRUNE_EVERY_MS) {
      this.lastPrune = now;
      await repo.sql.run("DELETE FROM idempotent_calls WHERE created_at < ?", [now - IDEMPOTENCY_WINDOW_MS]);
      await repo.sql.run("DELETE FROM idempotency_claims WHERE expires_at < ?", [now]);
    }
    await repo.sql.run(
      `INSERT INTO idempotent_calls (session_id, key, request_hash, receipt_hash, response, created_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (session_id, key) DO UPDATE SET request_hash = excluded.request_hash, receipt_hash = excluded.receipt_hash,
         response = excluded.response, created_at = excluded.created_at`,
      [session.toLowerCase(), key, call.requestHash, call.receiptHash, JSON.stringify(call.response), now],
    );
  }
}

/** The process's idempotency store (it keeps only when it last pruned). */
export const idempotencyStore = new IdempotencyStore();

/** What a request is compared by: its body as sent, less the voucher a retry may add or change. */
export function requestHashOf(body: Record<string, unknown>): Hex {
  const { voucher: _voucher, ...request } = body;
  return `0x${createHash("sha256").update(JSON.stringify(request)).digest("hex")}`;
}
