import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import type { Hex } from "viem";
import {
  INITIAL_STATE,
  callCost,
  formatUsdc,
  checkReceipt,
  hashCompletionOutput,
  hashRequestMessages,
  receiptHash,
  sessionIdOf,
  type Receipt,
} from "@agentmesh/sdk";
import { RateLimiter } from "../src/context.ts";
import { DatabaseSync } from "node:sqlite";
import { DEFAULT_CHECKPOINT_PACING, MIGRATIONS, nextCheckpointDelay, startCheckpointer } from "../src/store/database.ts";
import { Repository, SessionHoldLostError } from "../src/store/repository.ts";
import { SESSIONS_DUE_AT } from "../src/store/postgres-schema.ts";
import { openSqlite } from "../src/store/sqlite.ts";
import { sessionTerms } from "./fixtures.ts";

const terms = sessionTerms();
const sessionId = sessionIdOf(terms);
const signature = { r: `0x${"11".repeat(32)}`, yParityAndS: `0x${"22".repeat(32)}` } as const;
/** The gas account of the instance that sends the settlements recorded here. */
const GAS_OWNER = "0x0000000000000000000000000000000000000ga5";

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

/** Directories made for fresh databases, removed after the tests. */
const directories: string[] = [];
after(() => Promise.all(directories.map((directory) => rm(directory, { recursive: true, force: true }))));

async function freshRepository(file?: string) {
  let dbFile = file;
  if (dbFile === undefined) {
    const directory = await mkdtemp(path.join(tmpdir(), "agentmesh-store-"));
    directories.push(directory);
    dbFile = path.join(directory, "relayer.db");
  }
  return { repo: new Repository(openSqlite(dbFile)), dbFile };
}

/** One row of a SQLite pragma, read through the store's port. */
async function pragma(repo: Repository, name: string): Promise<Record<string, unknown>> {
  return (await repo.database.get(`PRAGMA ${name}`))!;
}

/** Records call `record` as the store's callers do: holding the session for it first. */
async function recordHeld(repo: Repository, record: Parameters<Repository["recordCall"]>[0]): Promise<void> {
  assert.ok(await repo.holdSession(record.receipt.sessionId, "test-call", Date.now() + 30_000), "the session is free");
  await repo.recordCall(record, "test-call");
}

