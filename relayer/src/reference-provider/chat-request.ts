import { z } from "zod";
import { ApiError } from "@agentmesh/sdk/http";
import { countPromptTokens, type PromptRequest } from "@agentmesh/sdk/tokens";
import { MAX_TOKENS_LIMIT } from "./options.ts";
import { foreignCode } from "@agentmesh/sdk/protocol";

const textPartSchema = z.object({ type: z.literal("text"), text: z.string() });

const toolCallSchema = z.object({
  id: z.string().min(1),
  type: z.literal("function"),
  function: z.object({ name: z.string().min(1), arguments: z.string() }),
});

const messageSchema = z
  .object({
    role: z.enum(["system", "developer", "user", "assistant", "tool"]),
    content: z
      .union([z.string(), z.array(textPartSchema)], {
        error: "content must be a string or an array of text parts",
      })
      .nullish(),
    name: z.string().min(1).max(64).optional(),
    tool_calls: z.array(toolCallSchema).optional(),
    tool_call_id: z.string().min(1).optional(),
  })
  .refine((message) => message.content != null || (message.tool_calls?.length ?? 0) > 0, {
    message: "content is required unless the message has tool_calls",
    path: ["content"],
  });

const toolSchema = z.object({
  type: z.literal("function"),
  function: z.object({
    name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, "a function name is 1 to 64 letters, digits, _ or -"),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
  }),
});

const tokenLimitSchema = z
  .int(`must be an integer from 1 to ${MAX_TOKENS_LIMIT}`)
  .min(1, "must be at least 1")
  .max(MAX_TOKENS_LIMIT, `must be at most ${MAX_TOKENS_LIMIT}`)
  .nullish();

const requestSchema = z.object({
  model: z.string().min(1),
  messages: z.array(messageSchema).min(1, "messages must not be empty"),
  max_tokens: tokenLimitSchema,
  max_completion_tokens: tokenLimitSchema,
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  n: z.literal(1, "only n = 1 is supported").nullish(),
  tools: z.array(toolSchema).max(128).nullish(),
  tool_choice: z
    .union([
      z.enum(["none", "auto", "required"]),
      z.object({ type: z.literal("function"), function: z.object({ name: z.string() }) }),
    ])
    .nullish(),
});

/** A chat message of a validated request. */
export type RequestMessage = z.output<typeof messageSchema>;

/** A tool definition of a validated request. */
export type ToolDefinition = z.output<typeof toolSchema>["function"];

/** A validated chat completion request, reduced to what the provider acts on. */
export interface ChatCompletionRequest {
  readonly model: string;
  readonly messages: readonly RequestMessage[];
  /** The completion length limit: `max_tokens ?? max_completion_tokens ?? default`. */
  readonly maxTokens: number;
  readonly stream: boolean;
  /** Whether a streamed response ends with a usage chunk. */
  readonly includeUsage: boolean;
  /** The tool the answer must call, when `tool_choice` forces one. */
  readonly forcedTool: ToolDefinition | undefined;
  /** The prompt's tokens, counted from the request as sent (messages, tools and response format). */
  readonly promptTokens: number;
}

/** What a request is checked against. */
export interface RequestLimits {
  readonly models: readonly string[];
  readonly defaultMaxTokens: number;
}

/**
 * Validates a parsed JSON body as an OpenAI chat completion request. Unknown
 * fields are ignored; `temperature` is checked and otherwise ignored.
 *
 * @throws {ApiError} 400 for an invalid request, 404 `model_not_found` for a
 * model this provider does not serve.
 */
export function parseChatCompletionRequest(body: unknown, limits: RequestLimits): ChatCompletionRequest {
  const result = requestSchema.safeParse(body, { reportInput: true });
  if (!result.success) throw invalidRequest(result.error.issues);
  const request = result.data;

  if (!limits.models.includes(request.model)) {
    throw new ApiError(404, "model_not_found", `The model ${JSON.stringify(request.model)} does not exist.`, {
      param: "model",
    });
  }
  return {
    model: request.model,
    messages: request.messages,
    maxTokens: request.max_tokens ?? request.max_completion_tokens ?? limits.defaultMaxTokens,
    stream: request.stream ?? false,
    includeUsage: request.stream_options?.include_usage ?? false,
    forcedTool: forcedTool(request.tools ?? [], request.tool_choice ?? "auto"),
    // Counted from the body as sent, not as parsed (which drops fields it ignores), so that the count
    // is the relayer's and the agent's.
    promptTokens: countPromptTokens(body as PromptRequest),
  };
}

type ToolChoice = NonNullable<z.output<typeof requestSchema>["tool_choice"]>;

function forcedTool(tools: readonly z.output<typeof toolSchema>[], choice: ToolChoice): ToolDefinition | undefined {
  if (choice === "none" || choice === "auto") return undefined;
  const wanted = choice === "required" ? tools[0] : tools.find((tool) => tool.function.name === choice.function.name);
  if (wanted === undefined) {
    const message =
      choice === "required"
        ? 'tool_choice "required" needs at least one tool.'
        : `tool_choice names the function ${JSON.stringify(choice.function.name)}, which is not among the tools.`;
    throw new ApiError(400, foreignCode("invalid_value"), message, { param: "tool_choice" });
  }
  return wanted.function;
}

function invalidRequest(issues: readonly z.core.$ZodIssue[]): ApiError {
  const issue = issues[0];
  if (issue.path.length === 0) {
    return new ApiError(400, foreignCode(issueCode(issue)), `Invalid request body: ${issue.message}`);
  }
  const param = formatPath(issue.path);
  if (issue.code === "invalid_type" && issue.input === undefined) {
    return new ApiError(400, foreignCode("missing_required_parameter"), `Missing required parameter: ${param}.`, { param });
  }
  return new ApiError(400, foreignCode(issueCode(issue)), `Invalid ${param}: ${issue.message}`, { param });
}

/** The OpenAI error code for a validation issue. */
function issueCode(issue: z.core.$ZodIssue): string {
  if (issue.code === "invalid_type") return "invalid_type";
  if (issue.code === "too_small" && issue.origin === "array" && issue.minimum === 1) return "empty_array";
  return "invalid_value";
}

/** Formats a path like OpenAI does: `messages[0].content`. */
function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((key, index) => (typeof key === "number" ? `[${key}]` : `${index === 0 ? "" : "."}${String(key)}`))
    .join("");
}
