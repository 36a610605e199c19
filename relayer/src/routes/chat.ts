import type { IncomingMessage, ServerResponse } from "node:http";
import { badRequest, bearerToken, readJsonBody, sendJson } from "@agentmesh/sdk/http";
import type { RelayerContext } from "../context.ts";
import { completeChat, type ChatAnswer, type StreamOutput } from "../core/chat.ts";
import { authenticate, keySession } from "../core/sessions.ts";
import { parseBody, type Route } from "./route.ts";
import { chatCompletionSchema, chatRequestSchema } from "@agentmesh/sdk/protocol";

/** An `Idempotency-Key`: printable ASCII without spaces, as Stripe and OpenAI's clients send them. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** Headers of a relayed stream (`x-accel-buffering`: proxies such as nginx must not buffer it). */
const STREAM_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" };

/** OpenAI's chat completions, metered on the API key's session (see core/chat.ts). */
export const chatRoutes: Route[] = [{ method: "POST", pattern: /^\/v1\/chat\/completions$/, handler: chatCompletions, needsChainIndex: true, doc: { summary: "An OpenAI chat completion, metered on the API key's session; streamed as server-sent events with `stream: true`", body: chatRequestSchema, response: chatCompletionSchema, auth: "apiKey" } }];

/** `POST /v1/chat/completions`: authenticates the key, parses the request, serves it on the key's session. */
async function chatCompletions(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const keyed = await authenticate(ctx, bearerToken(req));
  const body = await readJsonBody(req, ctx.limits.maxBodyBytes);
  const request = parseBody(chatRequestSchema, body);
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
