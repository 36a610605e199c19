import { randomBytes } from "node:crypto";
import { BaseError, ContractFunctionRevertedError, recoverMessageAddress, type Hex } from "viem";
import {
  INITIAL_STATE,
  formatUsdc,
  recoverDigestSigner,
  sessionIdOf,
  sessionReadMessage,
  SESSION_READ_MAX_SECONDS,
  signDigest,
  voucherDigest,
  type CompactSignature,
  type SessionTerms,
  type SignedVoucher,
  type VoucherState,
} from "@agentmesh/sdk";
import { contractRevert, type ContractRevert } from "../chain.ts";
import { chainUnavailable } from "../chain-errors.ts";
import type { RelayerContext } from "../context.ts";
import { reconcileSettlement } from "./settlement.ts";
import { TxPendingError, type TxRequest } from "../tx-manager.ts";
import { ApiError, badRequest } from "@agentmesh/sdk/http";
import { servingRefusal } from "../serving.ts";
import type { ReceiptRecord, Repository, SessionRecord } from "../store/repository.ts";
import { SessionHold } from "./session-hold.ts";
import { instanceStopped } from "../store/leases.ts";
import { log } from "../log.ts";
import type {
  ClosedSession,
  ErrorCode,
  KeyRevoked,
  OpenSessionRequest,
  OpenedSession,
  ReceiptPageQuery,
  ReceiptStatus,
  ReceiptView,
  SessionView,
  VoucherAccepted,
  VoucherRequest,
} from "@agentmesh/sdk/protocol";

/**
 * Sessions: opening one from the agent's signed terms, its API key, vouchers, the cooperative close,
 * and the views of its state, receipts and settlement. No HTTP: the routes (routes/sessions.ts)
 * parse the requests and call these; errors are `ApiError`s (the wire protocol's code and status).
 */

/** The custom error name of a reverted contract call, for a useful 4xx message. */
function revertReason(error: unknown): string {
  if (error instanceof BaseError) {
    const reverted = error.walk((cause) => cause instanceof ContractFunctionRevertedError);
    if (reverted instanceof ContractFunctionRevertedError) return reverted.data?.errorName ?? reverted.shortMessage;
    return error.shortMessage;
  }
  return String(error);
}

/** JSON view of a receipt as the API returns it. */
export function receiptView(record: ReceiptRecord): ReceiptView {
  const { receipt, state } = record;
  return {
    hash: record.hash,
    ...receipt,
    cost: receipt.cost.toString(),
    providerSignature: record.providerSignature,
    agentSigned: record.agentSignature !== null,
    tokenMismatch: record.tokenMismatch,
    countedByRelayer: record.countedByRelayer,
    settlementTxHash: record.settlementTx,
    state: { ...state, cumulativeCost: state.cumulativeCost.toString() },
  };
}

/**
 * Where a session's settlement stands: what the escrow holds (when it was finalized, else as the
 * indexer last saw it), and the agent's signed vouchers that can never settle, with why (terminal).
 */
async function settlementView(ctx: RelayerContext, session: SessionRecord) {
  const indexed = await ctx.chainIndex.session(session.id);
  const onChainSettled = session.finalSettled ?? indexed?.settled ?? null;
  const onChainSequence = session.finalSequence ?? indexed?.sequence ?? null;
  let unsettled = null;
  // Terminal: recorded so, or finalized (a call in flight when it was finalized may be signed after).
  if ((session.unsettledReason !== null || session.status === "closed") && session.signedSequence > session.settledSequence) {
    const costAt = async (sequence: number) => (await ctx.repo.receiptAt(session.id, sequence))?.state.cumulativeCost ?? 0n;
    const settled = session.finalSettled ?? (await costAt(session.settledSequence));
    unsettled = {
      fromSequence: session.settledSequence + 1,
      toSequence: session.signedSequence,
      amount: formatUsdc((await costAt(session.signedSequence)) - settled),
      reason: session.unsettledReason ?? "the session was finalized on-chain",
    };
  }
  return { onChainSettled: onChainSettled === null ? null : formatUsdc(onChainSettled), onChainSequence, unsettled };
}

