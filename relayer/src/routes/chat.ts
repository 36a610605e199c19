import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { badRequest, bearerToken, readJsonBody, sendJson } from "@agentmesh/sdk/http";
import type { RelayerContext } from "../context.ts";
import { completeChat, type ChatAnswer, type StreamOutput } from "../core/chat.ts";
import { authenticate, keySession } from "../core/sessions.ts";
import { parseBody, type Route } from "./route.ts";
import { voucherSchema } from "./sessions.ts";

/**
 * Content parts the relayer can bound the cost of: text, and images (at their detail's bound, see
 * the SDK's token counter). Others (audio, files) would be billed by the provider beyond the credit
 * the call was given, so they are refused.
 */
const METERED_PART_TYPES = new Set(["text", "image_url"]);

const contentPartSchema = z
  .object({ type: z.string(), text: z.string().optional() })
  .passthrough()
  .refine((part) => METERED_PART_TYPES.has(part.type), {
    error: (issue) => `content part type ${JSON.stringify((issue.input as { type: unknown }).type)} is not metered: use text or image_url`,
  });

const messageSchema = z
  .object({
    role: z.enum(["system", "developer", "user", "assistant", "tool"]),
    content: z.union([z.string(), z.array(contentPartSchema), z.null()], { error: "must be a string, a list of content parts or null" }).optional(),
    name: z.string().optional(),
    tool_calls: z.array(z.object({ function: z.object({ name: z.string(), arguments: z.string() }).passthrough() }).passthrough()).optional(),
  })
  .passthrough();

/** `POST /v1/chat/completions`: OpenAI's request, with AgentMesh's routing fields. */
const chatSchema = z
  .object({
    model: z.string().min(1, "must name a model"),
    messages: z.array(messageSchema).min(1, "must hold at least one message"),
    max_tokens: z.number().int().positive().optional(),
    max_completion_tokens: z.number().int().positive().optional(),
    stream: z.boolean().optional(),
    /** One choice per call: a receipt meters one output. */
    n: z.literal(1, { error: "only n = 1 is served: a call is metered for one choice" }).optional(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).passthrough().optional(),
    temperature: z.number().min(0).max(2).optional(),
    tools: z.array(z.unknown()).optional(),
    tool_choice: z.unknown().optional(),
    /** AgentMesh: serve with this provider only. */
    providerId: z.number().int().positive().optional(),
    /** AgentMesh: the API key's session (optional: a key serves its own session only). */
    sessionId: z.string().regex(/^0x[0-9a-fA-F]{64}$/, "must be a session id").transform((id) => id.toLowerCase()).optional(),
    /**
     * AgentMesh: the agent's voucher for the session's previous call, so that one request per call
     * suffices (instead of also posting it to /v1/sessions/{id}/vouchers). For the key's session.
     */
    voucher: voucherSchema.optional(),
    /**
     * AgentMesh, OpenRouter-style routing preferences, checked against the key's session.
     * `allow_fallbacks` and `sort` are accepted for OpenRouter clients: a key serves one session, so
     * the agent proxy, which holds a session per provider, is what sorts and falls back.
     */
    provider: z
      .object({
        order: z.array(z.number().int().positive()).optional(),
        allow_fallbacks: z.boolean().optional(),
        /** Highest acceptable prices, in USDC per 1K tokens. */
        max_price: z.object({ prompt: z.number().nonnegative().optional(), completion: z.number().nonnegative().optional() }).optional(),
        sort: z.enum(["price", "latency"]).optional(),
      })
      .optional(),
  })
  .passthrough();

/** An `Idempotency-Key`: printable ASCII without spaces, as Stripe and OpenAI's clients send them. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** Headers of a relayed stream (`x-accel-buffering`: proxies such as nginx must not buffer it). */
const STREAM_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" };

/** OpenAI's chat completions, metered on the API key's session (see core/chat.ts). */
export const chatRoutes: Route[] = [{ method: "POST", pattern: /^\/v1\/chat\/completions$/, handler: chatCompletions, needsChainIndex: true }];

/** `POST /v1/chat/completions`: authenticates the key, parses the request, serves it on the key's session. */
async function chatCompletions(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const keyed = authenticate(ctx, bearerToken(req));
  const body = await readJsonBody(req, ctx.limits.maxBodyBytes);
  const request = parseBody(chatSchema, body);
  request.sessionId = keySession(keyed, request.sessionId); // a key serves its own session only
  const idempotencyKey = idempotencyKeyOf(req);
  const answer = await completeChat(ctx, { keyed, request, body: body as Record<string, unknown>, idempotencyKey }, streamOutput(res));
  writeAnswer(res, answer);
}

/** The request's `Idempotency-Key`, or undefined when it sent none; a 400 when it is malformed. */
function idempotencyKeyOf(req: IncomingMessage): string | undefined {
  const key = req.headers["idempotency-key"];
  if (key === undefined) return undefined;
  if (typeof key !== "string" || !IDEMPOTENCY_KEY.test(key)) {
    throw badRequest("Idempotency-Key: must be 1 to 255 printable ASCII characters without spaces", "invalid_idempotency_key");
  }
  return key;
}

/** Writes a call's answer: a JSON body, or the end of its stream (a replay opens the stream first). */
function writeAnswer(res: ServerResponse, answer: ChatAnswer): void {
  if (answer.kind === "none") return;
  const replayed = answer.replayed ? { "idempotent-replayed": "true" } : {};
  if (answer.kind === "json") {
    sendJson(res, 200, answer.body, replayed);
    return;
  }
  if (answer.replayed) res.writeHead(200, { ...STREAM_HEADERS, ...replayed });
  res.end(answer.text);
}

/** The call's stream over `res`: headers sent at once, writes as they come, and the client's backpressure. */
function streamOutput(res: ServerResponse): StreamOutput {
  const requestId = res.getHeader("x-request-id");
  return {
    requestId: typeof requestId === "string" ? requestId : undefined,
    onClientGone(listener) {
      const onClose = () => {
        if (!res.writableFinished) listener();
      };
      res.on("close", onClose);
      return () => res.off("close", onClose);
    },
    open() {
      if (!res.headersSent) {
        res.writeHead(200, STREAM_HEADERS);
        res.flushHeaders();
      }
    },
    write(text) {
      // Node corks the socket for the rest of the tick on a response's first write, so chunks
      // forwarded in the same tick leave in one write. (Corking it here as well broke 'drain':
      // a corked response under backpressure never emitted it.)
      res.write(text);
    },
    get backedUp() {
      return res.writableNeedDrain;
    },
    drained(idleTimeoutMs) {
      if (!res.writableNeedDrain || res.destroyed) return undefined;
      return new Promise((resolve) => {
        const timer = setTimeout(() => res.destroy(), idleTimeoutMs);
        const done = () => {
          clearTimeout(timer);
          res.off("drain", done);
          res.off("close", done);
          resolve();
        };
        res.on("drain", done);
        res.on("close", done);
      });
    },
  };
}
