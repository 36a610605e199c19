/**
 * Bad input across every route (issue 12 §11, "Bad-input table"): each case gets its exact 4xx and
 * error code, none a 5xx, and none changes anything — every table of the relayer's database reads
 * the same, and on-chain the relayer's gas account (nonce, balance), the block height and the USDC
 * held by the escrow and the agent are unchanged. On the real local stack (Hardhat node, contracts,
 * reference providers, relayer on SQLite), with a session opened and used by the agent SDK.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { createPublicClient, http } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { AgentSession, mockUSDCAbi, sessionReadAuthorization, sessionReadMessage, signSessionRead } from "../../sdk/src/index.ts";
import { startLocalStack, type RunningStack } from "../../scripts/lib/local-stack.ts";
import { errorBodySchema, type ErrorCode, type ForeignErrorCode } from "../../sdk/src/protocol.ts";

const USDC = 1_000_000n;
const ZERO32 = `0x${"00".repeat(32)}`;
const SIGNATURE = { r: `0x${"11".repeat(32)}`, yParityAndS: `0x${"22".repeat(32)}` };

interface Case {
  name: string;
  method: string;
  path: string;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  /** Send the session's API key (default true on chat); a `headers.authorization` replaces it. */
  auth?: boolean;
  status: number;
  /** The relayer's code, checked against the protocol's union; a provider's own, passed through, as `foreignCode(…)`. */
  code: ErrorCode | ForeignErrorCode;
}