describe("relayer store", () => {
  it("migrates a new file, and reopening it keeps every row (the session's terms whole: signer and fee included)", async () => {
    const { repo, dbFile } = await freshRepository();
    await repo.insertSession({ id: sessionId, agent: terms.agent, providerId: 1, modelId: 0, model: "agentmesh-small", terms, state: INITIAL_STATE, openTx: `0x${"ab".repeat(32)}` });
    await repo.addSessionKey("am_key", sessionId);
    await repo.close();
    const reopened = new Repository(openSqlite(dbFile));
    assert.equal((await pragma(reopened, "user_version")).user_version, MIGRATIONS.length);
    assert.deepEqual((await reopened.getSession(sessionId))?.terms, terms);
    assert.equal((await reopened.apiKey("am_key"))?.sessionId, sessionId);
    assert.equal(await reopened.apiKey("am_other"), undefined);
    assert.equal((await pragma(reopened, "journal_mode")).journal_mode, "wal");
    await reopened.close();
  });

  it("records a call, the agent's signature and a confirmed settlement, once each", async () => {
    const { repo } = await freshRepository();
    await repo.insertSession({ id: sessionId, agent: terms.agent, providerId: 1, modelId: 0, model: "agentmesh-small", terms, state: INITIAL_STATE, openTx: `0x${"ab".repeat(32)}` });
    assert.equal((await repo.getSession(sessionId))?.state.sequence, 0, "read before the call");
    const receipt = firstReceipt();
    const state = checkReceipt(terms, sessionId, INITIAL_STATE, receipt);
    const hash = receiptHash(receipt);
    const call = { hash, receipt, state, providerSignature: signature, tokenMismatch: false };
    await recordHeld(repo, call);
    // Once: recording it ended the call's hold, and a new hold finds the session's sequence moved on.
    await assert.rejects(repo.recordCall(call, "test-call"), SessionHoldLostError);
    assert.ok(await repo.holdSession(sessionId, "another-call", Date.now() + 30_000));
    await assert.rejects(repo.recordCall(call, "another-call"), SessionHoldLostError);
    await repo.releaseSessionHold(sessionId, "another-call");
    assert.equal((await repo.receiptsOf(sessionId)).length, 1);
    assert.deepEqual((await repo.getSession(sessionId))?.state, state);
    assert.deepEqual((await repo.getReceipt(hash))?.receipt, receipt);
    assert.equal((await repo.sessionsToSettle(10)).length, 0, "nothing signed yet");

    await repo.recordAgentSignature(sessionId, 1, signature);
    const due = await repo.sessionsToSettle(10);
    assert.deepEqual(due.map(({ session }) => session.signedSequence), [1]);

    const settlement = await repo.insertSettlement("settle", [{ sessionId, sequence: 1 }], GAS_OWNER);
    assert.equal(typeof settlement, "number");
    assert.equal((await repo.sessionsToSettle(10)).length, 0, "a session in a pending settlement is not posted again");
    assert.equal(await repo.insertSettlement("settle", [{ sessionId, sequence: 1 }], GAS_OWNER), undefined, "nor put in a second settlement");
    await repo.linkSettlementTx(settlement!, 1, `0x${"cd".repeat(32)}`, 3);
    await repo.confirmSettlement(settlement!);
    assert.equal((await repo.getSession(sessionId))?.settledSequence, 1);
    assert.equal((await repo.getReceipt(hash))?.settlementTx, `0x${"cd".repeat(32)}`);
    assert.equal((await repo.sessionsToSettle(10)).length, 0, "settled");
    assert.deepEqual(await repo.pendingSettlements(), []);
    await repo.close();
  });

  it("issue 12 item 9: commits reach the disk before COMMIT returns (synchronous = FULL), not only the OS", async () => {
    const { repo } = await freshRepository();
    assert.equal((await pragma(repo, "synchronous")).synchronous, 2, "FULL");
    await repo.close();
  });

  it("issue 12 item 4: finds due sessions through the partial index, oldest voucher first, reading no settled history", async () => {
    const { repo } = await freshRepository();
    // The plan of the query sessionsToSettle runs (portable SQL: no INDEXED BY hint, so this checks
    // that SQLite picks the index by itself, and reads a range of it).
    const plan = (await repo.database.all(
      `EXPLAIN QUERY PLAN SELECT * FROM sessions
        WHERE status IN ('open', 'closing') AND unsettled_reason IS NULL AND settling_id IS NULL AND signed_sequence > settled_sequence
          AND ${SESSIONS_DUE_AT} <= ?
        ORDER BY ${SESSIONS_DUE_AT} LIMIT ?`,
      [1, 10],
    )) as { detail: string }[];
    // A range of the index: sessions backing off (retry time after now) are not even read.
    assert.deepEqual(
      plan.map((step) => step.detail),
      ["SEARCH sessions USING INDEX sessions_due (<expr><?)"],
      "no scan of sessions, receipts or settlements",
    );
    // Three sessions signed in turn; the second is held by a pending settlement until it fails.
    const ids: Hex[] = [];
    for (const salt of [11n, 12n, 13n]) {
      const other = { ...terms, salt };
      const id = sessionIdOf(other);
      ids.push(id);
      await repo.insertSession({ id, agent: terms.agent, providerId: 1, modelId: 0, model: "agentmesh-small", terms: other, state: INITIAL_STATE, openTx: `0x${"ab".repeat(32)}` });
      const receipt = { ...firstReceipt(), sessionId: id };
      await recordHeld(repo, { hash: receiptHash(receipt), receipt, state: checkReceipt(other, id, INITIAL_STATE, receipt), providerSignature: signature, tokenMismatch: false });
      await repo.recordAgentSignature(id, 1, signature);
      await new Promise((resolve) => setTimeout(resolve, 3)); // distinct signing times
    }
    const due = async () => (await repo.sessionsToSettle(10)).map(({ session }) => session.id);
    assert.deepEqual(await due(), ids, "oldest voucher first");
    const held = (await repo.insertSettlement("settle", [{ sessionId: ids[1], sequence: 1 }], GAS_OWNER))!;
    assert.deepEqual(await due(), [ids[0], ids[2]]);
    assert.deepEqual((await repo.sessionsToSettle(1)).map(({ session }) => session.id), [ids[0]], "the limit holds");
    await repo.failSettlement(held, "reverted");
    assert.deepEqual(await due(), ids, "a failed settlement releases its sessions");
    const confirmed = (await repo.insertSettlement("settle", [{ sessionId: ids[0], sequence: 1 }], GAS_OWNER))!;
    await repo.confirmSettlement(confirmed);
    assert.deepEqual(await due(), [ids[1], ids[2]], "a confirmed one leaves them settled");
    await repo.close();
  });
});

