import { randomBytes } from "node:crypto";
import {
  countCompletionTokens,
  splitIntoTokenPieces,
  type CompletionOutput,
} from "@agentmesh/sdk/tokens";
import type { ChatCompletionRequest, ToolDefinition } from "./chat-request.ts";
import { ApiError } from "@agentmesh/sdk/http";
import { createSeededRandom, type SeededRandom } from "./seeded-random.ts";
import { foreignCode } from "@agentmesh/sdk/protocol";

/** Why a completion ended, as in the OpenAI API. */
export type FinishReason = "stop" | "length" | "tool_calls";

/** Token usage, as in the OpenAI API. */
export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

/** A tool call in the OpenAI response shape. */
export interface ToolCallOutput {
  readonly id: string;
  readonly type: "function";
  readonly function: { readonly name: string; readonly arguments: string };
}

/** What the reference model answers to a request, before it is sent. */
export interface Completion {
  /** The text answer, or `null` when the answer is a tool call. */
  readonly content: string | null;
  readonly toolCall: ToolCallOutput | undefined;
  readonly finishReason: FinishReason;
  readonly usage: Usage;
}

const WORDS = [
  "agent", "answer", "batch", "buyer", "chain", "channel", "cost", "data", "deposit", "escrow",
  "fee", "job", "ledger", "market", "mesh", "model", "node", "offer", "order", "price",
  "prompt", "provider", "queue", "quote", "receipt", "relay", "request", "route", "seller", "signal",
  "stream", "task", "token", "trust", "value", "voucher", "work", "always", "briefly", "clearly",
  "first", "often", "then", "today", "builds", "checks", "computes", "counts", "finds", "holds",
  "keeps", "makes", "moves", "pays", "reads", "sends", "serves", "settles", "signs", "tracks",
  "a", "the", "each", "every", "this", "its", "our", "with", "for", "from",
  "into", "over", "and", "but", "so", "fast", "fair", "new", "small", "large",
] as const;

/**
 * Answers a validated request deterministically: the output depends only on
 * the model, the messages, the tool forced by `tool_choice` and the seed.
 *
 * - A forced tool gets one call whose arguments fill every declared parameter.
 * - Otherwise the answer is text of a natural length (a few sentences), cut to
 *   `maxTokens` tokens when longer (`finish_reason: "length"`).
 *
 * Usage is counted with the SDK's token counter: prompt tokens by `countPromptTokens`
 * (see the request's `promptTokens`), completion tokens by `countCompletionTokens`
 * of exactly what is sent.
 *
 * @throws {ApiError} 400 `max_tokens_too_small` when a forced tool call does not fit.
 */
export function generateCompletion(request: ChatCompletionRequest, seed: string): Completion {
  const random = createSeededRandom(JSON.stringify([seed, request.model, request.messages]));
  const { promptTokens } = request;
  const usageFor = (output: CompletionOutput): Usage => {
    const completionTokens = countCompletionTokens(output);
    return {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    };
  };

  if (request.forcedTool !== undefined) {
    const toolCall = callTool(request.forcedTool, random);
    const usage = usageFor({ content: null, tool_calls: [toolCall] });
    if (usage.completion_tokens > request.maxTokens) {
      throw new ApiError(
        400,
        foreignCode("max_tokens_too_small"),
        `The call to ${toolCall.function.name} takes ${usage.completion_tokens} tokens, ` +
          `more than max_tokens (${request.maxTokens}).`,
        { param: "max_tokens" },
      );
    }
    return { content: null, toolCall, finishReason: "tool_calls", usage };
  }

  const pieces = splitIntoTokenPieces(naturalText(random));
  const content = pieces.slice(0, request.maxTokens).join("");
  return {
    content,
    toolCall: undefined,
    finishReason: pieces.length > request.maxTokens ? "length" : "stop",
    usage: usageFor({ content }),
  };
}

/** Two to six sentences of four to twelve words each. */
function naturalText(random: SeededRandom): string {
  const sentences = Array.from({ length: random.int(2, 6) }, () => {
    const words = Array.from({ length: random.int(4, 12) }, () => random.pick(WORDS));
    const sentence = words.join(" ");
    return `${sentence.charAt(0).toUpperCase()}${sentence.slice(1)}.`;
  });
  return sentences.join(" ");
}

function callTool(tool: ToolDefinition, random: SeededRandom): ToolCallOutput {
  const properties = tool.parameters?.["properties"];
  const parameters = isRecord(properties) ? Object.entries(properties) : [];
  const args = Object.fromEntries(parameters.map(([name, schema]) => [name, sampleValue(schema, random)]));
  return {
    id: `call_${randomBytes(12).toString("hex")}`,
    type: "function",
    function: { name: tool.name, arguments: JSON.stringify(args) },
  };
}

/** A value that fits a (top-level) JSON Schema: an enum member or a value of its type. */
function sampleValue(schema: unknown, random: SeededRandom): unknown {
  if (!isRecord(schema)) return random.pick(WORDS);
  const choices = schema["enum"];
  if (Array.isArray(choices) && choices.length > 0) return random.pick(choices);
  switch (schema["type"]) {
    case "integer":
      return random.int(0, 100);
    case "number":
      return random.int(0, 10_000) / 100;
    case "boolean":
      return random.next() < 0.5;
    case "array":
      return [];
    case "object":
      return {};
    case "null":
      return null;
    default:
      return random.pick(WORDS);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
