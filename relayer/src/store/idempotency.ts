import { createHash } from "node:crypto";
import type { StatementSync } from "node:sqlite";
import type { Hex } from "viem";
import { statementCache } from "./database.ts";
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
 * The responses of billed chat calls sent with an `Idempotency-Key`, by session and key. Written in
 * the same group commit as the call's receipt, so a key is never stored without its call nor a
 * call's receipt without its key.
 */
export class IdempotencyStore {
  private readonly statement: (sql: string) => StatementSync;
  private lastPrune = 0;
  /** Keys with a call in flight: a second request with one is refused until the first is answered. */
  private readonly inFlight = new Set<string>();

  private readonly repo: Repository;

  constructor(repo: Repository) {
    this.repo = repo;
    this.statement = statementCache(repo.db);
  }

  /** The call stored for `key` of `session`, if any within the window. */
  get(session: Hex, key: string, now = Date.now()): IdempotentCall | undefined {
    const row = this.statement(
      "SELECT request_hash, receipt_hash, response FROM idempotent_calls WHERE session_id = ? AND key = ? AND created_at >= ?",
    ).get(session.toLowerCase(), key, now - IDEMPOTENCY_WINDOW_MS) as { request_hash: string; receipt_hash: string; response: string } | undefined;
    if (row === undefined) return undefined;
    return { requestHash: row.request_hash as Hex, receiptHash: row.receipt_hash as Hex, response: JSON.parse(row.response) as StoredResponse };
  }

  /** Marks `key` of `session` in flight; false when it already is. */
  claim(session: Hex, key: string): boolean {
    const id = `${session.toLowerCase()}\n${key}`;
    if (this.inFlight.has(id)) return false;
    this.inFlight.add(id);
    return true;
  }

  release(session: Hex, key: string): void {
    this.inFlight.delete(`${session.toLowerCase()}\n${key}`);
  }

  /** Stores `call` for `key` in this turn's batch (await `repo.committed()` before answering). */
  put(session: Hex, key: string, call: IdempotentCall, now = Date.now()): void {
    this.repo.batch(() => {
      if (now - this.lastPrune >= PRUNE_EVERY_MS) {
        this.statement("DELETE FROM idempotent_calls WHERE created_at < ?").run(now - IDEMPOTENCY_WINDOW_MS);
        this.lastPrune = now;
      }
      this.statement(
        `INSERT INTO idempotent_calls (session_id, key, request_hash, receipt_hash, response, created_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (session_id, key) DO UPDATE SET request_hash = excluded.request_hash, receipt_hash = excluded.receipt_hash,
           response = excluded.response, created_at = excluded.created_at`,
      ).run(session.toLowerCase(), key, call.requestHash, call.receiptHash, JSON.stringify(call.response), now);
    });
  }
}

const stores = new WeakMap<Repository, IdempotencyStore>();

/** The idempotency store of `repo`'s database (one per repository). */
export function idempotencyStore(repo: Repository): IdempotencyStore {
  let store = stores.get(repo);
  if (store === undefined) stores.set(repo, (store = new IdempotencyStore(repo)));
  return store;
}

/** What a request is compared by: its body as sent, less the voucher a retry may add or change. */
export function requestHashOf(body: Record<string, unknown>): Hex {
  const { voucher: _voucher, ...request } = body;
  return `0x${createHash("sha256").update(JSON.stringify(request)).digest("hex")}`;
}
