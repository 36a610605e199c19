/**
 * Serving follows each session's state on-chain (issue 12): the relayer refuses, with a 4xx naming
 * the reason and without issuing a receipt, a call on a session that is closing or finalized, past
 * its deadline or its budget's expiry (by the chain's clock), whose provider is inactive or has
 * rotated its receipt signer; routing skips such sessions; and the settlement worker records a
 * voucher that can no longer settle as terminal instead of retrying it forever.
 *
 * Each test acts as a fresh agent (whitelisted by the budget's creator), so its routing sees only
 * its own sessions; the creator sends the on-chain requests (close, finalize) an agent could send.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { createPublicClient, createTestClient, createWalletClient, http, type Address, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import {
  AgentSession,
  RelayerError,
  computeEscrowAbi,
  formatUsdc,
  mockUSDCAbi,
  providerRegistryAbi,
  signSessionRead,
} from "../../sdk/src/index.ts";
import { startLocalStack, type RunningStack } from "../../scripts/lib/local-stack.ts";
import type { SqliteDatabase } from "../../relayer/src/store/sqlite.ts";

const USDC = 1_000_000n;
/** The escrow's challenge window on the local stack (deploy-suite's default). */
const CHALLENGE_WINDOW = 24 * 3600;

interface ErrorBody {
  error: { message: string; type: string; code: string };
}

