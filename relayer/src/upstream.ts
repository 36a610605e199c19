import type { Readable } from "node:stream";
import { Pool, type Dispatcher } from "undici";
import type { HashedToolCall } from "@agentmesh/sdk";

/** Usage as an OpenAI-compatible provider reports it. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens?: number;
}

/** What a provider call came to. */
export type UpstreamResult =
  | {
      kind: "completed";
      /** The non-streamed response body (streams: undefined). */
      body?: Record<string, unknown>;
      content: string | null;
      toolCalls: HashedToolCall[];
      usage: Usage;
      /** The provider's final usage chunk of a stream, which the relayer extends before forwarding. */
      usageChunk?: Record<string, unknown>;
    }
  | { kind: "abandoned"; content: string | null; toolCalls: HashedToolCall[] }
  | { kind: "failed"; message: string };

/** A provider failed before anything reached the client. */
export class UpstreamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UpstreamError";
  }
}

export interface UpstreamOptions {
  timeoutMs: number;
  /** Aborted when the client goes away. */
  clientSignal: AbortSignal;
  /** Whether endpoints on loopback, private or link-local addresses may be called (development only). */
  allowPrivateEndpoints: boolean;
  /** Called once, before the first streamed chunk is forwarded. */
  onStreamStart: () => void;
  /** Forwards one streamed chunk (the JSON text of an SSE `data:` line). */
  onChunk: (json: string) => void;
}

