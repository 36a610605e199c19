import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { ApiError, bearerToken, sendError, sendJson } from "@agentmesh/sdk/http";
import { chainUnavailable } from "./chain-errors.ts";
import type { RelayerContext } from "./context.ts";
import { log } from "./log.ts";
import { catalogRoutes } from "./routes/catalog.ts";
import { chatRoutes } from "./routes/chat.ts";
import { operationRoutes } from "./routes/operations.ts";
import { openApiDocument } from "./routes/openapi.ts";
import type { Route } from "./routes/route.ts";
import { sessionRoutes } from "./routes/sessions.ts";
import { x402Routes } from "./routes/x402.ts";

/**
 * What the app needs, passed in: the store, the chain (through `ChainPort`), the chain index, the
 * limits and the shared in-process state (see {@link RelayerContext}). `startRelayer` wires the real
 * ones; unit tests wire a fake chain (relayer/test/app-harness.ts).
 */
export type AppDeps = RelayerContext;

/** Every route, one table: each route file (routes/) lists its own; `/openapi.json` describes them all. */
export const ROUTES: readonly Route[] = [
  ...operationRoutes,
  ...chatRoutes,
  ...sessionRoutes,
  ...catalogRoutes,
  ...x402Routes,
  {
    method: "GET",
    pattern: /^\/openapi\.json$/,
    handler: (ctx, _req, res) => sendJson(res, 200, (openApi ??= openApiDocument(ROUTES, ctx.about.version))),
    doc: { summary: "This API as an OpenAPI 3.1 document, generated from the wire protocol's schemas" },
  },
];
/** The OpenAPI document, built on its first request. */
let openApi: Record<string, unknown> | undefined;

/**
 * Browsers (the dApp) may call the API from any origin by default: nothing is authorized by cookies,
 * only by the session's bearer key or a signature, so a permissive CORS policy exposes nothing. An
 * operator may still name the origins allowed (`corsOrigins`); see {@link allowOrigin}.
 */
const CORS_HEADERS = {
  "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
  // @x402/fetch also sends Access-Control-Expose-Headers on its paid retry.
  "access-control-allow-headers": "authorization, content-type, payment-signature, access-control-expose-headers, idempotency-key, x-request-id",
  "access-control-expose-headers": "payment-required, payment-response, x-request-id, retry-after, idempotent-replayed",
  "access-control-max-age": "86400",
};

/** A client's request id is echoed only if it is short and plain (it goes into logs and headers). */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Each route's label for metrics and logs: its pattern, ids as `:id` (e.g. `/v1/sessions/:id/close`). */
const ROUTE_LABELS = new Map(ROUTES.map(({ pattern }) => [pattern, pattern.source.replace(/^\^|\$$/g, "").replaceAll("\\/", "/").replaceAll("([^/]+)", ":id")]));
/** Methods that label metrics as themselves; any other is "other" (a client must not mint series). */
const METHOD_LABELS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/**
 * The relayer's HTTP API over `deps`: the request handler that `startRelayer` serves and that tests
 * call in-process. It routes (central 404, 405 with `Allow`, CORS preflight), throttles (429 with
 * `Retry-After`), refuses calls that need the chain index until it has caught up (503), and answers
 * every error as OpenAI does (`ApiError`s as themselves, a chain outage 503, anything else 500).
 * Every response carries an `x-request-id` (the client's, when it sent a sane one), and every
 * request is logged and measured once, when it ends.
 *
 * @example
 * const server = createServer(createApp(deps));
 */
export function createApp(deps: AppDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void route(deps, req, res);
  };
}

/** `Access-Control-Allow-Origin`: `*`, or the request's Origin when it is one of `ctx.corsOrigins` (none otherwise). */
function allowOrigin(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): void {
  if (ctx.corsOrigins === undefined) {
    res.setHeader("access-control-allow-origin", "*");
    return;
  }
  res.setHeader("vary", "origin"); // caches keep one answer per page
  const origin = req.headers.origin;
  if (origin !== undefined && ctx.corsOrigins.includes(origin)) res.setHeader("access-control-allow-origin", origin);
}

