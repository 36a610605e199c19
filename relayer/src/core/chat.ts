import type { IncomingMessage, ServerResponse } from "node:http";
import type { Hex } from "viem";
import { z } from "zod";
import {
  callCost,
  checkReceipt,
  formatUsdc,
  hashCompletionOutput,
  hashRequestMessages,
  reasoningTokensOf,
  receiptHash,
  signDigest,
  voucherDigest,
  type Receipt,
} from "@agentmesh/sdk";
import type { RegisteredModel, RegisteredProvider } from "../chain.ts";
import type { RelayerContext } from "../context.ts";
import { ApiError, badRequest, bearerToken, readJsonBody, sendJson } from "@agentmesh/sdk/http";
import { idempotencyStore, requestHashOf, type StoredResponse } from "../store/idempotency.ts";
import { authenticate, keySession, parseBody, receiptView, recordVoucher, sessionSignerKey, voucherSchema } from "./sessions.ts";
import { servingRefusal } from "../serving.ts";
import type { SessionRecord } from "../store/repository.ts";
import { countOutputTokens, countPromptTokens, type ChatMessage } from "@agentmesh/sdk/tokens";
import { UpstreamError, callUpstream, type Usage, type UpstreamResult } from "../upstream.ts";

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

type ChatRequest = z.infer<typeof chatSchema>;

/** The prompt as the agent sent it, counted and hashed before the call: what its receipt commits to. */
interface SentPrompt {
  /** `countPromptTokens` of the messages, tool definitions and response format as sent. */
  tokens: number;
  /** `hashRequestMessages` of the messages exactly as sent (the parsed request reorders their keys). */
  inputHash: Hex;
}

/** The most a uint32 field of a voucher's state (sequence, counts, tokens, latency) can hold. */
const MAX_UINT32 = 0xffff_ffff;

/** A session that may serve this request, with what serving it would take. */
interface Candidate {
  session: SessionRecord;
  provider: RegisteredProvider;
  model: RegisteredModel;
  maxTokens: number;
}

/** Why the session cannot take the call now (see `checkCredit`), and its status. */
const CREDIT_REFUSAL_STATUS = {
  voucher_required: 402,
  session_exhausted: 402,
  session_busy: 429,
  context_length_exceeded: 400,
} as const;
type CreditRefusal = keyof typeof CREDIT_REFUSAL_STATUS;

/** An `Idempotency-Key`: printable ASCII without spaces, as Stripe and OpenAI's clients send them. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** A call's `Idempotency-Key`: scoped to the session its API key serves (a key opens one session). */
interface Idempotency {
  scope: Hex;
  key: string;
  requestHash: Hex;
}

/** A request's `Idempotency-Key` and the hash of what it asks, or undefined when it sent none. */
function idempotencyOf(req: IncomingMessage, body: Record<string, unknown>, sessionId: Hex): Idempotency | undefined {
  const key = req.headers["idempotency-key"];
  if (key === undefined) return undefined;
  if (typeof key !== "string" || !IDEMPOTENCY_KEY.test(key)) {
    throw badRequest("Idempotency-Key: must be 1 to 255 printable ASCII characters without spaces", "invalid_idempotency_key");
  }
  return { scope: sessionId, key, requestHash: requestHashOf(body) };
}

/** `POST /v1/chat/completions`. */
export async function chatCompletions(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const keyed = authenticate(ctx, bearerToken(req));
  const body = await readJsonBody(req, ctx.limits.maxBodyBytes);
  const request = parseBody(chatSchema, body);
  request.sessionId = keySession(keyed, request.sessionId); // a key serves its own session only
  const idempotency = idempotencyOf(req, body as Record<string, unknown>, keyed.id);
  if (request.voucher !== undefined) {
    // A retried request carries a voucher already stored: that is not an error. The voucher pays for
    // a call already served, so it is kept even when this call is refused or replayed below.
    recordVoucher(ctx, keyed, request.voucher);
  }
  if (idempotency === undefined) return serveKeyedSession(ctx, res, keyed, request, body, undefined);
  const store = idempotencyStore(ctx.repo);
  const stored = store.get(idempotency.scope, idempotency.key);
  if (stored !== undefined) {
    if (stored.requestHash !== idempotency.requestHash) {
      throw new ApiError(422, "idempotency_key_reused", `Idempotency-Key ${JSON.stringify(idempotency.key)} was used for another request in the last 24 hours`);
    }
    replay(res, stored.response);
    return;
  }
  if (!store.claim(idempotency.scope, idempotency.key)) {
    throw new ApiError(409, "idempotency_key_in_use", `a request with Idempotency-Key ${JSON.stringify(idempotency.key)} is in flight`, {
      headers: { "retry-after": "1" },
    });
  }
  try {
    await serveKeyedSession(ctx, res, keyed, request, body, idempotency);
  } finally {
    store.release(idempotency.scope, idempotency.key);
  }
}

