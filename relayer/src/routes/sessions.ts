import type { IncomingMessage, ServerResponse } from "node:http";
import type { Hex } from "viem";
import { badRequest, bearerToken, readJsonBody, sendJson } from "@agentmesh/sdk/http";
import type { RelayerContext } from "../context.ts";
import {
  authorizeRead,
  closeSession,
  openSession,
  receiptStatus,
  requireSession,
  revokeKey,
  sessionPage,
  submitVoucher,
  type ReadCredentials,
} from "../core/sessions.ts";
import type { SessionRecord } from "../store/repository.ts";
import { parseBody, type Route } from "./route.ts";
import {
  closeSessionRequestSchema,
  closedSessionSchema,
  hex32Schema,
  keyRevokedSchema,
  openSessionRequestSchema,
  openedSessionSchema,
  receiptPageQuerySchema,
  receiptStatusSchema,
  sessionViewSchema,
  voucherAcceptedSchema,
  voucherSchema,
} from "@agentmesh/sdk/protocol";

/** `Authorization: AgentMesh-Signature <expiresAt> <signature>` (a read signature, see core/sessions.ts). */
const READ_SIGNATURE = /^AgentMesh-Signature\s+(\d{1,12})\s+(0x[0-9a-fA-F]{130})$/i;

/** Sessions (see core/sessions.ts) and receipts. */
export const sessionRoutes: Route[] = [
  {
    method: "POST",
    pattern: /^\/v1\/sessions$/,
    handler: postSession,
    needsChainIndex: true,
    doc: { summary: "Open a session on-chain from the agent's signed terms; returns its API key", body: openSessionRequestSchema, status: 201, response: openedSessionSchema },
  },
  {
    method: "GET",
    pattern: /^\/v1\/sessions\/([^/]+)$/,
    handler: getSession,
    doc: { summary: "A session's state, settlement and one page of receipts (`?after=&limit=`)", response: sessionViewSchema, auth: "sessionRead" },
  },
  {
    method: "POST",
    pattern: /^\/v1\/sessions\/([^/]+)\/vouchers$/,
    handler: postVoucher,
    doc: { summary: "The agent's voucher for the state after a served call", body: voucherSchema, response: voucherAcceptedSchema },
  },
  {
    method: "POST",
    pattern: /^\/v1\/sessions\/([^/]+)\/close$/,
    handler: postClose,
    needsChainIndex: true,
    doc: { summary: "Close cooperatively with the agent's signature of the final state", body: closeSessionRequestSchema, response: closedSessionSchema },
  },
  { method: "DELETE", pattern: /^\/v1\/sessions\/([^/]+)\/key$/, handler: deleteKey, doc: { summary: "Revoke the session's API key", response: keyRevokedSchema, auth: "apiKey" } },
  {
    method: "GET",
    pattern: /^\/v1\/receipts\/([^/]+)$/,
    handler: getReceipt,
    doc: { summary: "A receipt, its signature checks and its settlement", param: "hash", response: receiptStatusSchema, auth: "sessionRead" },
  },
];

/** The session a path names, or a 400 (not a session id) or a 404. */
function pathSession(ctx: RelayerContext, id: string): Promise<SessionRecord> {
  const parsed = hex32Schema.safeParse(id);
  if (!parsed.success) throw badRequest(`"${id}" is not a session id (0x-prefixed 32-byte hex)`, "invalid_session_id");
  return requireSession(ctx, parsed.data);
}

/** `POST /v1/sessions`: opens a session on-chain; 201 with its API key. */
async function postSession(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const open = parseBody(openSessionRequestSchema, await readJsonBody(req, ctx.limits.maxBodyBytes));
  sendJson(res, 201, await openSession(ctx, open));
}

/**
 * `GET /v1/sessions/{id}?after={sequence}&limit={n}`: the session's status and one page of its
 * receipts, for the holder of its API key or of a read signature.
 */
async function getSession(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
  const session = await pathSession(ctx, id);
  const reader = await authorizeRead(ctx, session, readCredentials(req));
  const query = new URL(req.url ?? "/", "http://relayer").searchParams;
  const page = parseBody(receiptPageQuerySchema, { after: query.get("after") ?? undefined, limit: query.get("limit") ?? undefined });
  sendJson(res, 200, await sessionPage(ctx, session, page, reader));
}

/** `POST /v1/sessions/{id}/vouchers`: the agent's signature of the state after a served call. */
async function postVoucher(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
  const session = await pathSession(ctx, id);
  const voucher = parseBody(voucherSchema, await readJsonBody(req, ctx.limits.maxBodyBytes));
  sendJson(res, 200, await submitVoucher(ctx, session, voucher));
}

/** `POST /v1/sessions/{id}/close`: the cooperative close, with the agent's signature of the final state. */
async function postClose(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
  const session = await pathSession(ctx, id);
  const { signature } = parseBody(closeSessionRequestSchema, await readJsonBody(req, ctx.limits.maxBodyBytes));
  sendJson(res, 200, await closeSession(ctx, session, signature));
}

/** `DELETE /v1/sessions/{id}/key`: revokes the API key the request carries (the session's). */
async function deleteKey(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
  const session = await pathSession(ctx, id);
  sendJson(res, 200, await revokeKey(ctx, session, bearerToken(req)));
}

/** `GET /v1/receipts/{hash}`: the receipt, its verification and its settlement, to a reader of its session. */
async function getReceipt(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, hash: string): Promise<void> {
  const parsed = hex32Schema.safeParse(hash);
  if (!parsed.success) throw badRequest(`"${hash}" is not a receipt hash (0x-prefixed 32-byte hex)`, "invalid_receipt_hash");
  sendJson(res, 200, await receiptStatus(ctx, parsed.data, readCredentials(req)));
}

/** A read's credentials: a read signature (`AgentMesh-Signature …`), else the bearer API key, if any. */
function readCredentials(req: IncomingMessage): ReadCredentials {
  const header = req.headers.authorization;
  const signed = header === undefined ? null : READ_SIGNATURE.exec(header);
  return signed === null ? { apiKey: bearerToken(req) } : { expiresAt: Number(signed[1]), signature: signed[2] as Hex };
}
