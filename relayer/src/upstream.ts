import type { Dispatcher } from "undici";
import { createParser, type ParseError } from "eventsource-parser";
import { StreamedOutput, outputOfCompletion, type CompletionOutput } from "@agentmesh/sdk";
import { EndpointRefusedError, cappedText, readHead, type EndpointUrl, type OutboundHttp } from "./outbound.ts";

/** Usage as an OpenAI-compatible provider reports it. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens?: number;
}

/** What a provider call came to. */
export type UpstreamResult =
  | (CompletionOutput & {
      kind: "completed";
      /** The non-streamed response body (streams: undefined). */
      body?: Record<string, unknown>;
      usage: Usage;
      /**
       * Streams: the provider's chunk that carried the usage when it carried nothing else (OpenAI's
       * final `choices: []` chunk), which the relayer extends before forwarding; else the last chunk's
       * `id`, `object`, `created` and `model`, for the relayer's own final chunk.
       */
      usageChunk?: Record<string, unknown>;
    })
  | (CompletionOutput & {
      /**
       * A stream cut after output reached the client: the provider failed or went silent (`message`
       * says how), or the client went away (`clientGone`). What was delivered is billed: by `usage`
       * if the provider reported it before the cut, else by the relayer's count.
       */
      kind: "cut";
      usage?: Usage;
      clientGone: boolean;
      message: string;
      usageChunk?: Record<string, unknown>;
    })
  | {
      /**
       * The provider refused the request itself (HTTP 400, 413, 415 or 422): the same request would
       * fail anywhere, so the client gets the provider's answer; no fallback, no failure counted.
       */
      kind: "refused";
      status: number;
      error: { message: string; type: string; code: string; param: string | null };
    }
  | { kind: "failed"; message: string };

/** Statuses by which a provider says the request is at fault, not the provider. */
const REQUEST_FAULT_STATUSES = new Set([400, 413, 415, 422]);

/**
 * A provider failed before anything reached the client, or was not called at all: its endpoint is
 * refused (the cause is then an `EndpointRefusedError`).
 */
export class UpstreamError extends Error {
  constructor(message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = "UpstreamError";
  }
}

export interface UpstreamOptions {
  /** Longest wait, from sending the request, for the first byte of the response body. */
  firstByteTimeoutMs: number;
  /** Longest silence of the provider once its body has begun (any byte counts, SSE comments too). */
  idleTimeoutMs: number;
  /** Aborted when the client goes away. */
  clientSignal: AbortSignal;
  /** The HTTP client for endpoints from the chain, with the relayer's outbound policy. */
  outbound: OutboundHttp;
  /** Called once the provider accepted a streamed request (2xx headers), before any chunk. */
  onStreamStart: () => void;
  /** Forwards one streamed chunk (the JSON text of an SSE `data:` event). */
  onChunk: (json: string) => void;
  /**
   * Undefined when the client keeps up; else resolves once it has taken what was forwarded so far
   * (its socket buffer drained) or went away. The provider's body is not read meanwhile, so TCP
   * holds the provider back instead of the relayer buffering its stream.
   */
  drained: () => Promise<void> | undefined;
}

/** Largest non-streamed provider response accepted. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
/** Largest streamed provider response accepted (65,536 tokens at a few hundred bytes a chunk fit). */
const MAX_STREAM_BYTES = 32 * 1024 * 1024;
/** Longest SSE line (or event) accepted: the parser's buffer is bounded by it. */
const MAX_SSE_LINE = 1024 * 1024;

/**
 * Cuts a call that waits too long: first for the response's first byte, then between bytes. Each
 * arrival re-arms it with the idle timeout; it can be paused while the relayer itself holds the
 * reading back (the client is slow), which is no silence of the provider.
 */
class Watchdog {
  readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  /** Whether the timer running is the idle one. */
  private idle = false;
  private readonly options: Pick<UpstreamOptions, "firstByteTimeoutMs" | "idleTimeoutMs">;

  constructor(options: Pick<UpstreamOptions, "firstByteTimeoutMs" | "idleTimeoutMs">) {
    this.options = options;
    this.arm(options.firstByteTimeoutMs, `no response within ${options.firstByteTimeoutMs} ms (first-byte timeout)`);
  }

