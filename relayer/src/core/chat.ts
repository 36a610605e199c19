import type { Hex } from "viem";
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
import { ApiError } from "@agentmesh/sdk/http";
import { idempotencyStore, requestHashOf, type StoredResponse } from "../store/idempotency.ts";
import { SESSION_HOLD_MS, SessionHold } from "./session-hold.ts";
import { SessionHoldLostError } from "../store/repository.ts";
import { receiptView, recordVoucher, sessionSignerKey } from "./sessions.ts";
import { foreignCode, type ChatRequest } from "@agentmesh/sdk/protocol";
import { servingRefusal } from "../serving.ts";
import type { SessionRecord } from "../store/repository.ts";
import { countOutputTokens, countPromptTokens, type ChatMessage } from "@agentmesh/sdk/tokens";
import { UpstreamError, callUpstream, type Usage, type UpstreamResult } from "../upstream.ts";

/**
 * Chat completions on a session: the credit bound, the serving checks, the call to the provider,
 * billing (receipt, next state, co-signature) and Idempotency-Key replays. No HTTP: the route
 * (routes/chat.ts) authenticates and parses the request, streams through a {@link StreamOutput} it
 * implements over the response, and writes the {@link ChatAnswer}.
 */

/** A chat call on the session its API key opens. */
export interface ChatCall {
  /** The session of the request's API key (see `authenticate`). */
  keyed: SessionRecord;
  request: ChatRequest;
  /** The body as sent: its messages are counted and hashed as the agent sent them. */
  body: Record<string, unknown>;
  /** The request's `Idempotency-Key`, already checked for shape, if it sent one. */
  idempotencyKey: string | undefined;
}

/**
 * Where a streamed answer goes, with no HTTP: the route implements it over the response. Writes go
 * out as they come (backpressure is {@link drained}'s); comments keep an idle stream alive.
 */
export interface StreamOutput {
  /** The request's id, passed on to the provider. */
  readonly requestId: string | undefined;
  /** Runs `listener` if the client goes away before the answer is complete; returns what stops listening. */
  onClientGone(listener: () => void): () => void;
  /** Opens the event stream at once (status and headers), unless an answer has begun. */
  open(): void;
  /** Writes `text` (SSE events or comments) to the stream. */
  write(text: string): void;
  /** Whether the client has yet to take what was written (its buffer is full). */
  readonly backedUp: boolean;
  /**
   * Undefined when the client keeps up; else resolves once it took what was buffered, or went away.
   * A client that takes nothing for `idleTimeoutMs` is cut off: it has stopped reading.
   */
  drained(idleTimeoutMs: number): Promise<void> | undefined;
}

/**
 * What to answer once a call is done (a stream has been open since the provider's first byte):
 * a JSON body, the stream's last events, or nothing (the client went away). `replayed` when it is
 * a call stored under its Idempotency-Key, answered again (nothing is billed).
 */
export type ChatAnswer = { kind: "json"; body: unknown; replayed: boolean } | { kind: "stream"; text: string; replayed: boolean } | { kind: "none" };

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
  /** The call's hold on its session: `hold.session` is the state the call builds on. */
  hold: SessionHold;
  session: SessionRecord;
  provider: RegisteredProvider;
  model: RegisteredModel;
  maxTokens: number;
}

/** Why the session cannot take the call now (see `checkCredit`), and its status. */
const CREDIT_REFUSAL_STATUS = {
  voucher_required: 402,
  session_exhausted: 402,
  context_length_exceeded: 400,
} as const;
type CreditRefusal = keyof typeof CREDIT_REFUSAL_STATUS;

/** A call's `Idempotency-Key`: scoped to the session its API key serves (a key opens one session). */
interface Idempotency {
  scope: Hex;
  key: string;
  requestHash: Hex;
}

/**
 * Serves a chat call (`POST /v1/chat/completions`) on its API key's session. A voucher it carries
 * is stored first (even when the call is refused or replayed: it pays for a call already served).
 * With an Idempotency-Key, a call already answered is answered again as it was (nothing billed), a
 * key reused for another request is refused (422), and one in flight is refused (409).
 */