/** Answers a call stored under its Idempotency-Key again, as it was answered (nothing is billed). */
function replay(res: ServerResponse, response: StoredResponse): void {
  if (response.kind === "json") {
    sendJson(res, 200, response.body, { "idempotent-replayed": "true" });
    return;
  }
  res.writeHead(200, { ...STREAM_HEADERS, "idempotent-replayed": "true" });
  res.end(`data: ${JSON.stringify(response.chunk)}\n\ndata: ${JSON.stringify(response.final)}\n\n${response.done ? "data: [DONE]\n\n" : ""}`);
}

/** Headers of a relayed stream (`x-accel-buffering`: proxies such as nginx must not buffer it). */
const STREAM_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" };

/**
 * Serves the call on the API key's session, once the chain, the request's routing preferences and
 * the session's credit allow it. A key serves one session, so the relayer never falls back to
 * another: the agent proxy (sdk/src/proxy.ts) holds a session per provider and falls back itself.
 */
async function serveKeyedSession(
  ctx: RelayerContext,
  res: ServerResponse,
  keyed: SessionRecord,
  request: ChatRequest,
  body: unknown,
  idempotency: Idempotency | undefined,
): Promise<void> {
  const sent = body as { messages: ChatMessage[] };
  const requestedMax = request.max_tokens ?? request.max_completion_tokens;
  if (requestedMax !== undefined && requestedMax > ctx.limits.maxTokensCap) {
    throw new ApiError(400, "invalid_max_tokens", `max_tokens ${requestedMax} is above the cap of ${ctx.limits.maxTokensCap}`);
  }
  // Re-read: a voucher recorded above (or another call) may have moved the session on.
  const session = ctx.repo.getSession(keyed.id)!;
  // The chain's state of the session, its budget and its provider first: its refusal is the answer.
  const refusal = servingRefusal(ctx, session);
  if (refusal !== undefined) throw refusal;
  const offered = ctx.chainIndex.providers().some(
    (provider) => ctx.receiptSigners.serves(provider) && provider.models.some((model) => model.active && model.name === request.model),
  );
  if (!offered) throw new ApiError(404, "model_not_found", `no provider of this relayer offers model "${request.model}" (see GET /v1/models)`);
  const mismatch = preferenceMismatch(session, request);
  if (mismatch !== undefined) {
    throw new ApiError(402, "session_required", `this API key's session ${session.id} ${mismatch}; open a session that does with POST /v1/sessions`);
  }
  const provider = ctx.chainIndex.provider(session.providerId)!;
  const model = provider.models[session.modelId];
  const prompt: SentPrompt = {
    tokens: countPromptTokens({ messages: sent.messages, tools: request.tools, response_format: request.response_format }),
    inputHash: hashRequestMessages(sent.messages),
  };
  const credit = checkCredit(ctx, session, model, prompt.tokens, requestedMax);
  if (typeof credit !== "number") {
    const headers: Record<string, string> = credit.reason === "session_busy" ? { "retry-after": "1" } : {};
    throw new ApiError(CREDIT_REFUSAL_STATUS[credit.reason], credit.reason, credit.detail, { headers });
  }
  if (!ctx.rateLimiter.tryAcquire(provider.id, provider.rateLimitPerMinute)) {
    const waitMs = ctx.rateLimiter.retryAfterMs(provider.id, provider.rateLimitPerMinute);
    throw new ApiError(429, "rate_limited", `provider ${provider.id} allows ${provider.rateLimitPerMinute} requests per minute`, {
      headers: { "retry-after": String(Math.max(1, Math.ceil(waitMs / 1000))) },
    });
  }
  ctx.busySessions.add(session.id);
  try {
    await serve(ctx, res, request, { session, provider, model, maxTokens: credit }, prompt, session.agent, idempotency);
  } catch (error) {
    if (!(error instanceof UpstreamError)) throw error;
    throw new ApiError(502, "upstream_error", `provider ${provider.id}: ${error.message}`, { type: "upstream_error" });
  } finally {
    ctx.busySessions.delete(session.id);
  }
}

/**
 * Why `session` does not match the request's model or its routing preferences (`providerId`,
 * `provider.order`, `provider.max_price`), as the end of a sentence; undefined when it does.
 */
