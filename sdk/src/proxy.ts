import { randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import type { Address, Hex } from "viem";
import { AgentSession } from "./agent.ts";
import { ApiError, readJsonBody, sendError, sendJson } from "./http.ts";
import { foreignCode, modelListSchema, type ErrorCode, type ForeignErrorCode } from "./protocol.ts";
import { RelayerError, errorCodeOf, relayerJson } from "./relayer-client.ts";

/**
 * The agent proxy: an OpenAI-compatible endpoint on 127.0.0.1 for any OpenAI client. It holds the
 * agent's key, opens (and reuses) a metered session per provider and model on demand, and sends
 * each request through it, so every model the relayer lists works with no API key of its own.
 *
 * It spends the agent's budget, so it answers only its own clients: every request but `/healthz`
 * must carry `Authorization: Bearer <token>` (the proxy's token); a request from a web page (an
 * `Origin` header) is refused unless that origin is listed in `allowedOrigins`, which CORS
 * preflights then name; and the `Host` header must name a loopback host (localhost, 127.0.0.1,
 * [::1]) or the host the proxy listens on, so that a DNS name rebound to 127.0.0.1 reaches nothing.
 */
export interface AgentProxyOptions {
  relayerUrl: string;
  privateKey: Hex;
  chainId: number;
  escrow: Address;
  budgetId: bigint;
  /** Amount each session locks from the budget. */
  sessionMaxSpend: bigint;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** The bearer token clients must send (at least 16 characters); a random one when omitted. */
  token?: string;
  /** Browser origins (e.g. `http://localhost:5173`) allowed to call the proxy; none by default. */
  allowedOrigins?: readonly string[];
}

export interface AgentProxy {
  url: string;
  port: number;
  /** The bearer token clients must send: the OpenAI client's `apiKey`. */
  token: string;
  /** Closes every session it opened (paying providers, refunding the rest) and stops. */
  close(): Promise<void>;
}

/** Largest request body the proxy forwards. */
const MAX_BODY_BYTES = 1024 * 1024;

const fail = (status: number, code: ErrorCode | ForeignErrorCode, message: string) => new ApiError(status, code, message);

/**
 * The relayer's error codes for a session that will serve no more calls: spent, closing or
 * finalized on-chain, past its deadline or its budget's expiry, its provider inactive, or its
 * receipt signer rotated away; or its API key was revoked. The proxy closes such a session and
 * carries on with a fresh one.
 */
const SESSION_ENDED = new Set<string>([
  "session_exhausted",
  "session_closing",
  "session_finalized",
  "session_expired",
  "budget_expired",
  "provider_inactive",
  "signer_rotated",
  "receipt_signer_unavailable",
  "api_key_revoked",
] satisfies ErrorCode[]);

/** Whether `response` says its session serves no more calls. */
async function sessionEnded(response: Response): Promise<boolean> {
  if (response.status < 400 || response.status >= 500) return false;
  const code = await errorCodeOf(response);
  return code !== undefined && SESSION_ENDED.has(code);
}

/**
 * Whether `response` says its provider failed before anything was served (the relayer billed
 * nothing): another provider may serve the call.
 */
async function providerFailed(response: Response): Promise<boolean> {
  if (response.status !== 502 && response.status !== 429) return false;
  const code = await errorCodeOf(response);
  return code === ("upstream_error" satisfies ErrorCode) || code === ("rate_limited" satisfies ErrorCode);
}

/** Host names a request may carry besides the listening host: loopback only. */
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** The `Host` header's host name (port removed), lower-cased; undefined when malformed. */
function hostName(header: string | undefined): string | undefined {
  const match = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::\d{1,5})?$/i.exec(header ?? "");
  return match?.[1].toLowerCase();
}

/** Whether `presented` equals `token`, in time independent of where they differ. */
function tokenMatches(presented: string, token: string): boolean {
  const [a, b] = [Buffer.from(presented), Buffer.from(token)];
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The checks of a request before any work: the `Host` header names a loopback host (or the one
 * listened on), a browser `Origin` is allowed, and (but for `/healthz` and preflights) the bearer
 * token matches. Returns the CORS headers for an allowed origin.
 */
function admit(
  req: IncomingMessage,
  path: string,
  rules: { token: string; allowedOrigins: ReadonlySet<string>; hosts: ReadonlySet<string> },
): Record<string, string> {
  const host = hostName(req.headers.host);
  if (host === undefined || !rules.hosts.has(host)) {
    throw fail(403, "host_not_allowed", `Host "${req.headers.host ?? ""}" is not this proxy's: it answers only requests to ${[...rules.hosts].join(", ")}`);
  }
  const origin = req.headers.origin;
  const cors: Record<string, string> = {};
  if (origin !== undefined) {
    if (!rules.allowedOrigins.has(origin)) {
      throw fail(403, "origin_not_allowed", `web pages from ${origin} may not use this proxy (it spends the agent's budget); allow an origin explicitly to let it`);
    }
    Object.assign(cors, { "access-control-allow-origin": origin, vary: "Origin" });
  }
  if (req.method === "OPTIONS" || path === "/healthz") return cors;
  const presented = /^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1];
  if (presented === undefined || !tokenMatches(presented, rules.token)) {
    throw new ApiError(401, "invalid_proxy_token", "this proxy needs its token: send Authorization: Bearer <token> (the OpenAI client's apiKey)", {
      headers: { "www-authenticate": "Bearer", ...cors },
    });
  }
  return cors;
}

