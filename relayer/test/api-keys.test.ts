import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, describe, it } from "node:test";
import { INITIAL_STATE, sessionIdOf } from "@agentmesh/sdk";
import { ApiError } from "@agentmesh/sdk/http";
import { DEFAULT_LIMITS, ReceiptSigners, TokenBuckets, type RelayerContext } from "../src/context.ts";
import { authenticate, keySession } from "../src/core/sessions.ts";
import { ChainIndex } from "../src/store/chain-index.ts";
import { MIGRATIONS } from "../src/store/database.ts";
import { openSqlite } from "../src/store/sqlite.ts";
import { Repository, hashApiKey } from "../src/store/repository.ts";
import { sessionTerms } from "./fixtures.ts";

// Issue 12 item 7: an API key opens one session, expires with it and can be revoked. The rules of
// `authenticate` on a real store; the HTTP routes are exercised end to end in test/e2e/keys.test.ts.

const NOW = 1_900_000_000;
const termsA = sessionTerms({ deadline: NOW + 3600, salt: 1n });
const termsB = sessionTerms({ deadline: NOW + 3600, salt: 2n });
const [idA, idB] = [sessionIdOf(termsA), sessionIdOf(termsB)];

async function setup() {
  const database = openSqlite(":memory:");
  const repo = new Repository(database);
  const chainIndex = new ChainIndex(database);
  for (const [id, terms] of [[idA, termsA], [idB, termsB]] as const) {
    await repo.insertSession({ id, agent: terms.agent, providerId: 1, modelId: 0, model: "agentmesh-small", terms, state: INITIAL_STATE, openTx: `0x${"ab".repeat(32)}` });
  }
  await repo.addSessionKey("am_a", idA);
  await repo.addSessionKey("am_b", idB);
  chainIndex.observeHead(10, NOW, Date.now());
  const ctx = { repo, chainIndex, limits: DEFAULT_LIMITS, receiptSigners: new ReceiptSigners([]) } as unknown as RelayerContext;
  /** The error code `authenticate` answers `key` with, or the session it opens. */
  const check = async (key: string | undefined) => {
    try {
      return (await authenticate(ctx, key)).id;
    } catch (error) {
      assert.ok(error instanceof ApiError);
      return `${error.status} ${error.code}`;
    }
  };
  return { repo, chainIndex, check };
}

const directories: string[] = [];
after(async () => {
  await Promise.all(directories.map((directory) => rm(directory, { recursive: true, force: true })));
});

describe("session API keys", () => {
  it("open their own session only", async () => {
    const { repo, check } = await setup();
    assert.equal(await check("am_a"), idA);
    assert.equal(await check("am_b"), idB);
    assert.equal(await check("am_unknown"), "401 invalid_api_key");
    assert.equal(await check(undefined), "401 missing_api_key");
    const a = (await repo.getSession(idA))!;
    assert.equal(keySession(a, undefined), idA);
    assert.equal(keySession(a, idA.toUpperCase().replace("0X", "0x")), idA);
    assert.throws(() => keySession(a, idB), (error: ApiError) => error.status === 403 && error.code === "key_not_for_session");
  });

  it("are refused at once when revoked, the others untouched", async () => {
    const { repo, check } = await setup();
    assert.equal(await check("am_a"), idA); // cached now
    assert.equal(await repo.revokeApiKey("am_a"), true);
    assert.equal(await check("am_a"), "401 api_key_revoked");
    assert.equal(await repo.revokeApiKey("am_a"), false, "revoked once");
    assert.equal(await check("am_b"), idB);
  });

  it("expire when the session closes or its deadline passes by the chain's clock, refused as the session is", async () => {
    const { repo, chainIndex, check } = await setup();
    await repo.followChain({ id: idA, settled: 0n, sequence: 0, closeRequested: false, finalized: true, closeTx: null });
    assert.equal(await check("am_a"), "410 session_finalized");
    assert.equal(await check("am_b"), idB);
    chainIndex.observeHead(11, termsB.deadline - 1, Date.now());
    assert.equal(await check("am_b"), idB, "a second before the deadline");
    chainIndex.observeHead(12, termsB.deadline, Date.now());
    assert.equal(await check("am_b"), "410 session_expired");
  });

  it("migrate from agent-wide keys: each kept for the session it was issued with", async () => {
    const directory = await mkdtemp(path.join(tmpdir(), "agentmesh-keys-"));
    directories.push(directory);
    const dbFile = path.join(directory, "relayer.db");
    const old = new DatabaseSync(dbFile);
    const keysMigration = MIGRATIONS.findIndex((migration) => migration.includes("CREATE TABLE api_keys"));
    for (const migration of MIGRATIONS.slice(0, keysMigration)) old.exec(migration);
    old.exec(`PRAGMA user_version = ${keysMigration}`);
    const insertSession = old.prepare(
      `INSERT INTO sessions (id, agent, provider_id, model_id, model, terms, status, receipt_head, open_tx, created_at)
       VALUES (?, ?, 1, 0, 'agentmesh-small', '{}', 'open', ?, '0x', ?)`,
    );
    insertSession.run(idA, termsA.agent, INITIAL_STATE.receiptHead, 1_000);
    insertSession.run(idB, termsB.agent, INITIAL_STATE.receiptHead, 5_000);
    const insertKey = old.prepare("INSERT INTO agents (api_key_hash, agent, created_at) VALUES (?, ?, ?)");
    insertKey.run(hashApiKey("am_old_a"), termsA.agent, 1_001);
    insertKey.run(hashApiKey("am_old_b"), termsB.agent, 5_000);
    insertKey.run(hashApiKey("am_no_session"), "0x0000000000000000000000000000000000000001", 9_000);
    old.close();
    const repo = new Repository(openSqlite(dbFile));
    assert.equal((await repo.apiKey("am_old_a"))?.sessionId, idA);
    assert.equal((await repo.apiKey("am_old_b"))?.sessionId, idB);
    assert.equal(await repo.apiKey("am_no_session"), undefined);
    await repo.close();
  });
});

describe("token buckets (per IP, per key)", () => {
  it("allow a burst, then one request per refill, answering how long to wait", () => {
    const buckets = new TokenBuckets({ perSecond: 2, burst: 3 });
    const t = 1_000_000;
    assert.deepEqual([0, 0, 0].map(() => buckets.take("ip:a", t)), [0, 0, 0]);
    assert.equal(buckets.take("ip:a", t), 1, "empty: retry in a second (half a second, rounded up)");
    assert.equal(buckets.take("ip:b", t), 0, "another client has its own bucket");
    assert.equal(buckets.take("ip:a", t + 500), 0, "one token back after 500 ms");
    assert.equal(buckets.take("ip:a", t + 500), 1);
    assert.deepEqual([0, 0, 0, 1].map(() => buckets.take("ip:a", t + 60_000)), [0, 0, 0, 1], "refilled to the burst, no more");
    assert.equal(new TokenBuckets({ perSecond: 0.01, burst: 1 }).take("k", t) + new TokenBuckets({ perSecond: 0.01, burst: 1 }).take("k", t), 0);
  });

  it("refuse a limit that cannot work", () => {
    assert.throws(() => new TokenBuckets({ perSecond: 0, burst: 1 }), RangeError);
    assert.throws(() => new TokenBuckets({ perSecond: 1, burst: 0 }), RangeError);
  });
});