function preferenceMismatch(session: SessionRecord, request: ChatRequest): string | undefined {
  if (session.model !== request.model) return `serves model "${session.model}", not "${request.model}"`;
  const order = request.provider?.order;
  if (request.providerId !== undefined && session.providerId !== request.providerId) return `is with provider ${session.providerId}, not ${request.providerId}`;
  if (order !== undefined && !order.includes(session.providerId)) return `is with provider ${session.providerId}, not one of ${order.join(", ")}`;
  const maxPrice = request.provider?.max_price;
  if (maxPrice?.prompt !== undefined && session.terms.inputPricePer1K > maxPrice.prompt * 1e6) return "prices prompts above provider.max_price.prompt";
  if (maxPrice?.completion !== undefined && session.terms.outputPricePer1K > maxPrice.completion * 1e6) {
    return "prices completions above provider.max_price.completion";
  }
  return undefined;
}

/**
 * Whether `session` may serve a call now: not busy, its previous call's voucher signed (the credit
 * limit is one call), the model's context respected, and its lock covering the call's worst case.
 * Returns the max_tokens to use, or why not.
 */
function checkCredit(
  ctx: RelayerContext,
  session: SessionRecord,
  model: RegisteredModel,
  promptTokens: number,
  requestedMax: number | undefined,
): number | { reason: CreditRefusal; detail: string } {
  if (ctx.busySessions.has(session.id)) return { reason: "session_busy", detail: `session ${session.id} has a call in flight` };
  if (session.state.sequence > session.signedSequence) {
    return {
      reason: "voucher_required",
      detail: `session ${session.id}: sign the voucher of call ${session.state.sequence} first (POST /v1/sessions/${session.id}/vouchers)`,
    };
  }
  const remaining = session.terms.maxSpend - session.state.cumulativeCost;
  const affordable = (maxTokens: number) => callCost(session.terms, promptTokens, maxTokens) <= remaining;
  const contextLeft = model.maxContextTokens - promptTokens;
  const maxTokens = requestedMax ?? Math.min(ctx.limits.defaultMaxTokens, contextLeft, largestAffordable(session, promptTokens, remaining));
  if (maxTokens < 1 || promptTokens + maxTokens > model.maxContextTokens) {
    return {
      reason: "context_length_exceeded",
      detail: `${promptTokens} prompt tokens + max_tokens ${maxTokens} exceed ${model.name}'s context of ${model.maxContextTokens} at provider ${session.providerId}`,
    };
  }
  const { state } = session;
  // Room in the voucher's uint32 fields for this call and a closing voucher after it; a receipt that
  // did not fit could not be signed, and the call would be served unpaid.
  if (state.sequence + 2 > MAX_UINT32 || state.inputTokens + promptTokens > MAX_UINT32 || state.outputTokens + maxTokens > MAX_UINT32) {
    return { reason: "session_exhausted", detail: `session ${session.id}'s voucher counters cannot hold another call; open a new session` };
  }
  if (!affordable(maxTokens)) {
    return {
      reason: "session_exhausted",
      detail: `session ${session.id} has ${formatUsdc(remaining)} USDC left, less than this call may cost (${formatUsdc(callCost(session.terms, promptTokens, maxTokens))})`,
    };
  }
  return maxTokens;
}

/** The most output tokens `remaining` pays for after the prompt (0 when not even the prompt fits). */
function largestAffordable(session: SessionRecord, promptTokens: number, remaining: bigint): number {
  const { outputPricePer1K } = session.terms;
  const afterPrompt = remaining * 1000n - BigInt(promptTokens) * BigInt(session.terms.inputPricePer1K);
  if (afterPrompt <= 0n) return 0;
  if (outputPricePer1K === 0) return Number.MAX_SAFE_INTEGER;
  return Number(afterPrompt / BigInt(outputPricePer1K));
}

/**
 * Calls the provider and answers the client (or bills a client that went away).
 *
 * @throws {UpstreamError} when the provider failed before any output reached the client: nothing
 * is billed, and the caller may fall back.
 * @throws {ApiError} with the provider's status when it refused the request itself (a 4xx that any
 * provider would answer): no fallback, and no failure counted against the provider.
 */
