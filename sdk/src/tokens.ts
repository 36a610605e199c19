/**
 * The one place in AgentMesh that counts tokens.
 *
 * The reference provider (which reports `usage`), the relayer (which bounds a
 * call's cost before serving it and cross-checks the usage a provider reports)
 * and the agent's SDK (which checks a receipt's counts before signing it) all
 * count with these functions, so they agree on the same input.
 *
 * Tokens are counted with the `o200k_base` encoding (GPT-4o, GPT-4.1, GPT-5,
 * the o-series) from `gpt-tokenizer`. Text that looks like a special token
 * (for example `<|endoftext|>`) is counted as ordinary text: a counter must
 * never throw on what a buyer sends.
 *
 * @module
 */
import { countTokens, decodeGenerator, encode } from "gpt-tokenizer/encoding/o200k_base";
import { LRUCache } from "lru-cache";

/** Encode options that treat special-token markers in text as plain text. */
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

/** `<|im_start|>`, `<|im_sep|>` and `<|im_end|>` around every message. */
const MESSAGE_FRAME_TOKENS = 3;

/** `<|im_start|>assistant<|im_sep|>`, which primes the reply. */
const REPLY_PRIMER_TOKENS = 3;

/** Separates text parts and tool calls when a message is rendered as text. */
const PART_SEPARATOR = "\n";

/** One part of a multi-part message content: `text` parts carry their text's tokens, `image_url` parts an image's. */
export interface ContentPart {
  readonly type: string;
  readonly text?: string;
  readonly image_url?: { readonly detail?: string };
}

/** An image part with `detail: "low"`: one 512 × 512 tile, whatever the image's size (GPT-4o). */
export const LOW_DETAIL_IMAGE_TOKENS = 85;

/**
 * The most an image part with `detail: "high"` or `"auto"` costs (GPT-4o): the image is scaled to
 * fit 2048 × 2048, then its shorter side to 768, so at most 4 × 2 tiles of 512: 85 + 8 × 170. The
 * image itself is never fetched, so every such part is counted at this bound.
 */
export const HIGH_DETAIL_IMAGE_TOKENS = 85 + 8 * 170;

/** A function call the assistant made, as in the OpenAI chat format. */
export interface ToolCall {
  readonly function: {
    readonly name: string;
    readonly arguments: string;
  };
}

/** The parts of an OpenAI chat message that carry tokens. */
export interface ChatMessage {
  readonly role: string;
  readonly name?: string;
  readonly content?: string | readonly ContentPart[] | null;
  readonly tool_calls?: readonly ToolCall[];
}

/** What a completion produced: text, tool calls, or both. */
export interface CompletionOutput {
  readonly content?: string | null;
  readonly tool_calls?: readonly ToolCall[];
}

/**
 * Counts the `o200k_base` tokens of a plain text.
 *
 * @example countTextTokens("Hello, world!") // 4
 */
export function countTextTokens(text: string): number {
  return text === "" ? 0 : countTokens(text, PLAIN_TEXT);
}

/**
 * Counts the tokens of texts, remembering the counts of long ones: an agent sends a conversation's
 * earlier messages again with every call, and counting a long text costs about 0.1 ms per 1,000
 * tokens, so without this the cost of a call grows with the whole conversation rather than with what
 * is new in it. Texts shorter than `minLength` are cheap to count and are not kept. At most
 * `maxChars` UTF-16 code units of text are kept, the least recently used leaving first.
 */
export class TextTokenCounter {
  private readonly counts: LRUCache<string, number>;
  private readonly minLength: number;

  constructor(minLength = 256, maxChars = 8 * 1024 * 1024) {
    this.minLength = minLength;
    this.counts = new LRUCache<string, number>({ maxSize: maxChars, sizeCalculation: (_count, text) => text.length });
  }

  /** The `o200k_base` tokens of `text`, as {@link countTextTokens} counts them. */
  count(text: string): number {
    if (text.length < this.minLength) return countTextTokens(text);
    const known = this.counts.get(text);
    if (known !== undefined) return known;
    const count = countTextTokens(text);
    this.counts.set(text, count); // a text larger than the whole store is not kept
    return count;
  }

  /** Whether the count of `text` is kept. */
  remembers(text: string): boolean {
    return this.counts.has(text);
  }

  /** How many UTF-16 code units of text are kept. */
  get size(): number {
    return this.counts.calculatedSize;
  }
}

/** Counts message texts for {@link countChatPromptTokens}, for the whole process. */
const messageTexts = new TextTokenCounter();

