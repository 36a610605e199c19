import type { IncomingMessage, ServerResponse } from "node:http";
import { setTimeout as delay } from "node:timers/promises";
import { parseChatCompletionRequest } from "./chat-request.ts";
import { generateCompletion } from "./completion.ts";
import type { FaultMode, FaultPlan } from "./faults.ts";
import { ApiError, readJsonBody, sendJson } from "@agentmesh/sdk/http";
import { HANG_LIMIT_MS, MAX_BODY_BYTES, type ResolvedOptions } from "./options.ts";
import { completionBody, newResponseIdentity, streamChunks, type StreamChunks } from "./response-bodies.ts";
import { foreignCode } from "@agentmesh/sdk/protocol";

/** What serving chat completions needs from the provider. */
export interface ChatCompletionContext {
  readonly options: ResolvedOptions;
  readonly faults: FaultPlan;
  /** Called once per valid request, with the fault it gets (if any). */
  readonly onAccepted: (fault: FaultMode | undefined) => void;
}

/**
 * Serves `POST /v1/chat/completions`: validates the request, answers it
 * deterministically, applies the fault it gets, then sends the answer whole or
 * as a server-sent event stream, paced by the latency options.
 *
 * @throws {ApiError} for a request that cannot be served.
 */
export async function serveChatCompletion(
  req: IncomingMessage,
  res: ServerResponse,
  context: ChatCompletionContext,
): Promise<void> {
  const { options } = context;
  const request = parseChatCompletionRequest(await readJsonBody(req, MAX_BODY_BYTES), options);
  const completion = generateCompletion(request, options.seed);
  const fault = context.faults.choose(req.headers);
  context.onAccepted(fault);

  if (fault === "error") {
    throw new ApiError(500, foreignCode("injected_fault"), "Injected fault: the reference provider failed this request.");
  }
  const signal = abortedOnClose(res);
  if (fault === "timeout") {
    await delay(HANG_LIMIT_MS, undefined, { signal });
    res.destroy();
    return;
  }

  const extraLatencyMs = fault === "slow" ? options.faults.slowLatencyMs : 0;
  await delay(options.firstTokenLatencyMs + extraLatencyMs, undefined, { signal });
  const output: Output = {
    res,
    signal,
    cut: fault === "cut-stream",
    pace: startPacing(options.tokensPerSecond, signal),
  };
  const identity = newResponseIdentity(request.model);
  if (request.stream) {
    await sendStream(output, streamChunks(identity, completion, request.includeUsage));
  } else {
    await output.pace(completion.usage.completion_tokens);
    await sendWhole(output, completionBody(identity, completion));
  }
}

/** Where and how a response is written. */
interface Output {
  readonly res: ServerResponse;
  /** Aborted when the connection closes. */
  readonly signal: AbortSignal;
  /** Whether to drop the connection halfway through the response. */
  readonly cut: boolean;
  /** Resolves once `tokens` tokens may have been sent. */
  readonly pace: (tokens: number) => Promise<void>;
}

async function sendStream(output: Output, chunks: StreamChunks): Promise<void> {
  const { res, signal } = output;
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
  await writeFlushed(res, serverSentEvent(chunks.opening), signal);

  const deltas = output.cut ? chunks.deltas.slice(0, Math.ceil(chunks.deltas.length / 2)) : chunks.deltas;
  for (const [index, delta] of deltas.entries()) {
    await output.pace(index + 1);
    await writeFlushed(res, serverSentEvent(delta), signal);
  }
  if (output.cut) {
    res.destroy();
    return;
  }
  for (const chunk of chunks.closing) await writeFlushed(res, serverSentEvent(chunk), signal);
  res.end("data: [DONE]\n\n");
}

async function sendWhole(output: Output, body: object): Promise<void> {
  const { res, signal } = output;
  if (!output.cut) {
    sendJson(res, 200, body);
    return;
  }
  const payload = Buffer.from(JSON.stringify(body));
  res.writeHead(200, { "content-type": "application/json", "content-length": payload.length });
  await writeFlushed(res, payload.subarray(0, Math.floor(payload.length / 2)), signal);
  res.destroy();
}

function serverSentEvent(chunk: object): string {
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

/** Writes and waits until the data is handed to the operating system. */
function writeFlushed(res: ServerResponse, data: string | Buffer, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    res.write(data, (error) => {
      signal.removeEventListener("abort", onAbort);
      if (error) reject(error);
      else resolve();
    });
  });
}

/** Paces output at `tokensPerSecond` from now on; 0 means no pacing. */
function startPacing(tokensPerSecond: number, signal: AbortSignal): (tokens: number) => Promise<void> {
  const start = performance.now();
  return async (tokens) => {
    if (tokensPerSecond === 0) return;
    const waitMs = start + (tokens * 1000) / tokensPerSecond - performance.now();
    if (waitMs > 0) await delay(waitMs, undefined, { signal });
  };
}

/** A signal aborted when the response's connection closes, for whatever reason. */
function abortedOnClose(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once("close", () => controller.abort(new Error("The connection closed.")));
  return controller.signal;
}
