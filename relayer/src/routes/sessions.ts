import type { IncomingMessage, ServerResponse } from "node:http";
import type { Hex } from "viem";
import { z } from "zod";
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
import { address, hex32, parseBody, signatureSchema, uint, uint32, type Route } from "./route.ts";

const termsSchema = z.object({
  agent: address,
  budgetId: uint(64),
  providerId: uint32,
  modelId: uint32,
  receiptSigner: address,
  inputPricePer1K: uint32,
  outputPricePer1K: uint32,
  minChargePerCall: uint32,
  feeBps: uint(16).transform(Number),
  maxSpend: uint(64),
  deadline: uint32,
  salt: uint(64),
});

/** `POST /v1/sessions`: the agent's signed terms. */
const openSchema = z.object({ terms: termsSchema, signature: signatureSchema });
/** The agent's signature of the state after call `sequence` (posted alone, or with the next chat request). */
export const voucherSchema = z.object({ sequence: z.number().int().positive(), signature: signatureSchema });
/** `POST /v1/sessions/{id}/close`: the agent's signature of the final state. */
const closeSchema = z.object({ signature: signatureSchema });

/** Receipts per page of `GET /v1/sessions/{id}`: by default, and at most. */
export const RECEIPT_PAGE = { default: 100, max: 200 } as const;

/** `GET /v1/sessions/{id}?after={sequence}&limit={n}`. */
const pageSchema = z.object({
  after: z.string().regex(/^\d{1,10}$/, "must be a receipt sequence").transform(Number).default(0),
  limit: z
    .string()
    .regex(/^\d{1,4}$/, "must be a whole number")
    .transform(Number)
    .refine((limit) => limit >= 1 && limit <= RECEIPT_PAGE.max, `must be 1 to ${RECEIPT_PAGE.max}`)
    .default(RECEIPT_PAGE.default),
});

/** `Authorization: AgentMesh-Signature <expiresAt> <signature>` (a read signature, see core/sessions.ts). */
const READ_SIGNATURE = /^AgentMesh-Signature\s+(\d{1,12})\s+(0x[0-9a-fA-F]{130})$/i;

/** Sessions (see core/sessions.ts) and receipts. */
export const sessionRoutes: Route[] = [
  { method: "POST", pattern: /^\/v1\/sessions$/, handler: postSession, needsChainIndex: true },
  { method: "GET", pattern: /^\/v1\/sessions\/([^/]+)$/, handler: getSession },
  { method: "POST", pattern: /^\/v1\/sessions\/([^/]+)\/vouchers$/, handler: postVoucher },
  { method: "POST", pattern: /^\/v1\/sessions\/([^/]+)\/close$/, handler: postClose, needsChainIndex: true },
  { method: "DELETE", pattern: /^\/v1\/sessions\/([^/]+)\/key$/, handler: deleteKey },
  { method: "GET", pattern: /^\/v1\/receipts\/([^/]+)$/, handler: getReceipt },
];

/** The session a path names, or a 400 (not a session id) or a 404. */
function pathSession(ctx: RelayerContext, id: string): SessionRecord {
  const parsed = hex32.safeParse(id);
  if (!parsed.success) throw badRequest(`"${id}" is not a session id (0x-prefixed 32-byte hex)`, "invalid_session_id");
  return requireSession(ctx, parsed.data);
}

/** `POST /v1/sessions`: opens a session on-chain; 201 with its API key. */
async function postSession(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const open = parseBody(openSchema, await readJsonBody(req, ctx.limits.maxBodyBytes));
  sendJson(res, 201, await openSession(ctx, open));
}

/**
 * `GET /v1/sessions/{id}?after={sequence}&limit={n}`: the session's status and one page of its
 * receipts, for the holder of its API key or of a read signature.
 */
async function getSession(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
  const session = pathSession(ctx, id);
  const header = req.headers.authorization;
  const signed = header === undefined ? null : READ_SIGNATURE.exec(header);
  const credentials: ReadCredentials = signed === null ? { apiKey: bearerToken(req) } : { expiresAt: Number(signed[1]), signature: signed[2] as Hex };
  const reader = await authorizeRead(ctx, session, credentials);
  const query = new URL(req.url ?? "/", "http://relayer").searchParams;
  const page = parseBody(pageSchema, { after: query.get("after") ?? undefined, limit: query.get("limit") ?? undefined });
  sendJson(res, 200, sessionPage(ctx, session, page, reader));
}

/** `POST /v1/sessions/{id}/vouchers`: the agent's signature of the state after a served call. */
async function postVoucher(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
  const session = pathSession(ctx, id);
  const voucher = parseBody(voucherSchema, await readJsonBody(req, ctx.limits.maxBodyBytes));
  sendJson(res, 200, await submitVoucher(ctx, session, voucher));
}

/** `POST /v1/sessions/{id}/close`: the cooperative close, with the agent's signature of the final state. */
async function postClose(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
  const session = pathSession(ctx, id);
  const { signature } = parseBody(closeSchema, await readJsonBody(req, ctx.limits.maxBodyBytes));
  sendJson(res, 200, await closeSession(ctx, session, signature));
}

/** `DELETE /v1/sessions/{id}/key`: revokes the API key the request carries (the session's). */
function deleteKey(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, id: string): void {
  const session = pathSession(ctx, id);
  sendJson(res, 200, revokeKey(ctx, session, bearerToken(req)));
}

/** `GET /v1/receipts/{hash}`: the receipt, its verification and its settlement. */
function getReceipt(ctx: RelayerContext, _req: IncomingMessage, res: ServerResponse, hash: string): void {
  const parsed = hex32.safeParse(hash);
  if (!parsed.success) throw badRequest(`"${hash}" is not a receipt hash (0x-prefixed 32-byte hex)`, "invalid_receipt_hash");
  sendJson(res, 200, receiptStatus(ctx, parsed.data));
}
