/**
 * The session rules through `createApp(deps)` in-process, on a fake chain (fake-chain.ts): opening
 * (simulated, recorded, sent), vouchers, the cooperative close and API keys. The store, the HTTP
 * API and the provider are real.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatUsdc, recoverDigestSigner, sessionIdOf, signDigest, signSessionRead, voucherDigest, type SessionTerms, type VoucherState } from "@agentmesh/sdk";
import type { Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { API_KEY, completion, honestUsage, startProvider, startRelayerApp } from "./app-harness.ts";

/** The fixtures' agent (Hardhat development account 1). */
const AGENT_KEY: Hex = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const MESSAGES = [{ role: "user" as const, content: "hi" }];

type App = Awaited<ReturnType<typeof startRelayerApp>>;

/** A relayer app whose provider answers every call with "hello" and honest usage. */
async function withApp(test: (app: App, provider: Awaited<ReturnType<typeof startProvider>>) => Promise<void>): Promise<void> {
  const provider = await startProvider((_request, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(completion("hello", honestUsage(MESSAGES, "hello"))));
  });
  const app = await startRelayerApp(provider.url);
  try {
    await test(app, provider);
  } finally {
    await app.close();
    await provider.close();
  }
}

async function call(app: App, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${app.url}${path}`, {
    method,
    headers: { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body, (_key, value) => (typeof value === "bigint" ? value.toString() : value)),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, any> };
}

/** `POST /v1/sessions` with `terms` (the escrow checks the agent's signature: the fake does not). */
const open = (app: App, terms: SessionTerms) => call(app, "POST", "/v1/sessions", { terms, signature: signDigest(AGENT_KEY, sessionIdOf(terms)) });

/** The agent's signature of `state` of session `id`. */
const agentSignature = (app: App, id: Hex, state: VoucherState, key: Hex = AGENT_KEY) => signDigest(key, voucherDigest(app.context.domainSeparator, id, state));

describe("sessions through createApp, on a fake chain", () => {
  it("is the fixtures' agent's key", () => {
    assert.equal(privateKeyToAccount(AGENT_KEY).address, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
  });

  it("refuses an open whose simulation the escrow refuses with 400 open_rejected, and records nothing", async () => {
    await withApp(async (app) => {
      app.chain.refuseOpens = "EscrowInvalidSignature";
      const terms = { ...app.terms, salt: 99n };
      const answer = await open(app, terms);
      assert.equal(answer.status, 400);
      assert.equal(answer.body.error.code, "open_rejected");
      assert.equal(answer.body.error.message, "the escrow refused to open the session: Error: EscrowInvalidSignature");
      assert.equal(app.chain.opensSimulated.length, 1);
      assert.equal(await app.repo.getSession(sessionIdOf(terms)), undefined);
      assert.deepEqual(await app.repo.pendingOpens(), []);
      assert.equal((await app.repo.database.get("SELECT COUNT(*) AS n FROM session_opens"))!.n, 0);
      assert.equal(app.chain.transactions.sent.length, 0, "no transaction");
    });
  });

  it("records an open before its transaction is sent, and answers the session's API key once it confirms", async () => {
    await withApp(async (app) => {
      const terms = { ...app.terms, salt: 100n };
      const id = sessionIdOf(terms);
      const atBroadcast: Promise<{ pending: Hex[]; txId: number | null }>[] = [];
      app.chain.transactions.onBroadcast = () => {
        // Read at broadcast (the store's read runs at once), looked at below.
        atBroadcast.push(app.repo.pendingOpens().then((opens) => ({ pending: opens.map((recorded) => recorded.sessionId), txId: opens[0]?.txId ?? null })));
      };
      const answer = await open(app, terms);
      assert.equal(answer.status, 201);
      assert.deepEqual(await Promise.all(atBroadcast), [{ pending: [id], txId: 1 }], "the open and its transaction were on record when it was broadcast");
      assert.deepEqual(
        { ...answer.body, apiKey: undefined },
        { sessionId: id, apiKey: undefined, model: "agentmesh-small", providerId: 1, openTxHash: app.chain.transactions.sent[0].hashes[0] },
      );
      assert.match(answer.body.apiKey, /^am_[A-Za-z0-9_-]{43}$/);
      assert.deepEqual(await app.repo.pendingOpens(), []);
      assert.equal((await app.repo.getSession(id))!.status, "open");
      const status = await call(app, "GET", `/v1/sessions/${id}`, undefined, { authorization: `Bearer ${answer.body.apiKey}` });
      assert.equal(status.status, 200);
      assert.deepEqual([status.body.sessionId, status.body.status, status.body.spent, status.body.remaining], [id, "open", formatUsdc(0n), formatUsdc(terms.maxSpend)]);
    });
  });

  it("refuses a second open of the same terms with 409 session_exists, sending nothing", async () => {
    await withApp(async (app) => {
      const terms = { ...app.terms, salt: 101n };
      assert.equal((await open(app, terms)).status, 201);
      const again = await open(app, terms);
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, "session_exists");
      assert.equal(app.chain.transactions.sent.length, 1);
      assert.equal(app.chain.opensSimulated.length, 1, "refused before it is simulated");
    });
  });

  it("refuses a voucher not signed by the session's agent with 401, storing nothing; the agent's is stored", async () => {
    await withApp(async (app) => {
      assert.equal((await app.chat({})).status, 200);
      const state = (await app.repo.receiptAt(app.sessionId, 1))!.state;
      const forged = await call(app, "POST", `/v1/sessions/${app.sessionId}/vouchers`, { sequence: 1, signature: agentSignature(app, app.sessionId, state, generatePrivateKey()) });
      assert.equal(forged.status, 401);
      assert.equal(forged.body.error.code, "invalid_signature");
      assert.equal((await app.repo.getSession(app.sessionId))!.signedSequence, 0);
      assert.equal((await app.repo.receiptAt(app.sessionId, 1))!.agentSignature, null);
      const signature = agentSignature(app, app.sessionId, state);
      const signed = await call(app, "POST", `/v1/sessions/${app.sessionId}/vouchers`, { sequence: 1, signature });
      assert.deepEqual([signed.status, signed.body], [200, { sessionId: app.sessionId, signedSequence: 1 }]);
      assert.deepEqual((await app.repo.receiptAt(app.sessionId, 1))!.agentSignature, signature);
      const stale = await call(app, "POST", `/v1/sessions/${app.sessionId}/vouchers`, { sequence: 1, signature });
      assert.deepEqual([stale.status, stale.body.error.code], [409, "stale_voucher"]);
    });
  });

  it("closes cooperatively with the agent's signature of the final state, co-signed by the session's receipt signer", async () => {
    await withApp(async (app, provider) => {
      assert.equal((await app.chat({})).status, 200);
      const served = (await app.repo.getSession(app.sessionId))!;
      const final = { ...served.state, sequence: served.state.sequence + 1, isFinal: true };
      const byOther = await call(app, "POST", `/v1/sessions/${app.sessionId}/close`, { signature: agentSignature(app, app.sessionId, final, generatePrivateKey()) });
      assert.deepEqual([byOther.status, byOther.body.error.code, app.chain.transactions.sent.length], [401, "invalid_signature", 0]);

      const closed = await call(app, "POST", `/v1/sessions/${app.sessionId}/close`, { signature: agentSignature(app, app.sessionId, final) });
      assert.equal(closed.status, 200);
      const [tx] = app.chain.transactions.sent;
      assert.deepEqual(closed.body, { sessionId: app.sessionId, status: "closed", closeTxHash: tx.hashes[0], settled: formatUsdc(served.state.cumulativeCost) });
      assert.equal(tx.purpose, "close");
      const [{ kind, vouchers }] = app.chain.settlementsSimulated;
      assert.equal(kind, "close");
      assert.equal(vouchers.length, 1);
      const { voucher, providerSignature, agentSignature: signedByAgent } = vouchers[0];
      const { terms, ...state } = voucher;
      assert.deepEqual(terms, served.terms);
      assert.deepEqual(state, final);
      const digest = voucherDigest(app.context.domainSeparator, app.sessionId, final);
      assert.equal(recoverDigestSigner(digest, providerSignature), app.signer, "co-signed by the terms' receipt signer");
      assert.equal(recoverDigestSigner(digest, signedByAgent), served.agent);
      assert.deepEqual(app.chain.sessions.get(app.sessionId), { settled: served.state.cumulativeCost, sequence: final.sequence, claimEnd: 1 });
      assert.deepEqual([(await app.repo.getSession(app.sessionId))!.status, (await app.repo.getSession(app.sessionId))!.closeTx], ["closed", tx.hashes[0]]);

      const after = await app.chat({});
      assert.equal(after.status, 410);
      assert.equal(((await after.json()) as { error: { code: string } }).error.code, "session_finalized");
      assert.equal(provider.requests.length, 1, "a closed session serves nothing");
    });
  });

  it("shows a receipt only to whoever may read its session: its key, or its agent's read signature", async () => {
    await withApp(async (app) => {
      assert.equal((await app.chat({})).status, 200);
      const { hash } = (await app.repo.receiptAt(app.sessionId, 1))!;
      const path = `/v1/receipts/${hash}`;
      // The hash chain is public (settlements carry receipt heads): a stranger must not walk it.
      const anonymous = await call(app, "GET", path);
      assert.deepEqual([anonymous.status, anonymous.body.error?.code, anonymous.body.receipt], [401, "missing_api_key", undefined]);
      const byStranger = await call(app, "GET", path, undefined, { authorization: await signSessionRead(generatePrivateKey(), app.sessionId) });
      assert.deepEqual([byStranger.status, byStranger.body.error?.code], [401, "invalid_signature"]);
      const byKey = await call(app, "GET", path, undefined, { authorization: `Bearer ${API_KEY}` });
      assert.deepEqual([byKey.status, byKey.body.receipt?.hash, byKey.body.verification?.providerSignatureValid], [200, hash, true]);
      const bySignature = await call(app, "GET", path, undefined, { authorization: await signSessionRead(AGENT_KEY, app.sessionId) });
      assert.deepEqual([bySignature.status, bySignature.body.receipt?.hash], [200, hash]);
    });
  });

  it("refuses a revoked API key with 401 api_key_revoked from then on", async () => {
    await withApp(async (app, provider) => {
      const revoked = await call(app, "DELETE", `/v1/sessions/${app.sessionId}/key`, undefined, { authorization: `Bearer ${API_KEY}` });
      assert.deepEqual([revoked.status, revoked.body], [200, { sessionId: app.sessionId, revoked: true }]);
      const chat = await app.chat({});
      assert.equal(chat.status, 401);
      assert.equal(((await chat.json()) as { error: { code: string } }).error.code, "api_key_revoked");
      const status = await call(app, "GET", `/v1/sessions/${app.sessionId}`, undefined, { authorization: `Bearer ${API_KEY}` });
      assert.deepEqual([status.status, status.body.error.code], [401, "api_key_revoked"]);
      assert.equal(provider.requests.length, 0);
    });
  });
});
