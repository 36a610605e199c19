import { ApiError } from "@agentmesh/sdk/http";
import type { RelayerContext } from "./context.ts";
import type { SessionRecord } from "./store/repository.ts";

/** Why a session may not serve a call now: the error code the client sees. */
export type ServingRefusalCode =
  | "session_finalized"
  | "session_closing"
  | "session_expired"
  | "budget_expired"
  | "provider_inactive"
  | "signer_rotated"
  | "receipt_signer_unavailable";

/** 410 when the session can never serve again, 409 when it conflicts with a state that may change. */
export const REFUSAL_STATUS: Record<ServingRefusalCode, number> = {
  session_finalized: 410,
  session_expired: 410,
  budget_expired: 410,
  session_closing: 409,
  provider_inactive: 409,
  signer_rotated: 409,
  receipt_signer_unavailable: 409,
};

/** A call refused because its session may not serve now; the code names the reason. */
export class SessionNotServableError extends ApiError {
  readonly reason: ServingRefusalCode;

  constructor(reason: ServingRefusalCode, message: string) {
    // OpenAI's clients retry a 409 unless told not to: the same call on this session would fail again.
    super(REFUSAL_STATUS[reason], reason, message, { headers: { "x-should-retry": "false" } });
    this.name = "SessionNotServableError";
    this.reason = reason;
  }
}

const iso = (seconds: number) => new Date(seconds * 1000).toISOString().replace(".000Z", "Z");

/**
 * Why `session` may not serve a call now, or undefined when it may. It reads the relayer's record
 * and the chain index (what the indexer saw on-chain; no RPC), by the chain's clock, in order:
 *
 * - finalized on-chain (closed here cooperatively, or finalized there by anyone): nothing it serves
 *   could be paid;
 * - closing (its agent or its budget's creator asked to close it on-chain): the consumer has ended it;
 * - past its deadline, or its budget past its expiry, with `limits.chainTimeMarginSeconds` to spare;
 * - its provider inactive in the registry (deactivated, unstaked below the minimum, or slashed): no
 *   stake stands behind its receipts any more;
 * - its provider's registered receipt signer no longer the one its terms name: the provider has
 *   rotated its signer, and the old key no longer signs in its name (a session keeps its signer, so
 *   it cannot move to the new one);
 * - its signer's key not held here.
 *
 * What it does not check, because the escrow would still settle the voucher: the agent's place on
 * the budget's whitelist and the budget's balance (the session's amount is locked at open), and
 * whether its model is retired (the session keeps its prices). Vouchers of a refused session that
 * the agent signed before still settle, and it may still close cooperatively.
 *
 * @example
 * const refusal = await servingRefusal(ctx, session);
 * if (refusal !== undefined) throw refusal; // 409 or 410, e.g. code "session_closing"
 */
export async function servingRefusal(ctx: RelayerContext, session: SessionRecord, now = ctx.chainIndex.chainTime()): Promise<SessionNotServableError | undefined> {
  const { id, terms } = session;
  const onChain = await ctx.chainIndex.session(id);
  if (session.status === "closed" || onChain?.finalized) {
    const tx = session.closeTx === null ? "" : ` in transaction ${session.closeTx}`;
    return new SessionNotServableError("session_finalized", `session ${id} was finalized on-chain${tx}: it serves no more calls; open a new session`);
  }
  if (session.status === "closing" || (onChain?.closeRequestedBy ?? null) !== null) {
    const by = onChain?.closeRequestedBy ? ` by ${onChain.closeRequestedBy}` : "";
    const until = onChain !== undefined && onChain.claimEnd > 1 ? ` until ${iso(onChain.claimEnd)}` : "";
    return new SessionNotServableError(
      "session_closing",
      `session ${id} is closing: a close was requested on-chain${by}; its signed vouchers settle${until}, but it serves no more calls; open a new session`,
    );
  }
  const margin = ctx.limits.chainTimeMarginSeconds;
  if (now + margin > terms.deadline) {
    return new SessionNotServableError(
      "session_expired",
      `session ${id} ended at its deadline ${iso(terms.deadline)} (chain time ${iso(now)}, serving stops ${margin} s before); open a new session`,
    );
  }
  const budget = await ctx.chainIndex.budget(Number(terms.budgetId));
  if (budget !== undefined && now + margin >= budget.expiry) {
    return new SessionNotServableError(
      "budget_expired",
      `budget ${budget.id} of session ${id} expired at ${iso(budget.expiry)} (chain time ${iso(now)}, serving stops ${margin} s before): it funds no more calls`,
    );
  }
  const provider = await ctx.chainIndex.provider(session.providerId);
  if (provider === undefined || !provider.active) {
    return new SessionNotServableError(
      "provider_inactive",
      `provider ${session.providerId} of session ${id} is not active on-chain (deactivated or slashed): it is not served; open a session with another provider`,
    );
  }
  if (provider.receiptSigner.toLowerCase() !== terms.receiptSigner.toLowerCase()) {
    return new SessionNotServableError(
      "signer_rotated",
      `provider ${provider.id} rotated its receipt signer from ${terms.receiptSigner}, which session ${id}'s terms name, to ${provider.receiptSigner}: ` +
        "the session serves no more calls (its signed vouchers still settle, and it may close); open a new session",
    );
  }
  if (ctx.receiptSigners.keyOf(terms.receiptSigner) === undefined) {
    return new SessionNotServableError("receipt_signer_unavailable", `this relayer does not hold session ${id}'s receipt signer ${terms.receiptSigner}`);
  }
  return undefined;
}
