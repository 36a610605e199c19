/**
 * The AgentMesh reference provider: an OpenAI-compatible inference server with
 * deterministic output, exact token usage and injectable faults, which stands
 * in for a real model host in the local stack and in tests.
 *
 * @module
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { serveChatCompletion } from "./chat-completion.ts";
import { createFaultPlan, FAULT_MODES, type FaultMode } from "./faults.ts";
import { ApiError, sendError, sendJson } from "@agentmesh/sdk/http";
import { MAX_CONNECTIONS, resolveOptions, type ReferenceProviderOptions } from "./options.ts";
import { log } from "../log.ts";

export { FAULT_HEADER, FAULT_MODES, type FaultMode } from "./faults.ts";
export { MAX_BODY_BYTES, MAX_TOKENS_LIMIT, type FaultOptions, type ReferenceProviderOptions } from "./options.ts";

/** Counters of a running provider. */
export interface ReferenceProviderStats {
  /** HTTP requests received, on any route. */
  readonly requests: number;
  /** Valid chat completion requests, including those given a fault. */
  readonly chatCompletions: number;
  /** Chat completion requests given each fault. */
  readonly faults: Readonly<Record<FaultMode, number>>;
}

/** A running reference provider. */
export interface ReferenceProvider {
  /** Base URL of the OpenAI-compatible API, such as `http://127.0.0.1:9001/v1`. */
  readonly url: string;
  /** The port listened on. */
  readonly port: number;
  /** A snapshot of the counters since start. */
  stats(): ReferenceProviderStats;
  /**
   * Stops listening and closes every connection, including idle keep-alive
   * ones, open streams and requests held by a `timeout` fault. Idempotent.
   */
  close(): Promise<void>;
}

/** How long receiving a whole request, and its headers, may take. */
const REQUEST_TIMEOUT_MS = 30_000;
const HEADERS_TIMEOUT_MS = 10_000;

type RouteHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

/**
 * Starts a reference provider serving `GET /healthz`, `GET /v1/models` and
 * `POST /v1/chat/completions`.
 *
 * @throws {RangeError} for invalid options; rejects when the port cannot be bound.
 */
export async function startReferenceProvider(options: ReferenceProviderOptions = {}): Promise<ReferenceProvider> {
  const resolved = resolveOptions(options);
  const counters = { requests: 0, chatCompletions: 0, faults: zeroPerFault() };
  const createdAt = Math.floor(Date.now() / 1000);
  const context = {
    options: resolved,
    faults: createFaultPlan(resolved.faults),
    onAccepted: (fault: FaultMode | undefined): void => {
      counters.chatCompletions += 1;
      if (fault !== undefined) counters.faults[fault] += 1;
    },
  };
  const routes: Record<string, Record<string, RouteHandler>> = {
    "/healthz": { GET: (_req, res) => sendJson(res, 200, { status: "ok" }) },
    "/v1/models": {
      GET: (_req, res) =>
        sendJson(res, 200, {
          object: "list",
          data: resolved.models.map((id) => ({ id, object: "model", created: createdAt, owned_by: "agentmesh" })),
        }),
    },
    "/v1/chat/completions": { POST: (req, res) => serveChatCompletion(req, res, context) },
  };

  const server = createServer((req, res) => {
    counters.requests += 1;
    route(routes, req, res).catch((error: unknown) => answerFailure(res, error));
  });
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.maxConnections = MAX_CONNECTIONS;
  server.listen(resolved.port, resolved.host);
  await once(server, "listening");

  const { address, port } = server.address() as AddressInfo;
  const urlHost = address.includes(":") ? `[${address}]` : address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}/v1`,
    port,
    stats: () => ({ ...counters, faults: { ...counters.faults } }),
    close: () => (closing ??= closeServer(server)),
  };
}

async function route(
  routes: Record<string, Record<string, RouteHandler>>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const method = req.method ?? "GET";
  const path = new URL(req.url ?? "/", "http://reference-provider.invalid").pathname;
  const methods = routes[path];
  if (methods === undefined) {
    throw new ApiError(404, "unknown_url", `Unknown URL (${method} ${path}).`);
  }
  const handler = methods[method];
  if (handler === undefined) {
    const allowed = Object.keys(methods).join(", ");
    throw new ApiError(405, "method_not_allowed", `${path} accepts ${allowed}, not ${method}.`, {
      headers: { allow: allowed },
    });
  }
  await handler(req, res);
}

/** Answers a failed request: its API error, else a 500; drops a response already under way. */
function answerFailure(res: ServerResponse, error: unknown): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  if (error instanceof ApiError) {
    sendError(res, error);
    return;
  }
  log.error({ component: "reference-provider", err: error }, "reference provider: unexpected error");
  sendError(res, new ApiError(500, "internal_error", "The reference provider failed unexpectedly."));
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeAllConnections();
  });
}

function zeroPerFault(): Record<FaultMode, number> {
  return Object.fromEntries(FAULT_MODES.map((mode) => [mode, 0])) as Record<FaultMode, number>;
}