describe("serving follows the session's on-chain state", { timeout: 300_000 }, () => {
  let running: RunningStack;
  let client: ReturnType<typeof createPublicClient>;
  let testClient: ReturnType<typeof createTestClient>;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "agentmesh-onchain-"));
    running = await startLocalStack({
      localFile: path.join(dir, "local.json"),
      // Settlement only when a test asks (retries allowed 10 ms after a failure, so a worker that
      // retried a dead voucher would show it); health probes never.
      settlement: { maxAgeMs: 3_600_000, pollMs: 3_600_000, retryBaseMs: 10 },
      healthProbeIntervalMs: 3_600_000,
    });
    client = createPublicClient({ chain: hardhat, transport: http(running.stack.rpcUrl) });
    testClient = createTestClient({ chain: hardhat, mode: "hardhat", transport: http(running.stack.rpcUrl) });
  });

  after(async () => {
    await running?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const wallet = (role: "creator" | "providerA" | "providerB") =>
    createWalletClient({ chain: hardhat, transport: http(running.stack.rpcUrl), account: privateKeyToAccount(running.stack.accounts[role].privateKey) });
  /** Waits for `hash`; its block number once it succeeded. */
  const confirm = async (hash: Hex) => {
    const receipt = await client.waitForTransactionReceipt({ hash });
    assert.equal(receipt.status, "success");
    return Number(receipt.blockNumber);
  };
  const escrowWrite = (role: "creator", functionName: string, args: readonly unknown[]) =>
    wallet(role).writeContract({ address: running.stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName, args } as never);
  const registryWrite = (role: "providerA" | "providerB", functionName: string, args: readonly unknown[]) =>
    wallet(role).writeContract({ address: running.stack.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName, args } as never);
  const onChainSession = (id: Hex) =>
    client.readContract({ address: running.stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getSession", args: [id] });
  const chainNow = async () => Number((await client.getBlock({ blockTag: "latest" })).timestamp);
  /** Moves the chain's clock on and mines a block at the new time. */
  const travel = async (seconds: number) => {
    await testClient.increaseTime({ seconds });
    await testClient.mine({ blocks: 1 });
  };
  const indexed = () => running.relayer.indexer.catchUp();

  /** A new agent key, whitelisted on `budgetId` (default: the seeded budget). */
  async function freshAgent(budgetId = BigInt(running.stack.budgetId)): Promise<Hex> {
    const key = generatePrivateKey();
    await confirm(await escrowWrite("creator", "setAgentsAllowed", [budgetId, [privateKeyToAccount(key).address], true]));
    return key;
  }

  /** Opens a session for `agentKey` whose deadline is `seconds` after the chain's current time. */
  async function openSession(agentKey: Hex, providerId: number, options: { budgetId?: bigint; seconds?: number } = {}) {
    const { stack } = running;
    const offset = (await chainNow()) - Math.floor(Date.now() / 1000); // the chain's clock runs ahead once tests move it
    return AgentSession.open({
      relayerUrl: running.relayer.url,
      privateKey: agentKey,
      chainId: stack.chainId,
      escrow: stack.contracts.ComputeEscrow,
      budgetId: options.budgetId ?? BigInt(stack.budgetId),
      providerId,
      model: "agentmesh-small",
      maxSpend: 2n * USDC,
      durationSeconds: offset + (options.seconds ?? 2 * 86_400),
      voucherFlushMs: 10 * 60_000,
    });
  }

  /** A call through the SDK (receipt checked, voucher signed and sent at once). */
  async function ask(session: AgentSession, content = "Say something.") {
    const completion = await new OpenAI(session.openAIOptions()).chat.completions.create({
      model: "agentmesh-small",
      messages: [{ role: "user", content }],
      max_tokens: 12,
    });
    await session.flushVoucher();
    return completion as typeof completion & { receipt: { sessionId: Hex; providerId: number; cost: string } };
  }

  /** A raw `POST /v1/chat/completions` with the session's key; pinned to it unless `body` says otherwise. */
  async function rawCall(session: AgentSession, body: Record<string, unknown> = { sessionId: session.sessionId }) {
    const response = await fetch(`${running.relayer.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${session.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "agentmesh-small", messages: [{ role: "user", content: "Anyone?" }], max_tokens: 8, ...body }),
    });
    return { status: response.status, body: (await response.json()) as ErrorBody & { receipt?: { sessionId: Hex; providerId: number } } };
  }

  // Read as the budgets' creator, whose signature shows any session of its budgets (keys expire with their sessions).
  const view = async (id: Hex) =>
    (await (await fetch(`${running.relayer.url}/v1/sessions/${id}`, { headers: { authorization: await signSessionRead(running.stack.accounts.creator.privateKey, id) } })).json()) as Record<string, unknown> & {
    status: string;
    receipts: unknown[];
    settledSequence: number;
    closeTxHash: Hex | null;
    settlement: { onChainSettled: string | null; onChainSequence: number | null; unsettled: { fromSequence: number; toSequence: number; amount: string; reason: string } | null };
  };
  const receiptCount = async (id: Hex) => (await running.relayer.context.repo.receiptsOf(id)).length;
  /** Every settlement the relayer recorded for session `id`: one row per attempt. */
  const attempts = (id: Hex) =>
    (running.relayer.context.repo.database as SqliteDatabase).db
      .prepare(
        `SELECT t.status, t.error FROM settlements t, json_each(t.items) i
          WHERE json_extract(i.value, '$.sessionId') = ? ORDER BY t.id`,
      )
      .all(id.toLowerCase()) as { status: string; error: string | null }[];
  const relayerNonce = () => client.getTransactionCount({ address: running.stack.accounts.relayer.address as Address });

  /** Asserts `call` is refused with `status` and `code`, and that the session is exactly as before. */
  async function assertRefused(session: AgentSession, status: number, code: string) {
    const before = await view(session.sessionId);
    const refused = await rawCall(session);
    assert.equal(refused.status, status, refused.body.error?.message);
    assert.equal(refused.body.error.code, code);
    assert.equal(refused.body.error.type, "invalid_request_error");
    assert.ok(refused.body.error.message.includes(session.sessionId), refused.body.error.message);
    assert.deepEqual(await view(session.sessionId), before, "a refused call changes nothing");
    return refused.body.error.message;
  }

  it("requestClose: a closing session is refused (409 session_closing) once its block is indexed, is no longer routed, and its voucher settles at once", async () => {
    const agentKey = await freshAgent();
    const session = await openSession(agentKey, 1);
    const first = await ask(session);
    const cost = BigInt(first.receipt.cost);

    // The creator asks to close; the indexer follows on its own (no catchUp here).
    const started = Date.now();
    const block = await confirm(await escrowWrite("creator", "requestClose", [session.terms]));
    while (((await running.relayer.context.chainIndex.lastBlock()) ?? 0) < block) {
      assert.ok(Date.now() - started < 10_000, "the indexer reached the close request's block");
      await sleep(20);
    }
    const message = await assertRefused(session, 409, "session_closing");
    assert.match(message, /close/);
    assert.equal(await receiptCount(session.sessionId), 1);
    assert.equal((await view(session.sessionId)).status, "closing");

    // Naming no session changes nothing: the key serves its own session only, refused as it is.
    const unpinned = await rawCall(session, {});
    assert.equal(unpinned.status, 409);
    assert.equal(unpinned.body.error.code, "session_closing");
    assert.equal(await receiptCount(session.sessionId), 1);

    // The challenge window is running: its last voucher is due now, not when it is maxAgeMs old.
    const nonce = await relayerNonce();
    assert.match((await running.relayer.settlement.settleDue()) ?? "", /^0x[0-9a-f]{64}$/);
    assert.equal(await relayerNonce(), nonce + 1);
    assert.equal((await onChainSession(session.sessionId)).settled, cost);

    // The agent may still close cooperatively during the window: the lock returns at once.
    const closed = await session.close();
    assert.equal(closed.settled, formatUsdc(cost));
    assert.equal((await onChainSession(session.sessionId)).claimEnd, 1);
    assert.equal((await view(session.sessionId)).status, "closed");
    await assertRefused(session, 410, "session_finalized");
  });

  it("provider deactivated: its sessions are refused (409 provider_inactive) and not routed, their vouchers still settle, and serving resumes when it reactivates", async () => {
    const agentKey = await freshAgent();
    const one = await openSession(agentKey, 1);
    const two = await openSession(agentKey, 2);
    await ask(one);
    const served = await ask(two);
    await confirm(await registryWrite("providerB", "deactivate", [2n]));
    await indexed();
    try {
      await assertRefused(two, 409, "provider_inactive");
      assert.equal(await receiptCount(two.sessionId), 1);

      // Unpinned, provider 2 first: a key serves its own session only (issue 12 item 7), so two's
      // key is refused as two is, and the agent turns to provider 1 with one's key.
      const refused = await rawCall(two, { provider: { order: [2, 1] } });
      assert.deepEqual([refused.status, refused.body.error?.code], [409, "provider_inactive"]);
      const rerouted = await rawCall(one, { provider: { order: [2, 1] } });
      assert.equal(rerouted.status, 200, rerouted.body.error?.message);
      assert.deepEqual([rerouted.body.receipt?.providerId, rerouted.body.receipt?.sessionId], [1, one.sessionId]);
      assert.equal(await receiptCount(two.sessionId), 1);
      // Provider 2 only, with one's key: one cannot serve it.
      const only = await rawCall(one, { providerId: 2 });
      assert.equal(only.status, 402);
      assert.equal(only.body.error.code, "session_required");

      // What the agent signed before still pays the provider: the escrow settles it.
      await running.relayer.settlement.settleDue(true);
      assert.equal((await onChainSession(two.sessionId)).settled, BigInt(served.receipt.cost));
    } finally {
      await confirm(await registryWrite("providerB", "reactivate", [2n]));
      await indexed();
    }
    // Read per call from the index: serving resumes with the provider.
    assert.equal((await ask(two)).receipt.sessionId, two.sessionId);
    assert.equal(await receiptCount(two.sessionId), 2);
  });

  it("signer rotation: the relayer keeps serving new sessions without a restart; a session whose terms name the old signer is refused (409 signer_rotated) but still closes", async () => {
    const { stack } = running;
    const [signerA, signerB] = [stack.accounts.receiptSignerA.address as Address, stack.accounts.receiptSignerB.address as Address];
    /** Points provider 2's receipt signer at `signer`. */
    const rotate = async (signer: Address) => {
      const registry = stack.contracts.ProviderRegistry;
      const current = await client.readContract({ address: registry, abi: providerRegistryAbi, functionName: "getProvider", args: [2n] });
      const { endpoint, providerType, rateLimitPerMinute, minChargePerCall, features, payout } = current;
      await confirm(await registryWrite("providerB", "updateProvider", [2n, { endpoint, providerType, rateLimitPerMinute, minChargePerCall, features, receiptSigner: signer, payout }]));
      await indexed();
    };
    const signatureValid = async (session: AgentSession) => {
      const { receipts } = (await view(session.sessionId)) as unknown as { receipts: { hash: Hex }[] };
      const authorization = await signSessionRead(running.stack.accounts.creator.privateKey, session.sessionId); // the budget's creator may read it
      const status = (await (await fetch(`${running.relayer.url}/v1/receipts/${receipts.at(-1)!.hash}`, { headers: { authorization } })).json()) as { verification: { providerSignatureValid: boolean } };
      return status.verification.providerSignatureValid;
    };
    /** A call through the stack's agent proxy, which keeps a session per provider and model. */
    const viaProxy = async () => {
      const proxy = new OpenAI({ baseURL: stack.agentProxyUrl, apiKey: running.proxy.token });
      const reply = await proxy.chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: "proxy" }], max_tokens: 8, providerId: 2 } as never);
      return (reply as unknown as { receipt: { sessionId: Hex } }).receipt.sessionId;
    };
    const agentKey = await freshAgent();
    const old = await openSession(agentKey, 2);
    assert.equal(old.terms.receiptSigner, signerB);
    const oldCost = BigInt((await ask(old)).receipt.cost);
    const proxied = await viaProxy();

    // Provider 2 moves to the relayer's other key.
    await rotate(signerA);
    try {
      await assertRefused(old, 409, "signer_rotated");
      assert.equal(await receiptCount(old.sessionId), 1);
      // The agent proxy closes its old-signer session and carries on with a new one, unseen by its client.
      const reproxied = await viaProxy();
      assert.notEqual(reproxied, proxied);
      assert.equal((await view(proxied)).status, "closed");
      assert.equal(((await view(reproxied)) as unknown as { terms: { receiptSigner: Address } }).terms.receiptSigner, signerA);
      const renewed = await openSession(agentKey, 2);
      assert.equal(renewed.terms.receiptSigner, signerA);
      await ask(renewed);
      assert.equal(await signatureValid(renewed), true);
      // The old session closes cooperatively, its final state co-signed by the signer its terms name.
      assert.equal((await old.close()).settled, formatUsdc(oldCost));
      assert.deepEqual([(await onChainSession(old.sessionId)).claimEnd, (await onChainSession(old.sessionId)).settled], [1, oldCost]);

      // Provider 2 moves to a key this relayer does not hold: it no longer delegates here.
      await rotate(privateKeyToAccount(generatePrivateKey()).address);
      await assertRefused(renewed, 409, "signer_rotated");
      const models = (await (await fetch(`${running.relayer.url}/v1/models`)).json()) as { data: { providers: { providerId: number }[] }[] };
      assert.deepEqual([...new Set(models.data.flatMap((model) => model.providers.map((offer) => offer.providerId)))], [1]);
      await assert.rejects(openSession(agentKey, 2), (error: RelayerError) => error.code === "unknown_receipt_signer");

      // And back to signer B: new sessions use it at once; the signer-A session stays refused.
      await rotate(signerB);
      const back = await openSession(agentKey, 2);
      assert.equal(back.terms.receiptSigner, signerB);
      await ask(back);
      assert.equal(await signatureValid(back), true);
      await assertRefused(renewed, 409, "signer_rotated");
      await renewed.close();
      await back.close();
    } finally {
      await rotate(signerB);
    }
  });

  it("budget expiry and session deadline follow the chain's clock: refused with 410 budget_expired / session_expired; a whitelist removal stops nothing", async () => {
    const creator = wallet("creator");
    const now = await chainNow();
    await confirm(await creator.writeContract({ address: running.stack.usdc, abi: mockUSDCAbi, functionName: "approve", args: [running.stack.contracts.ComputeEscrow, 20n * USDC] }));
    await confirm(await escrowWrite("creator", "createBudget", [20n * USDC, 10n * USDC, BigInt(now + 3 * 86_400), []]));
    const budgetId = (await client.readContract({ address: running.stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "budgetCount" })) as bigint;
    const agentKey = await freshAgent(budgetId);
    const session = await openSession(agentKey, 1, { budgetId, seconds: 2 * 86_400 });
    let cost = BigInt((await ask(session)).receipt.cost);

    // The creator removes the agent: its open session still settles on-chain, so it is still served.
    await confirm(await escrowWrite("creator", "setAgentsAllowed", [budgetId, [privateKeyToAccount(agentKey).address], false]));
    await indexed();
    cost += BigInt((await ask(session)).receipt.cost);

    // The creator brings the expiry forward to 10 minutes from now, before the session's deadline.
    await confirm(await escrowWrite("creator", "setBudgetTerms", [budgetId, 10n * USDC, BigInt((await chainNow()) + 600)]));
    await indexed();
    cost += BigInt((await ask(session)).receipt.cost);
    await travel(700);
    await indexed();
    await assertRefused(session, 410, "budget_expired");
    assert.equal(await receiptCount(session.sessionId), 3);
    // Calls served before the expiry are paid: the escrow settles them after it.
    await running.relayer.settlement.settleDue(true);
    assert.equal((await onChainSession(session.sessionId)).settled, cost);

    // A session's deadline, by the chain's clock (which now runs ahead of the wall clock).
    const short = await openSession(await freshAgent(), 1, { seconds: 600 });
    await ask(short);
    await travel(700);
    await indexed();
    await assertRefused(short, 410, "session_expired");
    assert.equal(await receiptCount(short.sessionId), 1);
  });

  it("requestClose → window → finalize: refused (410 session_finalized) with no receipt; the dead voucher is terminal after one attempt, and another session's voucher settles in the same pass", async () => {
    const agentKey = await freshAgent();
    const session = await openSession(agentKey, 1);
    const other = await openSession(agentKey, 2, { seconds: 5 * 86_400 });
    const firstCost = BigInt((await ask(session, "one")).receipt.cost);
    await running.relayer.settlement.settleDue(true);
    assert.equal((await onChainSession(session.sessionId)).settled, firstCost);
    await ask(session, "two"); // signed by the agent, never settled: the relayer is away during the window
    const otherCost = BigInt((await ask(other)).receipt.cost);

    // The relayer's indexer misses it all: only the escrow's answer tells the worker.
    await running.relayer.indexer.stop();
    try {
      await confirm(await escrowWrite("creator", "requestClose", [session.terms]));
      await travel(CHALLENGE_WINDOW + 1);
      const finalizeTx = await escrowWrite("creator", "finalize", [session.terms]);
      await confirm(finalizeTx);
      assert.deepEqual([(await onChainSession(session.sessionId)).claimEnd, (await onChainSession(session.sessionId)).settled], [1, firstCost]);

      // One pass: the batch of both is refused for the finalized session; the other still settles.
      const hash = await running.relayer.settlement.settleDue(true);
      assert.match(hash ?? "", /^0x[0-9a-f]{64}$/);
      assert.equal((await onChainSession(other.sessionId)).settled, otherCost);
      assert.deepEqual(
        attempts(session.sessionId).map((row) => [row.status, row.error]),
        [
          ["confirmed", null],
          ["failed", "EscrowSessionNotOpen"],
        ],
      );
      assert.deepEqual(attempts(other.sessionId).map((row) => row.status), ["failed", "confirmed"]);

      // Terminal: further passes neither retry it nor send anything.
      const nonce = await relayerNonce();
      for (let pass = 0; pass < 3; pass++) {
        await sleep(30); // past any retry delay
        assert.equal(await running.relayer.settlement.settleDue(true), undefined);
      }
      assert.equal(attempts(session.sessionId).length, 2);
      assert.equal(await relayerNonce(), nonce);

      const recorded = await view(session.sessionId);
      assert.equal(recorded.status, "closed");
      assert.equal(recorded.settledSequence, 1);
      assert.deepEqual(recorded.settlement, {
        onChainSettled: formatUsdc(firstCost),
        onChainSequence: 1,
        unsettled: {
          fromSequence: 2,
          toSequence: 2,
          amount: formatUsdc((await session.state()).cumulativeCost - firstCost),
          reason: recorded.settlement.unsettled?.reason ?? "",
        },
      });
      assert.match(recorded.settlement.unsettled!.reason, /EscrowSessionNotOpen/);
      await assertRefused(session, 410, "session_finalized");
    } finally {
      running.relayer.indexer.start();
    }
    // The indexer, back, agrees and records the finalizing transaction.
    await indexed();
    assert.equal((await view(session.sessionId)).status, "closed");
    assert.equal(await receiptCount(session.sessionId), 2);

    // Seen by the indexer first: recorded terminal with no attempt at all.
    const late = await openSession(agentKey, 1);
    const lateCost = BigInt((await ask(late)).receipt.cost);
    await confirm(await escrowWrite("creator", "requestClose", [late.terms]));
    await travel(CHALLENGE_WINDOW + 1);
    const finalized = await escrowWrite("creator", "finalize", [late.terms]);
    await confirm(finalized);
    await indexed();
    const lateView = await view(late.sessionId);
    assert.deepEqual([lateView.status, lateView.closeTxHash], ["closed", finalized]);
    assert.deepEqual(lateView.settlement.unsettled && [lateView.settlement.unsettled.fromSequence, lateView.settlement.unsettled.amount], [1, formatUsdc(lateCost)]);
    assert.equal(lateView.settlement.onChainSettled, formatUsdc(0n));
    const nonce = await relayerNonce();
    assert.equal(await running.relayer.settlement.settleDue(true), undefined);
    assert.deepEqual(attempts(late.sessionId), []);
    assert.equal(await relayerNonce(), nonce);
    await assertRefused(late, 410, "session_finalized");
    assert.equal(await receiptCount(late.sessionId), 1);
  });
});
