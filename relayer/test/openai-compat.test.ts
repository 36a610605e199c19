/**
 * OpenAI compatibility (issue 12): the official `openai` client against an in-process relayer and a
 * test-local provider behaves as it does against OpenAI.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import OpenAI from "openai";
import { API_KEY, MODEL, completion, contentChunk, honestUsage, startProvider, startRelayerApp } from "./app-harness.ts";

const MESSAGES = [{ role: "user" as const, content: "hi" }];
const ANSWER = "Hello there, agent.";

/** A provider answering ANSWER, streamed or not, with honest usage (plus `reasoning` tokens). */
function honestProvider(reasoning = 0) {
  return startProvider((request, res) => {
    const base = honestUsage(request.body.messages as never, ANSWER);
    const usage = reasoning === 0 ? base : { ...base, completion_tokens: base.completion_tokens + reasoning, completion_tokens_details: { reasoning_tokens: reasoning } };
    if (!request.body.stream) {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(completion(ANSWER, usage)));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    for (const word of ANSWER.split(/(?= )/)) res.write(`data: ${contentChunk(word)}\n\n`);
    res.write(`data: ${JSON.stringify({ id: "chatcmpl-1", object: "chat.completion.chunk", created: 1, model: MODEL, choices: [], usage })}\n\n`);
    res.end("data: [DONE]\n\n");
  });
}

async function setup(options: Parameters<typeof startRelayerApp>[1] = {}, reasoning = 0) {
  const provider = await honestProvider(reasoning);
  const relayer = await startRelayerApp(provider.url, options);
  const openai = new OpenAI({ apiKey: API_KEY, baseURL: `${relayer.url}/v1`, maxRetries: 0 });
  return {
    provider,
    relayer,
    openai,
    async close() {
      await relayer.close();
      await provider.close();
    },
  };
}

