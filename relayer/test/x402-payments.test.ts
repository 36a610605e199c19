import assert from "node:assert/strict";
import { openTestDatabase } from "./test-database.ts";
import { describe, it } from "node:test";
import type { Hex } from "viem";
import { openSqlite } from "../src/store/sqlite.ts";
import { PaymentLocks, PayoutLogs } from "../src/store/agent-payments.ts";
import { Repository } from "../src/store/repository.ts";

const PAYER = "0x976EA74026E726554dB657fA54763abd0C3a0aa9" as Hex;
const NONCE = `0x${"ab".repeat(32)}` as Hex;

async function locks() {
  const repo = new Repository(await openTestDatabase());
  return { repo, locks: new PaymentLocks(repo) };
}

const payment = (overrides: Partial<Parameters<PaymentLocks["reserve"]>[0]> = {}) => ({
  payer: PAYER,
  nonce: NONCE,
  kind: "call" as const,
  agentId: 3,
  authorizationHash: `0x${"01".repeat(32)}` as Hex,
  requestHash: "request-1",
  payload: "{}",
  ...overrides,
});

describe("x402 payment locks", () => {
  it("lets one user reserve a payment (payer and nonce, in any letter case) until it fails", async () => {
    const { repo, locks: store } = await locks();
    try {
      assert.equal(await store.reserve(payment()), true);
      assert.equal(await store.reserve(payment({ payer: PAYER.toLowerCase() as Hex, nonce: NONCE.toUpperCase().replace("0X", "0x") as Hex })), false);
      assert.equal(await store.reserve(payment({ requestHash: "request-2" })), false, "reserved");
      await store.settling(payment(), '{"answer":1}');
      assert.equal(await store.reserve(payment()), false, "settling: the transfer may mine");
      await store.sent(payment(), `0x${"cd".repeat(32)}`);
      await store.settled(payment(), null);
      assert.equal(await store.reserve(payment()), false, "settled: used for good");
      const record = (await store.get(payment()))!;
      assert.deepEqual([record.state, record.txHash, record.response], ["settled", `0x${"cd".repeat(32)}`, '{"answer":1}']);
    } finally {
      await repo.close();
    }
  });

  it("keeps a failed call's answer for a retry of the same request only, so the agent is not run again", async () => {
    const { repo, locks: store } = await locks();
    try {
      await store.reserve(payment());
      await store.settling(payment(), '{"answer":1}');
      await store.failed(payment(), "the payer's balance fell short");
      assert.equal(await store.reserve(payment()), true, "nothing was charged: the payment may be used again");
      assert.deepEqual([(await store.get(payment()))!.state, (await store.get(payment()))!.response], ["reserved", '{"answer":1}']);
      await store.failed(payment(), "again");
      assert.equal(await store.reserve(payment({ requestHash: "request-2" })), true);
      assert.equal((await store.get(payment()))!.response, null, "another request gets a run of its own");
    } finally {
      await repo.close();
    }
  });

  it("lists settling payments to reconcile, and releases reservations a stopped process left", async () => {
    const { repo, locks: store } = await locks();
    try {
      const other = { nonce: `0x${"ef".repeat(32)}` as Hex };
      await store.reserve(payment());
      await store.reserve(payment(other));
      await store.settling(payment(other), null);
      assert.deepEqual((await store.settlingPayments(10)).map((record) => record.nonce), [other.nonce]);
      assert.equal(await store.releaseReservations(Date.now() - 60_000), 0, "reserved since: still held");
      assert.equal(await store.releaseReservations(Date.now() + 1), 1);
      assert.equal((await store.get(payment()))!.state, "failed");
      assert.equal((await store.get(payment(other)))!.state, "settling", "a transfer may have been sent: reconciled, not released");
      assert.equal(await store.releaseReservations(Date.now() + 1), 0);
    } finally {
      await repo.close();
    }
  });
});