describe("bad-input table", { timeout: 300_000 }, () => {
  let running: RunningStack;
  let dir: string;
  let session: AgentSession;
  let apiKey: string;
  /** A session of the same agent, closed: its key is refused with 410. */
  let closed: AgentSession;
  /** A session of the same agent whose key was revoked. */
  let revoked: AgentSession;
  /** `Authorization` values of read signatures (GET /v1/sessions/{id}), made before the table. */
  let reads: { stranger: string; otherSession: string; farAhead: string; expired: string; garbage: string };
  let client: ReturnType<typeof createPublicClient>;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "agentmesh-bad-input-"));
    running = await startLocalStack({
      localFile: path.join(dir, "local.json"),
      settlement: { maxAgeMs: 3_600_000, pollMs: 3_600_000 },
      healthProbeIntervalMs: 3_600_000,
      payoutIntervalMs: 3_600_000,
    });
    client = createPublicClient({ chain: hardhat, transport: http(running.stack.rpcUrl) });
    const { stack } = running;
    session = await AgentSession.open({
      relayerUrl: running.relayer.url,
      privateKey: stack.accounts.agent.privateKey,
      chainId: stack.chainId,
      escrow: stack.contracts.ComputeEscrow,
      budgetId: BigInt(stack.budgetId),
      providerId: 1,
      model: "agentmesh-small",
      maxSpend: 2n * USDC,
      voucherFlushMs: 10 * 60_000,
    });
    const openai = new OpenAI(session.openAIOptions());
    await openai.chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: "One call, to have a receipt." }], max_tokens: 20 });
    await session.flushVoucher();
    apiKey = (session.openAIOptions() as { apiKey: string }).apiKey;
    const other = (salt: number) =>
      AgentSession.open({
        relayerUrl: running.relayer.url,
        privateKey: stack.accounts.agent.privateKey,
        chainId: stack.chainId,
        escrow: stack.contracts.ComputeEscrow,
        budgetId: BigInt(stack.budgetId),
        providerId: 1,
        model: "agentmesh-small",
        maxSpend: USDC / 2n + BigInt(salt),
        voucherFlushMs: 10 * 60_000,
      });
    closed = await other(1);
    await closed.close();
    revoked = await other(2);
    await revoked.revokeKey();
    const now = Math.floor(Date.now() / 1000);
    const agentKey = stack.accounts.agent.privateKey;
    const signedBy = async (privateKey: `0x${string}`, sessionId: `0x${string}`, expiresAt: number) =>
      sessionReadAuthorization(expiresAt, await privateKeyToAccount(privateKey).signMessage({ message: sessionReadMessage(sessionId, expiresAt) }));
    reads = {
      stranger: await signSessionRead(generatePrivateKey(), session.sessionId),
      otherSession: await signSessionRead(agentKey, revoked.sessionId),
      farAhead: await signedBy(agentKey, session.sessionId, now + 86_400),
      expired: await signedBy(agentKey, session.sessionId, now - 60),
      garbage: sessionReadAuthorization(now + 300, `0x${"11".repeat(65)}`),
    };
    // The index is at the head: nothing the close or the opens did is still to be recorded.
    await running.relayer.indexer.catchUp();
  });

  after(async () => {
    await running?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * Columns that move with time alone, whatever the requests: when a lease held by this instance
   * expires (renewed while it runs), and when the indexer last saw the chain's head.
   */
  const CLOCK_COLUMNS: Record<string, string[]> = { leases: ["expires_at"], indexer_state: ["head_seen_at"] };

  /** Every table of the relayer's database: its rows' count and a hash of its rows (but their {@link CLOCK_COLUMNS}). */
  async function databaseState(): Promise<Record<string, string>> {
    // Waits for the store's unit in progress, if any, and its commit (an empty unit queues behind it).
    await running.relayer.context.repo.transaction(async () => undefined);
    const db = new DatabaseSync(path.join(dir, "relayer.db"), { readOnly: true });
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[];
      return Object.fromEntries(
        tables.map(({ name }) => {
          const rows = db.prepare(`SELECT * FROM "${name}" ORDER BY rowid`).all();
          for (const row of rows) for (const column of CLOCK_COLUMNS[name] ?? []) delete row[column];
          return [name, `${rows.length}:${createHash("sha256").update(JSON.stringify(rows)).digest("hex")}`];
        }),
      );
    } finally {
      db.close();
    }
  }

  async function chainState() {
    const { stack } = running;
    const relayer = stack.accounts.relayer.address;
    const usdc = (account: `0x${string}`) => client.readContract({ address: stack.usdc, abi: mockUSDCAbi, functionName: "balanceOf", args: [account] });
    return {
      block: await client.getBlockNumber(),
      relayerNonce: await client.getTransactionCount({ address: relayer, blockTag: "pending" }),
      relayerBalance: await client.getBalance({ address: relayer }),
      escrowUsdc: await usdc(stack.contracts.ComputeEscrow),
      agentUsdc: await usdc(stack.accounts.agent.address),
    };
  }

  function cases(): Case[] {
    const id = session.sessionId;
    const chat = (name: string, body: unknown, status: number, code: ErrorCode | ForeignErrorCode, extra: Partial<Case> = {}): Case => ({
      name: `chat: ${name}`,
      method: "POST",
      path: "/v1/chat/completions",
      body,
      status,
      code,
      ...extra,
    });
    const ok = { model: "agentmesh-small", messages: [{ role: "user", content: "hi" }] };
    const terms = { ...session.terms, salt: session.terms.salt + 1n };
    const key = (session: AgentSession) => `Bearer ${(session.openAIOptions() as { apiKey: string }).apiKey}`;
    const read = (name: string, query: string, authorization: string | undefined, status: number, code: ErrorCode | ForeignErrorCode, sessionId: string = id): Case => ({
      name: `read: ${name}`,
      method: "GET",
      path: `/v1/sessions/${sessionId}${query}`,
      headers: authorization === undefined ? undefined : { authorization },
      status,
      code,
    });
    const revoke = (name: string, authorization: string | undefined, status: number, code: ErrorCode | ForeignErrorCode, sessionId: string = id): Case => ({
      name: `revoke key: ${name}`,
      method: "DELETE",
      path: `/v1/sessions/${sessionId}/key`,
      headers: authorization === undefined ? undefined : { authorization },
      status,
      code,
    });
    const mine = `Bearer ${apiKey}`;
    const open = (name: string, body: unknown, status: number, code: ErrorCode | ForeignErrorCode, headers?: Record<string, string>): Case => ({
      name: `open: ${name}`,
      method: "POST",
      path: "/v1/sessions",
      body,
      headers,
      status,
      code,
    });
    return [
      // Routing
      { name: "unknown route", method: "GET", path: "/nowhere", status: 404, code: "not_found" },
      { name: "malformed % in a session id", method: "GET", path: "/v1/sessions/%zz", status: 400, code: "invalid_path" },
      { name: "truncated % escape in a receipt hash", method: "GET", path: "/v1/receipts/%E0%A4%A", status: 400, code: "invalid_path" },
      { name: "overlong UTF-8 escape in an agent id", method: "POST", path: "/agents/%C0%80", body: {}, status: 400, code: "invalid_path" },
      { name: "session id too short", method: "GET", path: "/v1/sessions/0x12", status: 400, code: "invalid_session_id" },
      { name: "unknown session", method: "GET", path: `/v1/sessions/${ZERO32}`, status: 404, code: "session_not_found" },
      { name: "receipt hash not hex", method: "GET", path: "/v1/receipts/nothex", status: 400, code: "invalid_receipt_hash" },
      { name: "unknown receipt", method: "GET", path: `/v1/receipts/${ZERO32}`, status: 404, code: "receipt_not_found" },
      { name: "budget id not a number", method: "GET", path: "/v1/budgets/abc", status: 400, code: "invalid_budget_id" },
      { name: "budget id 0", method: "GET", path: "/v1/budgets/0", status: 400, code: "invalid_budget_id" },
      { name: "budget id negative", method: "GET", path: "/v1/budgets/-1", status: 400, code: "invalid_budget_id" },
      { name: "unknown budget", method: "GET", path: "/v1/budgets/999999", status: 404, code: "budget_not_found" },
      { name: "provider id not a number", method: "GET", path: "/v1/providers/abc", status: 400, code: "invalid_provider_id" },
      { name: "provider id in exponent form", method: "GET", path: "/v1/providers/1e3", status: 400, code: "invalid_provider_id" },
      { name: "unknown provider", method: "GET", path: "/v1/providers/999", status: 404, code: "provider_not_found" },
      { name: "DELETE /v1/models", method: "DELETE", path: "/v1/models", status: 405, code: "method_not_allowed" },
      { name: "GET /v1/chat/completions", method: "GET", path: "/v1/chat/completions", status: 405, code: "method_not_allowed" },
      { name: "PUT /v1/sessions", method: "PUT", path: "/v1/sessions", body: {}, status: 405, code: "method_not_allowed" },
      { name: "GET /x402/settle", method: "GET", path: "/x402/settle", status: 405, code: "method_not_allowed" },
      { name: "PATCH a session", method: "PATCH", path: `/v1/sessions/${id}`, body: {}, status: 405, code: "method_not_allowed" },
      // Chat
      chat("no API key", ok, 401, "missing_api_key", { auth: false }),
      chat("unknown API key", ok, 401, "invalid_api_key", { auth: false, headers: { authorization: "Bearer am_nope" } }),
      chat("malformed Authorization", ok, 401, "missing_api_key", { auth: false, headers: { authorization: "Basic abc" } }),
      chat("text/plain body", JSON.stringify(ok), 415, "unsupported_media_type", { headers: { "content-type": "text/plain" } }),
      chat("form body", "model=agentmesh-small", 415, "unsupported_media_type", { headers: { "content-type": "application/x-www-form-urlencoded" } }),
      chat("invalid JSON", "{", 400, "invalid_json"),
      chat("JSON array", [], 400, "invalid_request"),
      chat("JSON null", null, 400, "invalid_request"),
      chat("no model", { messages: ok.messages }, 400, "invalid_request"),
      chat("empty model", { ...ok, model: "" }, 400, "invalid_request"),
      chat("no messages", { model: ok.model }, 400, "invalid_request"),
      chat("empty messages", { ...ok, messages: [] }, 400, "invalid_request"),
      chat("unknown role", { ...ok, messages: [{ role: "wizard", content: "hi" }] }, 400, "invalid_request"),
      chat("content a number", { ...ok, messages: [{ role: "user", content: 42 }] }, 400, "invalid_request"),
      chat("audio content part", { ...ok, messages: [{ role: "user", content: [{ type: "input_audio", input_audio: {} }] }] }, 400, "invalid_request"),
      chat("n = 2", { ...ok, n: 2 }, 400, "invalid_request"),
      chat("temperature 5", { ...ok, temperature: 5 }, 400, "invalid_request"),
      chat("max_tokens 0", { ...ok, max_tokens: 0 }, 400, "invalid_request"),
      chat("max_tokens fractional", { ...ok, max_tokens: 1.5 }, 400, "invalid_request"),
      chat("max_tokens above the cap", { ...ok, max_tokens: 1_000_000_000 }, 400, "invalid_max_tokens"),
      chat("max_completion_tokens negative", { ...ok, max_completion_tokens: -1 }, 400, "invalid_request"),
      chat("stream a string", { ...ok, stream: "yes" }, 400, "invalid_request"),
      chat("unknown model", { ...ok, model: "gpt-nope" }, 404, "model_not_found"),
      chat("sessionId malformed", { ...ok, sessionId: "0x12" }, 400, "invalid_request"),
      // A voucher without sessionId is for the key's session (a key opens one session only).
      chat("voucher without sessionId, for a call not served", { ...ok, voucher: { sequence: 9, signature: SIGNATURE } }, 400, "unknown_sequence"),
      chat("voucher sequence 0", { ...ok, voucher: { sequence: 0, signature: SIGNATURE } }, 400, "invalid_request"),
      chat("sessionId of another session of the agent", { ...ok, sessionId: closed.sessionId }, 403, "key_not_for_session"),
      chat("the key of a closed session", ok, 410, "session_finalized", { auth: false, headers: { authorization: key(closed) } }),
      chat("a revoked key", ok, 401, "api_key_revoked", { auth: false, headers: { authorization: key(revoked) } }),
      chat("voucher for a call not served", { ...ok, sessionId: id, voucher: { sequence: 9, signature: SIGNATURE } }, 400, "unknown_sequence"),
      chat("provider order naming none of the agent's", { ...ok, provider: { order: [999] } }, 402, "session_required"),
      chat("providerId of no session", { ...ok, providerId: 999 }, 402, "session_required"),
      chat("prompt beyond the model's context", { ...ok, messages: [{ role: "user", content: "word ".repeat(9_000) }] }, 400, "context_length_exceeded"),
      chat("nesting 100,000 deep", `{"model":"agentmesh-small","messages":[{"role":"user","content":"hi"}],"metadata":${"[".repeat(100_000)}${"]".repeat(100_000)}}`, 400, "json_too_deep"),
      chat("body above 1 MiB", { ...ok, metadata: "x".repeat(1_100_000) }, 413, "request_too_large"),
      chat("Idempotency-Key with spaces", ok, 400, "invalid_idempotency_key", { headers: { "idempotency-key": "two words" } }),
      chat("Idempotency-Key empty", ok, 400, "invalid_idempotency_key", { headers: { "idempotency-key": "" } }),
      chat("Idempotency-Key of 256 characters", ok, 400, "invalid_idempotency_key", { headers: { "idempotency-key": "k".repeat(256) } }),
      chat("Idempotency-Key not ASCII", ok, 400, "invalid_idempotency_key", { headers: { "idempotency-key": "cl\u00e9" } }),
      chat("Idempotency-Key with a bad body", { ...ok, n: 2 }, 400, "invalid_request", { headers: { "idempotency-key": "bad-body" } }),
      // Reading a session (its API key, or a read signature by its agent or its budget's creator)
      read("no Authorization", "", undefined, 401, "missing_api_key"),
      read("unknown API key", "", "Bearer am_nope", 401, "invalid_api_key"),
      read("another session's key", "", mine, 403, "key_not_for_session", closed.sessionId),
      read("a revoked key", "", key(revoked), 401, "api_key_revoked", revoked.sessionId),
      read("the key of a closed session", "", key(closed), 410, "session_finalized", closed.sessionId),
      read("after not a number", "?after=abc", mine, 400, "invalid_request"),
      read("after negative", "?after=-1", mine, 400, "invalid_request"),
      read("after fractional", "?after=1.5", mine, 400, "invalid_request"),
      read("limit 0", "?limit=0", mine, 400, "invalid_request"),
      read("limit above the page cap", "?limit=9999", mine, 400, "invalid_request"),
      read("limit empty", "?limit=", mine, 400, "invalid_request"),
      read("limit in exponent form", "?limit=1e2", mine, 400, "invalid_request"),
      read("signature by a stranger", "", reads.stranger, 401, "invalid_signature"),
      read("signature for another session", "", reads.otherSession, 401, "invalid_signature"),
      read("signature valid a day ahead", "", reads.farAhead, 401, "invalid_signature"),
      read("signature expired", "", reads.expired, 401, "invalid_signature"),
      read("signature bytes not a signature", "", reads.garbage, 401, "invalid_signature"),
      read("signature truncated", "", `AgentMesh-Signature ${Math.floor(Date.now() / 1000) + 300} 0x1234`, 401, "missing_api_key"),
      read("unknown session, with a signature", "", reads.stranger, 404, "session_not_found", ZERO32),
      // Revoking a session's key
      revoke("no Authorization", undefined, 401, "missing_api_key"),
      revoke("unknown API key", "Bearer am_nope", 401, "invalid_api_key"),
      revoke("a read signature instead of the key", reads.stranger, 401, "missing_api_key"),
      revoke("another session's key", mine, 403, "key_not_for_session", revoked.sessionId),
      revoke("a key already revoked", key(revoked), 401, "api_key_revoked", revoked.sessionId),
      revoke("the key of a closed session", key(closed), 410, "session_finalized", closed.sessionId),
      revoke("unknown session", mine, 404, "session_not_found", ZERO32),
      revoke("session id not hex", mine, 400, "invalid_session_id", "0xzz"),
      { name: "revoke key: GET", method: "GET", path: `/v1/sessions/${id}/key`, headers: { authorization: mine }, status: 405, code: "method_not_allowed" },
      // Opening sessions
      open("text/plain body", "{}", 415, "unsupported_media_type", { "content-type": "text/plain" }),
      open("empty body", {}, 400, "invalid_request"),
      open("agent not an address", { terms: { ...terms, agent: "0x12" }, signature: SIGNATURE }, 400, "invalid_request"),
      open("feeBps above uint16", { terms: { ...terms, feeBps: 70_000 }, signature: SIGNATURE }, 400, "invalid_request"),
      open("maxSpend negative", { terms: { ...terms, maxSpend: "-1" }, signature: SIGNATURE }, 400, "invalid_request"),
      open("signature not hex", { terms, signature: { r: "zz", yParityAndS: "zz" } }, 400, "invalid_request"),
      open("unknown receipt signer", { terms: { ...terms, receiptSigner: "0x000000000000000000000000000000000000dEaD" }, signature: SIGNATURE }, 400, "unknown_receipt_signer"),
      open("unknown provider", { terms: { ...terms, providerId: 999 }, signature: SIGNATURE }, 400, "model_not_found"),
      open("signature not the agent's", { terms, signature: SIGNATURE }, 400, "open_rejected"),
      open("a session already open", { terms: session.terms, signature: SIGNATURE }, 409, "session_exists"),
      // Vouchers
      { name: "voucher: text/plain", method: "POST", path: `/v1/sessions/${id}/vouchers`, body: "{}", headers: { "content-type": "text/plain" }, status: 415, code: "unsupported_media_type" },
      { name: "voucher: empty body", method: "POST", path: `/v1/sessions/${id}/vouchers`, body: {}, status: 400, code: "invalid_request" },
      { name: "voucher: sequence 0", method: "POST", path: `/v1/sessions/${id}/vouchers`, body: { sequence: 0, signature: SIGNATURE }, status: 400, code: "invalid_request" },
      { name: "voucher: no such call", method: "POST", path: `/v1/sessions/${id}/vouchers`, body: { sequence: 99, signature: SIGNATURE }, status: 400, code: "unknown_sequence" },
      { name: "voucher: already signed", method: "POST", path: `/v1/sessions/${id}/vouchers`, body: { sequence: 1, signature: SIGNATURE }, status: 409, code: "stale_voucher" },
      { name: "voucher: unknown session", method: "POST", path: `/v1/sessions/${ZERO32}/vouchers`, body: { sequence: 1, signature: SIGNATURE }, status: 404, code: "session_not_found" },
      // Closing
      { name: "close: empty body", method: "POST", path: `/v1/sessions/${id}/close`, body: {}, status: 400, code: "invalid_request" },
      { name: "close: not the agent's signature", method: "POST", path: `/v1/sessions/${id}/close`, body: { signature: SIGNATURE }, status: 401, code: "invalid_signature" },
      { name: "close: unknown session", method: "POST", path: `/v1/sessions/${ZERO32}/close`, body: { signature: SIGNATURE }, status: 404, code: "session_not_found" },
      { name: "close: a closed session", method: "POST", path: `/v1/sessions/${closed.sessionId}/close`, body: { signature: SIGNATURE }, status: 409, code: "session_closed" },
      { name: "voucher: a closed session", method: "POST", path: `/v1/sessions/${closed.sessionId}/vouchers`, body: { sequence: 1, signature: SIGNATURE }, status: 400, code: "unknown_sequence" },
      // x402
      { name: "x402 verify: text/plain", method: "POST", path: "/x402/verify", body: "{}", headers: { "content-type": "text/plain" }, status: 415, code: "unsupported_media_type" },
      { name: "x402 verify: empty body", method: "POST", path: "/x402/verify", body: {}, status: 400, code: "invalid_request" },
      { name: "x402 settle: empty body", method: "POST", path: "/x402/settle", body: {}, status: 400, code: "invalid_request" },
      { name: "POST /x402/supported", method: "POST", path: "/x402/supported", body: {}, status: 405, code: "method_not_allowed" },
      // Agents, and the operator's routes
      { name: "agent id not a number", method: "GET", path: "/v1/agents/abc", status: 400, code: "invalid_agent_id" },
      { name: "unknown agent", method: "GET", path: "/v1/agents/999", status: 404, code: "agent_not_found" },
      { name: "call: agent id 0", method: "POST", path: "/agents/0", body: {}, status: 400, code: "invalid_agent_id" },
      { name: "call: unknown agent", method: "POST", path: "/agents/999", body: {}, status: 404, code: "agent_not_found" },
      { name: "POST /v1/agents", method: "POST", path: "/v1/agents", body: {}, status: 405, code: "method_not_allowed" },
      { name: "POST /v1/providers", method: "POST", path: "/v1/providers", body: {}, status: 405, code: "method_not_allowed" },
      { name: "POST /healthz", method: "POST", path: "/healthz", body: {}, status: 405, code: "method_not_allowed" },
      { name: "DELETE /readyz", method: "DELETE", path: "/readyz", status: 405, code: "method_not_allowed" },
      { name: "POST /metrics", method: "POST", path: "/metrics", body: {}, status: 405, code: "method_not_allowed" },
    ];
  }

  it("answers each case with its exact 4xx, and changes nothing in the database or on-chain", async () => {
    const table = cases();
    assert.ok(table.length >= 50, `${table.length} cases`);
    const databaseBefore = await databaseState();
    const chainBefore = await chainState();
    const answers: string[] = [];
    for (const entry of table) {
      const headers: Record<string, string> = { "content-type": "application/json", ...entry.headers };
      if (entry.path === "/v1/chat/completions" && entry.auth !== false && entry.headers?.authorization === undefined) headers.authorization = `Bearer ${apiKey}`;
      const response = await fetch(`${running.relayer.url}${entry.path}`, {
        method: entry.method,
        headers,
        body: entry.body === undefined ? undefined : typeof entry.body === "string" ? entry.body : JSON.stringify(entry.body, (_key, value) => (typeof value === "bigint" ? value.toString() : value)),
      });
      const text = await response.text();
      // Every error answer follows the protocol's error body.
      let code: string;
      try {
        const body = errorBodySchema.safeParse(JSON.parse(text));
        code = body.success ? (body.data.error.code ?? "(no code)") : `(off the protocol: ${text.slice(0, 80)})`;
      } catch {
        code = `(not JSON: ${text.slice(0, 80)})`;
      }
      assert.ok(response.headers.get("x-request-id"), `${entry.name}: x-request-id`);
      answers.push(`${entry.name}: ${response.status} ${code}`);
    }
    assert.deepEqual(answers, table.map((entry) => `${entry.name}: ${entry.status} ${entry.code}`));
    assert.equal(answers.filter((answer) => / 5\d\d /.test(answer)).length, 0);
    assert.deepEqual(await databaseState(), databaseBefore, "no table changed");
    assert.deepEqual(await chainState(), chainBefore, "nothing changed on-chain");
  });
});