async function sessionView(ctx: RelayerContext, session: SessionRecord, receipts: ReceiptRecord[], forTheAgent = false) {
  return {
    sessionId: session.id,
    status: session.status,
    agent: session.agent,
    providerId: session.providerId,
    model: session.model,
    terms: session.terms,
    state: session.state,
    spent: formatUsdc(session.state.cumulativeCost),
    remaining: formatUsdc(session.terms.maxSpend - session.state.cumulativeCost),
    signedSequence: session.signedSequence,
    settledSequence: session.settledSequence,
    openTxHash: session.openTx,
    closeTxHash: session.closeTx,
    settlement: await settlementView(ctx, session),
    // Only the agent sees what was delivered of a call it has not signed yet (a stream it stopped
    // reading): it checks the receipt against that before signing. Nobody else sees any output.
    receipts: receipts.map((record) =>
      forTheAgent && record.deliveredOutput !== null && record.receipt.sequence > session.signedSequence
        ? { ...receiptView(record), deliveredOutput: record.deliveredOutput }
        : receiptView(record),
    ),
  };
}

/**
 * Opens a session on-chain with the agent's signature (`POST /v1/sessions`); returns its API key,
 * which opens this session only (see {@link authenticate}). The terms must name a receipt signer
 * this relayer holds; the escrow checks the rest (prices, signer and fee as the chain has them now).
 * The open is simulated before anything is recorded, and recorded before it is sent.
 */
export async function openSession(ctx: RelayerContext, { terms, signature }: OpenSessionRequest): Promise<OpenedSession> {
  if (ctx.receiptSigners.keyOf(terms.receiptSigner) === undefined) {
    throw badRequest(`receipt signer ${terms.receiptSigner} is not one of this relayer's: it cannot co-sign the session`, "unknown_receipt_signer");
  }
  const provider = await ctx.chainIndex.provider(terms.providerId);
  const model = provider?.models[terms.modelId];
  if (provider === undefined || model === undefined) {
    throw badRequest(`provider ${terms.providerId} has no model ${terms.modelId}`, "model_not_found");
  }
  const sessionId = sessionIdOf(terms);
  const requireNew = async () => {
    if ((await ctx.repo.getSession(sessionId)) !== undefined) {
      throw new ApiError(409, "session_exists", `session ${sessionId} is already open (to release its lock, close it: POST /v1/sessions/${sessionId}/close)`);
    }
  };
  await requireNew();
  // Simulated before anything is recorded: terms or a signature the escrow refuses are answered 400
  // and leave no trace (bad input changes nothing).
  let request: TxRequest;
  try {
    request = await ctx.chain.prepareOpen(terms, signature);
  } catch (error) {
    if (chainUnavailable(error)) throw error; // answered 503: an outage is no refusal of the terms
    throw badRequest(`the escrow refused to open the session: ${revertReason(error)}`, "open_rejected");
  }
  await requireNew(); // again: the same open may have completed while this one was simulated
  // Recorded before it is sent: an open that mines while the relayer is down is known after a
  // restart (reconcileOpens), so its lock can be closed and released instead of stranded.
  if (!(await ctx.repo.recordOpen(sessionId, JSON.stringify({ terms: termsJson(terms), model: model.name })))) {
    throw new ApiError(409, "open_pending", `session ${sessionId} is being opened already`);
  }
  let openTx: Hex;
  try {
    openTx = await sendOpen(ctx, sessionId, request);
  } catch (error) {
    if (error instanceof TxPendingError) {
      throw new ApiError(503, "open_pending", `the open was sent (${error.hash}) and is not confirmed yet; the session is known here once it is`);
    }
    if (error instanceof ApiError) throw error;
    if (chainUnavailable(error)) throw error; // answered 503: an outage is no refusal of the terms
    await ctx.repo.finishOpen(sessionId, "failed", revertReason(error));
    throw badRequest(`the escrow refused to open the session: ${revertReason(error)}`, "open_rejected");
  }
  const apiKey = `am_${randomBytes(32).toString("base64url")}`;
  await ctx.repo.transaction(async (repo) => {
    await recordOpened(repo, sessionId, terms, model.name, openTx);
    await repo.addSessionKey(apiKey, sessionId);
  });
  return { sessionId, apiKey, model: model.name, providerId: terms.providerId, openTxHash: openTx };
}

