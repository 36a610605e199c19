import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import OpenAI, { APIError } from "openai";
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionFunctionTool,
} from "openai/resources/chat/completions";
import {
  startReferenceProvider,
  type ReferenceProvider,
  type ReferenceProviderOptions,
} from "../src/reference-provider/server.ts";
import { countChatPromptTokens, countCompletionTokens, countPromptTokens, countTextTokens, splitIntoTokenPieces } from "@agentmesh/sdk/tokens";

const MODEL = "agentmesh-small";
const MESSAGES = [
  { role: "system" as const, content: "You answer briefly." },
  { role: "user" as const, content: "What does AgentMesh settle in USDC?" },
];

const WEATHER_TOOL: ChatCompletionFunctionTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Looks up the weather.",
    parameters: {
      type: "object",
      properties: {
        city: { type: "string" },
        unit: { type: "string", enum: ["celsius", "fahrenheit"] },
        days: { type: "integer" },
        hourly: { type: "boolean" },
      },
      required: ["city"],
    },
  },
};
const TIME_TOOL: ChatCompletionFunctionTool = { type: "function", function: { name: "get_time" } };

/** Every HTTP exchange of these tests is bounded by this. */
const REQUEST_TIMEOUT_MS = 5_000;

function chatRequest(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: MODEL, messages: MESSAGES, ...overrides };
}

function postChat(baseUrl: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${baseUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
}

async function complete(baseUrl: string, body: Record<string, unknown>): Promise<ChatCompletion> {
  const response = await postChat(baseUrl, body);
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()) as ChatCompletion;
}

/** The `data:` payloads of a server-sent event stream, in order. */
function sseData(text: string): string[] {
  assert.ok(text.endsWith("\n\n"), "every event ends with a blank line");
  return text
    .slice(0, -2)
    .split("\n\n")
    .map((event) => {
      assert.ok(event.startsWith("data: "), `unexpected event ${JSON.stringify(event)}`);
      return event.slice("data: ".length);
    });
}

function contentOf(chunks: readonly ChatCompletionChunk[]): string {
  return chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("");
}

function openaiClient(provider: ReferenceProvider): OpenAI {
  return new OpenAI({ baseURL: provider.url, apiKey: "unused", maxRetries: 0, timeout: REQUEST_TIMEOUT_MS });
}

/** Reads a body until it ends or fails; returns what arrived and the failure, if any. */
async function readUntilEnd(response: Response): Promise<{ text: string; failure: unknown }> {
  assert.ok(response.body);
  const decoder = new TextDecoder();
  let text = "";
  try {
    for await (const bytes of response.body) text += decoder.decode(bytes, { stream: true });
    return { text, failure: undefined };
  } catch (failure) {
    return { text, failure };
  }
}

