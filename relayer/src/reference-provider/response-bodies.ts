import { randomUUID } from "node:crypto";
import { splitIntoTokenPieces } from "@agentmesh/sdk/tokens";
import type { Completion, FinishReason, ToolCallOutput, Usage } from "./completion.ts";

/** What every body of one response shares. */
export interface ResponseIdentity {
  readonly id: string;
  /** Unix time in seconds. */
  readonly created: number;
  readonly model: string;
}

/** A fresh identity for a response of `model`. */
export function newResponseIdentity(model: string): ResponseIdentity {
  return {
    id: `chatcmpl-${randomUUID().replaceAll("-", "")}`,
    created: Math.floor(Date.now() / 1000),
    model,
  };
}

/** The body of a non-streamed `chat.completion`. */
export function completionBody(identity: ResponseIdentity, completion: Completion): object {
  const toolCalls = completion.toolCall === undefined ? {} : { tool_calls: [completion.toolCall] };
  return {
    id: identity.id,
    object: "chat.completion",
    created: identity.created,
    model: identity.model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: completion.content, refusal: null, ...toolCalls },
        logprobs: null,
        finish_reason: completion.finishReason,
      },
    ],
    usage: completion.usage,
  };
}

/** The `chat.completion.chunk` bodies of a streamed response, in order. */
export interface StreamChunks {
  /** Announces the assistant role (and, for a tool call, its id and name). */
  readonly opening: object;
  /** One chunk per token of the text or of the tool call arguments. */
  readonly deltas: readonly object[];
  /** The `finish_reason` chunk, then the usage chunk when usage was asked for. */
  readonly closing: readonly object[];
}

/** Splits a completion into the chunks of an OpenAI chat completion stream. */
export function streamChunks(identity: ResponseIdentity, completion: Completion, includeUsage: boolean): StreamChunks {
  const chunk = (choices: object[], usage: Usage | null = null): object => ({
    id: identity.id,
    object: "chat.completion.chunk",
    created: identity.created,
    model: identity.model,
    choices,
    ...(includeUsage ? { usage } : {}),
  });
  const choice = (delta: object, finishReason: FinishReason | null = null): object => ({
    index: 0,
    delta,
    logprobs: null,
    finish_reason: finishReason,
  });
  const { toolCall, content } = completion;
  const closing = [chunk([choice({}, completion.finishReason)])];
  if (includeUsage) closing.push(chunk([], completion.usage));

  if (toolCall !== undefined) {
    return {
      opening: chunk([choice({ role: "assistant", content: null, tool_calls: [toolCallOpening(toolCall)] })]),
      deltas: splitIntoTokenPieces(toolCall.function.arguments).map((piece) =>
        chunk([choice({ tool_calls: [{ index: 0, function: { arguments: piece } }] })]),
      ),
      closing,
    };
  }
  return {
    opening: chunk([choice({ role: "assistant", content: "", refusal: null })]),
    deltas: splitIntoTokenPieces(content ?? "").map((piece) => chunk([choice({ content: piece })])),
    closing,
  };
}

function toolCallOpening(toolCall: ToolCallOutput): object {
  return { index: 0, id: toolCall.id, type: "function", function: { name: toolCall.function.name, arguments: "" } };
}