/** Largest non-streamed provider response accepted. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

const PRIVATE_HOST = /^(localhost|127\.|10\.|192\.168\.|169\.254\.|172\.(1[6-9]|2\d|3[01])\.|0\.0\.0\.0|\[?::1\]?$|\[?f[cd][0-9a-f]{2}:|\[?fe80:)/i;

/** Refuses endpoints the relayer must not call: non-HTTP URLs and, outside development, private hosts. */
export function checkEndpoint(endpoint: string, allowPrivate: boolean): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new UpstreamError(`registered endpoint "${endpoint}" is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UpstreamError(`endpoint ${endpoint} is not http(s)`);
  if (!allowPrivate && PRIVATE_HOST.test(url.hostname)) throw new UpstreamError(`endpoint ${endpoint} is on a private network`);
  return url;
}

/** Keep-alive connection pools to providers, by origin (undici: the lightest HTTP client for Node). */
const pools = new Map<string, Pool>();

function poolOf(url: URL): Pool {
  let pool = pools.get(url.origin);
  if (pool === undefined) pools.set(url.origin, (pool = new Pool(url.origin, { connections: 256 })));
  return pool;
}

/** Each endpoint's chat completions URL, checked once (endpoints change only by a registry update). */
const completionUrls = new Map<string, URL>();

function completionUrlOf(endpoint: string, allowPrivate: boolean): URL {
  const key = `${allowPrivate}:${endpoint}`;
  let url = completionUrls.get(key);
  if (url === undefined) {
    url = new URL(`${checkEndpoint(endpoint, allowPrivate).href.replace(/\/$/, "")}/chat/completions`);
    if (completionUrls.size >= 10_000) completionUrls.clear();
    completionUrls.set(key, url);
  }
  return url;
}

/**
 * Calls `POST {endpoint}/chat/completions`, streaming or not as `body.stream` says. The call is cut
 * (and fails, or counts as abandoned) after `timeoutMs` or as soon as the client goes away.
 */
export async function callUpstream(endpoint: string, body: Record<string, unknown>, options: UpstreamOptions): Promise<UpstreamResult> {
  const url = completionUrlOf(endpoint, options.allowPrivateEndpoints);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`no complete response within ${options.timeoutMs} ms`)), options.timeoutMs);
  const cut = () => abort.abort(new Error("the client went away"));
  options.clientSignal.addEventListener("abort", cut);
  try {
    let response: Dispatcher.ResponseData;
    try {
      response = await poolOf(url).request({
        path: url.pathname + url.search,
        method: "POST",
        headers: { "content-type": "application/json", accept: body.stream ? "text/event-stream" : "application/json" },
        body: JSON.stringify(body),
        signal: abort.signal,
      });
    } catch (error) {
      return { kind: "failed", message: `request failed: ${(error as Error).message}` };
    }
    response.body.setEncoding("utf8");
    try {
      const status = response.statusCode;
      if (status < 200 || status > 299) {
        const text = await readText(response.body, 300).catch(() => "");
        return { kind: "failed", message: `HTTP ${status}: ${text}` };
      }
      return body.stream ? await readStream(response.body, options) : await readJson(response.body);
    } catch (error) {
      if (options.clientSignal.aborted) return { kind: "failed", message: "client went away before the response" };
      return { kind: "failed", message: `bad response: ${(error as Error).message}` };
    }
  } finally {
    clearTimeout(timer);
    options.clientSignal.removeEventListener("abort", cut);
  }
}

/** The response body as text, at most `limit` characters (the rest is dropped unread). */
function readText(response: Readable, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    response.on("data", (chunk: string) => {
      text += chunk;
      if (text.length > limit) {
        response.destroy();
        resolve(text.slice(0, limit));
      }
    });
    response.on("end", () => resolve(text));
    response.on("error", reject);
    // A response cut short (timeout, client gone) closes without "end".
    response.on("close", () => {
      if (!response.readableEnded) reject(new Error("the response was cut short"));
    });
  });
}

async function readJson(response: Readable): Promise<UpstreamResult> {
  const text = await readText(response, MAX_RESPONSE_BYTES + 1);
  if (text.length > MAX_RESPONSE_BYTES) return { kind: "failed", message: "response too large" };
  const body = JSON.parse(text) as Record<string, unknown>;
  const usage = parseUsage(body.usage);
  if (usage === undefined) return { kind: "failed", message: "response has no usage" };
  const message = (body.choices as { message?: { content?: string | null; tool_calls?: RawToolCall[] } }[] | undefined)?.[0]?.message;
  return {
    kind: "completed",
    body,
    content: message?.content ?? null,
    toolCalls: (message?.tool_calls ?? []).map(toHashedToolCall),
    usage,
  };
}

interface RawToolCall {
  index?: number;
  id?: string;
  function?: { name?: string; arguments?: string };
}

function toHashedToolCall(call: RawToolCall): HashedToolCall {
  return { id: call.id ?? "", name: call.function?.name ?? "", arguments: call.function?.arguments ?? "" };
}

function parseUsage(value: unknown): Usage | undefined {
  const usage = value as Partial<Usage> | null | undefined;
  const valid = (n: unknown) => typeof n === "number" && Number.isInteger(n) && n >= 0 && n < 2 ** 31;
  if (!usage || !valid(usage.prompt_tokens) || !valid(usage.completion_tokens)) return undefined;
  return usage as Usage;
}

/** Reads an SSE stream, forwarding every chunk but the usage chunk, and assembling the output. */
async function readStream(response: Readable, options: UpstreamOptions): Promise<UpstreamResult> {
  let content = "";
  let sawContent = false;
  const toolCalls: HashedToolCall[] = [];
  let usage: Usage | undefined;
  let usageChunk: Record<string, unknown> | undefined;
  let started = false;
  const output = () => ({ content: sawContent ? content : null, toolCalls });
  let buffer = "";
  try {
    for await (const text of response as AsyncIterable<string>) {
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
        const chunk = JSON.parse(data) as { usage?: unknown; choices?: { delta?: { content?: string | null; tool_calls?: RawToolCall[] } }[] };
        const chunkUsage = parseUsage(chunk.usage);
        if (chunkUsage !== undefined && (chunk.choices?.length ?? 0) === 0) {
          usage = chunkUsage;
          usageChunk = chunk as Record<string, unknown>;
          continue;
        }
        const delta = chunk.choices?.[0]?.delta;
        if (typeof delta?.content === "string") {
          content += delta.content;
          sawContent = true;
        }
        for (const call of delta?.tool_calls ?? []) {
          const slot = (toolCalls[call.index ?? 0] ??= { id: "", name: "", arguments: "" });
          slot.id += call.id ?? "";
          slot.name += call.function?.name ?? "";
          slot.arguments += call.function?.arguments ?? "";
        }
        if (!started) {
          options.onStreamStart();
          started = true;
        }
        options.onChunk(data);
      }
    }
  } catch (error) {
    if (options.clientSignal.aborted) return { kind: "abandoned", ...output() };
    return { kind: "failed", message: `stream broke: ${(error as Error).message}` };
  }
  if (options.clientSignal.aborted) return { kind: "abandoned", ...output() };
  return { kind: "failed", message: "stream ended without [DONE]" };
}