describe("OpenAI compatibility", () => {
  it("refuses n > 1 with a 400, before calling the provider", async () => {
    const { openai, provider, close } = await setup();
    try {
      await assert.rejects(openai.chat.completions.create({ model: MODEL, messages: MESSAGES, n: 2 }), (error: unknown) => {
        assert.ok(error instanceof OpenAI.BadRequestError, String(error));
        assert.equal(error.code, "invalid_request");
        assert.match(error.message, /n = 1/);
        return true;
      });
      assert.equal(provider.requests.length, 0);
    } finally {
      await close();
    }
  });

  it("passes max_completion_tokens through unchanged (no max_tokens added)", async () => {
    const { openai, provider, close } = await setup();
    try {
      const answer = await openai.chat.completions.create({ model: MODEL, messages: MESSAGES, max_completion_tokens: 77 });
      assert.equal(answer.choices[0].message.content, ANSWER);
      assert.equal(provider.requests[0].body.max_completion_tokens, 77);
      assert.equal("max_tokens" in provider.requests[0].body, false);
    } finally {
      await close();
    }
  });

  it("answers 429 with Retry-After when the provider's rate limit is used up", async () => {
    const { openai, relayer, provider, close } = await setup({ provider: { rateLimitPerMinute: 3 } });
    try {
      for (let i = 0; i < 3; i++) assert.equal(await relayer.context.rateLimits.provider(1, 3), undefined);
      await assert.rejects(openai.chat.completions.create({ model: MODEL, messages: MESSAGES }), (error: unknown) => {
        assert.ok(error instanceof OpenAI.RateLimitError, String(error));
        assert.equal(error.code, "rate_limited");
        const retryAfter = Number(error.headers.get("retry-after"));
        assert.ok(retryAfter >= 59 && retryAfter <= 60, `retry-after ${retryAfter}`);
        return true;
      });
      assert.equal(provider.requests.length, 0);
    } finally {
      await close();
    }
  });

  it("answers 429 with Retry-After when the session has a call in flight", async () => {
    const { openai, relayer, close } = await setup();
    try {
      // Another call (on this instance or another one sharing the store) holds the session.
      assert.ok(await relayer.repo.holdSession(relayer.sessionId, "another-call", Date.now() + 30_000));
      await assert.rejects(openai.chat.completions.create({ model: MODEL, messages: MESSAGES }), (error: unknown) => {
        assert.ok(error instanceof OpenAI.RateLimitError, String(error));
        assert.equal(error.code, "session_busy");
        assert.equal(error.headers.get("retry-after"), "1");
        return true;
      });
    } finally {
      await close();
    }
  });

  it("gives every response an x-request-id, echoing a sane one the client sent", async () => {
    const { openai, relayer, close } = await setup();
    try {
      const { data, request_id } = await openai.chat.completions.create({ model: MODEL, messages: MESSAGES }).withResponse();
      assert.equal(data.choices[0].message.content, ANSWER);
      assert.match(request_id ?? "", /^req_[0-9a-f]{32}$/);
      for (const [path, init, status] of [
        ["/nowhere", {}, 404],
        ["/v1/chat/completions", { method: "GET" }, 405],
        ["/healthz", {}, 200],
        ["/v1/chat/completions", { method: "POST", body: "{" }, 401],
      ] as const) {
        const response = await fetch(`${relayer.url}${path}`, init);
        assert.equal(response.status, status);
        assert.match(response.headers.get("x-request-id") ?? "", /^req_[0-9a-f]{32}$/, path);
      }
      const echoed = await fetch(`${relayer.url}/healthz`, { headers: { "x-request-id": "client-42.a:b" } });
      assert.equal(echoed.headers.get("x-request-id"), "client-42.a:b");
      const replaced = await fetch(`${relayer.url}/healthz`, { headers: { "x-request-id": "x".repeat(200) } });
      assert.match(replaced.headers.get("x-request-id") ?? "", /^req_/);
    } finally {
      await close();
    }
  });

  for (const stream of [false, true]) {
    it(`answers a ${stream ? "streamed" : "plain"} call retried with its Idempotency-Key from the stored result, billed once`, async () => {
      const { openai, relayer, provider, close } = await setup();
      const headers = { "Idempotency-Key": `retry-${stream}` };
      const call = async () => {
        if (!stream) {
          const { data, response } = await openai.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 50 }, { headers }).withResponse();
          const extended = data as typeof data & { receipt: { hash: string } };
          return { content: data.choices[0].message.content, receipt: extended.receipt.hash, replayed: response.headers.get("idempotent-replayed") };
        }
        const { data, response } = await openai.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 50, stream: true }, { headers }).withResponse();
        let content = "";
        let receipt = "";
        for await (const chunk of data) {
          content += chunk.choices[0]?.delta?.content ?? "";
          receipt ||= (chunk as unknown as { receipt?: { hash: string } }).receipt?.hash ?? "";
        }
        return { content, receipt, replayed: response.headers.get("idempotent-replayed") };
      };
      try {
        const first = await call();
        // The response was lost: the client tries again with the same key.
        const second = await call();
        assert.equal(first.content, ANSWER);
        assert.deepEqual(second, { ...first, replayed: "true" });
        assert.equal(first.replayed, null);
        assert.equal(provider.requests.length, 1, "the provider was called once");
        assert.equal((await relayer.receipts()).length, 1, "one receipt");
        assert.equal((await relayer.repo.getSession(relayer.sessionId))!.state.sequence, 1);
        // The same key for another request is refused, and calls nothing.
        await assert.rejects(
          openai.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "something else" }] }, { headers }),
          (error: unknown) => error instanceof OpenAI.UnprocessableEntityError && error.code === "idempotency_key_reused",
        );
        assert.equal(provider.requests.length, 1);
      } finally {
        await close();
      }
    });
  }

  it("refuses a second request with an Idempotency-Key in flight (409), and a malformed key (400)", async () => {
    const { relayer, close } = await setup();
    try {
      const { idempotencyStore } = await import("../src/store/idempotency.ts");
      assert.equal(await idempotencyStore.claim(relayer.repo, relayer.sessionId, "in-flight", Date.now() + 60_000), true);
      const busy = await relayer.chat({}, { "idempotency-key": "in-flight" });
      assert.equal(busy.status, 409);
      assert.equal(((await busy.json()) as { error: { code: string } }).error.code, "idempotency_key_in_use");
      const malformed = await relayer.chat({}, { "idempotency-key": "has spaces" });
      assert.equal(malformed.status, 400);
      assert.equal(((await malformed.json()) as { error: { code: string } }).error.code, "invalid_idempotency_key");
      assert.equal((await relayer.receipts()).length, 0);
    } finally {
      await close();
    }
  });

  it("streams through keep-alive comments to the openai client as OpenAI's own streams do", async () => {
    let comments = 0;
    const provider = await startProvider(async (request, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.flushHeaders();
      await new Promise((resolve) => setTimeout(resolve, 150)); // silent: the relayer sends comments meanwhile
      const usage = honestUsage(request.body.messages as never, ANSWER);
      res.write(`data: ${contentChunk(ANSWER)}\n\n`);
      res.write(`data: ${JSON.stringify({ id: "chatcmpl-1", object: "chat.completion.chunk", created: 1, model: MODEL, choices: [], usage })}\n\n`);
      res.end("data: [DONE]\n\n");
    });
    const relayer = await startRelayerApp(provider.url, { limits: { keepAliveIntervalMs: 10 } });
    const openai = new OpenAI({
      apiKey: API_KEY,
      baseURL: `${relayer.url}/v1`,
      maxRetries: 0,
      fetch: async (url, init) => {
        const response = await fetch(url, init);
        const [counted, passed] = response.body!.tee();
        void (async () => {
          const decoder = new TextDecoder();
          for await (const piece of counted) comments += decoder.decode(piece).split(": keep-alive\n\n").length - 1;
        })();
        return new Response(passed, { status: response.status, headers: response.headers });
      },
    });
    try {
      const stream = await openai.chat.completions.create({ model: MODEL, messages: MESSAGES, stream: true, max_tokens: 50 });
      let content = "";
      for await (const chunk of stream) content += chunk.choices[0]?.delta?.content ?? "";
      assert.equal(content, ANSWER);
      assert.ok(comments > 0, "keep-alive comments were sent");
      assert.equal((await relayer.receipts()).length, 1);
    } finally {
      await relayer.close();
      await provider.close();
    }
  });

  it("bills reasoning tokens the provider reports without flagging a token mismatch", async () => {
    const { openai, relayer, close } = await setup({}, 500);
    try {
      const answer = await openai.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 1000 });
      const [record] = await relayer.receipts();
      assert.equal(record.receipt.outputTokens, answer.usage!.completion_tokens);
      assert.equal(answer.usage!.completion_tokens_details?.reasoning_tokens, 500);
      assert.equal(record.tokenMismatch, false);
      assert.equal(record.countedByRelayer, false);
    } finally {
      await close();
    }
  });
});
