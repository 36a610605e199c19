/**
 * The chat rules through `createApp(deps)` in-process, on a fake chain (fake-chain.ts): the credit
 * bound, serving by the session's state on-chain, and billing. The store, the HTTP API and the
 * provider (on 127.0.0.1) are real.
 */
import assert from "node:assert/strict";
import { setImmediate as tick } from "node:timers/promises";
import { describe, it } from "node:test";
import { callCost, formatUsdc, recoverDigestSigner, voucherDigest } from "@agentmesh/sdk";
import { countPromptTokens } from "@agentmesh/sdk/tokens";
import { completion, contentChunk, honestUsage, sseData, startProvider, startRelayerApp } from "./app-harness.ts";

const MESSAGES = [{ role: "user" as const, content: "hi" }];
const ANSWER = "hello";

/** A relayer app (with `options`) whose provider answers every call with ANSWER and honest usage. */
async function withApp(
  options: Parameters<typeof startRelayerApp>[1],
  test: (app: Awaited<ReturnType<typeof startRelayerApp>>, provider: Awaited<ReturnType<typeof startProvider>>) => Promise<void>,
): Promise<void> {
  const provider = await startProvider((_request, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(completion(ANSWER, honestUsage(MESSAGES, ANSWER))));
  });
  const app = await startRelayerApp(provider.url, options);
  try {
    await test(app, provider);
  } finally {
    await app.close();
    await provider.close();
  }
}

const errorOf = async (response: Response) => ((await response.json()) as { error: { code: string; message: string } }).error;

describe("chat through createApp, on a fake chain", () => {
  it("refuses a call its session's lock cannot pay for with 402 session_exhausted, before any upstream request", async () => {
    await withApp({ terms: { maxSpend: 1_000n } }, async (app, provider) => {
      const promptTokens = countPromptTokens({ messages: MESSAGES });
      const response = await app.chat({ max_tokens: 4_000 });
      assert.equal(response.status, 402);
      const error = await errorOf(response);
      assert.equal(error.code, "session_exhausted");
      assert.equal(
        error.message,
        `session ${app.sessionId} has ${formatUsdc(1_000n)} USDC left, less than this call may cost (${formatUsdc(callCost(app.terms, promptTokens, 4_000))})`,
      );
      assert.equal(provider.requests.length, 0, "the provider got no request");
      assert.deepEqual(await app.receipts(), []);
    });
  });

  it("lowers an unset max_tokens to what the session can still pay for", async () => {
    await withApp({ terms: { maxSpend: 500n } }, async (app, provider) => {
      const response = await app.chat({});
      assert.equal(response.status, 200);
      const promptTokens = countPromptTokens({ messages: MESSAGES });
      const maxTokens = provider.requests[0].body.max_tokens!;
      assert.equal(maxTokens, Math.floor((500 * 1000 - promptTokens * app.terms.inputPricePer1K) / app.terms.outputPricePer1K));
      assert.ok(callCost(app.terms, promptTokens, maxTokens) <= 500n);
    });
  });

  it("serves nothing on a session closing on-chain (409 session_closing) or finalized there (410 session_finalized)", async () => {
    await withApp({}, async (app, provider) => {
      await app.chainIndex.requestClose(app.sessionId, app.terms.agent, 11);
      const closing = await app.chat({});
      assert.equal(closing.status, 409);
      assert.equal(closing.headers.get("x-should-retry"), "false");
      assert.equal((await errorOf(closing)).code, "session_closing");
      await app.chainIndex.finalizeSession(app.sessionId, 0n, 12);
      const finalized = await app.chat({});
      assert.equal(finalized.status, 410);
      assert.equal((await errorOf(finalized)).code, "session_finalized");
      assert.equal(provider.requests.length, 0);
      assert.deepEqual(await app.receipts(), []);
    });
  });

  it("bills a served call by the provider's usage, co-signed by the session's signer, and wants its voucher before the next", async () => {
    await withApp({}, async (app, provider) => {
      const response = await app.chat({});
      assert.equal(response.status, 200);
      const body = (await response.json()) as { choices: { message: { content: string } }[]; cost: { amountAtomic: string }; receipt: { hash: string } };
      const usage = honestUsage(MESSAGES, ANSWER);
      const cost = callCost(app.terms, usage.prompt_tokens, usage.completion_tokens);
      assert.equal(body.choices[0].message.content, ANSWER);
      assert.equal(body.cost.amountAtomic, cost.toString());
      const [record] = await app.receipts();
      assert.deepEqual(
        [record.hash, record.receipt.sequence, record.receipt.inputTokens, record.receipt.outputTokens, record.state.cumulativeCost, record.countedByRelayer, record.tokenMismatch],
        [body.receipt.hash, 1, usage.prompt_tokens, usage.completion_tokens, cost, false, false],
      );
      assert.equal(recoverDigestSigner(voucherDigest(app.context.domainSeparator, app.sessionId, record.state), record.providerSignature), app.signer);
      const next = await app.chat({});
      assert.equal(next.status, 402);
      assert.equal((await errorOf(next)).code, "voucher_required");
      assert.equal(provider.requests.length, 1);
    });
  });

  it("answers a retried call with the same Idempotency-Key as it was answered, billing it once", async () => {
    await withApp({}, async (app, provider) => {
      const first = await app.chat({}, { "idempotency-key": "call-1" });
      assert.equal(first.status, 200);
      const answered = await first.json();
      const retried = await app.chat({}, { "idempotency-key": "call-1" });
      assert.deepEqual([retried.status, retried.headers.get("idempotent-replayed"), await retried.json()], [200, "true", answered]);
      assert.deepEqual([provider.requests.length, (await app.receipts()).length], [1, 1]);
      const reused = await app.chat({ temperature: 1 }, { "idempotency-key": "call-1" });
      assert.deepEqual([reused.status, (await errorOf(reused)).code], [422, "idempotency_key_reused"]);
      assert.deepEqual([provider.requests.length, (await app.receipts()).length], [1, 1]);
    });
  });

  it("bills a stream the client stops reading for what was delivered, keeping that output for the agent", async () => {
    let providerGone!: () => void;
    const gone = new Promise<void>((resolve) => (providerGone = resolve));
    const provider = await startProvider((_request, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`data: ${contentChunk(ANSWER)}\n\n`); // then silent, until the relayer hangs up
      res.on("close", providerGone);
    });
    const app = await startRelayerApp(provider.url);
    try {
      const response = await app.chat({ stream: true, max_tokens: 50 });
      const reader = response.body!.getReader();
      let text = "";
      for (let reads = 0; reads < 100 && sseData(text).length === 0; reads++) text += new TextDecoder().decode((await reader.read()).value);
      assert.equal(JSON.parse(sseData(text)[0]).choices[0].delta.content, ANSWER);
      await reader.cancel(); // the client stops reading and hangs up
      await gone; // the relayer stopped the provider's stream when its client left
      for (let turns = 0; turns < 1_000 && (await app.receipts()).length === 0; turns++) await tick();
      const [record] = await app.receipts();
      const promptTokens = countPromptTokens({ messages: MESSAGES });
      assert.deepEqual(
        [record.receipt.sequence, record.receipt.inputTokens, record.receipt.outputTokens, record.countedByRelayer, record.deliveredOutput],
        [1, promptTokens, honestUsage(MESSAGES, ANSWER).completion_tokens, true, { content: ANSWER, toolCalls: [] }],
      );
      assert.equal(record.receipt.cost, callCost(app.terms, promptTokens, record.receipt.outputTokens));
    } finally {
      await app.close();
      await provider.close();
    }
  });
});
