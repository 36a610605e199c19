/**
 * Long streams (issue 12 §5, §10): first-byte and idle timeouts instead of a limit on the whole
 * call, what was delivered always billed, usage accepted in any chunk, headers at once with
 * keep-alive comments while the provider is silent, and the client's backpressure respected.
 */
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import { hashCompletionOutput } from "@agentmesh/sdk";
import { countOutputTokens } from "@agentmesh/sdk/tokens";
import { API_KEY, MODEL, contentChunk, sseData, startProvider, startRelayerApp } from "./app-harness.ts";

const USAGE = { prompt_tokens: 8, completion_tokens: 3, total_tokens: 11 };

/** Short timeouts, so that the old 60 s total limit (here 400 ms) would be hit by a stream of 1.5 s. */
const SHORT = { firstByteTimeoutMs: 400, idleTimeoutMs: 400, upstreamTimeoutMs: 400 };

describe("long streams", () => {
  it("does not cut a stream longer than the old total limit while the provider keeps sending", async () => {
    const words = Array.from({ length: 30 }, (_, i) => `word${i} `);
    const provider = await startProvider(async (_request, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      for (const word of words) {
        res.write(`data: ${contentChunk(word)}\n\n`);
        await sleep(50); // 30 × 50 ms = 1.5 s in all, never 400 ms silent
      }
      res.write(`data: ${JSON.stringify({ id: "chatcmpl-1", object: "chat.completion.chunk", choices: [], usage: { prompt_tokens: 8, completion_tokens: 60 } })}\n\n`);
      res.end("data: [DONE]\n\n");
    });
    const relayer = await startRelayerApp(provider.url, { limits: SHORT });
    try {
      const response = await relayer.chat({ stream: true, max_tokens: 100 });
      const events = sseData(await response.text());
      assert.equal(events.at(-1), "[DONE]");
      const chunks = events.slice(0, -1).map((data) => JSON.parse(data));
      const text = chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? "").join("");
      assert.equal(text, words.join(""));
      const final = chunks.at(-1);
      assert.equal(final.error, undefined);
      assert.equal(final.receipt.sequence, 1);
      assert.equal(final.receipt.outputTokens, 60);
      assert.equal(final.receipt.countedByRelayer, false);
      assert.equal((await relayer.receipts()).length, 1);
    } finally {
      await relayer.close();
      await provider.close();
    }
  });

  for (const [name, death] of [
    ["dies (its connection drops)", "drop"],
    ["goes silent past the idle timeout", "silence"],
  ] as const) {
    it(`bills what was delivered when the provider ${name} mid-stream, counted by the relayer`, async () => {
      const sent = ["The first", " three", " chunks"];
      const provider = await startProvider(async (_request, res) => {
        res.writeHead(200, { "content-type": "text/event-stream" });
        for (const piece of sent) res.write(`data: ${contentChunk(piece)}\n\n`);
        if (death === "drop") {
          await sleep(20);
          res.destroy();
        } // else: nothing more, ever (the relayer's idle timeout cuts it; closing the server ends it)
      });
      const relayer = await startRelayerApp(provider.url, { limits: SHORT });
      try {
        const response = await relayer.chat({ stream: true, max_tokens: 100 });
        assert.equal(response.status, 200);
        const events = sseData(await response.text());
        assert.notEqual(events.at(-1), "[DONE]", "a cut stream does not claim to be complete");
        const chunks = events.map((data) => JSON.parse(data));
        assert.equal(chunks.slice(0, -1).map((chunk) => chunk.choices[0].delta.content).join(""), sent.join(""));
        const final = chunks.at(-1);
        assert.equal(final.error.code, "upstream_error");
        const delivered = { content: sent.join(""), toolCalls: [] };
        const [record] = await relayer.receipts();
        assert.ok(record, "the delivered part has a receipt");
        assert.equal(record.countedByRelayer, true);
        assert.equal(record.receipt.outputTokens, countOutputTokens(delivered));
        assert.equal(record.receipt.outputHash, hashCompletionOutput(delivered.content, []));
        assert.deepEqual(record.deliveredOutput, delivered);
        assert.equal(final.receipt.hash, record.hash, "the client gets the receipt, to sign it");
        assert.equal(final.receipt.countedByRelayer, true);
        assert.equal(final.usage.completion_tokens, record.receipt.outputTokens);
        assert.equal((await relayer.repo.getSession(relayer.sessionId))!.state.cumulativeCost, record.receipt.cost);
        assert.ok(record.receipt.cost > 0n);
      } finally {
        await relayer.close();
        await provider.close();
      }
    });
  }

  it("bills a provider that sends its usage on the last content chunk with that usage", async () => {
    const provider = await startProvider((_request, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`data: ${contentChunk("Hello")}\n\n`);
      res.write(`data: ${contentChunk(" world", { usage: USAGE })}\n\n`);
      res.end("data: [DONE]\n\n");
    });
    const relayer = await startRelayerApp(provider.url);
    try {
      const events = sseData(await (await relayer.chat({ stream: true, max_tokens: 50 })).text());
      assert.equal(events.at(-1), "[DONE]");
      const chunks = events.slice(0, -1).map((data) => JSON.parse(data));
      assert.equal(chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? "").join(""), "Hello world");
      const final = chunks.at(-1);
      assert.deepEqual(final.usage, USAGE);
      assert.equal(final.model, MODEL);
      const [record] = await relayer.receipts();
      assert.deepEqual([record.receipt.inputTokens, record.receipt.outputTokens, record.countedByRelayer], [8, 3, false]);
      assert.equal(final.receipt.hash, record.hash);
    } finally {
      await relayer.close();
      await provider.close();
    }
  });

  it("bills nothing and answers upstream_error when the provider dies before its first chunk", async () => {
    const provider = await startProvider((_request, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(": opening\n\n");
      setTimeout(() => res.destroy(), 20);
    });
    const relayer = await startRelayerApp(provider.url, { limits: SHORT });
    try {
      const response = await relayer.chat({ stream: true, max_tokens: 50 });
      const events = sseData(await response.text()).map((data) => JSON.parse(data));
      assert.equal(events.length, 1);
      assert.equal(events[0].error.code, "upstream_error");
      assert.equal((await relayer.receipts()).length, 0);
    } finally {
      await relayer.close();
      await provider.close();
    }
  });

  it("sends the headers as soon as the provider accepts, and keep-alive comments while it is silent", async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const provider = await startProvider(async (_request, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.flushHeaders();
      await released; // silent until the test has seen the headers and a keep-alive comment
      res.write(`data: ${contentChunk("late", { usage: USAGE })}\n\n`);
      res.end("data: [DONE]\n\n");
    });
    const relayer = await startRelayerApp(provider.url, { limits: { keepAliveIntervalMs: 20, idleTimeoutMs: 60_000 } });
    try {
      const response = await relayer.chat({ stream: true, max_tokens: 50 });
      assert.equal(response.headers.get("content-type"), "text/event-stream");
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      let text = "";
      for (let reads = 0; reads < 100 && !text.includes(": keep-alive\n\n"); reads++) text += decoder.decode((await reader.read()).value);
      assert.ok(text.startsWith(": keep-alive\n\n"), JSON.stringify(text));
      release();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value);
      }
      assert.ok(text.endsWith("data: [DONE]\n\n"));
      assert.equal((await relayer.receipts()).length, 1);
    } finally {
      release();
      await relayer.close();
      await provider.close();
    }
  });

  it("holds the provider back while the client reads slowly, instead of buffering its stream", async () => {
    const piece = `${"lorem ipsum dolor sit amet ".repeat(40)}\n`; // ~1 KB a chunk
    const total = 16_000; // ~17 MB: more than both hops' socket buffers hold
    let written = 0;
    const provider = await startProvider(async (_request, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const chunk = `data: ${contentChunk(piece)}\n\n`;
      for (let i = 0; i < total; i++) {
        written++;
        if (!res.write(chunk)) await new Promise((resolve) => res.once("drain", resolve));
      }
      res.write(`data: ${JSON.stringify({ object: "chat.completion.chunk", choices: [], usage: { prompt_tokens: 8, completion_tokens: 4_000 } })}\n\n`);
      res.end("data: [DONE]\n\n");
    });
    const relayer = await startRelayerApp(provider.url, { limits: { idleTimeoutMs: 60_000 } });
    try {
      const body = JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], stream: true, max_tokens: 4_000 });
      const response = await new Promise<import("node:http").IncomingMessage>((resolve, reject) => {
        const req = httpRequest(`${relayer.url}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
        });
        req.on("response", resolve).on("error", reject).end(body);
      });
      assert.equal(response.statusCode, 200);
      response.pause(); // a client that does not read
      // Wait until the provider stops getting further (bounded: 200 looks).
      let last = -1;
      for (let looks = 0, still = 0; looks < 200 && still < 6; looks++) {
        await sleep(50);
        still = written === last ? still + 1 : 0;
        last = written;
      }
      assert.ok(written < total * 0.8, `the provider wrote ${written} of ${total} chunks to a client that reads nothing`);
      let received = 0;
      let tail = "";
      response.setEncoding("utf8");
      response.on("data", (text: string) => {
        received += text.length;
        tail = (tail + text).slice(-200);
      });
      response.resume();
      await new Promise((resolve) => response.on("end", resolve));
      assert.equal(written, total);
      assert.ok(tail.endsWith("data: [DONE]\n\n"));
      assert.ok(received > total * piece.length);
      assert.equal((await relayer.receipts()).length, 1);
    } finally {
      await relayer.close();
      await provider.close();
    }
  });
});
