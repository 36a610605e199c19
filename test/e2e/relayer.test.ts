/**
 * End to end through the official `openai` client: the real local stack (Hardhat node, contracts,
 * reference providers, relayer on SQLite) and the agent SDK.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { createPublicClient, createWalletClient, http, type Address, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import {
  AgentSession,
  computeEscrowAbi,
  escrowDomain,
  findRelayer,
  formatUsdc,
  hashRequestMessages,
  mockUSDCAbi,
  providerRegistryAbi,
  relayerDirectoryAbi,
  relayersOnChain,
  sessionTermsTypes,
  signSessionRead,
  splitsLedgerAbi,
  toCompactSignature,
  type SessionTerms,
} from "../../sdk/src/index.ts";
import { countPromptTokens } from "../../sdk/src/tokens.ts";
import { relayerInfoSchema } from "../../sdk/src/protocol.ts";
import { freePort, startLocalStack, type RunningStack } from "../../scripts/lib/local-stack.ts";

const USDC = 1_000_000n;
const ROOT = path.resolve(import.meta.dirname, "../..");
/** JSON with bigints as decimal strings, as the SDK sends session terms. */
/** `GET /v1/sessions/{id}` as the stack's agent (a read signature; keys expire with their sessions). */
const readSession = async (relayerUrl: string, id: Hex, agentKey: Hex) =>
  (await fetch(`${relayerUrl}/v1/sessions/${id}`, { headers: { authorization: await signSessionRead(agentKey, id) } })).json();
const toJson = (value: unknown) => JSON.stringify(value, (_key, field) => (typeof field === "bigint" ? field.toString() : field));

