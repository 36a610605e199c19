/**
 * Agents sold per call over x402, end to end: the official `@x402/fetch` client with a viem account
 * pays the seeded demo agent's URL on the relayer with no custom code; the payment is settled
 * through the marketplace only when the agent answers, and split by the listing's flow of funds.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { decodePaymentRequiredHeader, decodePaymentResponseHeader } from "@x402/core/http";
import { toClientEvmSigner } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { createPublicClient, createWalletClient, http, zeroAddress, type Address, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { agentMarketplaceAbi, computeEscrowAbi, mockUSDCAbi, splitsLedgerAbi } from "../../sdk/src/index.ts";
import { freePort, startLocalStack, type RunningStack } from "../../scripts/lib/local-stack.ts";

describe("agents over x402 end to end", { timeout: 180_000 }, () => {
  let running: RunningStack;
  let client: ReturnType<typeof createPublicClient>;
  let payingFetch: typeof fetch;
  const payer = () => privateKeyToAccount(running.stack.accounts.creator.privateKey);
  const usdcBalance = (account: Address) =>
    client.readContract({ address: running.stack.usdc, abi: mockUSDCAbi, functionName: "balanceOf", args: [account] });
  const ledgerBalance = (account: Address) =>
    client.readContract({ address: running.stack.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "balanceOf", args: [account] });
  const wallet = (role: "agentAuthor" | "creator") =>
    createWalletClient({ chain: hardhat, transport: http(running.stack.rpcUrl), account: privateKeyToAccount(running.stack.accounts[role].privateKey) });
  const confirm = async (hash: Hex) => assert.equal((await client.waitForTransactionReceipt({ hash })).status, "success");

  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "agentmesh-agents-"));
    running = await startLocalStack({
      localFile: path.join(dir, "local.json"),
      settlement: { maxAgeMs: 3_600_000, pollMs: 60_000 },
      healthProbeIntervalMs: 3_600_000,
      payoutIntervalMs: 3_600_000, // distributions only when a test asks
    });
    client = createPublicClient({ chain: hardhat, transport: http(running.stack.rpcUrl) });
    // The official client, as any x402 buyer sets it up; the local USDC is opted in by address.
    const x402 = x402Client.fromConfig({
      schemes: [{ network: "eip155:31337", client: new ExactEvmScheme(toClientEvmSigner(payer(), client)) }],
      spendControls: { allowedAssets: [{ network: "eip155:31337", asset: running.stack.usdc }] },
    });
    payingFetch = wrapFetchWithPayment(fetch, x402);
  });

  after(async () => {
    await running?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("answers an unpaid call with 402 and the payment requirements", async () => {
    const { demoAgent } = running.stack;
    // The stack file's payment address is the one the marketplace stored (salted by the owner, not derived from the id).
    const stored = await client.readContract({
      address: running.stack.contracts.AgentMarketplace!,
      abi: agentMarketplaceAbi,
      functionName: "paymentAddressOf",
      args: [BigInt(demoAgent.id)],
    });
    assert.equal(demoAgent.paymentAddress, stored);
    const response = await fetch(demoAgent.url!, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: "hi" }) });
    assert.equal(response.status, 402);
    const required = decodePaymentRequiredHeader(response.headers.get("payment-required")!);
    assert.equal(required.x402Version, 2);
    assert.deepEqual(required.accepts, [
      {
        scheme: "exact",
        network: "eip155:31337",
        asset: running.stack.usdc,
        amount: "50000",
        payTo: demoAgent.paymentAddress,
        maxTimeoutSeconds: 300,
        extra: { name: "USD Coin", version: "2" },
      },
    ]);
    const supported = (await (await fetch(`${running.relayer.url}/x402/supported`)).json()) as { kinds: unknown[] };
    assert.deepEqual(supported.kinds, [{ x402Version: 2, scheme: "exact", network: "eip155:31337" }]);
  });

  it("is paid by the official @x402/fetch client, settles on-chain and splits by the flow of funds", async () => {
    const { demoAgent, accounts } = running.stack;
    const marketplace = running.stack.contracts.AgentMarketplace!;
    const payerBefore = await usdcBalance(payer().address);
    const pendingBefore = await ledgerBalance(marketplace);
    const response = await payingFetch(demoAgent.url!, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: "Write a haiku about payment channels." }),
    });
    assert.equal(response.status, 200, await response.clone().text());
    const answer = (await response.json()) as { output: string; model: string; cost: { amountAtomic: string } };
    assert.ok(answer.output.length > 0);
    assert.equal(answer.model, "agentmesh-small");
    assert.ok(BigInt(answer.cost.amountAtomic) > 0n, "the agent's own inference was metered");
    const settled = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    assert.equal(settled.success, true);
    assert.equal(settled.payer, payer().address);
    assert.equal((await client.getTransactionReceipt({ hash: settled.transaction as `0x${string}` })).status, "success");
    assert.equal(payerBefore - (await usdcBalance(payer().address)), 50_000n);
    // The payment went through the payment address into the marketplace's ledger balance at once.
    assert.equal(await usdcBalance(demoAgent.paymentAddress), 0n);
    assert.equal((await ledgerBalance(marketplace)) - pendingBefore, 50_000n);

    // Distribution: 10,000 to the author; 1% + 1% referral rewards go to the platform (no referrers);
    // 20% of the 39,000 left tops up the demo budget; the platform keeps the remainder.
    const budget = () =>
      client.readContract({ address: running.stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getBudget", args: [BigInt(running.stack.budgetId)] });
    const [authorBefore, treasuryBefore, budgetBefore] = [await ledgerBalance(accounts.agentAuthor.address), await ledgerBalance(accounts.treasury.address), await budget()];
    const sent = await running.relayer.payouts!.distributeAll();
    assert.deepEqual([...sent.agents.keys()], [demoAgent.id]);
    assert.equal(sent.splits.size, 0, "the demo flow pays no split");
    assert.equal((await ledgerBalance(accounts.agentAuthor.address)) - authorBefore, 10_000n);
    assert.equal((await budget()).available - budgetBefore.available, 7_800n);
    assert.equal((await ledgerBalance(accounts.treasury.address)) - treasuryBefore, 32_200n);
    assert.equal(await ledgerBalance(marketplace), pendingBefore);
    assert.equal((await running.relayer.payouts!.distributeAll()).agents.size, 0, "nothing left to distribute");
  });

  it("settles nothing when the payment is malformed or the agent fails", async () => {
    const { demoAgent, accounts } = running.stack;
    const payerBefore = await usdcBalance(payer().address);
    const garbage = await fetch(demoAgent.url!, {
      method: "POST",
      headers: { "content-type": "application/json", "payment-signature": "bm90IGEgcGF5bWVudA==" },
      body: JSON.stringify({ input: "hi" }),
    });
    assert.equal(garbage.status, 402);
    assert.equal(decodePaymentRequiredHeader(garbage.headers.get("payment-required")!).error, "invalid_payment");

    // An agent whose endpoint is down: the signed payment is verified, the call fails, no USDC moves.
    const hash = await wallet("agentAuthor").writeContract({
      address: running.stack.contracts.AgentMarketplace!,
      abi: agentMarketplaceAbi,
      functionName: "list",
      args: [
        { name: "Offline agent", metadataURI: "", endpoint: `http://127.0.0.1:${await freePort()}/` },
        20_000n,
        { fixedAmounts: [], shares: [], payerReferrerShare: 0, payeeReferrerShare: 0, remainder: { kind: 0, account: zeroAddress, budgetId: 0n } },
        zeroAddress,
      ],
    });
    await client.waitForTransactionReceipt({ hash });
    const offlineId = await client.readContract({ address: running.stack.contracts.AgentMarketplace!, abi: agentMarketplaceAbi, functionName: "agentCount" });
    const failed = await payingFetch(`${running.relayer.url}/agents/${offlineId}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: "anyone home?" }),
    });
    assert.equal(failed.status, 502);
    assert.equal(((await failed.json()) as { error: { code: string } }).error.code, "agent_unreachable");
    assert.equal(await usdcBalance(payer().address), payerBefore);
    const unknown = await fetch(`${running.relayer.url}/agents/999`, { method: "POST", body: "{}" });
    assert.equal(unknown.status, 404);
  });

  it("distributes the splits an agent's payout credits, so each of their recipients is paid", async () => {
    const { contracts, demoAgent } = running.stack;
    const [ledger, marketplace] = [contracts.SplitsLedger, contracts.AgentMarketplace!];
    const [a, b, c, d] = Array.from({ length: 4 }, () => privateKeyToAccount(generatePrivateKey()).address);
    /** A split paying `first` 60% and `rest` the remainder. */
    const createSplit = async (first: Address, rest: Address) => {
      const definition = { recipients: [{ account: first, share: 600_000 }], remainderRecipient: rest };
      await confirm(await wallet("agentAuthor").writeContract({ address: ledger, abi: splitsLedgerAbi, functionName: "createSplit", args: [definition] }));
      return client.readContract({ address: ledger, abi: splitsLedgerAbi, functionName: "predictSplitAddress", args: [definition] });
    };
    const [contributors, referrers] = [await createSplit(a, b), await createSplit(c, d)];
    // 0.02 USDC a call: 10% to the payer's referrer, the rest to the contributors' split.
    await confirm(
      await wallet("agentAuthor").writeContract({
        address: marketplace,
        abi: agentMarketplaceAbi,
        functionName: "list",
        args: [
          { name: "Split-paid agent", metadataURI: "", endpoint: demoAgent.endpoint },
          20_000n,
          {
            fixedAmounts: [],
            shares: [{ recipient: { kind: 1, account: contributors, budgetId: 0n }, share: 1_000_000 }],
            payerReferrerShare: 100_000,
            payeeReferrerShare: 0,
            remainder: { kind: 0, account: zeroAddress, budgetId: 0n },
          },
          zeroAddress,
        ],
      }),
    );
    const agentId = await client.readContract({ address: marketplace, abi: agentMarketplaceAbi, functionName: "agentCount" });
    await confirm(await wallet("creator").writeContract({ address: marketplace, abi: agentMarketplaceAbi, functionName: "setReferrer", args: [referrers] }));

    const response = await payingFetch(`${running.relayer.url}/agents/${agentId}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: "Who gets paid?" }),
    });
    assert.equal(response.status, 200, await response.clone().text());
    const sent = await running.relayer.payouts!.distributeAll();
    assert.deepEqual([...sent.agents.keys()], [Number(agentId)]);
    assert.deepEqual(new Set(sent.splits.keys()), new Set([contributors, referrers]));
    // 18,000 through the contributors' split (60% / 40%), the 2,000 referral reward through the referrer's.
    assert.deepEqual(
      await Promise.all([a, b, c, d, contributors, referrers].map(ledgerBalance)),
      [10_800n, 7_200n, 1_200n, 800n, 0n, 0n],
    );
    const again = await running.relayer.payouts!.distributeAll();
    assert.deepEqual([again.agents.size, again.splits.size], [0, 0], "nothing left to distribute");

    // USDC sent straight to the payment address (no payer, so no referrer) is paid out as one more call.
    const paymentAddress = await client.readContract({ address: marketplace, abi: agentMarketplaceAbi, functionName: "paymentAddressOf", args: [agentId] });
    await confirm(await wallet("creator").writeContract({ address: running.stack.usdc, abi: mockUSDCAbi, functionName: "transfer", args: [paymentAddress, 20_000n] }));
    const direct = await running.relayer.payouts!.distributeAll();
    assert.deepEqual([[...direct.agents.keys()], [...direct.splits.keys()]], [[Number(agentId)], [contributors]]);
    assert.deepEqual(await Promise.all([a, b, c, d, contributors].map(ledgerBalance)), [21_600n, 14_400n, 1_200n, 800n, 0n]);
  });
});
