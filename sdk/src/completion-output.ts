import type { HashedToolCall } from "./receipts.ts";

/**
 * What a chat completion produced, as a receipt hashes (`outputHash`) and counts it: the first
 * choice's text and tool calls. The relayer assembles it from the provider's response and the agent
 * from what it received, with these same functions, so both sides agree on every input.
 */
export interface CompletionOutput {
  /** The text, or null when the completion has none (e.g. only tool calls). */
  content: string | null;
  toolCalls: HashedToolCall[];
}

/** Most tool calls one completion may make: a stream's `index` above this is refused, not allocated. */
export const MAX_TOOL_CALLS = 128;

/** A response that does not have the shape of an OpenAI chat completion. */
export class CompletionShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CompletionShapeError";
  }
}

interface RawToolCall {
  index?: unknown;
  id?: unknown;
  function?: { name?: unknown; arguments?: unknown };
}

const text = (value: unknown): string => (typeof value === "string" ? value : "");

/** The output of a non-streamed completion's body (`choices[0].message`). */
export function outputOfCompletion(body: unknown): CompletionOutput {
  const message = (body as { choices?: { message?: { content?: unknown; tool_calls?: unknown } }[] } | null)?.choices?.[0]?.message;
  const calls = message?.tool_calls ?? [];
  if (!Array.isArray(calls)) throw new CompletionShapeError("tool_calls is not a list");
  if (calls.length > MAX_TOOL_CALLS) throw new CompletionShapeError(`more than ${MAX_TOOL_CALLS} tool calls`);
  return {
    content: typeof message?.content === "string" ? message.content : null,
    toolCalls: (calls as RawToolCall[]).map((call) => ({ id: text(call.id), name: text(call.function?.name), arguments: text(call.function?.arguments) })),
  };
}

/**
 * The output of a streamed completion, assembled chunk by chunk from the first choice's deltas:
 * text is concatenated, and each tool call's id, name and arguments by its `index`.
 */
export class StreamedOutput {
  private content = "";
  private sawContent = false;
  private readonly toolCalls: HashedToolCall[] = [];

  /**
   * Adds one parsed `chat.completion.chunk`.
   *
   * @throws {CompletionShapeError} when a tool call's `index` is not an integer from 0 to
   * {@link MAX_TOOL_CALLS} − 1, or leaves a gap (indexes must grow one at a time).
   */
  add(chunk: unknown): void {
    const delta = (chunk as { choices?: { delta?: { content?: unknown; tool_calls?: unknown } }[] } | null)?.choices?.[0]?.delta;
    if (delta === undefined || delta === null) return;
    if (typeof delta.content === "string") {
      this.content += delta.content;
      this.sawContent = true;
    }
    const calls = delta.tool_calls ?? [];
    if (!Array.isArray(calls)) throw new CompletionShapeError("a delta's tool_calls is not a list");
    for (const call of calls as RawToolCall[]) {
      const index = call.index ?? 0;
      if (!Number.isInteger(index) || (index as number) < 0 || (index as number) > this.toolCalls.length || (index as number) >= MAX_TOOL_CALLS) {
        throw new CompletionShapeError(`tool call index ${JSON.stringify(index)} is not the next or a previous call's`);
      }
      const slot = (this.toolCalls[index as number] ??= { id: "", name: "", arguments: "" });
      slot.id += text(call.id);
      slot.name += text(call.function?.name);
      slot.arguments += text(call.function?.arguments);
    }
  }

  /** What the chunks added so far came to. */
  get output(): CompletionOutput {
    return { content: this.sawContent ? this.content : null, toolCalls: this.toolCalls.map((call) => ({ ...call })) };
  }
}

/**
 * Reasoning tokens a response's `usage` reports (`completion_tokens_details.reasoning_tokens`), or
 * 0: billed as output, but never shown, so nobody but the provider can count them.
 */
export function reasoningTokensOf(usage: unknown): number {
  const reasoning = (usage as { completion_tokens_details?: { reasoning_tokens?: unknown } } | null | undefined)?.completion_tokens_details?.reasoning_tokens;
  return typeof reasoning === "number" && Number.isSafeInteger(reasoning) && reasoning > 0 ? reasoning : 0;
}
