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
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { decodePaymentRequiredHeader, decodePaymentResponseHeader, encodePaymentSignatureHeader } from "@x402/core/http";
import { toClientEvmSigner } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { createPublicClient, createWalletClient, http, zeroAddress, type Address, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { agentMarketplaceAbi, computeEscrowAbi, mockUSDCAbi, splitsLedgerAbi } from "../../sdk/src/index.ts";
import { freePort, startLocalStack, type RunningStack } from "../../scripts/lib/local-stack.ts";
import { startRelayer, type Relayer } from "../../relayer/src/server.ts";
import { PayoutWorker } from "../../relayer/src/marketplace.ts";
import { openSqlite } from "../../relayer/src/store/sqlite.ts";
import { PayoutLogs } from "../../relayer/src/store/agent-payments.ts";
import { Repository } from "../../relayer/src/store/repository.ts";

describe("agents over x402 end to end", { timeout: 180_000 }, () => {
  let running: RunningStack;
  let client: ReturnType<typeof createPublicClient>;
  let payingFetch: typeof fetch;
  let x402: x402Client;
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
    x402 = x402Client.fromConfig({
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

  // ---- One run per payment (issue 12 item 6), payouts from a cursor (item 12) ----------------------

  /** An agent endpoint on 127.0.0.1 that counts its runs; a `flood` agent streams its answer without end. */
  async function startTestAgent(mode: "echo" | "flood", beforeAnswer?: () => Promise<void>) {
    const state = { runs: 0, sentBytes: 0 };
    let hungUp!: () => void;
    /** Resolves when the flood agent's answer ends: cut off by the relayer, or all written. */
    const floodEnded = new Promise<void>((resolve) => (hungUp = resolve));
    const server: Server = createServer((req, res) => {
      state.runs++;
      if (mode === "flood") {
        res.writeHead(200, { "content-type": "application/json" });
        const chunk = Buffer.alloc(64 * 1024, "a");
        const write = () => {
          while (!res.destroyed && state.sentBytes < 256 * 1024 * 1024) {
            state.sentBytes += chunk.length;
            if (!res.write(chunk)) return; // wait for "drain"
          }
          res.end();
        };
        res.on("drain", write);
        res.on("close", () => hungUp());
        write();
        return;
      }
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", async () => {
        await beforeAnswer?.();
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ run: state.runs, echo: JSON.parse(Buffer.concat(chunks).toString("utf8")) }));
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as { port: number };
    return {
      state,
      floodEnded,
      endpoint: `http://127.0.0.1:${port}/`,
      close: async () => {
        server.closeAllConnections();
        server.close();
        await once(server, "close");
      },
    };
  }

  /** Lists an agent at `endpoint` for 0.02 USDC a call paid to its author; its id. */
  async function listAgent(name: string, endpoint: string): Promise<bigint> {
    const marketplace = running.stack.contracts.AgentMarketplace!;
    const noFlow = { fixedAmounts: [], shares: [], payerReferrerShare: 0, payeeReferrerShare: 0, remainder: { kind: 0, account: zeroAddress, budgetId: 0n } };
    await confirm(
      await wallet("agentAuthor").writeContract({ address: marketplace, abi: agentMarketplaceAbi, functionName: "list", args: [{ name, metadataURI: "", endpoint }, 20_000n, noFlow, zeroAddress] }),
    );
    return client.readContract({ address: marketplace, abi: agentMarketplaceAbi, functionName: "agentCount" });
  }

  /** One signed payment for `url` (what @x402/fetch would send after the 402), with its requirements. */
  async function signPayment(url: string, buyer: x402Client = x402) {
    const unpaid = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(unpaid.status, 402, await unpaid.clone().text());
    const required = decodePaymentRequiredHeader(unpaid.headers.get("payment-required")!);
    const payload = await buyer.createPaymentPayload(required);
    return { payload, requirements: required.accepts[0], header: encodePaymentSignatureHeader(payload) };
  }

  const paidCall = (url: string, header: string, body: unknown) =>
    fetch(url, { method: "POST", headers: { "content-type": "application/json", "payment-signature": header }, body: JSON.stringify(body) });

  /** Transactions the relayer's gas account has sent (its pending nonce). */
  const relayerNonce = () => client.getTransactionCount({ address: running.stack.accounts.relayer.address, blockTag: "pending" });

  it("runs the agent once for four concurrent calls with one payment, settles once, and answers all four the same", async () => {
    const agent = await startTestAgent("echo");
    try {
      const url = `${running.relayer.url}/agents/${await listAgent("Counting agent", agent.endpoint)}`;
      const { header } = await signPayment(url);
      const [payerBefore, nonceBefore] = [await usdcBalance(payer().address), await relayerNonce()];
      const responses = await Promise.all(Array.from({ length: 4 }, () => paidCall(url, header, { input: "once" })));
      const bodies = await Promise.all(responses.map((response) => response.text()));
      assert.deepEqual(responses.map((response) => response.status), [200, 200, 200, 200], bodies.join("\n"));
      assert.equal(agent.state.runs, 1, "the agent ran once");
      assert.deepEqual(new Set(bodies), new Set([JSON.stringify({ run: 1, echo: { input: "once" } })]));
      const transactions = new Set(responses.map((response) => decodePaymentResponseHeader(response.headers.get("payment-response")!).transaction));
      assert.equal(transactions.size, 1, "one settlement");
      assert.equal((await relayerNonce()) - nonceBefore, 1, "one transaction from the relayer's gas account");
      assert.equal(payerBefore - (await usdcBalance(payer().address)), 20_000n, "charged once");

      // A retry after a lost response gets the same answer, with no run and no transaction.
      const retry = await paidCall(url, header, { input: "once" });
      assert.equal(retry.status, 200);
      assert.equal(await retry.text(), bodies[0]);
      assert.equal(decodePaymentResponseHeader(retry.headers.get("payment-response")!).transaction, [...transactions][0]);
      // The same payment for another request is refused: it paid for one call.
      const other = await paidCall(url, header, { input: "something else" });
      assert.equal(other.status, 409);
      assert.equal(((await other.json()) as { error: { code: string } }).error.code, "payment_already_used");
      assert.equal(agent.state.runs, 1);
      assert.equal((await relayerNonce()) - nonceBefore, 1);
      assert.equal(payerBefore - (await usdcBalance(payer().address)), 20_000n);

      // Paused by its owner, the agent takes no new payment, but the paid answer is still served.
      const agentId = BigInt(url.split("/").at(-1)!);
      await confirm(await wallet("agentAuthor").writeContract({ address: running.stack.contracts.AgentMarketplace!, abi: agentMarketplaceAbi, functionName: "pause", args: [agentId] }));
      await new Promise((resolve) => setTimeout(resolve, 2_100)); // outlasts the relayer's 2 s listing cache
      const unpaid = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      assert.equal(unpaid.status, 409);
      assert.equal(((await unpaid.json()) as { error: { code: string } }).error.code, "agent_paused");
      const paidBefore = await paidCall(url, header, { input: "once" });
      assert.equal(paidBefore.status, 200);
      assert.equal(await paidBefore.text(), bodies[0]);
      assert.equal(agent.state.runs, 1);
    } finally {
      await agent.close();
    }
  });

  it("sends one transaction for concurrent /x402/settle calls of one authorization", async () => {
    const agent = await startTestAgent("echo");
    try {
      const url = `${running.relayer.url}/agents/${await listAgent("Facilitated agent", agent.endpoint)}`;
      const { payload, requirements } = await signPayment(url);
      const [payerBefore, nonceBefore] = [await usdcBalance(payer().address), await relayerNonce()];
      const settle = () =>
        fetch(`${running.relayer.url}/x402/settle`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ x402Version: 2, paymentPayload: payload, paymentRequirements: requirements }),
        }).then(async (response) => ({ status: response.status, body: (await response.json()) as { success: boolean; transaction: string; errorReason?: string } }));
      const results = await Promise.all(Array.from({ length: 4 }, settle));
      assert.deepEqual(results.map((result) => [result.status, result.body.success]), Array(4).fill([200, true]), JSON.stringify(results));
      assert.equal(new Set(results.map((result) => result.body.transaction)).size, 1);
      assert.equal((await relayerNonce()) - nonceBefore, 1, "one transaction from the relayer's gas account, none reverted");
      assert.equal(payerBefore - (await usdcBalance(payer().address)), 20_000n);
      // Settling it again answers the same transaction and sends nothing.
      const again = await settle();
      assert.deepEqual([again.body.success, again.body.transaction], [true, results[0].body.transaction]);
      assert.equal((await relayerNonce()) - nonceBefore, 1);
      // It paid for nothing here, so it buys no call either.
      const call = await paidCall(url, encodePaymentSignatureHeader(payload), {});
      assert.equal(call.status, 409);
      assert.equal(((await call.json()) as { error: { code: string } }).error.code, "payment_already_used");
      assert.equal(agent.state.runs, 0);
    } finally {
      await agent.close();
    }
  });

  it("answers payment_pending, never 402, when the transfer outlasts the settlement timeout, and serves the answer once it mines", async () => {
    const { stack } = running;
    const agent = await startTestAgent("echo");
    // A second relayer with its own gas account: the transaction manager owns its account's nonces,
    // so sharing the stack relayer's key would make their transactions collide (anyone may submit
    // payWithAuthorization).
    const gasKey = generatePrivateKey();
    const gas = privateKeyToAccount(gasKey);
    await client.request({ method: "hardhat_setBalance" as never, params: [gas.address, "0xde0b6b3a7640000"] as never });
    const gasNonce = (blockTag: "pending" | "latest") => client.getTransactionCount({ address: gas.address, blockTag });
    // A relayer that waits 300 ms for a transfer to mine; the chain mines nothing until told.
    const relayer: Relayer = await startRelayer({
      port: 0,
      databasePath: path.join(dir, "short-timeout.db"),
      chain: {
        rpcUrl: stack.rpcUrl,
        chainId: stack.chainId,
        escrow: stack.contracts.ComputeEscrow,
        registry: stack.contracts.ProviderRegistry,
        marketplace: stack.contracts.AgentMarketplace,
        relayerPrivateKey: gasKey,
      },
      receiptSignerKeys: [],
      limits: { x402SettleTimeoutMs: 300 },
      settlement: { maxAgeMs: 3_600_000, pollMs: 60_000 },
      healthProbeIntervalMs: 3_600_000,
      payoutIntervalMs: 3_600_000,
      indexer: { startBlock: stack.startBlock },
    });
    const rpc = (method: string, params: unknown[] = []) => client.request({ method: method as never, params: params as never });
    try {
      // startRelayer returns at once; calls are refused with 503 relayer_not_ready until it has caught up.
      await relayer.ready;
      const url = `${relayer.url}/agents/${await listAgent("Slowly settled agent", agent.endpoint)}`;
      const { header, payload } = await signPayment(url);
      const payerBefore = await usdcBalance(payer().address);
      await rpc("evm_setAutomine", [false]);
      let transaction: string;
      try {
        const first = await paidCall(url, header, { input: "pending" });
        assert.equal(first.status, 409, await first.clone().text());
        assert.equal(first.headers.get("payment-required"), null, "not a 402: the payer must not pay again");
        assert.equal(first.headers.get("retry-after"), "2");
        const error = ((await first.json()) as { error: { code: string; message: string } }).error;
        assert.equal(error.code, "payment_pending");
        transaction = /0x[0-9a-f]{64}/.exec(error.message)![0];
        // Retrying while the transfer is still in the mempool: still pending, no second run, no second transfer.
        const second = await paidCall(url, header, { input: "pending" });
        assert.equal(second.status, 409);
        assert.equal(((await second.json()) as { error: { code: string } }).error.code, "payment_pending");
        assert.equal(await usdcBalance(payer().address), payerBefore);
        const sent = (await gasNonce("pending")) - (await gasNonce("latest"));
        assert.equal(sent, 1, "one transfer waits in the mempool");
        await rpc("evm_mine");
      } finally {
        await rpc("evm_setAutomine", [true]);
      }
      // The reconciler sees it mined, without the payer's help.
      await relayer.context.x402!.reconcileAll();
      const authorization = (payload.payload as { authorization: { nonce: string } }).authorization;
      const stored = await relayer.context.repo.database.get("SELECT state, tx_hash FROM x402_payments WHERE nonce = ?", [authorization.nonce.toLowerCase()]);
      assert.deepEqual({ ...stored }, { state: "settled", tx_hash: transaction });
      // The payer's retry with the same payment gets the answer of the one run, and the transfer that paid for it.
      const served = await paidCall(url, header, { input: "pending" });
      assert.equal(served.status, 200);
      assert.deepEqual(await served.json(), { run: 1, echo: { input: "pending" } });
      assert.equal(decodePaymentResponseHeader(served.headers.get("payment-response")!).transaction, transaction);
      assert.equal(agent.state.runs, 1);
      assert.equal(payerBefore - (await usdcBalance(payer().address)), 20_000n);
    } finally {
      await relayer.close();
      await agent.close();
    }
  });

  it("charges nothing when a payment cannot settle after the agent answered, and settles its retry without a second run", async () => {
    const { stack } = running;
    const holder = privateKeyToAccount(generatePrivateKey());
    const holderWallet = createWalletClient({ chain: hardhat, transport: http(stack.rpcUrl), account: holder });
    await client.request({ method: "hardhat_setBalance" as never, params: [holder.address, "0xde0b6b3a7640000"] as never });
    const fund = async () => confirm(await wallet("creator").writeContract({ address: stack.usdc, abi: mockUSDCAbi, functionName: "transfer", args: [holder.address, 20_000n] }));
    await fund();
    const buyer = x402Client.fromConfig({
      schemes: [{ network: "eip155:31337", client: new ExactEvmScheme(toClientEvmSigner(holder, client)) }],
      spendControls: { allowedAssets: [{ network: "eip155:31337", asset: stack.usdc }] },
    });
    // While the agent works, the payer spends the USDC its payment authorizes (once).
    let spendAway = true;
    const agent = await startTestAgent("echo", async () => {
      if (!spendAway) return;
      spendAway = false;
      await confirm(await holderWallet.writeContract({ address: stack.usdc, abi: mockUSDCAbi, functionName: "transfer", args: [payer().address, 20_000n] }));
    });
    try {
      const url = `${running.relayer.url}/agents/${await listAgent("Answered but unpaid agent", agent.endpoint)}`;
      const { header } = await signPayment(url, buyer);
      const nonceBefore = await relayerNonce();
      const refused = await paidCall(url, header, { input: "pay later" });
      assert.equal(refused.status, 402, await refused.clone().text());
      assert.equal(((await refused.json()) as { error: { code: string } }).error.code, "settlement_failed");
      assert.equal(decodePaymentRequiredHeader(refused.headers.get("payment-required")!).error, "settlement_failed");
      assert.equal(await relayerNonce(), nonceBefore, "simulated, refused, nothing sent");
      assert.equal(agent.state.runs, 1);

      // Funded again, the same payment for the same request settles and gets the answer of that one run.
      await fund();
      const served = await paidCall(url, header, { input: "pay later" });
      assert.equal(served.status, 200, await served.clone().text());
      assert.deepEqual(await served.json(), { run: 1, echo: { input: "pay later" } });
      assert.equal(agent.state.runs, 1, "the agent was not run again");
      assert.equal(await usdcBalance(holder.address), 0n, "charged once");
      assert.equal((await relayerNonce()) - nonceBefore, 1);
    } finally {
      await agent.close();
    }
  });

  it("stops reading an agent's answer at 4 MiB and charges nothing", async () => {
    const agent = await startTestAgent("flood");
    try {
      const url = `${running.relayer.url}/agents/${await listAgent("Flooding agent", agent.endpoint)}`;
      const { header } = await signPayment(url);
      const [payerBefore, nonceBefore] = [await usdcBalance(payer().address), await relayerNonce()];
      const response = await paidCall(url, header, { input: "flood" });
      assert.equal(response.status, 502);
      const error = ((await response.json()) as { error: { code: string; message: string } }).error;
      assert.equal(error.code, "agent_error");
      assert.match(error.message, /larger than 4194304 bytes; the payment was not settled/);
      await agent.floodEnded;
      assert.equal(await usdcBalance(payer().address), payerBefore);
      assert.equal(await relayerNonce(), nonceBefore, "nothing was sent");
      assert.ok(agent.state.sentBytes < 256 * 1024 * 1024, `the relayer hung up (the agent wrote ${agent.state.sentBytes} bytes)`);
    } finally {
      await agent.close();
    }
  });

  it("scans each block's marketplace logs once, in bounded ranges, and resumes from its cursor after a restart", async () => {
    const { stack } = running;
    const first = await running.relayer.payouts!.distributeAll();
    const second = await running.relayer.payouts!.distributeAll();
    const cursor = (first.scanned.at(-1) ?? { toBlock: BigInt(stack.startBlock) - 1n }).toBlock;
    assert.ok(second.scanned.every((range) => range.fromBlock > cursor), `the second pass rescanned: ${JSON.stringify(second.scanned, (_, v) => (typeof v === "bigint" ? `${v}` : v))}`);
    if (second.scanned.length > 0) assert.equal(second.scanned[0].fromBlock, cursor + 1n);
    assert.deepEqual(second.rebuilt, []);

    // A payment, then a restart: the new process scans only the blocks after the stored cursor and still pays it out.
    const response = await payingFetch(stack.demoAgent.url!, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: "Pay me after a restart." }) });
    assert.equal(response.status, 200, await response.clone().text());
    const paidAt = (await client.getTransactionReceipt({ hash: decodePaymentResponseHeader(response.headers.get("payment-response")!).transaction as Hex })).blockNumber;
    const beforeRestart = await running.relayer.payouts!.distributeAll(); // reads the payment's block, distributes it
    assert.deepEqual([...beforeRestart.agents.keys()], [stack.demoAgent.id]);
    const lastScanned = beforeRestart.scanned.at(-1)!.toBlock;
    assert.ok(lastScanned >= paidAt);
    // USDC sent straight to the payment address while no pass runs, then a restart.
    await confirm(await wallet("creator").writeContract({ address: stack.usdc, abi: mockUSDCAbi, functionName: "transfer", args: [stack.demoAgent.paymentAddress, 5_000n] }));
    const restarted = await running.restartRelayer();
    const resumed = await restarted.payouts!.distributeAll();
    assert.equal(resumed.scanned[0].fromBlock, lastScanned + 1n, "resumed from the stored cursor");
    assert.deepEqual(resumed.rebuilt, [], "the stored logs were enough");
    assert.deepEqual([...resumed.agents.keys()], [stack.demoAgent.id], "paid out with the terms stored before the restart");
    const again = restarted;

    // Bounded ranges: a worker allowed 7 blocks per getLogs covers the deployment in contiguous ranges of at most 7.
    const repo = new Repository(openSqlite(":memory:"));
    try {
      const worker = new PayoutWorker(again.context.marketplace!, new PayoutLogs(repo), { startBlock: BigInt(stack.startBlock), intervalMs: 3_600_000, maxRange: 7 });
      const pass = await worker.distributeAll();
      assert.equal(pass.scanned[0].fromBlock, BigInt(stack.startBlock));
      for (const [index, range] of pass.scanned.entries()) {
        assert.ok(range.toBlock - range.fromBlock < 7n);
        if (index > 0) assert.equal(range.fromBlock, pass.scanned[index - 1].toBlock + 1n);
      }
      assert.deepEqual(pass.agents.size, 0);
      assert.deepEqual((await worker.distributeAll()).scanned.length <= 1, true);
    } finally {
      await repo.close();
    }
  });
});
