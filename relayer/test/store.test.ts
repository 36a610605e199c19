import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import {
  INITIAL_STATE,
  callCost,
  checkReceipt,
  hashCompletionOutput,
  hashRequestMessages,
  receiptHash,
  sessionIdOf,
  type Receipt,
  type SessionTerms,
} from "@agentmesh/sdk";
import { RateLimiter } from "../src/context.ts";
import { openDatabase } from "../src/store/database.ts";
import { Repository } from "../src/store/repository.ts";

const terms: SessionTerms = {
  agent: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
  budgetId: 1n,
  providerId: 1,
  modelId: 0,
  inputPricePer1K: 150,
  outputPricePer1K: 600,
  minChargePerCall: 10,
  maxSpend: 5_000_000n,
  deadline: 2_000_000_000,
  salt: 7n,
};
const sessionId = sessionIdOf(terms);
const signature = { r: `0x${"11".repeat(32)}`, yParityAndS: `0x${"22".repeat(32)}` } as const;

function firstReceipt(): Receipt {
  return {
    sessionId,
    sequence: 1,
    providerId: 1,
    model: "agentmesh-small",
    inputTokens: 500,
    outputTokens: 200,
    cost: callCost(terms, 500, 200),
    latencyMs: 40,
    inputHash: hashRequestMessages([{ role: "user", content: "hi" }]),
    outputHash: hashCompletionOutput("hello"),
    previousHash: INITIAL_STATE.receiptHead,
  };
}

async function freshRepository(file?: string) {
  const dbFile = file ?? path.join(await mkdtemp(path.join(tmpdir(), "agentmesh-store-")), "relayer.db");
  return { repo: new Repository(openDatabase(dbFile)), dbFile };
}

describe("relayer store", () => {
  it("migrates a new file, and reopening it keeps every row", async () => {
    const { repo, dbFile } = await freshRepository();
    repo.insertSession({ id: sessionId, agent: terms.agent, providerId: 1, modelId: 0, model: "agentmesh-small", terms, state: INITIAL_STATE, openTx: `0x${"ab".repeat(32)}` });
    repo.addApiKey("am_key", terms.agent);
    repo.db.close();
    const reopened = new Repository(openDatabase(dbFile));
    const { user_version: version } = reopened.db.prepare("PRAGMA user_version").get() as { user_version: number };
    assert.equal(version, 2);
    assert.deepEqual(reopened.getSession(sessionId)?.terms, terms);
    assert.equal(reopened.agentOfApiKey("am_key"), terms.agent);
    assert.equal(reopened.agentOfApiKey("am_other"), undefined);
    const { journal_mode: mode } = reopened.db.prepare("PRAGMA journal_mode").get() as { journal_mode: string };
    assert.equal(mode, "wal");
  });

  it("records a call, the agent's signature and a confirmed settlement, once each", async () => {
    const { repo } = await freshRepository();
    repo.insertSession({ id: sessionId, agent: terms.agent, providerId: 1, modelId: 0, model: "agentmesh-small", terms, state: INITIAL_STATE, openTx: `0x${"ab".repeat(32)}` });
    const receipt = firstReceipt();
    const state = checkReceipt(terms, sessionId, INITIAL_STATE, receipt);
    const hash = receiptHash(receipt);
    repo.recordCall({ hash, receipt, state, providerSignature: signature, tokenMismatch: false });
    assert.throws(() => repo.recordCall({ hash, receipt, state, providerSignature: signature, tokenMismatch: false }), /UNIQUE/);
    assert.deepEqual(repo.getSession(sessionId)?.state, state);
    assert.deepEqual(repo.getReceipt(hash)?.receipt, receipt);
    assert.equal(repo.sessionsToSettle(10).length, 0, "nothing signed yet");

    repo.recordAgentSignature(sessionId, 1, signature);
    const due = repo.sessionsToSettle(10);
    assert.deepEqual(due.map(({ session }) => session.signedSequence), [1]);

    const settlement = repo.insertSettlement("settle", [{ sessionId, sequence: 1 }]);
    assert.equal(repo.sessionsToSettle(10).length, 0, "a session in a pending settlement is not posted again");
    repo.setSettlementTx(settlement, `0x${"cd".repeat(32)}`, 3);
    repo.confirmSettlement(settlement);
    assert.equal(repo.getSession(sessionId)?.settledSequence, 1);
    assert.equal(repo.getReceipt(hash)?.settlementTx, `0x${"cd".repeat(32)}`);
    assert.equal(repo.sessionsToSettle(10).length, 0, "settled");
    assert.deepEqual(repo.pendingSettlements(), []);
  });
});

describe("rate limiter", () => {
  it("allows the registered requests per rolling minute, per provider", () => {
    const limiter = new RateLimiter();
    const t = 1_000_000;
    assert.deepEqual([1, 2, 3].map(() => limiter.tryAcquire(1, 2, t)), [true, true, false]);
    assert.equal(limiter.tryAcquire(2, 2, t), true, "another provider has its own budget");
    assert.equal(limiter.tryAcquire(1, 2, t + 59_999), false);
    assert.equal(limiter.tryAcquire(1, 2, t + 60_000), true, "a minute later the window has moved");
  });
});