it("forgets the answers of payments resolved before a time, never of those still settling", async () => {
  const { repo, locks: store } = await locks();
  try {
    const other = { nonce: `0x${"ef".repeat(32)}` as Hex };
    for (const key of [payment(), payment(other)]) {
      await store.reserve(key);
      await store.settling(key, '{"answer":1}');
    }
    await store.settled(payment(), null);
    assert.equal(await store.forgetAnswers(Date.now() - 60_000), 0, "too recent");
    assert.equal(await store.forgetAnswers(Date.now() + 1), 1);
    assert.deepEqual([(await store.get(payment()))!.response, (await store.get(payment(other)))!.response], [null, '{"answer":1}']);
  } finally {
    await repo.close();
  }
});

describe("payout logs", () => {
  const log = (block: number, index: number, event: "AgentTermsSet" | "AgentPaid", agentId = 1) => ({
    blockNumber: BigInt(block),
    logIndex: index,
    agentId,
    event,
    topics: [`0x${block.toString(16).padStart(64, "0")}`] as [Hex],
    data: `0x${index.toString(16).padStart(2, "0")}` as Hex,
  });

  it("moves its cursor with each range stored, and survives a reopen", async () => {
    const { mkdtemp, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const path = await import("node:path");
    const dir = await mkdtemp(path.join(tmpdir(), "agentmesh-payout-"));
    try {
      let repo = new Repository(openSqlite(path.join(dir, "relayer.db")));
      const logs = new PayoutLogs(repo);
      assert.equal(await logs.cursor(), undefined);
      await logs.append(10n, [log(4, 0, "AgentTermsSet"), log(9, 2, "AgentPaid")]);
      await logs.append(20n, []);
      assert.equal(await logs.cursor(), 20n);
      await repo.close();
      repo = new Repository(openSqlite(path.join(dir, "relayer.db")));
      const reopened = new PayoutLogs(repo);
      assert.equal(await reopened.cursor(), 20n);
      assert.deepEqual((await reopened.logs(1, "AgentPaid", 20n)).map((stored) => [stored.blockNumber, stored.logIndex, stored.data]), [[9n, 2, "0x02"]]);
      await repo.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("keeps only an agent's last terms and its pending payments, and replaces an agent's logs on a rebuild", async () => {
    const repo = new Repository(await openTestDatabase());
    try {
      const logs = new PayoutLogs(repo);
      await logs.append(30n, [
        log(1, 0, "AgentTermsSet"),
        log(2, 0, "AgentPaid"),
        log(3, 0, "AgentTermsSet"),
        log(4, 0, "AgentPaid"),
        log(4, 1, "AgentPaid"),
        log(5, 0, "AgentPaid", 2),
        log(25, 0, "AgentPaid"),
      ]);
      await logs.prune(1, 20n, 2);
      assert.deepEqual((await logs.logs(1, "AgentTermsSet", 30n)).map((stored) => stored.blockNumber), [3n]);
      assert.deepEqual((await logs.logs(1, "AgentPaid", 30n)).map((stored) => [stored.blockNumber, stored.logIndex]), [[4n, 0], [4n, 1], [25n, 0]], "a log after the block read is kept");
      assert.equal((await logs.logs(2, "AgentPaid", 30n)).length, 1, "other agents are untouched");
      await logs.prune(1, 30n, 0);
      assert.deepEqual(await logs.logs(1, "AgentPaid", 30n), []);
      await logs.replace(1, 30n, [log(7, 3, "AgentTermsSet"), log(8, 0, "AgentPaid")]);
      assert.deepEqual((await logs.logs(1, "AgentTermsSet", 30n)).map((stored) => stored.blockNumber), [7n]);
      assert.deepEqual((await logs.logs(1, "AgentPaid", 30n)).map((stored) => stored.blockNumber), [8n]);
      assert.equal(await logs.cursor(), 30n);
    } finally {
      await repo.close();
    }
  });
});
