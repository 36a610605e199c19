import type { Dispatcher } from "undici";
import { StreamedOutput, outputOfCompletion, type CompletionOutput } from "@agentmesh/sdk";
import { EndpointRefusedError, cappedText, readCapped, readHead, type EndpointUrl, type OutboundHttp } from "./outbound.ts";

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
      /** The provider's final usage chunk of a stream, which the relayer extends before forwarding. */
      usageChunk?: Record<string, unknown>;
    })
  | (CompletionOutput & { kind: "abandoned" })
  | { kind: "failed"; message: string };

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
  timeoutMs: number;
  /** Aborted when the client goes away. */
  clientSignal: AbortSignal;
  /** The HTTP client for endpoints from the chain, with the relayer's outbound policy. */
  outbound: OutboundHttp;
  /** Called once, before the first streamed chunk is forwarded. */
  onStreamStart: () => void;
  /** Forwards one streamed chunk (the JSON text of an SSE `data:` line). */
  onChunk: (json: string) => void;
}

/** Largest non-streamed provider response accepted. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
/** Largest streamed provider response accepted (65,536 tokens at a few hundred bytes a chunk fit). */
const MAX_STREAM_BYTES = 32 * 1024 * 1024;
/** Longest SSE line accepted. */
const MAX_SSE_LINE = 1024 * 1024;

/**
 * Calls `POST {endpoint}/chat/completions`, streaming or not as `body.stream` says. The call is cut
 * (and fails, or counts as abandoned) after `timeoutMs` or as soon as the client goes away.
 *
 * @throws {UpstreamError} when the outbound policy refuses the endpoint (its shape, an address it
 * names or resolves to) or its redirect: nothing is served, and it is no provider call to count.
 */
export async function callUpstream(endpoint: string, body: Record<string, unknown>, options: UpstreamOptions): Promise<UpstreamResult> {
  let url: EndpointUrl;
  try {
    url = options.outbound.endpointUrl(endpoint, "/chat/completions");
  } catch (error) {
    throw new UpstreamError((error as Error).message, { cause: error });
  }
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`no complete response within ${options.timeoutMs} ms`)), options.timeoutMs);
  const cut = () => abort.abort(new Error("the client went away"));
  options.clientSignal.addEventListener("abort", cut);
  try {
    let response: Dispatcher.ResponseData;
    try {
      response = await options.outbound.request(url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: body.stream ? "text/event-stream" : "application/json" },
        body: JSON.stringify(body),
        signal: abort.signal,
      });
    } catch (error) {
      if (error instanceof EndpointRefusedError) throw new UpstreamError(error.message, { cause: error });
      return { kind: "failed", message: `request failed: ${(error as Error).message}` };
    }
    try {
      const status = response.statusCode;
      if (status < 200 || status > 299) return { kind: "failed", message: `HTTP ${status}: ${await readHead(response.body, 300)}` };
      return body.stream ? await readStream(response, options) : await readJson(response);
    } catch (error) {
      if (options.clientSignal.aborted) return { kind: "failed", message: "client went away before the response" };
      return { kind: "failed", message: `bad response: ${(error as Error).message}` };
    }
  } finally {
    clearTimeout(timer);
    options.clientSignal.removeEventListener("abort", cut);
  }
}

async function readJson(response: Dispatcher.ResponseData): Promise<UpstreamResult> {
  const body = JSON.parse((await readCapped(response.body, MAX_RESPONSE_BYTES, response.headers)).toString("utf8")) as Record<string, unknown>;
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

/** Reads an SSE stream, forwarding every chunk but the usage chunk, and assembling the output. */
async function readStream(response: Dispatcher.ResponseData, options: UpstreamOptions): Promise<UpstreamResult> {
  // Assembled as the agent's SDK assembles the chunks it receives, so both hash the same output. A
  // chunk it refuses (a tool call index out of bounds) breaks the stream before it is forwarded.
  const streamed = new StreamedOutput();
  let usage: Usage | undefined;
  let usageChunk: Record<string, unknown> | undefined;
  let started = false;
  const output = () => streamed.output;
  let buffer = "";
  try {
    for await (const text of cappedText(response.body, MAX_STREAM_BYTES, response.headers)) {
      buffer += text;
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") {
          if (usage === undefined) return { kind: "failed", message: "stream ended without usage" };
          return { kind: "completed", ...output(), usage, usageChunk };
        }
        const chunk = JSON.parse(data) as { usage?: unknown; choices?: unknown[] };
        const chunkUsage = parseUsage(chunk.usage);
        if (chunkUsage !== undefined && (chunk.choices?.length ?? 0) === 0) {
          usage = chunkUsage;
          usageChunk = chunk as Record<string, unknown>;
          continue;
        }
        streamed.add(chunk);
        if (!started) {
          options.onStreamStart();
          started = true;
        }
        options.onChunk(data);
      }
      if (buffer.length > MAX_SSE_LINE) throw new Error(`an SSE line is longer than ${MAX_SSE_LINE} characters`);
    }
  } catch (error) {
    if (options.clientSignal.aborted) return { kind: "abandoned", ...output() };
    return { kind: "failed", message: `stream broke: ${(error as Error).message}` };
  }
  if (options.clientSignal.aborted) return { kind: "abandoned", ...output() };
  return { kind: "failed", message: "stream ended without [DONE]" };
}