  /** Something arrived: the provider may be silent for the idle timeout from now. */
  activity(): void {
    if (this.idle) {
      this.timer!.refresh(); // per piece of a stream: no new timer
      return;
    }
    this.arm(this.options.idleTimeoutMs, `the provider sent nothing for ${this.options.idleTimeoutMs} ms (idle timeout)`);
    this.idle = true;
  }

  pause(): void {
    clearTimeout(this.timer);
    this.idle = false;
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private arm(ms: number, message: string): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.controller.abort(new Error(message)), ms);
  }
}

/**
 * Calls `POST {endpoint}/chat/completions`, streaming or not as `body.stream` says. There is no
 * limit on the whole call: it is cut when the provider's first byte takes longer than
 * `firstByteTimeoutMs`, when it then goes silent for `idleTimeoutMs`, or as soon as the client goes
 * away. A stream cut after output reached the client is a `cut` result, to be billed.
 *
 * @throws {UpstreamError} when the outbound policy refuses the endpoint (its shape, an address it
 * names or resolves to) or its redirect: nothing is served, and it is no provider call to count.
 */
export async function callUpstream(
  endpoint: string,
  body: Record<string, unknown>,
  options: UpstreamOptions,
  headers: Record<string, string> = {},
): Promise<UpstreamResult> {
  let url: EndpointUrl;
  try {
    url = options.outbound.endpointUrl(endpoint, "/chat/completions");
  } catch (error) {
    throw new UpstreamError((error as Error).message, { cause: error });
  }
  let payload: string;
  try {
    payload = JSON.stringify(body);
  } catch (error) {
    // The request is at fault (the relayer bounds nesting at its edge; this is the backstop).
    return { kind: "refused", status: 400, error: { message: `the request cannot be sent: ${(error as Error).message}`, type: "invalid_request_error", code: "invalid_request", param: null } };
  }
  const watchdog = new Watchdog(options);
  const abort = watchdog.controller;
  const cut = () => abort.abort(new Error("the client went away"));
  options.clientSignal.addEventListener("abort", cut);
  try {
    let response: Dispatcher.ResponseData;
    try {
      response = await options.outbound.request(url, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json", accept: body.stream ? "text/event-stream" : "application/json" },
        body: payload,
        signal: abort.signal,
      });
    } catch (error) {
      if (error instanceof EndpointRefusedError) throw new UpstreamError(error.message, { cause: error });
      return { kind: "failed", message: `request failed: ${reasonOf(abort.signal, error)}` };
    }
    const status = response.statusCode;
    if (status < 200 || status > 299) {
      const head = await readHead(response.body, 16 * 1024);
      if (REQUEST_FAULT_STATUSES.has(status)) return { kind: "refused", status, error: providerError(head, status) };
      return { kind: "failed", message: `HTTP ${status}: ${head.slice(0, 300)}` };
    }
    if (body.stream) return await readStream(response, options, watchdog);
    try {
      return await readJson(response, watchdog);
    } catch (error) {
      if (options.clientSignal.aborted) return { kind: "failed", message: "client went away before the response" };
      return { kind: "failed", message: `bad response: ${reasonOf(abort.signal, error)}` };
    }
  } finally {
    watchdog.stop();
    options.clientSignal.removeEventListener("abort", cut);
  }
}

/** Why a read stopped: the watchdog's reason when it cut it, else the error's message. */
function reasonOf(signal: AbortSignal, error: unknown): string {
  if (signal.aborted && signal.reason instanceof Error) return signal.reason.message;
  return (error as Error).message;
}

/** A provider's OpenAI-shaped error, as far as it is one, for the client. */
function providerError(text: string, status: number) {
  let error: { message?: unknown; type?: unknown; code?: unknown; param?: unknown } | undefined;
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error;
  } catch {
    // not JSON: described below
  }
  const string = (value: unknown, fallback: string) => (typeof value === "string" && value.length > 0 ? value.slice(0, 1_000) : fallback);
  return {
    message: `the provider refused the request (HTTP ${status}): ${string(error?.message, text.slice(0, 300))}`,
    type: string(error?.type, "invalid_request_error"),
    code: string(error?.code, "provider_rejected_request"),
    param: typeof error?.param === "string" ? error.param : null,
  };
}

