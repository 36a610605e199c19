/**
 * Issue 14: what relayer instances sharing one store rely on. On PostgreSQL (a real server), two
 * instances: two pools on one database. SQLite serves one instance (its one connection, and its
 * group commit, belong to one process), so there the two racers share its repository: the same
 * races, between concurrent requests of one instance. Each test races the two and checks that
 * exactly one wins, whatever the interleaving.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Hex } from "viem";
import { GENESIS_RECEIPT_HASH, INITIAL_STATE, type Receipt, type VoucherState } from "@agentmesh/sdk";
import { SharedRateLimits } from "../src/rate-limits.ts";
import { PaymentLocks } from "../src/store/agent-payments.ts";
import { idempotencyStore } from "../src/store/idempotency.ts";
import { Leases } from "../src/store/leases.ts";
import { openPostgres } from "../src/store/postgres.ts";
import { Repository, SessionHoldLostError } from "../src/store/repository.ts";
import { openSqlite } from "../src/store/sqlite.ts";
import { DEFAULT_LIMITS } from "../src/context.ts";
import { sessionTerms } from "./fixtures.ts";
import { startPostgres, type PostgresServer } from "./postgres-server.ts";

let server: PostgresServer;
let dir: string;
before(async () => {
  server = await startPostgres();
  dir = await mkdtemp(path.join(tmpdir(), "agentmesh-shared-store-"));
});
after(async () => {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

/** The two racers on one fresh store of `backend`: instances A and B (on SQLite, one instance's two requests). */
async function twoInstances(backend: "sqlite" | "postgres") {
  if (backend === "sqlite") {
    const repo = new Repository(openSqlite(path.join(dir, `${Math.random().toString(36).slice(2)}.db`)));
    return { a: repo, b: repo, close: () => repo.close() };
  }
  const url = await server.createDatabase();
  const [a, b] = (await Promise.all([openPostgres(url), openPostgres(url)])).map((database) => new Repository(database));
  return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
}

const SESSION = `0x${"5e".repeat(32)}` as Hex;
const terms = sessionTerms();

async function insertSession(repo: Repository): Promise<void> {
  await repo.insertSession({ id: SESSION, agent: terms.agent, providerId: 1, modelId: 0, model: "agentmesh-small", terms, state: INITIAL_STATE, openTx: `0x${"ab".repeat(32)}` });
}

/** The record of call `sequence` of {@link SESSION} (its contents matter only for what is asserted). */
function callRecord(sequence: number, cost: bigint) {
  const receipt = {
    sessionId: SESSION,
    sequence,
    providerId: 1,
    model: "agentmesh-small",
    inputTokens: 10,
    outputTokens: 20,
    cost,
    latencyMs: 5,
    inputHash: `0x${"11".repeat(32)}`,
    outputHash: `0x${"22".repeat(32)}`,
    previousHash: GENESIS_RECEIPT_HASH,
  } as Receipt;
  const state: VoucherState = { ...INITIAL_STATE, sequence, cumulativeCost: cost, requestCount: sequence, inputTokens: 10, outputTokens: 20, latencyMs: 5 };
  const hash = `0x${sequence.toString(16).padStart(2, "0").repeat(32)}` as Hex;
  return { hash, receipt, state, providerSignature: { r: `0x${"01".repeat(32)}`, yParityAndS: `0x${"02".repeat(32)}` } as const, tokenMismatch: false };
}