export async function completeChat(ctx: RelayerContext, { keyed, request, body, idempotencyKey }: ChatCall, output: StreamOutput): Promise<ChatAnswer> {
  const idempotency = idempotencyKey === undefined ? undefined : { scope: keyed.id, key: idempotencyKey, requestHash: requestHashOf(body) };
  if (request.voucher !== undefined) {
    // A retried request carries a voucher already stored: that is not an error. The voucher pays for
    // a call already served, so it is kept even when this call is refused or replayed below.
    await recordVoucher(ctx, keyed, request.voucher);
  }
  if (idempotency === undefined) return serveKeyedSession(ctx, output, keyed, request, body, undefined);
  const stored = await idempotencyStore.get(ctx.repo, idempotency.scope, idempotency.key);
  if (stored !== undefined) {
    if (stored.requestHash !== idempotency.requestHash) {
      throw new ApiError(422, "idempotency_key_reused", `Idempotency-Key ${JSON.stringify(idempotency.key)} was used for another request in the last 24 hours`);
    }
    return replay(stored.response);
  }
  if (!(await idempotencyStore.claim(ctx.repo, idempotency.scope, idempotency.key, Date.now() + SESSION_HOLD_MS))) {
    throw new ApiError(409, "idempotency_key_in_use", `a request with Idempotency-Key ${JSON.stringify(idempotency.key)} is in flight`, {
      headers: { "retry-after": "1" },
    });
  }
  try {
    return await serveKeyedSession(ctx, output, keyed, request, body, idempotency);
  } finally {
    await idempotencyStore.release(ctx.repo, idempotency.scope, idempotency.key);
  }
}

/** A call stored under its Idempotency-Key, answered again as it was (a stream's output as one chunk). */
function replay(response: StoredResponse): ChatAnswer {
  if (response.kind === "json") return { kind: "json", body: response.body, replayed: true };
  return { kind: "stream", text: `data: ${JSON.stringify(response.chunk)}\n\ndata: ${JSON.stringify(response.final)}\n\n${response.done ? "data: [DONE]\n\n" : ""}`, replayed: true };
}

/**
 * Serves the call on the API key's session, once the chain, the request's routing preferences and
 * the session's credit allow it. A key serves one session, so the relayer never falls back to
 * another: the agent proxy (sdk/src/proxy.ts) holds a session per provider and falls back itself.
 */
async function serveKeyedSession(
  ctx: RelayerContext,
  output: StreamOutput,
  keyed: SessionRecord,
  request: ChatRequest,
  body: unknown,
  idempotency: Idempotency | undefined,
): Promise<ChatAnswer> {
  const requestedMax = request.max_tokens ?? request.max_completion_tokens;
  if (requestedMax !== undefined && requestedMax > ctx.limits.maxTokensCap) {
    throw new ApiError(400, "invalid_max_tokens", `max_tokens ${requestedMax} is above the cap of ${ctx.limits.maxTokensCap}`);
  }
  // Held, on every instance sharing the store, from here until the call is recorded or refused; the
  // hold returns the session as of now (a voucher recorded above, or another call, moved it on).
  const hold = await SessionHold.take(ctx.repo, keyed.id);
  if (hold === undefined) {
    throw new ApiError(429, "session_busy", `session ${keyed.id} has a call in flight`, { headers: { "retry-after": "1" } });
  }
  if (idempotency !== undefined) hold.renewWith((until) => idempotencyStore.renew(ctx.repo, idempotency.scope, idempotency.key, until));
  try {
    return await serveHeld(ctx, output, hold, request, requestedMax, body, idempotency);
  } finally {
    await hold.release(); // nothing when the call's record ended the hold
  }
}

