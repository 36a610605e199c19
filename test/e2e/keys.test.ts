/**
 * API keys, reads and limits (issue 12 items 7 and 10), on the real local stack: a key opens its
 * own session only, expires with it and can be revoked; a client that walks away mid-call leaves no
 * billed call that nobody received; `GET /v1/sessions/{id}` is authorized and paginated; provider
 * views reuse their chain reads; clients are rate limited per IP and per key.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { createPublicClient, createTestClient, createWalletClient, http, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { AgentSession, computeEscrowAbi, signSessionRead } from "../../sdk/src/index.ts";
import { ChainViewCache } from "../../relayer/src/context.ts";
import { InProcessRateLimits } from "../../relayer/src/rate-limits.ts";
import { startLocalStack, type RunningStack } from "../../scripts/lib/local-stack.ts";

const USDC = 1_000_000n;

interface ErrorBody {
  error: { code: string; message: string };
}

describe("API keys, session reads and client limits", { timeout: 240_000 }, () => {
  let running: RunningStack;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "agentmesh-keys-"));
    running = await startLocalStack({
      localFile: path.join(dir, "local.json"),
      settlement: { maxAgeMs: 3_600_000, pollMs: 3_600_000 },
      healthProbeIntervalMs: 3_600_000,
      // Paced, so that a client can walk away while a call is in flight.
      providerOptions: { firstTokenLatencyMs: 400, tokensPerSecond: 200 },
    });
  });

  after(async () => {
    await running?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** A session of the stack's agent (or `privateKey`'s); vouchers go out with the next request or on close. */
  function openSession(providerId: number, durationSeconds?: number, privateKey = running.stack.accounts.agent.privateKey) {
    const { stack } = running;
    return AgentSession.open({
      relayerUrl: running.relayer.url,
      privateKey,
      chainId: stack.chainId,
      escrow: stack.contracts.ComputeEscrow,
      budgetId: BigInt(stack.budgetId),
      providerId,
      model: "agentmesh-small",
      maxSpend: USDC,
      durationSeconds,
      voucherFlushMs: 10 * 60_000,
    });
  }

  const chat = (apiKey: string, body: Record<string, unknown>, signal?: AbortSignal) =>
    fetch(`${running.relayer.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "agentmesh-small", messages: [{ role: "user", content: "hello" }], max_tokens: 5, ...body }),
      signal,
    });
  const read = (id: Hex, authorization?: string, query = "") =>
    fetch(`${running.relayer.url}/v1/sessions/${id}${query}`, { headers: authorization === undefined ? {} : { authorization } });
  const code = async (response: Response) => ((await response.json()) as ErrorBody).error.code;
  const sequence = async (id: Hex) => (await running.relayer.context.repo.getSession(id))!.state.sequence;
  /** Sessions a call holds now (in the database, where every instance's calls hold them), lowercase ids. */
  const heldSessions = async () =>
    (await running.relayer.context.repo.database.all("SELECT id FROM sessions WHERE serving_token IS NOT NULL")).map((row) => row.id as string);
  const readSignature = (id: Hex, privateKey: Hex) => signSessionRead(privateKey, id);

  it("issue 12 item 7: a key for session A cannot call or read session B, nor fall back to it", async () => {
    const a = await openSession(1);
    const b = await openSession(2);
    const other = await chat(a.apiKey, { sessionId: b.sessionId });
    assert.equal(other.status, 403);
    assert.equal(await code(other), "key_not_for_session");
    // Routing with A's key never reaches B, even when B is the only session the preferences allow.
    const routed = await chat(a.apiKey, { provider: { order: [2] } });
    assert.equal(routed.status, 402);
    assert.equal(await code(routed), "session_required");
    assert.equal(await sequence(b.sessionId), 0, "nothing was served from B");
    const readB = await read(b.sessionId, `Bearer ${a.apiKey}`);
    assert.equal(readB.status, 403);
    assert.equal(await code(readB), "key_not_for_session");
    // B's own SDK session never saw a call it did not make: it closes with nothing to sign.
    const closed = await b.close();
    assert.equal(Number(closed.settled), 0);
    // A's key serves A.
    const own = await chat(a.apiKey, {});
    assert.equal(own.status, 200);
    assert.equal(((await own.json()) as { receipt: { sessionId: Hex } }).receipt.sessionId, a.sessionId);
  });

  it("issue 12 item 7: a revoked key is refused at once; the session still closes", async () => {
    const session = await openSession(1);
    const openai = new OpenAI({ ...session.openAIOptions(), maxRetries: 0 });
    await openai.chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: "hi" }], max_tokens: 5 });
    await session.revokeKey();
    const refused = await chat(session.apiKey, {});
    assert.equal(refused.status, 401);
    assert.equal(await code(refused), "api_key_revoked");
    assert.equal((await read(session.sessionId, `Bearer ${session.apiKey}`)).status, 401);
    const again = await fetch(`${running.relayer.url}/v1/sessions/${session.sessionId}/key`, { method: "DELETE", headers: { authorization: `Bearer ${session.apiKey}` } });
    assert.equal(again.status, 401);
    assert.equal(await sequence(session.sessionId), 1, "nothing more was served");
    const closed = await session.close(); // authorized by the agent's signature, not the key
    assert.ok(Number(closed.settled) > 0);
  });

  it("issue 12 item 7: a key of a closed session is refused", async () => {
    const session = await openSession(2);
    await session.close();
    const refused = await chat(session.apiKey, {});
    assert.equal(refused.status, 410);
    assert.equal(await code(refused), "session_finalized");
    const status = await read(session.sessionId, `Bearer ${session.apiKey}`);
    assert.equal(status.status, 410);
    assert.equal(await code(status), "session_finalized");
    // Its agent still reads it, by signature.
    assert.equal((await read(session.sessionId, await readSignature(session.sessionId, running.stack.accounts.agent.privateKey))).status, 200);
  });

  it("issue 12 item 7: a client that walks away from a call leaves no billed call behind, and nothing falls back", async () => {
    // A fresh agent with exactly two sessions: A (provider 1, slow) and B (provider 2).
    const agentKey = generatePrivateKey();
    const creator = createWalletClient({ chain: hardhat, transport: http(running.stack.rpcUrl), account: privateKeyToAccount(running.stack.accounts.creator.privateKey) });
    const whitelisted = await creator.writeContract({
      address: running.stack.contracts.ComputeEscrow,
      abi: computeEscrowAbi,
      functionName: "setAgentsAllowed",
      args: [BigInt(running.stack.budgetId), [privateKeyToAccount(agentKey).address], true],
    });
    await createPublicClient({ chain: hardhat, transport: http(running.stack.rpcUrl) }).waitForTransactionReceipt({ hash: whitelisted });
    const a = await openSession(1, undefined, agentKey);
    const b = await openSession(2, undefined, agentKey);
    const abort = new AbortController();
    // The provider takes 400 ms before its first token: the client is gone before it answers.
    const pending = chat(a.apiKey, { max_tokens: 300, provider: { order: [1, 2], allow_fallbacks: true } }, abort.signal);
    for (let wait = 0; wait < 200 && !(await heldSessions()).includes(a.sessionId.toLowerCase()); wait++) await sleep(10);
    assert.ok((await heldSessions()).includes(a.sessionId.toLowerCase()), "the call is in flight");
    abort.abort();
    await assert.rejects(pending);
    for (let wait = 0; wait < 500 && (await heldSessions()).length > 0; wait++) await sleep(10);
    assert.deepEqual(await heldSessions(), []);
    assert.equal(await sequence(a.sessionId), 0, "nothing reached the client: nothing was billed");
    assert.equal(await sequence(b.sessionId), 0, "no fallback after the client left");
    // A still serves, with nothing to sign first.
    assert.equal((await chat(a.apiKey, {})).status, 200);
  });

  it("issue 12 item 10: GET /v1/sessions/{id} needs the key or a read signature, and pages its receipts", async () => {
    const session = await openSession(1);
    const openai = new OpenAI({ ...session.openAIOptions(), maxRetries: 0 });
    for (let call = 0; call < 3; call++) {
      await openai.chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: `call ${call}` }], max_tokens: 5 });
    }
    const anonymous = await read(session.sessionId);
    assert.equal(anonymous.status, 401);
    assert.equal(await code(anonymous), "missing_api_key");
    const forged = await read(session.sessionId, await readSignature(session.sessionId, generatePrivateKey()));
    assert.equal(forged.status, 401);
    assert.equal(await code(forged), "invalid_signature");
    type Page = { receipts: { sequence: number }[]; receiptsPage: { after: number; limit: number; nextAfter: number | null } };
    const signed = (await (await read(session.sessionId, await readSignature(session.sessionId, running.stack.accounts.agent.privateKey))).json()) as Page;
    assert.deepEqual(signed.receipts.map((receipt) => receipt.sequence), [1, 2, 3]);
    assert.deepEqual(signed.receiptsPage, { after: 0, limit: 100, nextAfter: null });
    const auth = `Bearer ${session.apiKey}`;
    const first = (await (await read(session.sessionId, auth, "?limit=2")).json()) as Page;
    assert.deepEqual(first.receipts.map((receipt) => receipt.sequence), [1, 2]);
    assert.equal(first.receiptsPage.nextAfter, 2);
    const second = (await (await read(session.sessionId, auth, `?after=${first.receiptsPage.nextAfter}&limit=2`)).json()) as Page;
    assert.deepEqual(second.receipts.map((receipt) => receipt.sequence), [3]);
    assert.equal(second.receiptsPage.nextAfter, null);
    for (const query of ["?limit=201", "?limit=0", "?after=-1", "?after=x"]) {
      const bad = await read(session.sessionId, auth, query);
      assert.equal(bad.status, 400, query);
    }
    // The SDK catches up on a receipt it has not seen (a stream it walked away from) through a read.
    const stream = await openai.chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: "A long one." }], max_tokens: 200, stream: true });
    for await (const chunk of stream) if ((chunk.choices[0]?.delta?.content ?? "").length > 0) break;
    // (Retried while the relayer still winds the abandoned stream down: 429 session_busy.)
    await new OpenAI({ ...session.openAIOptions(), maxRetries: 5 }).chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: "short" }], max_tokens: 5 });
    assert.equal((await session.state()).sequence, 5);
    await session.close();
  });

  it("issue 12 item 10: /v1/providers reads the chain at most once per block and cache period, however many ask", async () => {
    const { context } = running.relayer;
    const reads = { fee: 0, metrics: 0 };
    const counted = Object.create(context.chain) as typeof context.chain;
    counted.feeBps = () => (reads.fee++, context.chain.feeBps());
    counted.metrics = (id: number) => (reads.metrics++, context.chain.metrics(id));
    const previous = context.chainViews;
    context.chainViews = new ChainViewCache(counted, context.chainIndex, 60_000);
    await running.relayer.indexer.catchUp(); // the index is at the head: no block moves it during the views
    try {
      const views = await Promise.all(Array.from({ length: 20 }, () => fetch(`${running.relayer.url}/v1/providers`).then((response) => response.json())));
      for (let i = 0; i < 10; i++) await fetch(`${running.relayer.url}/v1/providers/1`).then((response) => response.json());
      const providers = (views[0] as { data: unknown[] }).data.length;
      assert.equal(providers, 2);
      assert.equal(reads.fee, 1, "one fee read for 30 views");
      assert.equal(reads.metrics, providers, "one metrics read per provider for 30 views");
      // A new block may change what the chain shows: the next view reads again, once.
      await createTestClient({ chain: hardhat, mode: "hardhat", transport: http(running.stack.rpcUrl) }).mine({ blocks: 1 });
      await running.relayer.indexer.catchUp();
      await Promise.all(Array.from({ length: 5 }, () => fetch(`${running.relayer.url}/v1/providers`).then((response) => response.json())));
      assert.deepEqual(reads, { fee: 2, metrics: 2 * providers });
    } finally {
      context.chainViews = previous;
    }
  });

  it("issue 12 item 10: clients are rate limited per API key and per IP, with Retry-After", async () => {
    const { context } = running.relayer;
    const previous = context.rateLimits;
    const session = await openSession(2);
    try {
      context.rateLimits = new InProcessRateLimits({ ipRateLimit: { perSecond: 1_000, burst: 1_000 }, keyRateLimit: { perSecond: 0.01, burst: 2 } });
      const auth = `Bearer ${session.apiKey}`;
      assert.equal((await read(session.sessionId, auth)).status, 200);
      assert.equal((await chat(session.apiKey, {})).status, 200);
      const limited = await chat(session.apiKey, {});
      assert.equal(limited.status, 429);
      assert.equal(limited.headers.get("retry-after"), "100");
      assert.equal(await code(limited), "rate_limit_exceeded");
      assert.equal(await sequence(session.sessionId), 1, "the limited call was not served");
      // Another key (the IP still has room) is not limited by this one's bucket.
      assert.equal((await fetch(`${running.relayer.url}/v1/models`)).status, 200);
      context.rateLimits = new InProcessRateLimits({ ipRateLimit: { perSecond: 0.5, burst: 1 }, keyRateLimit: { perSecond: 1_000, burst: 1_000 } });
      assert.equal((await fetch(`${running.relayer.url}/healthz`)).status, 200);
      const byIp = await fetch(`${running.relayer.url}/healthz`);
      assert.equal(byIp.status, 429);
      assert.equal(byIp.headers.get("retry-after"), "2");
    } finally {
      context.rateLimits = previous;
    }
  });

  it("issue 12 item 7: the agent proxy falls back to the next provider itself, and a client that leaves stops it, unbilled", async () => {
    // The local proxy serves only its own clients: its token is the OpenAI client's API key.
    const proxy = new OpenAI({ baseURL: running.stack.agentProxyUrl, apiKey: running.proxy.token, maxRetries: 0 });
    await running.providers[1].close(); // provider 2, the cheaper one, goes down for the rest of this suite
    const reply = await proxy.chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: "anyone?" }], max_tokens: 5 });
    assert.equal((reply as unknown as { receipt: { providerId: number } }).receipt.providerId, 1);

    const { repo } = running.relayer.context;
    const served = async () => (await repo.openSessionsFor(running.stack.accounts.agent.address, "agentmesh-small")).reduce((sum, session) => sum + session.state.sequence, 0);
    const before = await served();
    const abort = new AbortController();
    const pending = fetch(`${running.stack.agentProxyUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${running.proxy.token}` },
      body: JSON.stringify({ model: "agentmesh-small", messages: [{ role: "user", content: "slowly" }], max_tokens: 20 }),
      signal: abort.signal,
    });
    for (let wait = 0; wait < 200 && (await heldSessions()).length === 0; wait++) await sleep(10);
    assert.ok((await heldSessions()).length > 0, "a call is in flight at the relayer");
    abort.abort();
    await assert.rejects(pending);
    for (let wait = 0; wait < 500 && (await heldSessions()).length > 0; wait++) await sleep(10);
    assert.deepEqual(await heldSessions(), []);
    assert.equal(await served(), before, "the proxy's client left: nothing was billed, and nothing else was tried");
  });

  it("issue 12 item 7: a key past its session's deadline is refused; the agent still reads and closes", async () => {
    const session = await openSession(1, 600);
    const openai = new OpenAI({ ...session.openAIOptions(), maxRetries: 0 });
    await openai.chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: "before" }], max_tokens: 5 });
    const testClient = createTestClient({ chain: hardhat, mode: "hardhat", transport: http(running.stack.rpcUrl) });
    await testClient.increaseTime({ seconds: 700 });
    await testClient.mine({ blocks: 1 });
    await running.relayer.indexer.catchUp(); // the relayer sees the new head and its time
    const refused = await chat(session.apiKey, {});
    assert.equal(refused.status, 410);
    assert.equal(await code(refused), "session_expired");
    assert.equal((await read(session.sessionId, `Bearer ${session.apiKey}`)).status, 410);
    assert.equal((await read(session.sessionId, await readSignature(session.sessionId, running.stack.accounts.agent.privateKey))).status, 200);
    const closed = await session.close(); // catches up by a signed read, closes by the agent's signature
    assert.ok(Number(closed.settled) > 0);
  });
});