async function serve(
  ctx: RelayerContext,
  res: ServerResponse,
  request: ChatRequest,
  candidate: Candidate,
  prompt: SentPrompt,
  agent: Hex,
  idempotency: Idempotency | undefined,
): Promise<void> {
  // The OpenAI request minus AgentMesh's routing fields, with usage always on. An output limit the
  // client set goes out unchanged, in the field it used (newer models take only
  // max_completion_tokens); with none, max_tokens carries the one the credit check chose.
  const { providerId, provider, sessionId, voucher, ...openAiRequest } = request;
  const upstreamBody = {
    ...openAiRequest,
    ...(request.max_tokens === undefined && request.max_completion_tokens === undefined && { max_tokens: candidate.maxTokens }),
    ...(request.stream ? { stream_options: { ...request.stream_options, include_usage: true } } : {}),
  };
  const clientGone = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) clientGone.abort();
  };
  res.on("close", onClose);
  const keepAlive = new KeepAlive(res, ctx.limits.keepAliveIntervalMs);
  const started = performance.now();
  let result: UpstreamResult;
  try {
    const requestId = res.getHeader("x-request-id");
    result = await callUpstream(
      candidate.provider.endpoint,
      upstreamBody,
      {
        firstByteTimeoutMs: ctx.limits.firstByteTimeoutMs,
        idleTimeoutMs: ctx.limits.idleTimeoutMs,
        outbound: ctx.outbound,
        clientSignal: clientGone.signal,
        // Headers go out as soon as the provider accepts the stream (an earlier provider that
        // failed before its first chunk may already have sent them), then keep-alive comments
        // while it is silent: a reasoning model may think for minutes before its first token.
        onStreamStart: () => {
          if (!res.headersSent) {
            res.writeHead(200, STREAM_HEADERS);
            res.flushHeaders();
          }
          keepAlive.start();
        },
        onChunk: (line) => {
          // Node corks the socket for the rest of the tick on a response's first write, so chunks
          // forwarded in the same tick leave in one write. (Corking it here as well broke 'drain':
          // a corked response under backpressure never emitted it.)
          res.write(`data: ${line}\n\n`);
          keepAlive.wrote();
        },
        drained: () => drained(res, ctx.limits.idleTimeoutMs),
      },
      typeof requestId === "string" ? { "x-request-id": requestId } : {},
    );
  } finally {
    keepAlive.stop();
    res.off("close", onClose);
  }
  const latencyMs = Math.max(0, Math.round(performance.now() - started));
  if (result.kind === "refused") throw new ApiError(result.status, result.error.code, result.error.message, { type: result.error.type, param: result.error.param ?? undefined });
  ctx.stats.recordUpstream(candidate.provider.id, latencyMs, result.kind === "failed" || (result.kind === "cut" && !result.clientGone));
  if (result.kind === "failed") throw new UpstreamError(result.message);
  // A whole answer whose client left before it could be sent reached nobody: it is not billed.
  if (result.kind === "completed" && !request.stream && clientGone.signal.aborted) return;
  const record = bill(ctx, request, candidate, prompt, latencyMs, result);
  const cost = { amount: formatUsdc(record.receipt.cost), amountAtomic: record.receipt.cost.toString(), currency: "USDC", txHash: null };
  const extension = { cost, latencyMs, receipt: receiptView(record) };
  const usage: Usage = result.usage ?? {
    prompt_tokens: record.receipt.inputTokens,
    completion_tokens: record.receipt.outputTokens,
    total_tokens: record.receipt.inputTokens + record.receipt.outputTokens,
  };
  let response: StoredResponse;
  if (!request.stream) {
    response = { kind: "json", body: { ...(result.kind === "completed" ? result.body : {}), ...extension } };
  } else {
    const final = {
      ...(result.usageChunk ?? { object: "chat.completion.chunk", choices: [] }),
      usage,
      ...(result.kind === "cut" && { error: { message: `the provider's stream broke: ${result.message}; what was delivered is billed`, type: "upstream_error", code: "upstream_error" } }),
      ...extension,
    };
    response = { kind: "stream", chunk: outputChunk(result), final, done: result.kind === "completed" };
  }
  if (idempotency !== undefined) idempotencyStore(ctx.repo).put(idempotency.scope, idempotency.key, { requestHash: idempotency.requestHash, receiptHash: record.hash, response });
  await ctx.repo.committed(); // the receipt is on disk before anyone is told of it
  if (result.kind === "cut" && result.clientGone) return;
  if (response.kind === "json") sendJson(res, 200, response.body);
  else res.end(`data: ${JSON.stringify(response.final)}\n\n${response.done ? "data: [DONE]\n\n" : ""}`);
}

/** A stream's whole output as one chunk: what an Idempotency-Key replay sends (it hashes the same). */
function outputChunk(result: Extract<UpstreamResult, { kind: "completed" | "cut" }>) {
  const { id, created, model } = (result.usageChunk ?? {}) as Record<string, unknown>;
  const toolCalls = result.toolCalls.map((call, index) => ({ index, id: call.id, type: "function", function: { name: call.name, arguments: call.arguments } }));
  return {
    id,
    object: "chat.completion.chunk",
    created,
    model,
    choices: [
      {
        index: 0,
        delta: { role: "assistant", ...(result.content !== null && { content: result.content }), ...(toolCalls.length > 0 && { tool_calls: toolCalls }) },
        finish_reason: result.kind === "cut" ? null : toolCalls.length > 0 ? "tool_calls" : "stop",
      },
    ],
  };
}