async function route(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now();
  const path = (req.url ?? "/").split("?")[0];
  const clientId = req.headers["x-request-id"];
  const requestId = typeof clientId === "string" && CLIENT_REQUEST_ID.test(clientId) ? clientId : `req_${randomUUID().replaceAll("-", "")}`;
  res.setHeader("x-request-id", requestId);
  // One line and one histogram sample per request, when it ends (answered, or cut by the client).
  const requestLog = log.child({ requestId });
  let label = "unmatched";
  res.once("close", () => {
    const durationMs = performance.now() - started;
    ctx.stats.recordRequest(METHOD_LABELS.has(req.method ?? "") ? req.method! : "other", label, res.statusCode, durationMs / 1000);
    requestLog.info({ method: req.method, path, route: label, status: res.statusCode, durationMs: Math.round(durationMs * 10) / 10, ...(!res.writableFinished && { aborted: true }) }, "request");
  });
  for (const [name, value] of Object.entries(CORS_HEADERS)) res.setHeader(name, value);
  allowOrigin(ctx, req, res);
  if (req.method === "OPTIONS") {
    const preflighted = ROUTES.find((candidate) => candidate.pattern.test(path));
    if (preflighted !== undefined) label = ROUTE_LABELS.get(preflighted.pattern)!;
    res.writeHead(204).end();
    return;
  }
  try {
    await throttle(ctx, req);
    const matches = ROUTES.filter((candidate) => candidate.pattern.test(path));
    if (matches.length === 0) throw new ApiError(404, "not_found", `no route ${path}`);
    label = ROUTE_LABELS.get(matches[0].pattern)!;
    const routeEntry = matches.find((candidate) => candidate.method === req.method);
    if (routeEntry === undefined) {
      const allow = [...new Set([...matches.map((candidate) => candidate.method), "OPTIONS"])].join(", ");
      throw new ApiError(405, "method_not_allowed", `${req.method} is not allowed on ${path} (allowed: ${allow})`, { headers: { allow } });
    }
    if (routeEntry.needsChainIndex === true) ctx.readiness?.requireServing();
    let param: string;
    try {
      param = decodeURIComponent(routeEntry.pattern.exec(path)?.[1] ?? "");
    } catch {
      throw new ApiError(400, "invalid_path", `${path} is not a valid path: a % escape is malformed`);
    }
    await routeEntry.handler(ctx, req, res, param);
  } catch (error) {
    if (error instanceof ApiError) {
      sendError(res, withRetryAfter(error));
      return;
    }
    if (chainUnavailable(error)) {
      requestLog.error({ method: req.method, path, err: error }, "the chain's RPC is unavailable");
      sendError(res, new ApiError(503, "chain_unavailable", "the chain's RPC is unavailable; try again shortly", { headers: { "retry-after": "5" } }));
      return;
    }
    requestLog.error({ method: req.method, path, err: error }, "request failed");
    sendError(res, new ApiError(500, "internal_error", "internal error"));
  }
}

/**
 * Takes a token of the client IP's bucket and, when the request carries a bearer key, of the key's
 * (see `RelayerLimits`); a 429 with `Retry-After` when either is empty. The IP is the connection's
 * peer: behind a reverse proxy, every client shares the proxy's bucket (limit there, or raise this).
 */
async function throttle(ctx: RelayerContext, req: IncomingMessage): Promise<void> {
  const refusal = await ctx.rateLimits.client(req.socket.remoteAddress ?? "unknown", bearerToken(req));
  if (refusal === undefined) return;
  const wait = refusal.retryAfterSeconds;
  const what = refusal.limited === "address" ? "this address" : "this API key";
  throw new ApiError(429, "rate_limit_exceeded", `too many requests from ${what}: retry in ${wait} s`, {
    type: "rate_limit_error",
    headers: { "retry-after": String(wait) },
  });
}

/** Every 429 says when to try again (a second, unless its handler knew better). */
function withRetryAfter(error: ApiError): ApiError {
  if (error.status !== 429 || Object.keys(error.headers).some((name) => name.toLowerCase() === "retry-after")) return error;
  (error.headers as Record<string, string>)["retry-after"] = "1";
  return error;
}
