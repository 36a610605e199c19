/**
 * A stream the provider cuts halfway is billed for what it delivered (issue 12 §5), and that bill
 * is one the agent can pay: the agent SDK checks the receipt that comes with the stream's error
 * event against what it received, signs it, and the relayer takes the voucher. On the real local
 * stack, with reference providers that drop every response halfway (no usage, no `[DONE]`).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { AgentSession } from "../../sdk/src/index.ts";
import { countOutputTokens } from "../../sdk/src/tokens.ts";
import { startLocalStack, type RunningStack } from "../../scripts/lib/local-stack.ts";

describe("a stream cut by its provider", { timeout: 180_000 }, () => {
  let running: RunningStack;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "agentmesh-cut-stream-"));
    running = await startLocalStack({
      localFile: path.join(dir, "local.json"),
      settlement: { maxAgeMs: 3_600_000, pollMs: 3_600_000 },
      healthProbeIntervalMs: 3_600_000,
      payoutIntervalMs: 3_600_000,
      providerOptions: { faults: { cutStreamRate: 1 } },
    });
  });

  after(async () => {
    await running?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("bills what was delivered in a receipt the agent's SDK checks and signs", async () => {
    const { stack } = running;
    const session = await AgentSession.open({
      relayerUrl: running.relayer.url,
      privateKey: stack.accounts.agent.privateKey,
      chainId: stack.chainId,
      escrow: stack.contracts.ComputeEscrow,
      budgetId: BigInt(stack.budgetId),
      providerId: 1,
      model: "agentmesh-small",
      maxSpend: 1_000_000n,
      voucherFlushMs: 10 * 60_000,
    });
    const openai = new OpenAI({ ...session.openAIOptions(), maxRetries: 0 });
    const stream = await openai.chat.completions.create({
      model: "agentmesh-small",
      messages: [{ role: "user", content: "Tell me a long story." }],
      max_tokens: 60,
      stream: true,
    });
    let received = "";
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) received += chunk.choices[0]?.delta?.content ?? "";
      })(),
      (error: unknown) => error instanceof OpenAI.APIError && /stream broke/.test(error.message),
    );
    assert.ok(received.length > 0, "part of the answer arrived");
    // The agent signed the receipt of what it received.
    const signed = await session.state();
    assert.equal(signed.sequence, 1);
    assert.equal(signed.outputTokens, countOutputTokens({ content: received, toolCalls: [] }));
    assert.ok(signed.cumulativeCost > 0n);
    await session.flushVoucher();
    // A session is read with its API key (or the agent's read signature) since keys are per session.
    const read = await fetch(`${running.relayer.url}/v1/sessions/${session.sessionId}`, { headers: { authorization: `Bearer ${session.apiKey}` } });
    assert.equal(read.status, 200, await read.clone().text());
    const view = (await read.json()) as {
      signedSequence: number;
      receipts: { countedByRelayer: boolean; outputTokens: number }[];
    };
    assert.equal(view.signedSequence, 1, "the relayer holds the agent's voucher for the cut call");
    assert.deepEqual(
      view.receipts.map((receipt) => [receipt.countedByRelayer, receipt.outputTokens]),
      [[true, signed.outputTokens]],
    );
  });
});