describe("relayer store following the chain", () => {
  /** A session of this relayer with calls 1..`calls` served and the agent's vouchers up to `signed`. */
  async function served(calls: number, signed: number) {
    const { repo, dbFile } = await freshRepository();
    await repo.insertSession({ id: sessionId, agent: terms.agent, providerId: 1, modelId: 0, model: "agentmesh-small", terms, state: INITIAL_STATE, openTx: `0x${"ab".repeat(32)}` });
    let state = INITIAL_STATE;
    const costs: bigint[] = [];
    for (let sequence = 1; sequence <= calls; sequence++) {
      const receipt = { ...firstReceipt(), sequence, previousHash: state.receiptHead };
      state = checkReceipt(terms, sessionId, state, receipt);
      await recordHeld(repo, { hash: receiptHash(receipt), receipt, state, providerSignature: signature, tokenMismatch: false });
      costs.push(state.cumulativeCost);
    }
    if (signed > 0) await repo.recordAgentSignature(sessionId, signed, signature);
    return { repo, dbFile, costs };
  }
  const onChain = { id: sessionId, settled: 0n, sequence: 0, closeRequested: false, finalized: false, closeTx: null };

  it("marks a session closing on a close request; it still settles", async () => {
    const { repo } = await served(2, 2);
    await repo.followChain({ ...onChain, closeRequested: true });
    assert.equal((await repo.getSession(sessionId))?.status, "closing");
    assert.deepEqual((await repo.sessionsToSettle(10)).map(({ session }) => [session.id, session.status]), [[sessionId, "closing"]]);
    assert.deepEqual((await repo.openSessionsFor(terms.agent, "agentmesh-small")).map((session) => session.status), ["closing"]);
    // A later pass with no close request in it does not reopen it.
    await repo.followChain(onChain);
    assert.equal((await repo.getSession(sessionId))?.status, "closing");
  });

  it("counts what the escrow settled as settled, whoever posted it", async () => {
    const { repo, costs } = await served(3, 2);
    await repo.followChain({ ...onChain, settled: costs[1], sequence: 2 });
    assert.equal((await repo.getSession(sessionId))?.settledSequence, 2);
    assert.deepEqual(await repo.sessionsToSettle(10), []);
    // Never beyond its own receipts (a cooperative close settles one sequence past the last).
    await repo.followChain({ ...onChain, settled: costs[2], sequence: 4, finalized: true });
    assert.equal((await repo.getSession(sessionId))?.settledSequence, 3);
  });

  it("closes a session finalized on-chain, recording the escrow's settled amount and why the rest never settles", async () => {
    const { repo, costs } = await served(3, 3);
    const closeTx = `0x${"ef".repeat(32)}` as const;
    await repo.followChain({ ...onChain, settled: costs[0], sequence: 1, finalized: true, closeTx });
    const session = (await repo.getSession(sessionId))!;
    assert.deepEqual(
      [session.status, session.closeTx, session.finalSettled, session.finalSequence, session.settledSequence],
      ["closed", closeTx, costs[0], 1, 1],
    );
    assert.equal(session.unsettledReason, `the session was finalized on-chain with ${formatUsdc(costs[0])} USDC settled (sequence 1)`);
    assert.deepEqual(await repo.sessionsToSettle(10), [], "terminal: never posted again");
    assert.deepEqual(await repo.openSessionsFor(terms.agent, "agentmesh-small"), []);
    // The first account of it stays (the worker's, say, with the escrow's error).
    await repo.followChain({ ...onChain, settled: costs[0], sequence: 1, finalized: true, closeTx: null }, "another reason");
    assert.equal((await repo.getSession(sessionId))?.unsettledReason, session.unsettledReason);
    assert.equal((await repo.getSession(sessionId))?.closeTx, closeTx);
  });

  it("records nothing unsettled for a session finalized with all its vouchers settled, and ignores sessions opened elsewhere", async () => {
    const { repo, costs } = await served(2, 2);
    await repo.followChain({ ...onChain, settled: costs[1], sequence: 3, finalized: true });
    assert.deepEqual([(await repo.getSession(sessionId))?.status, (await repo.getSession(sessionId))?.unsettledReason], ["closed", null]);
    await repo.followChain({ ...onChain, id: `0x${"77".repeat(32)}`, finalized: true });
    assert.equal(await repo.getSession(`0x${"77".repeat(32)}`), undefined);
  });

  it("records a terminal reason without closing the session (claim window over)", async () => {
    const { repo } = await served(1, 1);
    await repo.markUnsettled(sessionId, "EscrowClaimWindowOver: its claim window ended");
    assert.deepEqual([(await repo.getSession(sessionId))?.status, (await repo.getSession(sessionId))?.unsettledReason], ["open", "EscrowClaimWindowOver: its claim window ended"]);
    assert.deepEqual(await repo.sessionsToSettle(10), []);
  });

  it("upgrades a schema-2 file: sessions and receipts kept, 'closing' allowed, foreign keys still enforced, the chain index re-read", async () => {
    const directory = await mkdtemp(path.join(tmpdir(), "agentmesh-store-"));
    directories.push(directory);
    const dbFile = path.join(directory, "relayer.db");
    const old = new DatabaseSync(dbFile);
    for (const migration of MIGRATIONS.slice(0, 2)) old.exec(migration);
    old.exec("PRAGMA user_version = 2");
    const receipt = firstReceipt();
    old.prepare(
      `INSERT INTO sessions (id, agent, provider_id, model_id, model, terms, status, receipt_head, open_tx, created_at, signed_sequence)
       VALUES (?, ?, 1, 0, 'agentmesh-small', ?, 'open', ?, ?, 1, 1)`,
    ).run(sessionId, terms.agent, JSON.stringify({ ...terms, budgetId: "1", maxSpend: terms.maxSpend.toString(), salt: "7" }), INITIAL_STATE.receiptHead, `0x${"ab".repeat(32)}`);
    old.prepare("INSERT INTO receipts (hash, session_id, sequence, body, provider_signature, created_at) VALUES (?, ?, 1, '{}', '{}', 1)").run(receiptHash(receipt), sessionId);
    old.exec("INSERT INTO indexer_state (id, last_block) VALUES (1, 50)");
    old.close();

    const repo = new Repository(openSqlite(dbFile));
    assert.equal((await pragma(repo, "user_version")).user_version, MIGRATIONS.length);
    const session = (await repo.getSession(sessionId))!;
    assert.deepEqual([session.status, session.signedSequence, session.finalSettled, session.unsettledReason], ["open", 1, null, null]);
    assert.deepEqual(session.terms, terms);
    assert.equal((await repo.database.get("SELECT COUNT(*) AS n FROM receipts"))!.n, 1);
    await repo.followChain({ id: sessionId, settled: 0n, sequence: 0, closeRequested: true, finalized: false, closeTx: null });
    assert.equal((await repo.getSession(sessionId))?.status, "closing");
    await assert.rejects(
      repo.database.run("INSERT INTO receipts (hash, session_id, sequence, body, provider_signature, created_at) VALUES ('x', 'nope', 1, '{}', '{}', 1)"),
      /FOREIGN KEY/,
    );
    assert.equal(await repo.database.get("SELECT * FROM indexer_state"), undefined, "the indexer starts over");
    await repo.close();
  });
});