/** Sends the simulated open of `sessionId` (already recorded) and waits for it; its transaction hash. */
async function sendOpen(ctx: RelayerContext, sessionId: Hex, request: TxRequest): Promise<Hex> {
  let sent;
  opening.add(sessionId);
  try {
    sent = await ctx.chain.transactions.send("openSession", request, (tx, repo) => repo.linkOpenTx(sessionId, tx.id));
  } finally {
    opening.delete(sessionId);
  }
  const outcome = await ctx.chain.transactions.wait(sent.id, OPEN_WAIT_MS);
  if (outcome.status === "confirmed") return outcome.hash;
  await reconcileOpens(ctx); // reverted, or its nonce taken: the chain says whether it opened
  const opened = await ctx.repo.getSession(sessionId);
  if (opened !== undefined) return opened.openTx;
  throw badRequest(`the escrow did not open the session (its transaction was ${outcome.status})`, "open_rejected");
}

/** Opens of this process between being recorded and their transaction being recorded (sent). */
const opening = new Set<Hex>();

/**
 * How long an open recorded and not sent yet may be another instance's in progress: it simulates
 * and sends within moments (RPC timeouts included). Past this, it was never sent.
 */
const UNSENT_OPEN_MS = 5 * 60_000;

/** How long `POST /v1/sessions` waits for its open to confirm before answering that it is pending. */
const OPEN_WAIT_MS = 60_000;

const termsJson = (terms: SessionTerms) => ({ ...terms, budgetId: terms.budgetId.toString(), maxSpend: terms.maxSpend.toString(), salt: terms.salt.toString() });

/** Records session `sessionId` as opened by `openTx` (once: a reconciled open may have recorded it). */
function recordOpened(repo: Repository, sessionId: Hex, terms: SessionTerms, model: string, openTx: Hex): Promise<void> {
  return repo.transaction(async (tx) => {
    if ((await tx.getSession(sessionId)) === undefined) {
      await tx.insertSession({ id: sessionId, agent: terms.agent, providerId: terms.providerId, modelId: terms.modelId, model, terms, state: INITIAL_STATE, openTx });
    }
    await tx.finishOpen(sessionId, "opened");
  });
}

/**
 * Resolves the opens recorded and not yet resolved (after a crash, or a reply that timed out): one
 * whose transaction confirmed, or that the escrow shows open (whichever transaction opened it), is
 * recorded as a session of this relayer, so that the agent can close it cooperatively (signing,
 * with no API key) and its lock returns to the budget; one never sent, reverted, or whose nonce was
 * taken while the escrow has no such session, failed. One still in flight waits.
 */
