/**
 * The outbound policy on the real local stack (issue 12, SSRF). The local chain allows loopback
 * endpoints — the stack's own providers and agents live there — but an endpoint's shape is checked on
 * every chain: one with a query or a fragment would hand its owner the path the relayer calls. Such a
 * provider is not called, bills nothing and counts as no provider call; such an agent is not offered
 * for payment. (Private addresses off the local chain are covered by relayer/test/outbound.test.ts.)
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { createPublicClient, createWalletClient, http, zeroAddress, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { AgentSession, agentMarketplaceAbi, providerRegistryAbi } from "../../sdk/src/index.ts";
import { startLocalStack, type RunningStack } from "../../scripts/lib/local-stack.ts";

describe("outbound endpoint policy end to end", { timeout: 180_000 }, () => {
  let running: RunningStack;
  let client: ReturnType<typeof createPublicClient>;
  let dir: string;
  const wallet = (role: "providerB" | "agentAuthor") =>
    createWalletClient({ chain: hardhat, transport: http(running.stack.rpcUrl), account: privateKeyToAccount(running.stack.accounts[role].privateKey) });
  const confirm = async (hash: Hex) => assert.equal((await client.waitForTransactionReceipt({ hash })).status, "success");

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "agentmesh-endpoints-"));
    running = await startLocalStack({
      localFile: path.join(dir, "local.json"),
      settlement: { maxAgeMs: 3_600_000, pollMs: 60_000 },
      healthProbeIntervalMs: 3_600_000, // probes only when a test asks
      payoutIntervalMs: 3_600_000,
    });
    client = createPublicClient({ chain: hardhat, transport: http(running.stack.rpcUrl) });
  });

  after(async () => {
    await running?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("does not call, bill or count a provider whose endpoint carries a query, and serves it again once fixed", async () => {
    const { stack } = running;
    const registry = stack.contracts.ProviderRegistry;
    /** Points provider 2 at `endpoint`; the relayer's index follows. */
    const setEndpoint = async (endpoint: string) => {
      const { providerType, rateLimitPerMinute, minChargePerCall, features, receiptSigner, payout } = await client.readContract({
        address: registry,
        abi: providerRegistryAbi,
        functionName: "getProvider",
        args: [2n],
      });
      const config = { endpoint, providerType, rateLimitPerMinute, minChargePerCall, features, receiptSigner, payout };
      await confirm(await wallet("providerB").writeContract({ address: registry, abi: providerRegistryAbi, functionName: "updateProvider", args: [2n, config] }));
      await running.relayer.indexer.catchUp();
    };
    const upstreamCalls = async () => {
      const metrics = await (await fetch(`${running.relayer.url}/metrics`)).text();
      return Number(/^agentmesh_upstream_calls_total\{provider="2"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
    };
    const session = await AgentSession.open({
      relayerUrl: running.relayer.url,
      privateKey: stack.accounts.agent.privateKey,
      chainId: stack.chainId,
      escrow: stack.contracts.ComputeEscrow,
      budgetId: BigInt(stack.budgetId),
      providerId: 2,
      model: "agentmesh-small",
      maxSpend: 1_000_000n,
      voucherFlushMs: 10 * 60_000,
    });
    const ask = () =>
      fetch(`${running.relayer.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${session.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "agentmesh-small", messages: [{ role: "user", content: "who is there?" }], max_tokens: 10, sessionId: session.sessionId }),
      });
    const original = running.providers[1].url;
    const [requestsBefore, callsBefore] = [running.providers[1].stats().requests, await upstreamCalls()];

    // `?` makes the relayer's "/chat/completions" a query string: the owner would pick the path.
    await setEndpoint(`${original}?`);
    try {
      const refused = await ask();
      assert.equal(refused.status, 502);
      const { error } = (await refused.json()) as { error: { code: string; message: string } };
      assert.equal(error.code, "upstream_error");
      assert.match(error.message, /provider 2: endpoint ".*" is refused: it has a query \(\?\)/);
      await running.relayer.health.probeAll();
      const view = (await (await fetch(`${running.relayer.url}/v1/providers/2`)).json()) as { metrics: { uptimeScore: number | null } };
      assert.equal(view.metrics.uptimeScore, 0, "the refused endpoint fails its probe");
      assert.equal(running.providers[1].stats().requests, requestsBefore, "the provider was never contacted");
      assert.equal(await upstreamCalls(), callsBefore, "a refused endpoint is no provider call");
      assert.equal((await session.state()).sequence, 0, "nothing was billed");
    } finally {
      await setEndpoint(original);
    }
    // Fixed, it serves again (through the SDK's client, which checks the receipt).
    const served = await new OpenAI(session.openAIOptions()).chat.completions.create({
      model: "agentmesh-small",
      messages: [{ role: "user", content: "and now?" }],
      max_tokens: 10,
    });
    assert.ok((served.choices[0].message.content ?? "").length > 0);
    assert.equal(await upstreamCalls(), callsBefore + 1);
    assert.equal(running.providers[1].stats().requests, requestsBefore + 1);
    // Ends the session: the agent signs the served call's voucher, paying it (the pending voucher's
    // flush timer otherwise keeps this process alive until it fires).
    const closed = await session.close();
    assert.notEqual(closed.settled, "0.000000");
  });

  it("does not ask for payment to an agent whose endpoint carries a fragment", async () => {
    const marketplace = running.stack.contracts.AgentMarketplace!;
    await confirm(
      await wallet("agentAuthor").writeContract({
        address: marketplace,
        abi: agentMarketplaceAbi,
        functionName: "list",
        args: [
          { name: "Fragment agent", metadataURI: "", endpoint: `${running.stack.demoAgent.endpoint}#` },
          20_000n,
          { fixedAmounts: [], shares: [], payerReferrerShare: 0, payeeReferrerShare: 0, remainder: { kind: 0, account: zeroAddress, budgetId: 0n } },
          zeroAddress,
        ],
      }),
    );
    const agentId = await client.readContract({ address: marketplace, abi: agentMarketplaceAbi, functionName: "agentCount" });
    const response = await fetch(`${running.relayer.url}/agents/${agentId}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: "hello?" }),
    });
    assert.equal(response.status, 502);
    assert.equal(response.headers.get("payment-required"), null, "no payment is asked for");
    const { error } = (await response.json()) as { error: { code: string; message: string } };
    assert.equal(error.code, "agent_endpoint_refused");
    assert.match(error.message, /it has a fragment \(#\); no payment was settled/);
  });
});