async function readJson(response: Dispatcher.ResponseData, watchdog: Watchdog): Promise<UpstreamResult> {
  let text = "";
  for await (const piece of cappedText(response.body, MAX_RESPONSE_BYTES, response.headers)) {
    watchdog.activity();
    text += piece;
  }
  const body = JSON.parse(text) as Record<string, unknown>;
  const usage = parseUsage(body.usage);
  if (usage === undefined) return { kind: "failed", message: "response has no usage" };
  // The output as the agent's SDK assembles it from the same body, so both hash the same thing.
  return { kind: "completed", body, ...outputOfCompletion(body), usage };
}

function parseUsage(value: unknown): Usage | undefined {
  const usage = value as Partial<Usage> | null | undefined;
  const valid = (n: unknown) => typeof n === "number" && Number.isInteger(n) && n >= 0 && n < 2 ** 31;
  if (!usage || !valid(usage.prompt_tokens) || !valid(usage.completion_tokens)) return undefined;
  return usage as Usage;
}

/** Fields of the last chunk that the relayer's own final chunk repeats. */
function chunkHeader(chunk: Record<string, unknown>): Record<string, unknown> {
  const { id, object, created, model, system_fingerprint } = chunk;
  return { id, object: object ?? "chat.completion.chunk", created, model, ...(system_fingerprint !== undefined && { system_fingerprint }), choices: [] };
}

/**
 * Reads an SSE stream (eventsource-parser, its buffer bounded), forwarding every chunk but a
 * usage-only one, and assembling the output. Usage is taken from any chunk that carries it (the
 * last one wins); a usage-only chunk is held back, as the relayer ends the stream with the usage
 * and the receipt.
 */
async function readStream(response: Dispatcher.ResponseData, options: UpstreamOptions, watchdog: Watchdog): Promise<UpstreamResult> {
  // Assembled as the agent's SDK assembles the chunks it receives, so both hash the same output. A
  // chunk it refuses (a tool call index out of bounds) breaks the stream before it is forwarded.
  const streamed = new StreamedOutput();
  let usage: Usage | undefined;
  let usageChunk: Record<string, unknown> | undefined;
  let started = false;
  let done = false;
  let parseError: ParseError | undefined;
  const parser = createParser({
    maxBufferSize: MAX_SSE_LINE,
    onError: (error) => {
      parseError ??= error;
    },
    onEvent: ({ data }) => {
      if (done) return;
      if (data === "[DONE]") {
        done = true;
        return;
      }
      const chunk = JSON.parse(data) as Record<string, unknown> & { choices?: unknown[] };
      const chunkUsage = parseUsage(chunk.usage);
      if (chunkUsage !== undefined) usage = chunkUsage;
      if (chunkUsage !== undefined && (chunk.choices?.length ?? 0) === 0) {
        usageChunk = chunk;
        return;
      }
      streamed.add(chunk);
      usageChunk = chunkHeader(chunk);
      started = true;
      options.onChunk(data);
    },
  });
  const cutResult = (message: string): UpstreamResult => {
    if (options.clientSignal.aborted) return { kind: "cut", ...streamed.output, usage, usageChunk, clientGone: true, message: "the client went away" };
    if (!started) return { kind: "failed", message };
    return { kind: "cut", ...streamed.output, usage, usageChunk, clientGone: false, message };
  };
  options.onStreamStart();
  try {
    for await (const text of cappedText(response.body, MAX_STREAM_BYTES, response.headers)) {
      watchdog.activity();
      parser.feed(text);
      if (parseError?.type === "max-buffer-size-exceeded") throw new Error(`an SSE line is longer than ${MAX_SSE_LINE} characters`);
      if (done) break;
      const drained = options.drained();
      if (drained !== undefined) {
        watchdog.pause();
        await drained;
        watchdog.activity();
      }
    }
  } catch (error) {
    return cutResult(`stream broke: ${reasonOf(watchdog.controller.signal, error)}`);
  }
  if (!done) return cutResult("stream ended without [DONE]");
  if (usage === undefined) return cutResult("stream ended without usage");
  return { kind: "completed", ...streamed.output, usage, usageChunk };
}