for (const backend of ["sqlite", "postgres"] as const) {
  describe(`two instances on one ${backend} store`, () => {
    it("hold a session one call at a time: of two racing for it, exactly one gets it, every round", async () => {
      const { a, b, close } = await twoInstances(backend);
      try {
        await insertSession(a);
        for (let round = 0; round < 20; round++) {
          const until = Date.now() + 30_000;
          const [heldA, heldB] = await Promise.all([a.holdSession(SESSION, `a${round}`, until), b.holdSession(SESSION, `b${round}`, until)]);
          assert.equal(Number(heldA !== undefined) + Number(heldB !== undefined), 1, `round ${round}: one holder`);
          if (heldA !== undefined) await a.releaseSessionHold(SESSION, `a${round}`);
          else await b.releaseSessionHold(SESSION, `b${round}`);
        }
      } finally {
        await close();
      }
    });

    it("let only the holder record the next state: a call whose hold lapsed and was taken records nothing", async () => {
      const { a, b, close } = await twoInstances(backend);
      try {
        await insertSession(a);
        const now = Date.now();
        assert.ok(await a.holdSession(SESSION, "a", now + 1_000));
        assert.equal(await b.holdSession(SESSION, "b", now + 30_000, now), undefined, "held by A");
        // A stalls past its hold; B takes the session over and serves call 1.
        assert.ok(await b.holdSession(SESSION, "b", now + 30_000, now + 2_000));
        await b.recordCall(callRecord(1, 700n), "b");
        // A comes back with its own call 1: refused, nothing written.
        await assert.rejects(a.recordCall(callRecord(1, 900n), "a"), SessionHoldLostError);
        const receipts = await a.receiptsOf(SESSION);
        assert.deepEqual(receipts.map((record) => [record.receipt.sequence, record.receipt.cost]), [[1, 700n]]);
        const session = (await a.getSession(SESSION))!;
        assert.equal(session.state.sequence, 1);
        assert.equal(session.state.cumulativeCost, 700n);
        // B's record ended its hold: a replay of it is refused too (not the holder any more).
        await assert.rejects(b.recordCall(callRecord(2, 800n), "b"), SessionHoldLostError);
      } finally {
        await close();
      }
    });

    it("put a session in one settlement at a time", async () => {
      const { a, b, close } = await twoInstances(backend);
      try {
        await insertSession(a);
        const items = [{ sessionId: SESSION, sequence: 1 }];
        const ids = await Promise.all([a.insertSettlement("settle", items, "0xa"), b.insertSettlement("settle", items, "0xb")]);
        assert.equal(ids.filter((id) => id !== undefined).length, 1);
        assert.equal((await a.pendingSettlements()).length, 1, "the loser recorded nothing");
      } finally {
        await close();
      }
    });

    it("give a lease to one holder, and to another once it expired", async () => {
      const { a, b, close } = await twoInstances(backend);
      try {
        const [leasesA, leasesB] = [new Leases(a, "A"), new Leases(b, "B")];
        const now = Date.now();
        const won = await Promise.all([leasesA.acquire("work", 1_000, now), leasesB.acquire("work", 1_000, now)]);
        assert.deepEqual(won.toSorted(), [false, true]);
        const [winner, loser] = won[0] ? [leasesA, leasesB] : [leasesB, leasesA];
        assert.equal(await loser.acquire("work", 1_000, now + 500), false, "not before it expires");
        assert.equal(await loser.acquire("work", 1_000, now + 1_500), true, "taken over once expired");
        assert.equal(await winner.acquire("work", 1_000, now + 1_600), false, "the old holder cannot renew it");
        assert.equal((await winner.current("work", now + 1_600))?.holder, loser.holder);
      } finally {
        await close();
      }
    });

    it("reserve an x402 authorization once, and count an Idempotency-Key in flight once", async () => {
      const { a, b, close } = await twoInstances(backend);
      try {
        const payment = { payer: `0x${"aa".repeat(20)}` as Hex, nonce: `0x${"bb".repeat(32)}` as Hex, kind: "call" as const, agentId: 1, authorizationHash: `0x${"cc".repeat(32)}` as Hex, requestHash: "r", payload: "{}" };
        const reserved = await Promise.all([new PaymentLocks(a).reserve(payment), new PaymentLocks(b).reserve(payment)]);
        assert.deepEqual(reserved.toSorted(), [false, true]);
        const until = Date.now() + 30_000;
        const claimed = await Promise.all([idempotencyStore.claim(a, SESSION, "key-1", until), idempotencyStore.claim(b, SESSION, "key-1", until)]);
        assert.deepEqual(claimed.toSorted(), [false, true]);
        await idempotencyStore.release(claimed[0] ? a : b, SESSION, "key-1");
        assert.equal(await idempotencyStore.claim(b, SESSION, "key-1", until), true, "free again once released");
      } finally {
        await close();
      }
    });

    it("count a provider's requests per minute across both", async () => {
      const { a, b, close } = await twoInstances(backend);
      try {
        const [limitsA, limitsB] = [new SharedRateLimits(a, DEFAULT_LIMITS), new SharedRateLimits(b, DEFAULT_LIMITS)];
        const answers = await Promise.all([...Array(4)].flatMap(() => [limitsA.provider(1, 5), limitsB.provider(1, 5)]));
        assert.equal(answers.filter((refusal) => refusal === undefined).length, 5);
        const refused = answers.find((refusal) => refusal !== undefined)!;
        assert.equal(refused.limited, "provider");
        assert.ok(refused.retryAfterSeconds >= 1 && refused.retryAfterSeconds <= 60);
      } finally {
        await close();
      }
    });
  });
}