/** {@link serveKeyedSession} once the session is held. */
async function serveHeld(
  ctx: RelayerContext,
  output: StreamOutput,
  hold: SessionHold,
  request: ChatRequest,
  requestedMax: number | undefined,
  body: unknown,
  idempotency: Idempotency | undefined,
): Promise<ChatAnswer> {
  const { session } = hold;
  const sent = body as { messages: ChatMessage[] };
  // The chain's state of the session, its budget and its provider first: its refusal is the answer.
  const refusal = await servingRefusal(ctx, session);
  if (refusal !== undefined) throw refusal;
  const offered = (await ctx.chainIndex.providers()).some(
    (provider) => ctx.receiptSigners.serves(provider) && provider.models.some((model) => model.active && model.name === request.model),
  );
  if (!offered) throw new ApiError(404, "model_not_found", `no provider of this relayer offers model "${request.model}" (see GET /v1/models)`);
  const mismatch = preferenceMismatch(session, request);
  if (mismatch !== undefined) {
    throw new ApiError(402, "session_required", `this API key's session ${session.id} ${mismatch}; open a session that does with POST /v1/sessions`);
  }
  const provider = (await ctx.chainIndex.provider(session.providerId))!;
  const model = provider.models[session.modelId];
  const prompt: SentPrompt = {
    tokens: countPromptTokens({ messages: sent.messages, tools: request.tools, response_format: request.response_format }),
    inputHash: hashRequestMessages(sent.messages),
  };
  const credit = checkCredit(ctx, session, model, prompt.tokens, requestedMax);
  if (typeof credit !== "number") {
    throw new ApiError(CREDIT_REFUSAL_STATUS[credit.reason], credit.reason, credit.detail);
  }
  const limited = await ctx.rateLimits.provider(provider.id, provider.rateLimitPerMinute);
  if (limited !== undefined) {
    throw new ApiError(429, "rate_limited", `provider ${provider.id} allows ${provider.rateLimitPerMinute} requests per minute`, {
      headers: { "retry-after": String(limited.retryAfterSeconds) },
    });
  }
  try {
    return await serve(ctx, output, request, { hold, session, provider, model, maxTokens: credit }, prompt, idempotency);
  } catch (error) {
    if (!(error instanceof UpstreamError)) throw error;
    throw new ApiError(502, "upstream_error", `provider ${provider.id}: ${error.message}`, { type: "upstream_error" });
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
  output: StreamOutput,
  request: ChatRequest,
  candidate: Candidate,
  prompt: SentPrompt,
  idempotency: Idempotency | undefined,
): Promise<ChatAnswer> {
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
  const stopWatching = output.onClientGone(() => clientGone.abort());
  const keepAlive = new KeepAlive(output, ctx.limits.keepAliveIntervalMs);
  const started = performance.now();
  let result: UpstreamResult;
  try {
    const { requestId } = output;
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
          output.open();
          keepAlive.start();
        },
        onChunk: (line) => {
          output.write(`data: ${line}\n\n`);
          keepAlive.wrote();
        },
        drained: () => output.drained(ctx.limits.idleTimeoutMs),
      },
      requestId !== undefined ? { "x-request-id": requestId } : {},
    );
  } finally {
    keepAlive.stop();
    stopWatching();
  }
  const latencyMs = Math.max(0, Math.round(performance.now() - started));
  if (result.kind === "refused") throw new ApiError(result.status, foreignCode(result.error.code), result.error.message, { type: result.error.type, param: result.error.param ?? undefined });
  ctx.stats.recordUpstream(candidate.provider.id, latencyMs, result.kind === "failed" || (result.kind === "cut" && !result.clientGone));
  if (result.kind === "failed") throw new UpstreamError(result.message);
  // A whole answer whose client left before it could be sent reached nobody: it is not billed.
  if (result.kind === "completed" && !request.stream && clientGone.signal.aborted) return { kind: "none" };
  const record = meter(ctx, request, candidate, prompt, latencyMs, result);
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
  // The receipt is on disk, with the key's answer, before anyone is told of it; and only if this
  // call still holds the session (else another state may be signed at its sequence: it is dropped).
  await ctx.repo
    .transaction(async (repo) => {
      await repo.recordCall(record, candidate.hold.token);
      if (idempotency !== undefined) {
        await idempotencyStore.put(repo, idempotency.scope, idempotency.key, { requestHash: idempotency.requestHash, receiptHash: record.hash, response });
      }
    })
    .catch((error: unknown) => {
      if (error instanceof SessionHoldLostError) throw new ApiError(409, "session_busy", `${error.message}; this call is not billed`);
      throw error;
    });
  candidate.hold.ended();
  ctx.stats.recordCall(candidate.provider.id, record.receipt, record.tokenMismatch);
  if (result.kind === "cut" && result.clientGone) return { kind: "none" };
  if (response.kind === "json") return { kind: "json", body: response.body, replayed: false };
  return { kind: "stream", text: `data: ${JSON.stringify(response.final)}\n\n${response.done ? "data: [DONE]\n\n" : ""}`, replayed: false };
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

/** SSE comments to the client while a stream is silent, every `intervalMs` of silence. */
class KeepAlive {
  private timer: NodeJS.Timeout | undefined;
  private readonly output: StreamOutput;
  private readonly intervalMs: number;

  constructor(output: StreamOutput, intervalMs: number) {
    this.output = output;
    this.intervalMs = intervalMs;
  }

  start(): void {
    this.timer ??= setInterval(() => {
      if (!this.output.backedUp) this.output.write(": keep-alive\n\n");
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
 * Meters a served call: its receipt, the next state and the provider's co-signature (stored by the
 * caller, and given out only once stored). A cut
 * stream is billed for what was delivered: by the provider's usage if it sent one before the cut,
 * else by the relayer's count, and the receipt says so (`countedByRelayer`).
 */
function meter(
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
  return { ...record, agentSignature: null, settlementTx: null, createdAt: Date.now() };
}