describe("relayer store group commit", () => {
  const open = (repo: Repository) =>
    repo.insertSession({ id: sessionId, agent: terms.agent, providerId: 1, modelId: 0, model: "agentmesh-small", terms, state: INITIAL_STATE, openTx: `0x${"ab".repeat(32)}` });
  const call = () => {
    const receipt = firstReceipt();
    const state = checkReceipt(terms, sessionId, INITIAL_STATE, receipt);
    return { hash: receiptHash(receipt), receipt, state, providerSignature: signature, tokenMismatch: false };
  };

  it("commits a turn's calls together at the end of the turn; until then only this connection sees them", async () => {
    const { repo, dbFile } = await freshRepository();
    const other = new Repository(openSqlite(dbFile));
    await open(repo);
    const { hash } = call();
    await repo.transaction(async (unit) => {
      await recordHeld(unit, call());
      await unit.recordAgentSignature(sessionId, 1, signature);
      assert.equal((await unit.getSession(sessionId))?.signedSequence, 1, "the writing connection reads its own batch");
      assert.equal(await other.getReceipt(hash), undefined, "not committed yet");
    });
    assert.equal((await other.getReceipt(hash))?.agentSignature?.r, signature.r);
    assert.equal((await other.getSession(sessionId))?.signedSequence, 1);
    // Units started in one turn share its commit: the first resolves with the others' writes on disk.
    const first = repo.addSessionKey("am_first", sessionId);
    const second = repo.addSessionKey("am_second", sessionId);
    await first;
    assert.equal((await other.apiKey("am_second"))?.sessionId, sessionId, "committed with the first");
    await second;
    await repo.close();
    await other.close();
  });

  it("rolls back a failing unit alone, and commits the rest of its batch", async () => {
    const { repo, dbFile } = await freshRepository();
    await open(repo);
    assert.equal((await repo.getSession(sessionId))?.signedSequence, 0);
    assert.ok(await repo.holdSession(sessionId, "test-call", Date.now() + 30_000));
    // Three units in one turn, so in one transaction: the middle one fails after writing.
    const recorded = repo.recordCall(call(), "test-call");
    const failing = assert.rejects(
      repo.transaction(async (unit) => {
        await unit.recordAgentSignature(sessionId, 1, signature);
        throw new Error("the unit fails after writing");
      }),
      /the unit fails/,
    );
    const again = assert.rejects(repo.recordCall(call(), "test-call"), SessionHoldLostError, "recorded once: the call's hold ended with its record");
    await Promise.all([recorded, failing, again]);
    assert.equal((await repo.getSession(sessionId))?.signedSequence, 0, "nothing of the failed unit stays");
    assert.equal((await repo.getSession(sessionId))?.state.sequence, 1);
    const other = new Repository(openSqlite(dbFile));
    assert.equal((await other.getSession(sessionId))?.state.sequence, 1);
    assert.equal((await other.getSession(sessionId))?.signedSequence, 0, "the failed unit's write is gone");
    assert.equal((await other.getReceipt(call().hash))?.agentSignature, null);
    await repo.close();
    await other.close();
  });

  it("commits each write before it resolves, and what is in progress before closing", async () => {
    const { repo, dbFile } = await freshRepository();
    const other = new Repository(openSqlite(dbFile));
    await open(repo);
    const { hash } = call();
    await recordHeld(repo, call());
    assert.equal(typeof (await repo.insertSettlement("settle", [{ sessionId, sequence: 1 }], GAS_OWNER)), "number");
    assert.equal((await other.getReceipt(hash))?.hash, hash, "the receipt went to disk before its write resolved");
    const signing = repo.recordAgentSignature(sessionId, 1, signature);
    await repo.close();
    await signing;
    assert.equal((await other.getSession(sessionId))?.signedSequence, 1, "closing committed the last batch");
    await other.close();
  });

  it("holds a session for one call at a time: of two holds at once exactly one gets it, and the holder alone records", async () => {
    // One connection: SQLite has one writer per file (instances sharing a store use PostgreSQL).
    const { repo } = await freshRepository();
    await open(repo);
    const until = Date.now() + 30_000;
    const holds = await Promise.all([repo.holdSession(sessionId, "call-a", until), repo.holdSession(sessionId, "call-b", until)]);
    assert.deepEqual(
      holds.map((held) => held?.id),
      [sessionId.toLowerCase(), undefined],
      "the first hold wins; the second finds the session held",
    );
    assert.equal(await repo.holdSession(sessionId, "call-c", until), undefined, "held until released or lapsed");
    await assert.rejects(repo.recordCall(call(), "call-b"), SessionHoldLostError, "only the holder records");
    assert.equal(await repo.renewSessionHold(sessionId, "call-b", until), false);
    assert.equal(await repo.renewSessionHold(sessionId, "call-a", until + 1), true);
    await repo.releaseSessionHold(sessionId, "call-b"); // not its hold: nothing
    assert.equal(await repo.holdSession(sessionId, "call-d", until), undefined);
    await repo.releaseSessionHold(sessionId, "call-a");
    assert.ok(await repo.holdSession(sessionId, "call-d", until), "released: the next call holds it");
    assert.ok(await repo.holdSession(sessionId, "call-e", until + 60_000, until + 2), "lapsed (its holder died): taken over");
    await assert.rejects(repo.recordCall(call(), "call-d"), SessionHoldLostError, "the lapsed holder's record is refused");
    await repo.recordCall(call(), "call-e");
    assert.equal((await repo.getSession(sessionId))?.state.sequence, 1);
    assert.equal((await repo.receiptsOf(sessionId)).length, 1);
    await repo.close();
  });
});