/**
 * Undefined when the client keeps up with the stream; else resolves once its buffer drained, or it
 * went away. A client that takes nothing for `idleTimeoutMs` is cut off: it has stopped reading.
 */
function drained(res: ServerResponse, idleTimeoutMs: number): Promise<void> | undefined {
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
}

/** SSE comments to the client while a stream is silent, every `intervalMs` of silence. */
class KeepAlive {
  private timer: NodeJS.Timeout | undefined;
  private readonly res: ServerResponse;
  private readonly intervalMs: number;

  constructor(res: ServerResponse, intervalMs: number) {
    this.res = res;
    this.intervalMs = intervalMs;
  }

  start(): void {
    this.timer ??= setInterval(() => {
      if (!this.res.writableNeedDrain) this.res.write(": keep-alive\n\n");
    }, this.intervalMs);
  }

  /** Something was sent: the next comment is due a whole interval from now. */
  wrote(): void {
    this.timer?.refresh();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

/**
 * Meters a served call: receipt, next state, the provider's co-signature, all stored at once. A cut
 * stream is billed for what was delivered: by the provider's usage if it sent one before the cut,
 * else by the relayer's count, and the receipt says so (`countedByRelayer`).
 */
function bill(
  ctx: RelayerContext,
  request: ChatRequest,
  { session, provider, maxTokens }: Candidate,
  prompt: SentPrompt,
  latencyMs: number,
  result: Extract<UpstreamResult, { kind: "completed" | "cut" }>,
) {
  const promptTokens = prompt.tokens;
  const ourCompletion = countOutputTokens(result);
  let countedByRelayer = result.usage === undefined;
  const reported = result.usage ?? { prompt_tokens: promptTokens, completion_tokens: ourCompletion };
  // Reasoning tokens are billed as output but never shown, so our count of the output leaves them out.
  const reasoning = Math.min(reasoningTokensOf(reported), reported.completion_tokens);
  const tolerance = (ours: number, theirs: number) => Math.abs(ours - theirs) > ctx.limits.tokenMismatchTolerance * Math.max(ours, theirs) + 4;
  const tokenMismatch =
    tolerance(promptTokens, reported.prompt_tokens) ||
    tolerance(ourCompletion, reported.completion_tokens - reasoning) ||
    reported.completion_tokens > maxTokens;
  let inputTokens = reported.prompt_tokens;
  let outputTokens = Math.min(reported.completion_tokens, maxTokens);
  const remaining = session.terms.maxSpend - session.state.cumulativeCost;
  const { state: before } = session;
  if (
    callCost(session.terms, inputTokens, outputTokens) > remaining ||
    before.inputTokens + inputTokens > MAX_UINT32 ||
    before.outputTokens + outputTokens > MAX_UINT32
  ) {
    // The provider reports more than the credit check allowed for (in cost or in the voucher's
    // counters): bill our own count, which the check made sure fits.
    inputTokens = promptTokens;
    outputTokens = Math.min(ourCompletion, maxTokens);
    countedByRelayer = true;
  }
  const receipt: Receipt = {
    sessionId: session.id,
    sequence: session.state.sequence + 1,
    providerId: provider.id,
    model: request.model,
    inputTokens,
    outputTokens,
    cost: callCost(session.terms, inputTokens, outputTokens),
    // Latency is informative: it is clamped to what the cumulative uint32 can still hold.
    latencyMs: Math.min(latencyMs, MAX_UINT32 - before.latencyMs),
    inputHash: prompt.inputHash,
    outputHash: hashCompletionOutput(result.content, result.toolCalls),
    previousHash: session.state.receiptHead,
  };
  const state = checkReceipt(session.terms, session.id, session.state, receipt);
  const providerSignature = signDigest(sessionSignerKey(ctx, session), voucherDigest(ctx.domainSeparator, session.id, state));
  const deliveredOutput = result.kind === "cut" ? { content: result.content, toolCalls: result.toolCalls } : null;
  const record = { hash: receiptHash(receipt), receipt, state, providerSignature, tokenMismatch, countedByRelayer, deliveredOutput };
  ctx.repo.recordCall(record);
  ctx.stats.recordCall(provider.id, receipt, tokenMismatch);
  return { ...record, agentSignature: null, settlementTx: null, createdAt: Date.now() };
}