describe("reference provider", { timeout: 30_000 }, () => {
  let provider: ReferenceProvider;
  let client: OpenAI;

  before(async () => {
    provider = await startReferenceProvider({ seed: "test-seed", faults: { slowLatencyMs: 150 } });
    client = openaiClient(provider);
  });
  after(() => provider.close());

  test("listens on 127.0.0.1 and answers /healthz", async () => {
    assert.match(provider.url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    assert.equal(provider.url, `http://127.0.0.1:${provider.port}/v1`);
    const response = await fetch(new URL("/healthz", provider.url));
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: "ok" });
  });

  test("lists its models in the OpenAI shape", async () => {
    const response = await fetch(`${provider.url}/models`);
    const body = (await response.json()) as {
      object: string;
      data: { id: string; object: string; owned_by: string }[];
    };
    assert.equal(body.object, "list");
    assert.deepEqual(
      body.data.map(({ id, object, owned_by }) => ({ id, object, owned_by })),
      [
        { id: "agentmesh-small", object: "model", owned_by: "agentmesh" },
        { id: "agentmesh-large", object: "model", owned_by: "agentmesh" },
      ],
    );
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    assert.deepEqual(ids, ["agentmesh-small", "agentmesh-large"]);
  });

  test("answers a chat completion with exact usage", async () => {
    const completion = await complete(provider.url, chatRequest());
    assert.match(completion.id, /^chatcmpl-[0-9a-f]{32}$/);
    assert.equal(completion.object, "chat.completion");
    assert.equal(completion.model, MODEL);
    assert.equal(completion.choices.length, 1);
    const [choice] = completion.choices;
    assert.ok(choice);
    assert.equal(choice.finish_reason, "stop");
    assert.equal(choice.message.role, "assistant");
    const content = choice.message.content ?? "";
    assert.match(content, /^[A-Z][a-z ]+\.( [A-Z][a-z ]+\.)+$/);
    assert.deepEqual(completion.usage, {
      prompt_tokens: countChatPromptTokens(MESSAGES),
      completion_tokens: countTextTokens(content),
      total_tokens: countChatPromptTokens(MESSAGES) + countTextTokens(content),
    });
  });

  test("the output is a function of model, messages and seed", async () => {
    const golden = await complete(provider.url, chatRequest({ max_tokens: 8 }));
    assert.equal(golden.choices[0]?.message.content, "For pays fair escrow first with for escrow");

    const first = await complete(provider.url, chatRequest({ temperature: 1.7 }));
    const again = await complete(provider.url, chatRequest());
    assert.equal(again.choices[0]?.message.content, first.choices[0]?.message.content);

    const otherModel = await complete(provider.url, chatRequest({ model: "agentmesh-large" }));
    const otherMessages = await complete(provider.url, chatRequest({ messages: [{ role: "user", content: "Hi" }] }));
    const otherSeed = await startReferenceProvider({ seed: "another-seed" });
    try {
      const reseeded = await complete(otherSeed.url, chatRequest());
      const texts = [first, otherModel, otherMessages, reseeded].map(
        (completion) => completion.choices[0]?.message.content,
      );
      assert.equal(new Set(texts).size, 4, "each input gives a different answer");
    } finally {
      await otherSeed.close();
    }
  });

  test("max_tokens cuts the natural answer to exactly that many tokens", async () => {
    const natural = (await complete(provider.url, chatRequest())).choices[0]?.message.content ?? "";
    const naturalTokens = countTextTokens(natural);
    for (let maxTokens = 1; maxTokens < naturalTokens; maxTokens += 1) {
      const completion = await complete(provider.url, chatRequest({ max_tokens: maxTokens }));
      const content = completion.choices[0]?.message.content ?? "";
      assert.equal(content, splitIntoTokenPieces(natural).slice(0, maxTokens).join(""));
      assert.equal(countTextTokens(content), maxTokens);
      assert.equal(completion.usage?.completion_tokens, maxTokens);
      assert.equal(completion.choices[0]?.finish_reason, "length");
    }
    const exact = await complete(provider.url, chatRequest({ max_tokens: naturalTokens }));
    assert.equal(exact.choices[0]?.finish_reason, "stop");
    assert.equal(exact.choices[0]?.message.content, natural);
  });

  test("max_completion_tokens applies when max_tokens is absent; max_tokens wins over it", async () => {
    const viaNewName = await complete(provider.url, chatRequest({ max_completion_tokens: 3 }));
    assert.equal(viaNewName.usage?.completion_tokens, 3);
    const both = await complete(provider.url, chatRequest({ max_tokens: 2, max_completion_tokens: 5 }));
    assert.equal(both.usage?.completion_tokens, 2);
  });

  test("the openai client gets the same answer as plain fetch", async () => {
    const viaFetch = await complete(provider.url, chatRequest({ max_tokens: 10 }));
    const viaClient = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 10 });
    assert.equal(viaClient.choices[0]?.message.content, viaFetch.choices[0]?.message.content);
    assert.deepEqual(viaClient.usage, viaFetch.usage);
  });

  test("streams the same text token by token, then a usage chunk", async () => {
    const whole = await complete(provider.url, chatRequest());
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: MESSAGES,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    const content = whole.choices[0]?.message.content ?? "";
    assert.equal(contentOf(chunks), content);
    assert.equal(chunks.length, countTextTokens(content) + 3, "role chunk, one chunk per token, finish, usage");
    assert.equal(new Set(chunks.map((chunk) => chunk.id)).size, 1);
    assert.ok(chunks.every((chunk) => chunk.object === "chat.completion.chunk" && chunk.model === MODEL));
    assert.equal(chunks[0]?.choices[0]?.delta.role, "assistant");

    const usageChunk = chunks.at(-1);
    assert.deepEqual(usageChunk?.choices, []);
    assert.deepEqual(usageChunk?.usage, whole.usage);
    const finishChunk = chunks.at(-2);
    assert.equal(finishChunk?.choices[0]?.finish_reason, "stop");
    assert.ok(chunks.slice(0, -1).every((chunk) => chunk.usage === null));
  });

  test("a stream respects max_tokens", async () => {
    const response = await postChat(
      provider.url,
      chatRequest({ stream: true, max_tokens: 5, stream_options: { include_usage: true } }),
    );
    const chunks = sseData(await response.text());
    assert.equal(chunks.pop(), "[DONE]");
    const parsed = chunks.map((data) => JSON.parse(data) as ChatCompletionChunk);
    assert.equal(parsed.filter((chunk) => chunk.choices[0]?.delta.content).length, 5);
    assert.equal(parsed.at(-2)?.choices[0]?.finish_reason, "length");
    assert.equal(parsed.at(-1)?.usage?.completion_tokens, 5);
    assert.equal(countTextTokens(contentOf(parsed)), 5);
  });

  test("a stream without include_usage is plain SSE ending in [DONE], without usage", async () => {
    const whole = await complete(provider.url, chatRequest({ max_tokens: 6 }));
    const response = await postChat(provider.url, chatRequest({ max_tokens: 6, stream: true }));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const chunks = sseData(await response.text());
    assert.equal(chunks.pop(), "[DONE]");
    const parsed = chunks.map((data) => JSON.parse(data) as ChatCompletionChunk);
    assert.ok(parsed.every((chunk) => !("usage" in chunk) && chunk.choices.length === 1));
    assert.equal(contentOf(parsed), whole.choices[0]?.message.content);
  });

  test("a named tool_choice gets one deterministic call of that tool", async () => {
    const request = chatRequest({
      tools: [TIME_TOOL, WEATHER_TOOL],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    const completion = await complete(provider.url, request);
    const [choice] = completion.choices;
    assert.equal(choice?.finish_reason, "tool_calls");
    assert.equal(choice?.message.content, null);
    assert.equal(choice?.message.tool_calls?.length, 1);
    const call = choice?.message.tool_calls?.[0];
    assert.ok(call?.type === "function");
    assert.match(call.id, /^call_[0-9a-f]{24}$/);
    assert.equal(call.function.name, "get_weather");

    const args = JSON.parse(call.function.arguments) as Record<string, unknown>;
    assert.deepEqual(Object.keys(args), ["city", "unit", "days", "hourly"]);
    assert.equal(typeof args["city"], "string");
    assert.ok(args["unit"] === "celsius" || args["unit"] === "fahrenheit");
    assert.ok(Number.isInteger(args["days"]));
    assert.equal(typeof args["hourly"], "boolean");

    // The prompt counts the tool definitions as sent, as the relayer and the agent count them.
    const promptTokens = countPromptTokens({ messages: MESSAGES, tools: [TIME_TOOL, WEATHER_TOOL] });
    assert.ok(promptTokens > countChatPromptTokens(MESSAGES));
    assert.deepEqual(completion.usage, {
      prompt_tokens: promptTokens,
      completion_tokens: countCompletionTokens({ tool_calls: [call] }),
      total_tokens: promptTokens + countCompletionTokens({ tool_calls: [call] }),
    });
    const again = await complete(provider.url, request);
    const againCall = again.choices[0]?.message.tool_calls?.[0];
    assert.ok(againCall?.type === "function");
    assert.equal(againCall.function.arguments, call.function.arguments);
  });

  test('tool_choice "required" calls the first tool; "auto" and no tool_choice answer with text', async () => {
    const tools = [TIME_TOOL, WEATHER_TOOL];
    const required = await complete(provider.url, chatRequest({ tools, tool_choice: "required" }));
    const call = required.choices[0]?.message.tool_calls?.[0];
    assert.ok(call?.type === "function");
    assert.equal(call.function.name, "get_time");
    assert.equal(call.function.arguments, "{}");

    const plain = await complete(provider.url, chatRequest());
    for (const toolChoice of ["auto", undefined]) {
      const completion = await complete(provider.url, chatRequest({ tools: [WEATHER_TOOL], tool_choice: toolChoice }));
      assert.equal(completion.choices[0]?.finish_reason, "stop");
      assert.equal(completion.choices[0]?.message.tool_calls, undefined);
      assert.equal(completion.choices[0]?.message.content, plain.choices[0]?.message.content);
    }
  });

  test("a streamed tool call carries the same call, then a usage chunk", async () => {
    const request = { model: MODEL, messages: MESSAGES, tools: [WEATHER_TOOL], tool_choice: "required" as const };
    const whole = await client.chat.completions.create(request);
    const wholeCall = whole.choices[0]?.message.tool_calls?.[0];
    assert.ok(wholeCall?.type === "function");

    const stream = await client.chat.completions.create({
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const opening = chunks[0]?.choices[0]?.delta.tool_calls?.[0];
    assert.equal(opening?.function?.name, "get_weather");
    assert.match(opening?.id ?? "", /^call_/);
    const argumentDeltas = chunks.map((chunk) => chunk.choices[0]?.delta.tool_calls?.[0]?.function?.arguments ?? "");
    assert.ok(argumentDeltas.filter((delta) => delta !== "").length > 1, "arguments arrive in several chunks");
    assert.equal(argumentDeltas.join(""), wholeCall.function.arguments);
    assert.equal(chunks.at(-2)?.choices[0]?.finish_reason, "tool_calls");
    assert.deepEqual(chunks.at(-1)?.usage, whole.usage);
  });

  test("a forced tool call that does not fit in max_tokens is refused", async () => {
    const response = await postChat(
      provider.url,
      chatRequest({ tools: [WEATHER_TOOL], tool_choice: "required", max_tokens: 3 }),
    );
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: { code: string; param: string } };
    assert.equal(body.error.code, "max_tokens_too_small");
    assert.equal(body.error.param, "max_tokens");
  });

  test("fault error: HTTP 500 with an OpenAI-shaped error", async () => {
    const response = await postChat(provider.url, chatRequest(), { "x-reference-fault": "error" });
    assert.equal(response.status, 500);
    assert.deepEqual(await response.json(), {
      error: {
        message: "Injected fault: the reference provider failed this request.",
        type: "server_error",
        param: null,
        code: "injected_fault",
      },
    });
    await assert.rejects(
      client.chat.completions.create(
        { model: MODEL, messages: MESSAGES },
        { headers: { "x-reference-fault": "error" } },
      ),
      (error: unknown) => error instanceof APIError && error.status === 500 && error.code === "injected_fault",
    );
  });

  test("fault timeout: no answer until the client gives up", async () => {
    const before = provider.stats().faults.timeout;
    const started = performance.now();
    await assert.rejects(
      fetch(`${provider.url}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-reference-fault": "timeout" },
        body: JSON.stringify(chatRequest()),
        signal: AbortSignal.timeout(300),
      }),
      { name: "TimeoutError" },
    );
    assert.ok(performance.now() - started >= 290);
    assert.equal(provider.stats().faults.timeout, before + 1);
  });

  test("fault cut-stream: some chunks, then the connection drops without usage or [DONE]", async () => {
    const request = chatRequest({ stream: true, stream_options: { include_usage: true } });
    const response = await postChat(provider.url, request, { "x-reference-fault": "cut-stream" });
    assert.equal(response.status, 200);
    const { text, failure } = await readUntilEnd(response);
    assert.ok(failure instanceof TypeError, "the body ends in a network error");
    assert.equal(failure.message, "terminated");
    assert.ok(!text.includes("[DONE]"));
    assert.ok(!text.includes('"usage":{'));

    const whole = (await complete(provider.url, chatRequest())).choices[0]?.message.content ?? "";
    const parsed = sseData(text).map((data) => JSON.parse(data) as ChatCompletionChunk);
    const received = contentOf(parsed);
    assert.equal(parsed.length - 1, Math.ceil(countTextTokens(whole) / 2), "the role chunk and half of the tokens");
    assert.ok(whole.startsWith(received));

    const stream = await client.chat.completions.create(
      { model: MODEL, messages: MESSAGES, stream: true },
      { headers: { "x-reference-fault": "cut-stream" } },
    );
    await assert.rejects(async () => {
      for await (const chunk of stream) assert.ok(chunk.choices.length === 1);
    });
  });

  test("fault cut-stream on a non-streamed request drops the connection mid-body", async () => {
    const response = await postChat(provider.url, chatRequest(), { "x-reference-fault": "cut-stream" });
    assert.equal(response.status, 200);
    const { text, failure } = await readUntilEnd(response);
    assert.ok(failure instanceof TypeError);
    assert.ok(text.startsWith('{"id":"chatcmpl-'));
    assert.throws(() => JSON.parse(text), SyntaxError);
  });

  test("fault slow: the same answer, later", async () => {
    const plain = await complete(provider.url, chatRequest());
    const started = performance.now();
    const response = await postChat(provider.url, chatRequest(), { "x-reference-fault": "slow" });
    const slow = (await response.json()) as ChatCompletion;
    assert.ok(performance.now() - started >= 140, "waits slowLatencyMs (150 ms)");
    assert.equal(slow.choices[0]?.message.content, plain.choices[0]?.message.content);
  });

  test("an unknown fault name is a 400", async () => {
    const response = await postChat(provider.url, chatRequest(), { "x-reference-fault": "explode" });
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { error: { code: string } }).error.code, "invalid_fault");
  });

  test("bad requests get an OpenAI-shaped 4xx error", async () => {
    const withUser = (fields: Record<string, unknown>): Record<string, unknown> => ({
      model: MODEL,
      messages: [{ role: "user", content: "Hi" }],
      ...fields,
    });
    const named = (name: string) => ({ type: "function", function: { name } });
    interface BadRequest {
      name: string;
      body: unknown;
      status: number;
      code: string;
      param?: string;
      method?: string;
      path?: string;
    }
    const cases: BadRequest[] = [
      { name: "malformed JSON", body: '{"model":', status: 400, code: "invalid_json" },
      { name: "empty body", body: "", status: 400, code: "invalid_json" },
      { name: "not an object", body: "[1, 2]", status: 400, code: "invalid_type" },
      { name: "missing model", body: withUser({ model: undefined }), status: 400, code: "missing_required_parameter", param: "model" },
      { name: "missing messages", body: { model: MODEL }, status: 400, code: "missing_required_parameter", param: "messages" },
      { name: "empty messages", body: withUser({ messages: [] }), status: 400, code: "empty_array", param: "messages" },
      { name: "messages not an array", body: withUser({ messages: "Hi" }), status: 400, code: "invalid_type", param: "messages" },
      {
        name: "unknown role",
        body: withUser({ messages: [{ role: "robot", content: "Hi" }] }),
        status: 400,
        code: "invalid_value",
        param: "messages[0].role",
      },
      {
        name: "message without content",
        body: withUser({ messages: [{ role: "user" }] }),
        status: 400,
        code: "invalid_value",
        param: "messages[0].content",
      },
      {
        name: "image content",
        body: withUser({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] }),
        status: 400,
        code: "invalid_value",
        param: "messages[0].content",
      },
      { name: "unknown model", body: withUser({ model: "gpt-9" }), status: 404, code: "model_not_found", param: "model" },
      { name: "max_tokens 0", body: withUser({ max_tokens: 0 }), status: 400, code: "invalid_value", param: "max_tokens" },
      { name: "max_tokens negative", body: withUser({ max_tokens: -5 }), status: 400, code: "invalid_value", param: "max_tokens" },
      { name: "max_tokens fractional", body: withUser({ max_tokens: 2.5 }), status: 400, code: "invalid_type", param: "max_tokens" },
      { name: "max_tokens a string", body: withUser({ max_tokens: "10" }), status: 400, code: "invalid_type", param: "max_tokens" },
      { name: "max_tokens too large", body: withUser({ max_tokens: 16_385 }), status: 400, code: "invalid_value", param: "max_tokens" },
      {
        name: "max_completion_tokens too large",
        body: withUser({ max_completion_tokens: 1e9 }),
        status: 400,
        code: "invalid_value",
        param: "max_completion_tokens",
      },
      { name: "temperature out of range", body: withUser({ temperature: 3 }), status: 400, code: "invalid_value", param: "temperature" },
      { name: "n above 1", body: withUser({ n: 2 }), status: 400, code: "invalid_value", param: "n" },
      { name: "stream not a boolean", body: withUser({ stream: "yes" }), status: 400, code: "invalid_type", param: "stream" },
      {
        name: "tool_choice of a missing tool",
        body: withUser({ tools: [TIME_TOOL], tool_choice: named("get_weather") }),
        status: 400,
        code: "invalid_value",
        param: "tool_choice",
      },
      {
        name: "tool_choice required without tools",
        body: withUser({ tool_choice: "required" }),
        status: 400,
        code: "invalid_value",
        param: "tool_choice",
      },
      {
        name: "body over 1 MiB",
        body: withUser({ messages: [{ role: "user", content: "x".repeat(1024 * 1024) }] }),
        status: 413,
        code: "request_too_large",
      },
      { name: "wrong method", method: "GET", body: undefined, status: 405, code: "method_not_allowed" },
      { name: "unknown route", path: "/v1/completions", body: {}, status: 404, code: "unknown_url" },
    ];
    const acceptedBefore = provider.stats().chatCompletions;
    for (const { name, body, status, code, param = null, method = "POST", path = "/v1/chat/completions" } of cases) {
      const response = await fetch(new URL(path, provider.url), {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined || typeof body === "string" ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      assert.equal(response.status, status, name);
      const { error } = (await response.json()) as { error: Record<string, unknown> };
      assert.deepEqual(Object.keys(error).sort(), ["code", "message", "param", "type"], name);
      assert.equal(error["code"], code, name);
      assert.equal(error["type"], "invalid_request_error", name);
      assert.equal(error["param"], param, name);
      assert.ok(typeof error["message"] === "string" && error["message"].length > 0, name);
      if (status === 405) assert.equal(response.headers.get("allow"), "POST");
    }
    assert.equal(provider.stats().chatCompletions, acceptedBefore, "no bad request is served");
    assert.equal((await fetch(new URL("/healthz", provider.url))).status, 200);
  });
});

describe("reference provider options", { timeout: 30_000 }, () => {
  test("process-wide fault rates follow a seeded, reproducible draw", async () => {
    async function statuses(): Promise<{ statuses: number[]; errors: number }> {
      const provider = await startReferenceProvider({ faults: { errorRate: 0.5, seed: "draws" } });
      try {
        const seen: number[] = [];
        for (let index = 0; index < 16; index += 1) {
          const response = await postChat(provider.url, chatRequest({ max_tokens: 1 }));
          await response.arrayBuffer();
          seen.push(response.status);
        }
        return { statuses: seen, errors: provider.stats().faults.error };
      } finally {
        await provider.close();
      }
    }
    const first = await statuses();
    const second = await statuses();
    assert.deepEqual(second.statuses, first.statuses);
    assert.deepEqual(new Set(first.statuses), new Set([200, 500]));
    assert.equal(first.errors, first.statuses.filter((status) => status === 500).length);
  });

  test("first-token latency and tokens per second pace the output", async () => {
    const provider = await startReferenceProvider({ firstTokenLatencyMs: 60, tokensPerSecond: 100 });
    try {
      const started = performance.now();
      const response = await postChat(provider.url, chatRequest({ stream: true, max_tokens: 10 }));
      const headersAfter = performance.now() - started;
      await response.text();
      const streamAfter = performance.now() - started;
      assert.ok(headersAfter >= 60, `the stream starts after ${headersAfter} ms`);
      assert.ok(streamAfter >= 60 + 100 - 5, `10 tokens at 100/s end after ${streamAfter} ms`);

      const wholeStarted = performance.now();
      await complete(provider.url, chatRequest({ max_tokens: 10 }));
      assert.ok(performance.now() - wholeStarted >= 155, "a whole answer waits for all of its tokens");
    } finally {
      await provider.close();
    }
  });

  test("defaultMaxTokens applies when a request sets no limit", async () => {
    const provider = await startReferenceProvider({ defaultMaxTokens: 4 });
    try {
      const completion = await complete(provider.url, chatRequest());
      assert.equal(completion.usage?.completion_tokens, 4);
      assert.equal(completion.choices[0]?.finish_reason, "length");
    } finally {
      await provider.close();
    }
  });

  test("close() ends held requests and keep-alive connections promptly", async () => {
    const provider = await startReferenceProvider();
    const client = openaiClient(provider);
    await client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 1 });
    const held = postChat(provider.url, chatRequest(), { "x-reference-fault": "timeout" });
    const heldOutcome = held.then(
      () => "answered",
      (error: unknown) => (error instanceof TypeError ? "connection closed" : String(error)),
    );
    while (provider.stats().faults.timeout === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const started = performance.now();
    await provider.close();
    await provider.close();
    assert.ok(performance.now() - started < 1_000);
    assert.equal(await heldOutcome, "connection closed");
  });

  test("invalid options are refused", async () => {
    const invalid: unknown[] = [
      { port: 70_000 },
      { tokensPerSecond: -1 },
      { firstTokenLatencyMs: Number.NaN },
      { defaultMaxTokens: 16_385 },
      { models: [] },
      { models: ["a", "a"] },
      { faults: { errorRate: 0.6, timeoutRate: 0.6 } },
      { faults: { errorRate: 2 } },
      { colour: "blue" },
    ];
    for (const options of invalid) {
      const attempt = startReferenceProvider(options as ReferenceProviderOptions);
      await assert.rejects(attempt, RangeError, JSON.stringify(options));
    }
  });

  test("the command line prints the URL, serves, and stops on SIGTERM", async () => {
    const child = spawn(
      process.execPath,
      ["src/reference-provider/main.ts", "--port", "0", "--models", "m1,m2", "--error-rate", "1"],
      { cwd: new URL("..", import.meta.url), stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      const [line] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
      assert.match(line, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      const models = (await (await fetch(`${line}/models`)).json()) as { data: { id: string }[] };
      assert.deepEqual(models.data.map((model) => model.id), ["m1", "m2"]);
      const response = await postChat(line, { model: "m1", messages: MESSAGES });
      assert.equal(response.status, 500);
      child.kill("SIGTERM");
      const [code] = (await once(child, "exit")) as [number | null];
      assert.equal(code, 0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  test("the command line rejects bad flags", async () => {
    for (const args of [["--port", "abc"], ["--speed", "9"]]) {
      const child = spawn(process.execPath, ["src/reference-provider/main.ts", ...args], {
        cwd: new URL("..", import.meta.url),
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
      const [code] = (await once(child, "exit")) as [number | null];
      assert.equal(code, 1, args.join(" "));
      assert.match(stderr, /Run with --help/);
    }
  });
});