describe("relayer end to end", { timeout: 180_000 }, () => {
  let running: RunningStack;
  let client: ReturnType<typeof createPublicClient>;

  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "agentmesh-e2e-"));
    // Settlement and health probes only when a test asks for them.
    running = await startLocalStack({
      localFile: path.join(dir, "local.json"),
      settlement: { maxAgeMs: 3_600_000, pollMs: 60_000 },
      healthProbeIntervalMs: 3_600_000, // probes only when a test asks
      // Paced like a real model, so a client can walk away in the middle of a stream.
      providerOptions: { tokensPerSecond: 400 },
    });
    client = createPublicClient({ transport: http(running.stack.rpcUrl) });
  });

  after(async () => {
    await running?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Vouchers go out with the next request or on `flushVoucher()`, never on a timer: tests see when. */
  async function openSession(providerId: number, maxSpend = 2n * USDC) {
    const { stack } = running;
    return AgentSession.open({
      relayerUrl: running.relayer.url,
      privateKey: stack.accounts.agent.privateKey,
      chainId: stack.chainId,
      escrow: stack.contracts.ComputeEscrow,
      budgetId: BigInt(stack.budgetId),
      providerId,
      model: "agentmesh-small",
      maxSpend,
      voucherFlushMs: 10 * 60_000,
    });
  }

  const escrowRead = <T>(functionName: "getSession" | "getBudget", args: readonly unknown[]) =>
    client.readContract({ address: running.stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName, args } as never) as Promise<T>;
  const ledgerBalance = (account: Address) =>
    client.readContract({ address: running.stack.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "balanceOf", args: [account] });

  /** `POST /v1/sessions` with `terms` signed by the stack's agent, as the SDK sends it. */
  async function postSession(terms: SessionTerms) {
    const agent = privateKeyToAccount(running.stack.accounts.agent.privateKey);
    const signature = await agent.signTypedData({
      domain: escrowDomain(running.stack.chainId, running.stack.contracts.ComputeEscrow),
      types: sessionTermsTypes,
      primaryType: "SessionTerms",
      message: terms,
    });
    const response = await fetch(`${running.relayer.url}/v1/sessions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: toJson({ terms, signature: toCompactSignature(signature) }),
    });
    return { status: response.status, error: ((await response.json()) as { error?: { code: string; message: string } }).error };
  }

  it("meters plain and streamed calls, settles them on-chain and closes cooperatively", async () => {
    const session = await openSession(1);
    // The terms carry the provider's receipt signer and the escrow's fee, as the chain has them.
    assert.equal(session.terms.receiptSigner, running.stack.providers[0].receiptSigner);
    assert.equal(session.terms.feeBps, 250);
    const openai = new OpenAI(session.openAIOptions());

    const completion = await openai.chat.completions.create({
      model: "agentmesh-small",
      messages: [{ role: "user", content: "Say something deterministic." }],
      max_tokens: 40,
    });
    const extended = completion as typeof completion & { cost: { amountAtomic: string; currency: string }; receipt: { sequence: number; cost: string } };
    assert.ok((completion.choices[0].message.content ?? "").length > 0);
    assert.equal(extended.cost.currency, "USDC");
    assert.equal(extended.receipt.sequence, 1);
    const usage = completion.usage!;
    const expectedFirst = (BigInt(usage.prompt_tokens) * 150n + BigInt(usage.completion_tokens) * 600n + 999n) / 1000n;
    assert.equal(BigInt(extended.cost.amountAtomic), expectedFirst > 10n ? expectedFirst : 10n);
    assert.equal((await session.state()).cumulativeCost, BigInt(extended.cost.amountAtomic));

    const stream = await openai.chat.completions.create({
      model: "agentmesh-small",
      messages: [{ role: "user", content: "Stream, please." }],
      max_tokens: 30,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finalChunk: Record<string, unknown> | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) finalChunk = chunk as unknown as Record<string, unknown>;
    }
    assert.ok(text.length > 0);
    assert.ok(finalChunk?.receipt, "the final chunk carries the receipt");
    const state = await session.state();
    assert.equal(state.sequence, 2);
    // One request per call: the first call's voucher rode on the second request; the second's
    // stays with the agent until it flushes (or makes another call).
    const signedSequence = async () =>
      ((await readSession(running.relayer.url, session.sessionId, running.stack.accounts.agent.privateKey)) as { signedSequence: number }).signedSequence;
    assert.equal(await signedSequence(), 1);
    const receipts = [extended.receipt, finalChunk!.receipt as { cost: string }];
    const total = receipts.reduce((sum, receipt) => sum + BigInt(receipt.cost), 0n);
    assert.equal(state.cumulativeCost, total);

    // Settle what is signed: the escrow records exactly the receipts' sum.
    await session.flushVoucher();
    assert.equal(await signedSequence(), 2);
    const txHash = await running.relayer.settlement.settleDue(true);
    assert.match(txHash ?? "", /^0x[0-9a-f]{64}$/);
    const onChain = await escrowRead<{ settled: bigint; sequence: number }>("getSession", [session.sessionId]);
    assert.equal(onChain.settled, total);
    assert.equal(onChain.sequence, 2);
    const earned = await ledgerBalance(running.stack.providers[0].owner);
    assert.equal(earned, total - (total * 250n) / 10_000n);
    const status = (await readSession(running.relayer.url, session.sessionId, running.stack.accounts.agent.privateKey)) as {
      receipts: { settlementTxHash: Hex | null }[];
    };
    assert.deepEqual(status.receipts.map((receipt) => receipt.settlementTxHash), [txHash, txHash]);

    // The indexer sees the session on-chain; the budget view adds the relayer's live spend.
    const budgetBefore = await escrowRead<{ available: bigint }>("getBudget", [BigInt(running.stack.budgetId)]);
    const budgetView = async () => {
      await running.relayer.indexer.catchUp();
      return (await (await fetch(`${running.relayer.url}/v1/budgets/${running.stack.budgetId}`)).json()) as {
        available: string;
        sessions: { id: Hex; settled: string; spent: string; sequence: number; finalized: boolean }[];
      };
    };
    const indexed = await budgetView();
    assert.equal(indexed.available, formatUsdc(budgetBefore.available));
    const indexedSession = indexed.sessions.find((candidate) => candidate.id === session.sessionId);
    assert.deepEqual(
      [indexedSession?.settled, indexedSession?.spent, indexedSession?.sequence, indexedSession?.finalized],
      [formatUsdc(total), formatUsdc(total), 2, false],
    );

    // Close: the unused lock returns to the budget at once.
    const closed = await session.close();
    assert.match(closed.closeTxHash, /^0x[0-9a-f]{64}$/);
    const budgetAfter = await escrowRead<{ available: bigint }>("getBudget", [BigInt(running.stack.budgetId)]);
    assert.equal(budgetAfter.available - budgetBefore.available, 2n * USDC - total);
    const finalized = await escrowRead<{ claimEnd: number }>("getSession", [session.sessionId]);
    assert.equal(finalized.claimEnd, 1);
    const afterClose = await budgetView();
    assert.equal(afterClose.sessions.find((candidate) => candidate.id === session.sessionId)?.finalized, true);
    assert.equal(afterClose.available, formatUsdc(budgetAfter.available));
  });

  it("answers bad input with OpenAI-shaped 4xx errors and changes nothing", async () => {
    const session = await openSession(2);
    const url = `${running.relayer.url}/v1/chat/completions`;
    const auth = { authorization: `Bearer ${session.apiKey}`, "content-type": "application/json" };
    const valid = { model: "agentmesh-small", messages: [{ role: "user", content: "hi" }] };
    const forged = { r: `0x${"11".repeat(32)}`, yParityAndS: `0x${"22".repeat(32)}` };
    const cases: [string, RequestInit, number, string][] = [
      ["malformed JSON", { headers: auth, body: "{not json" }, 400, "invalid_json"],
      ["empty body", { headers: auth, body: "" }, 400, "invalid_json"],
      ["unknown model", { headers: auth, body: JSON.stringify({ ...valid, model: "gpt-nonexistent" }) }, 404, "model_not_found"],
      ["no messages", { headers: auth, body: JSON.stringify({ ...valid, messages: [] }) }, 400, "invalid_request"],
      ["zero max_tokens", { headers: auth, body: JSON.stringify({ ...valid, max_tokens: 0 }) }, 400, "invalid_request"],
      ["negative max_tokens", { headers: auth, body: JSON.stringify({ ...valid, max_tokens: -5 }) }, 400, "invalid_request"],
      ["fractional max_tokens", { headers: auth, body: JSON.stringify({ ...valid, max_tokens: 1.5 }) }, 400, "invalid_request"],
      ["huge max_tokens", { headers: auth, body: JSON.stringify({ ...valid, max_tokens: 10_000_000 }) }, 400, "invalid_max_tokens"],
      ["max_tokens beyond the context", { headers: auth, body: JSON.stringify({ ...valid, max_tokens: 60_000 }) }, 400, "context_length_exceeded"],
      ["oversize body", { headers: auth, body: JSON.stringify({ ...valid, padding: "x".repeat(1_100_000) }) }, 413, "request_too_large"],
      ["missing credentials", { headers: { "content-type": "application/json" }, body: JSON.stringify(valid) }, 401, "missing_api_key"],
      ["forged credentials", { headers: { ...auth, authorization: "Bearer am_forged" }, body: JSON.stringify(valid) }, 401, "invalid_api_key"],
      [
        "voucher for another session than the key's",
        { headers: auth, body: JSON.stringify({ ...valid, sessionId: `0x${"ab".repeat(32)}`, voucher: { sequence: 1, signature: forged } }) },
        403,
        "key_not_for_session",
      ],
      [
        "voucher for a call never made",
        { headers: auth, body: JSON.stringify({ ...valid, sessionId: session.sessionId, voucher: { sequence: 1, signature: forged } }) },
        400,
        "unknown_sequence",
      ],
    ];
    await running.relayer.indexer.catchUp(); // the view also shows what the chain holds: let it settle first
    const before = await readSession(running.relayer.url, session.sessionId, running.stack.accounts.agent.privateKey);
    for (const [name, init, status, code] of cases) {
      const response = await fetch(url, { method: "POST", ...init });
      const body = (await response.json()) as { error: { code: string; message: string; type: string } };
      assert.equal(response.status, status, `${name}: ${body.error?.message}`);
      assert.equal(body.error.code, code, name);
      assert.ok(body.error.message.length > 0, name);
    }
    assert.deepEqual(await readSession(running.relayer.url, session.sessionId, running.stack.accounts.agent.privateKey), before);

    // A stale voucher: sequence 1 signed twice.
    const openai = new OpenAI(session.openAIOptions());
    await openai.chat.completions.create({ ...valid, messages: [{ role: "user", content: "one" }] } as never);
    const signed = await session.state();
    assert.equal(signed.sequence, 1);
    // A forged voucher riding on the next request: refused, nothing served, nothing stored.
    const afterOneCall = await readSession(running.relayer.url, session.sessionId, running.stack.accounts.agent.privateKey);
    const forgedRide = await fetch(url, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ ...valid, sessionId: session.sessionId, voucher: { sequence: 1, signature: forged } }),
    });
    assert.equal(forgedRide.status, 401);
    assert.equal(((await forgedRide.json()) as { error: { code: string } }).error.code, "invalid_signature");
    assert.deepEqual(await readSession(running.relayer.url, session.sessionId, running.stack.accounts.agent.privateKey), afterOneCall);
    await session.flushVoucher();
    const stale = await fetch(`${running.relayer.url}/v1/sessions/${session.sessionId}/vouchers`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sequence: 1, signature: forged }),
    });
    assert.equal(stale.status, 409);
    assert.equal(((await stale.json()) as { error: { code: string } }).error.code, "stale_voucher");
    await session.close();

    // Terms naming a receipt signer this relayer holds no key for: refused before they reach the chain.
    const foreign = await postSession({ ...session.terms, receiptSigner: privateKeyToAccount(generatePrivateKey()).address, salt: session.terms.salt + 1n });
    assert.equal(foreign.status, 400);
    assert.equal(foreign.error?.code, "unknown_receipt_signer");
  });

  it("fixes each session's fee and receipt signer when it opens: changes apply to sessions opened afterwards; a rotated-away signer's session stops serving", async () => {
    const { stack } = running;
    const wallet = (role: "admin" | "providerB") =>
      createWalletClient({ chain: hardhat, transport: http(stack.rpcUrl), account: privateKeyToAccount(stack.accounts[role].privateKey) });
    const confirm = async (hash: Hex) => assert.equal((await client.waitForTransactionReceipt({ hash })).status, "success");
    const setFee = async (feeBps: bigint) =>
      confirm(await wallet("admin").writeContract({ address: stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "setFee", args: [feeBps] }));
    /** Points provider 2's receipt signer at `signer`; the relayer's index follows. */
    const setSigner = async (signer: Address) => {
      const registry = stack.contracts.ProviderRegistry;
      const current = await client.readContract({ address: registry, abi: providerRegistryAbi, functionName: "getProvider", args: [2n] });
      const { endpoint, providerType, rateLimitPerMinute, minChargePerCall, features, payout } = current;
      const config = { endpoint, providerType, rateLimitPerMinute, minChargePerCall, features, receiptSigner: signer, payout };
      await confirm(await wallet("providerB").writeContract({ address: registry, abi: providerRegistryAbi, functionName: "updateProvider", args: [2n, config] }));
      await running.relayer.indexer.catchUp();
    };
    const ask = (session: AgentSession) =>
      new OpenAI(session.openAIOptions()).chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: "What do I pay?" }], max_tokens: 10 });
    const [signerA, signerB] = [stack.accounts.receiptSignerA.address, stack.accounts.receiptSignerB.address];

    const earlier = await openSession(2);
    assert.deepEqual([earlier.terms.feeBps, earlier.terms.receiptSigner], [250, signerB]);
    await ask(earlier);
    // The admin raises the fee; provider 2 delegates to the relayer's other signer (a signer may serve several providers).
    await setFee(500n);
    await setSigner(signerA);
    try {
      const later = await openSession(2);
      assert.deepEqual([later.terms.feeBps, later.terms.receiptSigner], [500, signerA]);
      // Terms with the old fee or the old signer no longer open: the escrow checks both against the chain.
      const staleFee = await postSession({ ...later.terms, feeBps: 250, salt: later.terms.salt + 1n });
      assert.deepEqual([staleFee.status, staleFee.error?.code], [400, "open_rejected"]);
      assert.match(staleFee.error!.message, /EscrowFeeMismatch/);
      const staleSigner = await postSession({ ...later.terms, receiptSigner: signerB, salt: later.terms.salt + 2n });
      assert.deepEqual([staleSigner.status, staleSigner.error?.code], [400, "open_rejected"]);
      assert.match(staleSigner.error!.message, /EscrowReceiptSignerMismatch/);

      // The new session is served; the earlier one, whose terms name the signer provider 2 left, no
      // longer is (it still settles and closes). The SDK checks each receipt against its session's signer.
      await ask(later);
      await assert.rejects(ask(earlier), (error: { status: number; code: string }) => error.status === 409 && error.code === "signer_rotated");
      const receiptSigners = await Promise.all(
        [earlier, later].map(async (session) => {
          const { receipts } = (await readSession(running.relayer.url, session.sessionId, running.stack.accounts.agent.privateKey)) as { receipts: { hash: Hex }[] };
          const authorization = await signSessionRead(running.stack.accounts.agent.privateKey, session.sessionId);
          const status = (await (await fetch(`${running.relayer.url}/v1/receipts/${receipts[0].hash}`, { headers: { authorization } })).json()) as { verification: { providerSignatureValid: boolean } };
          return status.verification.providerSignatureValid;
        }),
      );
      assert.deepEqual(receiptSigners, [true, true]);

      // Each pays its own fee: 2.5% for the session opened before the change, 5% after.
      const [payoutBefore, treasuryBefore] = [await ledgerBalance(stack.providers[1].owner), await ledgerBalance(stack.accounts.treasury.address)];
      const costs = [(await earlier.state()).cumulativeCost, (await later.state()).cumulativeCost];
      await earlier.close();
      await later.close();
      const fees = [(costs[0] * 250n) / 10_000n, (costs[1] * 500n) / 10_000n];
      assert.equal((await ledgerBalance(stack.providers[1].owner)) - payoutBefore, costs[0] + costs[1] - fees[0] - fees[1]);
      assert.equal((await ledgerBalance(stack.accounts.treasury.address)) - treasuryBefore, fees[0] + fees[1]);
    } finally {
      await setFee(250n);
      await setSigner(signerB);
    }
  });

  it("refuses a settlement batch larger than the escrow's MAX_BATCH at start-up, saying so", async () => {
    const maxBatch = await client.readContract({ address: running.stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "MAX_BATCH" });
    assert.equal(maxBatch, 100n);
    const database = path.join(dir, "refused.db");
    const relayer = spawn(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", "relayer/src/main.ts", "--local-file", running.localFile, "--port", "0", "--db", database, "--settle-batch", "101"],
      { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    relayer.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(relayer, "exit")) as [number | null];
    assert.equal(code, 2, stderr);
    // It listened at once (start-up no longer waits for the chain), but never became ready.
    assert.equal(stderr.trim(), "the settlement batch size (--settle-batch) must be an integer from 1 to 100, the escrow's MAX_BATCH, got 101");
  });

  it("publishes its chain, contracts, gas and receipt-signer addresses, version and settlement policy at GET /v1/relayer", async () => {
    const response = await fetch(`${running.relayer.url}/v1/relayer`);
    assert.equal(response.status, 200);
    const { stack } = running;
    assert.deepEqual(relayerInfoSchema.parse(await response.json()), {
      version: "0.1.0",
      chainId: stack.chainId,
      contracts: {
        ComputeEscrow: stack.contracts.ComputeEscrow,
        ProviderRegistry: stack.contracts.ProviderRegistry,
        AgentMarketplace: stack.contracts.AgentMarketplace,
        RelayerDirectory: stack.contracts.RelayerDirectory,
      },
      gasAddress: stack.accounts.relayer.address,
      receiptSigners: [stack.accounts.receiptSignerA.address, stack.accounts.receiptSignerB.address],
      settlement: { maxBatch: 100, maxAgeMs: 3_600_000, confirmations: 1, maxFeePerGasGwei: 50 },
    });
  });

  it("issue 13: announces its public URL in the RelayerDirectory for its receipt signers, where agents find it from the chain alone", async () => {
    const { stack } = running;
    const directory = stack.contracts.RelayerDirectory!;
    const signers = [stack.accounts.receiptSignerA.address, stack.accounts.receiptSignerB.address];
    for (const signer of signers) {
      assert.equal(await client.readContract({ address: directory, abi: relayerDirectoryAbi, functionName: "relayerUrl", args: [signer] }), running.relayer.url);
      assert.equal(await client.readContract({ address: directory, abi: relayerDirectoryAbi, functionName: "nonces", args: [signer] }), 1n, "announced once");
    }
    const candidates = await relayersOnChain(client as PublicClient, stack);
    assert.deepEqual(candidates, [{ url: running.relayer.url, signers, providerIds: stack.providers.map((provider) => provider.id) }]);
    const found = await findRelayer(client as PublicClient, stack, stack.providers[1].id);
    assert.deepEqual([found.url, found.providerIds, found.about.receiptSigners], [running.relayer.url, [stack.providers[1].id], signers]);
    // A deployment whose escrow the announced relayer does not serve finds none, and says why.
    const otherEscrow = { ...stack, contracts: { ...stack.contracts, ComputeEscrow: stack.contracts.ProviderRegistry } };
    await assert.rejects(findRelayer(client as PublicClient, otherEscrow), {
      name: "RelayerDiscoveryError",
      message: `no relayer announced for any active provider serves this deployment: ${running.relayer.url} serves the escrow ${stack.contracts.ComputeEscrow} on chain 31337, not this deployment's ${stack.contracts.ProviderRegistry} on chain 31337`,
    });
    await assert.rejects(findRelayer(client as PublicClient, stack, 99), { name: "RelayerDiscoveryError", message: "provider 99 is not registered" });
  });

  it("keeps the local chain's clock with the wall clock while it mines a block per transaction", async () => {
    // Agents set session deadlines by the wall clock. Were each block a second after the last, a few
    // transactions a second would run the chain's clock ahead (an hour into a soak) and end sessions early.
    const wallet = createWalletClient({ chain: hardhat, transport: http(running.stack.rpcUrl), account: privateKeyToAccount(running.stack.accounts.treasury.privateKey) });
    for (let sent = 0; sent < 30; sent++) await client.waitForTransactionReceipt({ hash: await wallet.sendTransaction({ to: wallet.account.address, value: 0n }) });
    const head = await client.getBlock();
    const aheadSeconds = Number(head.timestamp) - Math.floor(Date.now() / 1000);
    assert.ok(aheadSeconds <= 2, `the chain's clock is ${aheadSeconds} s ahead of the wall clock after 30 blocks`);
  });

  it("loses no voucher and settles nothing twice across a relayer restart", async () => {
    const session = await openSession(1);
    const openai = new OpenAI(session.openAIOptions());
    const ask = (content: string) => openai.chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content }], max_tokens: 20 });
    await ask("before the crash");
    const afterFirst = await session.state();
    await session.flushVoucher();

    // The relayer sends a settlement and dies before seeing it confirmed.
    const { context } = running.relayer;
    const record = (await context.repo.receiptAt(session.sessionId, 1))!;
    const settlementId = await context.repo.insertSettlement("settle", [{ sessionId: session.sessionId, sequence: 1 }], context.chain.account.address);
    assert.ok(settlementId !== undefined, "no other settlement holds the session");
    const request = await context.chain.prepareSettlement("settle", [
      { voucher: { terms: session.terms, ...record.state }, agentSignature: record.agentSignature!, providerSignature: record.providerSignature },
    ]);
    const sent = await context.chain.transactions.send("settle", request, (tx, repo) => repo.linkSettlementTx(settlementId, tx.id, tx.hash, tx.nonce));
    const relayer = await running.restartRelayer();

    // On restart it reconciles the pending settlement instead of posting the voucher again.
    const reconciled = (await relayer.context.repo.getSession(session.sessionId))!;
    assert.equal(reconciled.settledSequence, 1);
    assert.equal((await relayer.context.repo.receiptAt(session.sessionId, 1))!.settlementTx, sent.hash);
    assert.equal(await relayer.settlement.settleDue(true), undefined, "nothing left to settle");

    // The session carries on with the same key after the restart.
    await ask("after the restart");
    const afterSecond = await session.state();
    assert.equal(afterSecond.sequence, 2);
    await session.flushVoucher();
    await relayer.settlement.settleDue(true);
    const onChain = await escrowRead<{ settled: bigint }>("getSession", [session.sessionId]);
    assert.equal(onChain.settled, afterSecond.cumulativeCost);
    assert.ok(afterSecond.cumulativeCost > afterFirst.cumulativeCost);
    await session.close();
  });

  it("bills an abandoned stream for what it produced; the agent signs it before its next call", async () => {
    const session = await openSession(2);
    const openai = new OpenAI(session.openAIOptions());
    const stream = await openai.chat.completions.create({
      model: "agentmesh-small",
      messages: [{ role: "user", content: "A long answer, please." }],
      max_tokens: 400,
      stream: true,
    });
    let received = "";
    for await (const chunk of stream) {
      received += chunk.choices[0]?.delta?.content ?? "";
      if (received.length > 0) break; // walk away after the first words
    }
    // The next call finds the abandoned call's voucher unsigned; the SDK fetches, checks and signs it.
    await openai.chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: "short" }], max_tokens: 5 });
    const state = await session.state();
    assert.equal(state.sequence, 2);
    const status = (await readSession(running.relayer.url, session.sessionId, running.stack.accounts.agent.privateKey)) as {
      receipts: { outputTokens: number; cost: string }[];
    };
    const abandoned = status.receipts[0];
    assert.ok(abandoned.outputTokens > 0 && abandoned.outputTokens < 400, `billed ${abandoned.outputTokens} of 400 tokens`);
    assert.equal(state.cumulativeCost, BigInt(abandoned.cost) + BigInt(status.receipts[1].cost));
    await session.close();
  });

  it("charges nothing for a provider that fails; a session's key never falls back to another session", async () => {
    const first = await openSession(1);
    const second = await openSession(2);
    const uptime = async (id: number) =>
      ((await (await fetch(`${running.relayer.url}/v1/providers/${id}`)).json()) as { metrics: { uptimeScore: number | null } }).metrics.uptimeScore;
    await running.relayer.health.probeAll();
    await running.providers[0].close(); // provider 1 goes down (for the rest of this suite)
    await running.relayer.health.probeAll();
    assert.equal(await uptime(1), 0.5, "one of two probes answered");
    assert.equal(await uptime(2), 1);
    const request = (allowFallbacks: boolean) =>
      fetch(`${running.relayer.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${first.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: "agentmesh-small",
          messages: [{ role: "user", content: "anyone there?" }],
          max_tokens: 10,
          provider: { order: [1, 2], allow_fallbacks: allowFallbacks },
        }),
      });
    // The key opens `first` only: the relayer does not move the call to `second`, whose SDK session
    // made no such call and would refuse to sign its receipt (issue 12 item 7). Falling back is the
    // client's, with its other session's key (the agent proxy does so).
    for (const allowFallbacks of [false, true]) {
      const refused = await request(allowFallbacks);
      assert.equal(refused.status, 502);
      assert.equal(((await refused.json()) as { error: { code: string } }).error.code, "upstream_error");
    }
    const sequenceOf = async (id: Hex) =>
      ((await readSession(running.relayer.url, id, running.stack.accounts.agent.privateKey)) as { state: { sequence: number } }).state.sequence;
    assert.equal(await sequenceOf(first.sessionId), 0, "the failed provider billed nothing");
    assert.equal(await sequenceOf(second.sessionId), 0, "nothing was served from another session");
    assert.equal(Number((await second.close()).settled), 0);
  });

  it("the agent proxy serves every listed model to a plain OpenAI client, with the proxy's token as API key", async () => {
    const openai = new OpenAI({ baseURL: running.stack.agentProxyUrl, apiKey: running.proxy.token });
    const models = await openai.models.list();
    const names = models.data.map((model) => model.id).sort();
    assert.deepEqual(names, ["agentmesh-large", "agentmesh-small"]);
    for (const model of names) {
      const reply = await openai.chat.completions.create({ model, messages: [{ role: "user", content: `hello ${model}` }], max_tokens: 12 });
      assert.ok((reply.choices[0].message.content ?? "").length > 0, model);
      assert.equal((reply as unknown as { receipt: { model: string } }).receipt.model, model);
      const stream = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "stream" }], max_tokens: 12, stream: true });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
      assert.ok(text.length > 0, `${model} streamed`);
    }
    // Tools pass through to a provider that supports them.
    const withTool = await openai.chat.completions.create({
      model: "agentmesh-small",
      messages: [{ role: "user", content: "What is the weather in Lisbon?" }],
      tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }],
      tool_choice: "required",
      max_tokens: 64,
    });
    assert.equal(withTool.choices[0].finish_reason, "tool_calls");
    const call = withTool.choices[0].message.tool_calls?.[0];
    assert.equal(call?.type === "function" ? call.function.name : undefined, "get_weather");
    assert.ok((withTool as unknown as { receipt: { outputTokens: number } }).receipt.outputTokens > 0);
    // Both calls of each model went through one session, whose vouchers the proxy signed.
    const sessions = await running.relayer.context.repo.openSessionsFor(running.stack.accounts.agent.address, "agentmesh-large");
    assert.equal(sessions.length, 1);
    assert.equal(sessions[0].signedSequence, 2);
  });

  it("issue 13: agentmesh proxy runs from a deployment file with the agent's key from the environment, finds the relayer on-chain, and refuses a relayer of another escrow", async () => {
    const { stack } = running;
    const deployment = { chainId: stack.chainId, startBlock: stack.startBlock, usdc: stack.usdc, contracts: stack.contracts };
    const deploymentFile = path.join(dir, "deployment.json");
    await writeFile(deploymentFile, JSON.stringify(deployment));
    const env = { PATH: process.env.PATH, AGENTMESH_PRIVATE_KEY: stack.accounts.agent.privateKey, AGENTMESH_PROXY_TOKEN: "proxy-token-for-the-e2e-test" };
    const port = await freePort();
    // No --relayer: the proxy finds it from the providers' receipt signers' RelayerDirectory entries.
    const args = (file: string) => ["--disable-warning=ExperimentalWarning", "sdk/src/cli.ts", "proxy", "--deployment", file, "--rpc", stack.rpcUrl, "--budget", String(stack.budgetId), "--port", String(port), "--token-file", path.join(dir, "proxy-token")];

    const child = spawn(process.execPath, args(deploymentFile), { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, "exit") as Promise<[number | null, string | null]>;
    try {
      for (let attempt = 0; attempt < 300 && !output.includes("agent proxy on"); attempt++) await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(output.includes(`agent proxy on http://127.0.0.1:${port}/v1 (relayer ${running.relayer.url})`), output);
      assert.equal(output.includes(stack.accounts.agent.privateKey.slice(2)), false, "the key is never printed");
      const openai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: env.AGENTMESH_PROXY_TOKEN });
      const reply = await openai.chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: "hello from a deployment" }], max_tokens: 12 });
      const receipt = (reply as unknown as { receipt: { sessionId: Hex; cost: string } }).receipt;
      const session = (await running.relayer.context.repo.getSession(receipt.sessionId.toLowerCase() as Hex))!;
      assert.deepEqual([session.agent, session.terms.budgetId, session.state.cumulativeCost], [stack.accounts.agent.address, BigInt(stack.budgetId), BigInt(receipt.cost)]);
    } finally {
      child.kill("SIGTERM");
    }
    assert.deepEqual(await exited, [0, null], output);

    // A relayer whose escrow is not the deployment's is refused before anything is opened.
    const otherFile = path.join(dir, "other-escrow.json");
    await writeFile(otherFile, JSON.stringify({ ...deployment, contracts: { ...deployment.contracts, ComputeEscrow: stack.contracts.ProviderRegistry } }));
    const refused = spawn(process.execPath, args(otherFile), { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    refused.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(refused, "exit")) as [number | null];
    assert.equal(code, 2, stderr);
    assert.match(stderr, new RegExp(`serves the escrow ${stack.contracts.ComputeEscrow} on chain 31337, not this deployment's ${stack.contracts.ProviderRegistry} on chain 31337`));
  });

  it("issue 13: agentmesh agent call pays the listed price over x402 and prints the agent's answer", async () => {
    const { stack } = running;
    const deploymentFile = path.join(dir, "call-deployment.json");
    await writeFile(deploymentFile, JSON.stringify({ chainId: stack.chainId, startBlock: stack.startBlock, usdc: stack.usdc, contracts: stack.contracts }));
    const payer = stack.accounts.creator;
    const usdcOf = (address: Address) => client.readContract({ address: stack.usdc, abi: mockUSDCAbi, functionName: "balanceOf", args: [address] });
    const before = await usdcOf(payer.address);
    const run = spawn(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", "sdk/src/cli.ts", "agent", "call", String(stack.demoAgent.id), "--deployment", deploymentFile, "--rpc", stack.rpcUrl, "--relayer", running.relayer.url, "--input", "What is AgentMesh?", "--json"],
      { cwd: ROOT, env: { PATH: process.env.PATH, AGENTMESH_PRIVATE_KEY: payer.privateKey }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    run.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    run.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(run, "exit")) as [number | null];
    assert.equal(code, 0, stderr);
    const printed = JSON.parse(stdout) as { answer: { output: string }; paid: string; settlementTx: Hex };
    assert.ok(printed.answer.output.length > 0, "the agent's answer");
    assert.equal((await client.waitForTransactionReceipt({ hash: printed.settlementTx })).status, "success");
    assert.equal(before - (await usdcOf(payer.address)), BigInt(stack.demoAgent.pricePerCall), "paid exactly the listed price");
  });

  it("issue 12 items 7-8: a receipt commits to the messages as sent and counts tools, response format and images; n > 1 and unmeterable parts are refused", async () => {
    const session = await openSession(2);
    const call = (body: Record<string, unknown>) =>
      fetch(`${running.relayer.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${session.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "agentmesh-small", sessionId: session.sessionId, max_tokens: 5, ...body }),
      });
    const sequence = async () => ((await readSession(running.relayer.url, session.sessionId, running.stack.accounts.agent.privateKey)) as { state: { sequence: number } }).state.sequence;

    // Refused before anything is served or billed.
    for (const [body, code] of [
      [{ messages: [{ role: "user", content: "two, please" }], n: 2 }, "invalid_request"],
      [{ messages: [{ role: "user", content: [{ type: "input_audio", input_audio: { data: "", format: "wav" } }] }] }, "invalid_request"],
    ] as const) {
      const refused = await call(body);
      assert.equal(refused.status, 400, JSON.stringify(body));
      assert.match(((await refused.json()) as { error: { message: string } }).error.message, /n = 1|is not metered/);
    }
    assert.equal(await sequence(), 0, "nothing was billed");

    // Keys in another order than the relayer's schema: the receipt hashes them as sent, so the SDK
    // (which hashes what it sent) can check it. 13 KB of tool definitions count as what they are
    // (the old count ignored them: a few tokens for any size).
    const messages = [{ content: "What is the time?", role: "user" }];
    const parameters = { type: "object", properties: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`field_${i}`, { type: "string", description: "x ".repeat(60) }])) };
    const tools = Array.from({ length: 2 }, (_, i) => ({ type: "function", function: { name: `tool_${i}`, description: "Does a thing.", parameters } }));
    const served = await call({ messages, tools });
    assert.equal(served.status, 200);
    const { receipt } = (await served.json()) as { receipt: { inputHash: Hex; inputTokens: number; tokenMismatch: boolean } };
    assert.equal(receipt.inputHash, hashRequestMessages(messages));
    assert.equal(receipt.inputTokens, countPromptTokens({ messages, tools }));
    assert.ok(receipt.inputTokens > 5_000, `${receipt.inputTokens} input tokens`);
    assert.equal(receipt.tokenMismatch, false, "the reference provider counts the tools the same way");
  });
});