export async function reconcileOpens(ctx: RelayerContext): Promise<void> {
  const me = ctx.chain.account.address.toLowerCase();
  for (const open of await ctx.repo.pendingOpens()) {
    const { terms: raw, model } = JSON.parse(open.request) as { terms: Record<string, unknown>; model: string };
    const terms = { ...raw, budgetId: BigInt(raw.budgetId as string), maxSpend: BigInt(raw.maxSpend as string), salt: BigInt(raw.salt as string) } as SessionTerms;
    const theirs = open.sender !== null && open.sender !== me;
    if (theirs) {
      // Another instance's: it resolves it, unless it stopped; then the escrow alone says whether
      // it opened (its transaction may still mine: it stays pending until then).
      if (!(await instanceStopped(ctx.leases, open.sender!))) continue;
      const state = await ctx.chain.session(open.sessionId).catch(() => undefined);
      if (state !== undefined && state.claimEnd !== 0) await recordOpened(ctx.repo, open.sessionId, terms, model, `0x${"0".repeat(64)}` as Hex);
      continue;
    }
    const tx = open.txId === null ? undefined : await ctx.chain.transactions.get(open.txId);
    if (tx !== undefined && (tx.status === "pending" || tx.status === "mined")) continue;
    if (tx?.status === "confirmed") {
      await recordOpened(ctx.repo, open.sessionId, terms, model, tx.minedHash!);
      continue;
    }
    // Being sent right now, here or by another instance (an open is sent within moments of being recorded).
    if (tx === undefined && (opening.has(open.sessionId) || (ctx.leases !== undefined && Date.now() - open.createdAt < UNSENT_OPEN_MS))) continue;
    let state;
    try {
      state = await ctx.chain.session(open.sessionId);
    } catch (error) {
      log.warn({ sessionId: open.sessionId, err: error }, "open of session: the escrow could not be read; retried next pass");
      continue;
    }
    if (state.claimEnd !== 0) await recordOpened(ctx.repo, open.sessionId, terms, model, tx?.minedHash ?? (`0x${"0".repeat(64)}` as Hex));
    else await ctx.repo.finishOpen(open.sessionId, "failed", tx === undefined ? "never sent" : `transaction ${tx.status}`);
  }
}

/**
 * The key that co-signs `session`'s states: that of the receipt signer its terms name, which the
 * escrow alone accepts for it. A 409 when this relayer no longer holds it (restarted without it).
 */
export function sessionSignerKey(ctx: RelayerContext, session: SessionRecord): Hex {
  const key = ctx.receiptSigners.keyOf(session.terms.receiptSigner);
  if (key === undefined) {
    throw new ApiError(409, "receipt_signer_unavailable", `this relayer does not hold session ${session.id}'s receipt signer ${session.terms.receiptSigner}`);
  }
  return key;
}

/** Session `id` as this relayer records it, or a 404. */
export async function requireSession(ctx: RelayerContext, id: Hex): Promise<SessionRecord> {
  const session = await ctx.repo.getSession(id);
  if (session === undefined) throw new ApiError(404, "session_not_found", `no session ${id}`);
  return session;
}

/**
 * A session's status for `reader` (`GET /v1/sessions/{id}`): cumulative totals, settlement, and one
 * page of receipts (those after `after`, in order; `nextAfter` is the cursor of the next page, or
 * null). Only the agent sees the output delivered on a call it has not signed.
 */
export async function sessionPage(ctx: RelayerContext, session: SessionRecord, { after, limit }: ReceiptPageQuery, reader: "agent" | "creator"): Promise<SessionView> {
  const receipts = await ctx.repo.receiptsAfter(session.id, after, limit + 1);
  const nextAfter = receipts.length > limit ? receipts[limit - 1].receipt.sequence : null;
  return { ...(await sessionView(ctx, session, receipts.slice(0, limit), reader === "agent")), receiptsPage: { after, limit, nextAfter } };
}

/**
 * Receipt `hash` (`GET /v1/receipts/{hash}`): the receipt, its verification and its settlement, to
 * whoever may read its session (see {@link authorizeRead}); a 404 when unknown. Receipt heads are
 * public on-chain once settled, so the hash alone must not open a session's history.
 */