describe("relayer store checkpointer", () => {
  it("moves checkpoints off the writing connection into its own thread", async () => {
    const { repo, dbFile } = await freshRepository();
    assert.equal((await pragma(repo, "wal_autocheckpoint")).wal_autocheckpoint, 0, "the relayer's connection never checkpoints by itself");
    const sizeBefore = (await stat(dbFile)).size;
    for (let i = 0; i < 200; i++) await repo.addSessionKey(`am_key_${i}`, sessionId);
    assert.equal((await stat(dbFile)).size, sizeBefore, "committed pages wait in the log");
    const checkpointer = startCheckpointer(dbFile);
    let sizeAfter = sizeBefore;
    for (let attempt = 0; attempt < 100 && sizeAfter === sizeBefore; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      sizeAfter = (await stat(dbFile)).size;
    }
    assert.ok(sizeAfter > sizeBefore, "the checkpointer copied the log into the database file");
    await new Promise((resolve) => setTimeout(resolve, 100)); // its checkpoint has caught up
    await repo.addSessionKey("am_key_after", sessionId);
    const { log } = (await pragma(repo, "wal_checkpoint(PASSIVE)")) as { log: number };
    assert.ok(log < 10, `the next commit started the log over (${log} frames, not 200+)`);
    await repo.close();
    await checkpointer.stop();
    const reopened = new Repository(openSqlite(dbFile));
    assert.equal((await reopened.apiKey("am_key_199"))?.sessionId, sessionId);
    await reopened.close();
  });
});