export async function startAgentProxy(options: AgentProxyOptions): Promise<AgentProxy> {
  const token = options.token ?? `amp_${randomBytes(32).toString("base64url")}`;
  if (token.length < 16 || !/^[\x21-\x7e]+$/.test(token)) throw new Error("the proxy token must be at least 16 printable characters, without spaces");
  const listenHost = options.host ?? "127.0.0.1";
  const rules = {
    token,
    allowedOrigins: new Set(options.allowedOrigins ?? []),
    hosts: new Set([...LOOPBACK_HOSTS, listenHost.includes(":") ? `[${listenHost}]` : listenHost.toLowerCase()]),
  };
  const relayerUrl = options.relayerUrl.replace(/\/$/, "");
  /** Idle sessions per `providerId:model`; a session serves one call at a time. */
  const idle = new Map<string, AgentSession[]>();
  const all: AgentSession[] = [];

  /** The providers offering `model`, cheapest first. */
  async function providersByPrice(model: string): Promise<number[]> {
    const listing = await relayerJson(`${relayerUrl}/v1/models`, modelListSchema);
    const offers = listing.data.find((entry) => entry.id === model)?.providers ?? [];
    const price = (offer: (typeof offers)[number]) => Number(offer.inputPricePer1K) + Number(offer.outputPricePer1K);
    return [...offers].sort((a, b) => price(a) - price(b)).map((offer) => offer.providerId);
  }

  async function checkout(providerId: number, model: string): Promise<AgentSession> {
    const pool = idle.get(`${providerId}:${model}`) ?? [];
    const session = pool.pop();
    if (session !== undefined) return session;
    const opened = await AgentSession.open({ ...options, relayerUrl, providerId, model, maxSpend: options.sessionMaxSpend });
    all.push(opened);
    return opened;
  }

  function checkin(session: AgentSession, providerId: number, model: string): void {
    const key = `${providerId}:${model}`;
    idle.set(key, [...(idle.get(key) ?? []), session]);
  }

  async function chat(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const request = (await readJsonBody(req, MAX_BODY_BYTES)) as { model?: unknown; providerId?: unknown };
    if (typeof request !== "object" || request === null || typeof request.model !== "string") {
      throw fail(400, "invalid_request", "model: must name a model");
    }
    const body = JSON.stringify(request);
    // A client that goes away stops everything on its behalf: the call in flight (the relayer then
    // cuts the provider's and bills only what was delivered) and any fallback not yet started.
    const clientGone = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) clientGone.abort();
    });
    const pinnedProvider = typeof request.providerId === "number" ? request.providerId : undefined;
    /** Providers that failed this request before serving it. */
    const failed = new Set<number>();
    const nextProvider = async () => pinnedProvider ?? (await providersByPrice(request.model as string)).find((id) => !failed.has(id));
    let providerId = await nextProvider();
    if (providerId === undefined) throw fail(404, "model_not_found", `no provider offers model "${request.model}"`);
    const send = (session: AgentSession) =>
      session.fetch(`${relayerUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: clientGone.signal,
      });
    let session: AgentSession;
    let response: Response;
    let ended: boolean;
    for (;;) {
      session = await checkout(providerId, request.model);
      response = await send(session);
      ended = await sessionEnded(response);
      for (let attempt = 0; ended && attempt < 3 && !clientGone.signal.aborted; attempt++) {
        // This session serves no more calls: close it (cooperatively when it still can, paying what is
        // signed and returning the rest of its lock) and carry on with a fresh one, with another
        // provider if this one is no longer offered.
        await session.close().catch(() => undefined);
        providerId = (await nextProvider()) ?? providerId;
        session = await checkout(providerId, request.model);
        response = await send(session);
        ended = await sessionEnded(response);
      }
      // Each session (and key) serves one provider, so falling back is the proxy's: when the provider
      // failed before answering (nothing was billed), the next cheapest is tried, while the client waits.
      if (ended || clientGone.signal.aborted || !(await providerFailed(response))) break;
      failed.add(providerId);
      const fallback = await nextProvider();
      if (fallback === undefined || fallback === providerId) break;
      checkin(session, providerId, request.model);
      providerId = fallback;
    }
    if (clientGone.signal.aborted) return; // nobody to answer, and nothing more is sent
    res.writeHead(response.status, { "content-type": response.headers.get("content-type") ?? "application/json" });
    if (response.body !== null) {
      const piped = Readable.fromWeb(response.body as never).pipe(res);
      await new Promise((resolve) => piped.on("close", resolve));
    } else {
      res.end();
    }
    await session.state(); // the receipt is checked and signed before the session is reused
    if (!ended) checkin(session, providerId, request.model);
  }

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const handle = async () => {
      const cors = admit(req, path, rules);
      for (const [name, value] of Object.entries(cors)) res.setHeader(name, value);
      if (req.method === "OPTIONS") {
        res.writeHead(204, {
          "access-control-allow-methods": "GET, POST, OPTIONS",
          "access-control-allow-headers": "authorization, content-type",
          "access-control-max-age": "600",
        });
        return res.end();
      }
      if (req.method === "GET" && path === "/healthz") return sendJson(res, 200, { status: "ok" });
      if (req.method === "GET" && path === "/v1/models") {
        const models = await fetch(`${relayerUrl}/v1/models`);
        res.writeHead(models.status, { "content-type": "application/json" });
        return res.end(await models.text());
      }
      if (req.method === "POST" && path === "/v1/chat/completions") return chat(req, res);
      throw fail(404, "not_found", `no route ${req.method} ${path}`);
    };
    handle().catch((error: unknown) => {
      if (error instanceof ApiError) sendError(res, error);
      else if (error instanceof RelayerError) sendError(res, fail(error.status, foreignCode(error.code), error.message));
      else sendError(res, fail(502, "proxy_error", (error as Error).message));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8788, listenHost, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${listenHost}:${port}`,
    port,
    token,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await Promise.allSettled(all.map((session) => session.close()));
    },
  };
}