export async function receiptStatus(ctx: RelayerContext, hash: Hex, credentials: ReadCredentials): Promise<ReceiptStatus> {
  const record = await ctx.repo.getReceipt(hash);
  if (record === undefined) throw new ApiError(404, "receipt_not_found", `no receipt ${hash}`);
  const session = (await ctx.repo.getSession(record.receipt.sessionId))!;
  await authorizeRead(ctx, session, credentials);
  const digest = voucherDigest(ctx.domainSeparator, session.id, record.state);
  const providerSigner = recoverDigestSigner(digest, record.providerSignature);
  const agentSigner = record.agentSignature && recoverDigestSigner(digest, record.agentSignature);
  return {
    receipt: receiptView(record),
    verification: {
      providerSignatureValid: providerSigner === session.terms.receiptSigner,
      agentSignatureValid: agentSigner === null ? null : agentSigner === session.agent,
      chainsTo: record.receipt.previousHash,
    },
    settlementTxHash: record.settlementTx,
  };
}

/**
 * Stores the agent's voucher for a served call of `session` (`POST /v1/sessions/{id}/vouchers`),
 * answered once it is on disk; a 409 when it is stale (see {@link recordVoucher}).
 */
export async function submitVoucher(ctx: RelayerContext, session: SessionRecord, voucher: VoucherRequest): Promise<VoucherAccepted> {
  if (!(await recordVoucher(ctx, session, voucher))) {
    throw new ApiError(409, "stale_voucher", `voucher ${voucher.sequence} is stale: the agent already signed up to ${session.signedSequence}`);
  }
  return { sessionId: session.id, signedSequence: voucher.sequence };
}

/**
 * Verifies and stores the agent's voucher for call `sequence` of `session`. Returns false, changing
 * nothing, when a voucher at or after that sequence is already stored; throws when the sequence has
 * no receipt or the signature is not the session agent's.
 */
export async function recordVoucher(ctx: RelayerContext, session: SessionRecord, { sequence, signature }: VoucherRequest): Promise<boolean> {
  if (sequence <= session.signedSequence) return false;
  // Usually the voucher is for the latest call, whose state is the session's: no receipt read.
  const state = sequence === session.state.sequence ? session.state : (await ctx.repo.receiptAt(session.id, sequence))?.state;
  if (state === undefined) throw badRequest(`session ${session.id} has no call ${sequence} to sign for`, "unknown_sequence");
  requireAgentSignature(ctx, session, state, signature);
  await ctx.repo.recordAgentSignature(session.id, sequence, signature);
  return true;
}

function requireAgentSignature(ctx: RelayerContext, session: SessionRecord, state: VoucherState, signature: CompactSignature): void {
  const signer = recoverDigestSigner(voucherDigest(ctx.domainSeparator, session.id, state), signature);
  if (signer !== session.agent) {
    throw new ApiError(
      401,
      "invalid_signature",
      `the voucher is signed by ${signer ?? "no valid key"}, not by the session's agent ${session.agent}`,
      { type: "authentication_error" },
    );
  }
}

/**
 * Cooperative close (`POST /v1/sessions/{id}/close`). The agent signs the final state (the latest
 * state with the next sequence and isFinal); the provider co-signs and the escrow finalizes at once.
 * A session that no longer serves (closing, expired, its provider inactive or its signer rotated)
 * still closes this way until it is finalized: the final state pays nothing the agent has not
 * signed, and the unused lock returns to the budget without waiting out a challenge window.
 */