describe("checkpoint pacing", () => {
  it("starts the log over under steady writes, so it stays bounded", async () => {
    const { repo, dbFile } = await freshRepository();
    const pacing = { minIntervalMs: 5, maxIntervalMs: 50, targetFrames: 8, maxLogFrames: 64 };
    const checkpointer = startCheckpointer(dbFile, pacing);
    // Once the thread has checkpointed a first commit, it is running.
    const sizeBefore = (await stat(dbFile)).size;
    await repo.addSessionKey("am_first", sessionId);
    for (let attempt = 0; attempt < 200 && (await stat(dbFile)).size === sizeBefore; attempt++) await new Promise((resolve) => setTimeout(resolve, 10));
    let commits = 0;
    let largestLog = 0;
    // A fixed number of commits, not a fixed time: a loaded CI machine then writes as much, slower.
    while (commits < 600) {
      // Ten calls' writes committed together every millisecond or so, as a loaded relayer's group
      // commits come: PASSIVE checkpoints alone rarely catch up with them, and the log grows.
      await repo.transaction(async (unit) => {
        for (let call = 0; call < 10; call++) await unit.addSessionKey(`am_steady_${commits}_${call}`, sessionId);
      });
      commits++;
      if (commits % 20 === 0) largestLog = Math.max(largestLog, (await stat(`${dbFile}-wal`)).size);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await checkpointer.stop();
    const pageSize = (await pragma(repo, "page_size")).page_size as number;
    assert.ok(largestLog < 2048 * pageSize, `the log grew to ${largestLog} bytes, past 2,048 pages (tens of MB without restarts)`);
    assert.equal((await repo.apiKey(`am_steady_${commits - 1}_9`))?.sessionId, sessionId);
    await repo.close();
  });

  it("checkpoints about every 128 new frames, every 20 ms under load and once a second when idle", () => {
    const { minIntervalMs, maxIntervalMs, targetFrames } = DEFAULT_CHECKPOINT_PACING;
    assert.deepEqual([minIntervalMs, maxIntervalMs, targetFrames], [20, 1000, 128]);
    assert.equal(nextCheckpointDelay(0, 1000), 1000, "nothing written: the longest wait");
    assert.equal(nextCheckpointDelay(800, 20), 20, "40 frames a millisecond: the shortest wait");
    assert.equal(nextCheckpointDelay(256, 100), 50, "2.56 frames a millisecond: 128 more in 50 ms");
    assert.equal(nextCheckpointDelay(72, 1000), 1000, "72 frames a second: once a second");
    assert.equal(nextCheckpointDelay(5, 0), 25.6, "a zero interval counts as 1 ms");
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

  it("counts exactly at high rates while expired requests leave the window", () => {
    const limiter = new RateLimiter();
    for (let i = 0; i < 6000; i++) assert.equal(limiter.tryAcquire(1, 6000, i * 10), true); // 6,000 in 60 s
    assert.equal(limiter.tryAcquire(1, 6000, 59_999), false);
    // From then on, each request 10 ms later finds exactly one request a minute older gone.
    for (let i = 0; i < 9000; i++) assert.equal(limiter.tryAcquire(1, 6000, 60_000 + i * 10), true, `request ${i}`);
    assert.equal(limiter.tryAcquire(1, 6000, 60_000 + 8999 * 10), false);
  });
});