/**
 * Splits a text into consecutive pieces, one per token, such that joining the
 * pieces gives back the text exactly. A token that ends inside a multi-byte
 * character is merged with the following ones, so every piece is valid text;
 * for ASCII text there is exactly one piece per token.
 */
export function splitIntoTokenPieces(text: string): string[] {
  return [...decodeGenerator(encode(text, PLAIN_TEXT))];
}

/**
 * Counts the prompt tokens of a chat, the way `gpt-tokenizer`'s `encodeChat`
 * lays out a GPT-4o chat (ChatML):
 *
 * - each message is `<|im_start|>{name ?? role}<|im_sep|>{text}<|im_end|>`,
 *   that is 3 tokens plus the tokens of the header and of the text;
 * - the chat ends with `<|im_start|>assistant<|im_sep|>` (3 tokens).
 *
 * A message's text is its string content, or the `text` of each of its text
 * parts (other parts, such as images, carry no tokens here), followed by each
 * of its tool calls as `{name} {arguments}`; the non-empty pieces are joined
 * with newlines. Tool call ids are left out: they are handles, not model output.
 * Image parts add {@link LOW_DETAIL_IMAGE_TOKENS} or {@link HIGH_DETAIL_IMAGE_TOKENS}.
 *
 * For messages with string content the count equals gpt-tokenizer's
 * `encodeChat(messages, "gpt-4o").length`. Long message texts' counts are
 * remembered (see {@link TextTokenCounter}), so a conversation's earlier
 * messages are counted once. {@link countPromptTokens} adds what a request
 * sends beside its messages.
 */
export function countChatPromptTokens(messages: readonly ChatMessage[]): number {
  let total = REPLY_PRIMER_TOKENS;
  for (const message of messages) {
    total += MESSAGE_FRAME_TOKENS;
    total += countTextTokens(message.name ?? message.role);
    total += messageTexts.count(renderMessageText(message));
    if (Array.isArray(message.content)) for (const part of message.content) total += imageTokens(part);
  }
  return total;
}

/** What a chat completion request sends the model: its messages, tool definitions and response format. */
export interface PromptRequest {
  readonly messages: readonly ChatMessage[];
  readonly tools?: readonly unknown[];
  readonly response_format?: unknown;
}

/**
 * Counts a request's prompt tokens: {@link countChatPromptTokens} of its messages, plus its tool
 * definitions and its response format's JSON schema, each counted as its JSON text in a message
 * frame. (Models render tool definitions more compactly than JSON, so this is an upper estimate,
 * never an undercount: it bounds what a call may cost before it is served.)
 */
export function countPromptTokens(request: PromptRequest): number {
  let total = countChatPromptTokens(request.messages);
  if (request.tools !== undefined && request.tools.length > 0) total += MESSAGE_FRAME_TOKENS + messageTexts.count(JSON.stringify(request.tools));
  const schema = (request.response_format as { type?: unknown; json_schema?: unknown } | undefined)?.json_schema;
  if (schema !== undefined) total += MESSAGE_FRAME_TOKENS + messageTexts.count(JSON.stringify(schema));
  return total;
}

/**
 * Counts the completion tokens of what a model produced: the tokens of its
 * text, rendered as a message's text is for {@link countChatPromptTokens}.
 * For a text-only completion this is `countTextTokens(content)`.
 */
export function countCompletionTokens(output: CompletionOutput): number {
  return countTextTokens(renderMessageText(output));
}

/**
 * {@link countCompletionTokens} of a completion's output as receipts hash it (text and tool calls,
 * see `completion-output.ts`): what the relayer and the agent both count a call's output as.
 */
export function countOutputTokens(output: { readonly content: string | null; readonly toolCalls: readonly { name: string; arguments: string }[] }): number {
  return countCompletionTokens({ content: output.content, tool_calls: output.toolCalls.map((call) => ({ function: call })) });
}

/** The token-carrying text of a message, as documented on {@link countChatPromptTokens}. */
function renderMessageText(message: Pick<ChatMessage, "content" | "tool_calls">): string {
  const { content, tool_calls: toolCalls = [] } = message;
  const texts = typeof content === "string" ? [content] : (content ?? []).map(textOfPart);
  const calls = toolCalls.map((call) => `${call.function.name} ${call.function.arguments}`);
  return [...texts, ...calls].filter((piece) => piece !== "").join(PART_SEPARATOR);
}

function textOfPart(part: ContentPart): string {
  return part.type === "text" ? (part.text ?? "") : "";
}

function imageTokens(part: ContentPart): number {
  if (part.type !== "image_url") return 0;
  return part.image_url?.detail === "low" ? LOW_DETAIL_IMAGE_TOKENS : HIGH_DETAIL_IMAGE_TOKENS;
}