export async function closeSession(ctx: RelayerContext, keyed: SessionRecord, signature: CompactSignature): Promise<ClosedSession> {
  if (keyed.status === "closed") throw new ApiError(409, "session_closed", `session ${keyed.id} is already closed`);
  // Held like a call (no call runs meanwhile, on any instance), and closed at the state held.
  const hold = await SessionHold.take(ctx.repo, keyed.id);
  if (hold === undefined) throw new ApiError(409, "session_busy", `session ${keyed.id} has a call in flight`);
  try {
    const { session } = hold;
    if (session.status === "closed") throw new ApiError(409, "session_closed", `session ${session.id} is already closed`);
    const final: VoucherState = { ...session.state, sequence: session.state.sequence + 1, isFinal: true };
    requireAgentSignature(ctx, session, final, signature);
    const voucher: SignedVoucher = {
      voucher: { terms: session.terms, ...final },
      agentSignature: signature,
      providerSignature: signDigest(sessionSignerKey(ctx, session), voucherDigest(ctx.domainSeparator, session.id, final)),
    };
    const txHash = await settleNow(ctx, "close", [voucher], [{ sessionId: session.id, sequence: final.sequence }], CLOSE_WAIT_MS).catch((error: unknown) => {
      if (!(error instanceof TxPendingError)) throw error;
      throw new ApiError(503, "close_pending", `the close was sent (${error.hash}) and is not confirmed yet; it completes on its own`);
    });
    return { sessionId: session.id, status: "closed", closeTxHash: txHash, settled: formatUsdc(final.cumulativeCost) };
  } finally {
    await hold.release();
  }
}

/** How long `POST /v1/sessions/{id}/close` waits for its close to confirm before answering that it is pending. */
const CLOSE_WAIT_MS = 60_000;

/** A settlement or close the escrow refused or reverted; `revert` is its custom error, when it named one. */
export class SettlementRejectedError extends ApiError {
  readonly revert: ContractRevert | undefined;

  constructor(status: number, code: ErrorCode, message: string, revert: ContractRevert | undefined, cause: unknown) {
    super(status, code, message);
    this.name = "SettlementRejectedError";
    this.revert = revert;
    this.cause = cause;
  }
}

/**
 * Sends a settlement or close and waits for it, recording it first so that a crash at any point
 * leaves a row the settlement worker reconciles on restart.
 *
 * @throws {SettlementRejectedError} when the escrow refuses it (400, with the revert) or it reverts (502).
 */
export async function settleNow(
  ctx: RelayerContext,
  kind: "settle" | "close",
  vouchers: SignedVoucher[],
  items: { sessionId: Hex; sequence: number }[],
  waitMs?: number,
): Promise<Hex> {
  const id = await ctx.repo.insertSettlement(kind, items, ctx.chain.account.address);
  if (id === undefined) throw new ApiError(409, "session_busy", `a settlement of ${items.map((item) => item.sessionId).join(", ")} is in flight`);
  let hash: Hex;
  let txId: number;
  try {
    const request = await ctx.chain.prepareSettlement(kind, vouchers);
    // Recorded with its transaction before it is broadcast; from here on it is sent, whatever the
    // broadcast or a lookup after it answers, and only the chain's state resolves it.
    ({ hash, id: txId } = await ctx.chain.transactions.send(kind, request, (tx, repo) => repo.linkSettlementTx(id, tx.id, tx.hash, tx.nonce)));
  } catch (error) {
    await ctx.repo.failSettlement(id, revertReason(error));
    throw new SettlementRejectedError(400, `${kind}_rejected` as const, `the escrow refused the ${kind}: ${revertReason(error)}`, contractRevert(error), error);
  }
  if (waitMs === undefined) return hash;
  await ctx.chain.transactions.wait(txId, waitMs); // TxPendingError: still sent; the settlement worker resolves it
  const resolved = await reconcileSettlement(ctx, (await ctx.repo.getSettlement(id))!);
  if (resolved.status === "settled") return resolved.hash ?? hash;
  if (resolved.status === "pending") throw new TxPendingError(txId, hash, "the escrow could not be read to resolve it");
  throw new SettlementRejectedError(502, `${kind}_reverted` as const, `transaction ${hash} did not ${kind}: ${resolved.reason}`, undefined, undefined);
}

const unauthorized = (code: ErrorCode, message: string) => new ApiError(401, code, message, { type: "authentication_error" });

/**
 * The session a request's API key opens, or a 401. A key opens the one session it was issued with,
 * until the key is revoked (401 `api_key_revoked`) or the session is closed or past its deadline by
 * the chain's clock (410 `session_finalized` or `session_expired`).
 */
export async function authenticate(ctx: RelayerContext, apiKey: string | undefined): Promise<SessionRecord> {
  if (apiKey === undefined) {
    throw unauthorized("missing_api_key", "missing API key: send `Authorization: Bearer <key>` (the key returned by POST /v1/sessions)");
  }
  const key = await ctx.repo.apiKey(apiKey);
  const session = key && (await ctx.repo.getSession(key.sessionId));
  if (key === undefined || session === undefined) throw unauthorized("invalid_api_key", "invalid API key");
  if (key.revokedAt !== null) throw unauthorized("api_key_revoked", `this API key of session ${session.id} was revoked`);
  // The key ends with its session, and is refused as the session is, saying why (410
  // session_finalized or session_expired, which clients take as "open a new session").
  const now = ctx.chainIndex.chainTime();
  if (session.status === "closed" || now >= session.terms.deadline) throw (await servingRefusal(ctx, session, now))!;
  return session;
}

/** The session a chat request is served from: the key's own; a request naming another is refused (403). */
export function keySession(keyed: SessionRecord, requested: string | undefined): Hex {
  if (requested !== undefined && requested.toLowerCase() !== keyed.id) {
    throw new ApiError(403, "key_not_for_session", `this API key opens session ${keyed.id} only, not ${requested}`, { type: "permission_error" });
  }
  return keyed.id;
}

/**
 * What a reader of a session shows: the session's API key (possibly none), or a read signature
 * (`Authorization: AgentMesh-Signature <expiresAt> <signature>`, see {@link authorizeRead}).
 */
export type ReadCredentials = { apiKey: string | undefined } | { expiresAt: number; signature: Hex };

/**
 * Who may read `session` (its receipts and what was delivered): the holder of its API key, or
 * whoever shows a read signature: an EIP-191 signature of `sessionReadMessage(sessionId, expiresAt)`
 * by the session's agent or its budget's creator, valid until `expiresAt` (unix seconds, at most an
 * hour ahead). The agent (by key or signature) also sees the output delivered on a call it has not
 * signed; the creator does not.
 */
export async function authorizeRead(ctx: RelayerContext, session: SessionRecord, credentials: ReadCredentials): Promise<"agent" | "creator"> {
  if ("apiKey" in credentials) {
    keySession(await authenticate(ctx, credentials.apiKey), session.id);
    return "agent";
  }
  const { expiresAt } = credentials;
  const now = Math.floor(Date.now() / 1000);
  if (expiresAt <= now || expiresAt > now + SESSION_READ_MAX_SECONDS) {
    throw unauthorized("invalid_signature", `the read signature expires at ${expiresAt}: it must be in the future, at most ${SESSION_READ_MAX_SECONDS} s ahead`);
  }
  const signer = await recoverMessageAddress({ message: sessionReadMessage(session.id, expiresAt), signature: credentials.signature }).catch(() => undefined);
  const creator = (await ctx.chainIndex.budget(Number(session.terms.budgetId)))?.creator;
  if (signer?.toLowerCase() === session.agent.toLowerCase()) return "agent";
  if (signer !== undefined && signer.toLowerCase() === creator?.toLowerCase()) return "creator";
  throw unauthorized("invalid_signature", `the read signature is not by session ${session.id}'s agent or its budget's creator`);
}

/**
 * Revokes `apiKey` (`DELETE /v1/sessions/{id}/key`), which must be `session`'s. It is refused from
 * then on, at once. (Whoever holds a key may already spend with it; the agent ends its use for good
 * by closing the session, which its key does not authorize.)
 */
export async function revokeKey(ctx: RelayerContext, session: SessionRecord, apiKey: string | undefined): Promise<KeyRevoked> {
  keySession(await authenticate(ctx, apiKey), session.id);
  await ctx.repo.revokeApiKey(apiKey!);
  return { sessionId: session.id, revoked: true };
}
