import assert from "node:assert/strict";
import { openTestDatabase } from "./test-database.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import {
  INITIAL_STATE,
  callCost,
  checkReceipt,
  computeEscrowAbi,
  hashCompletionOutput,
  hashRequestMessages,
  receiptHash,
  sessionIdOf,
  type SignedVoucher,
} from "@agentmesh/sdk";
import { ContractFunctionRevertedError, encodeErrorResult, type Hex } from "viem";
import type { RelayerContext } from "../src/context.ts";
import { DEFAULT_SETTLEMENT, SettlementOptionsError, SettlementWorker, settlementOptions } from "../src/core/settlement.ts";
import { ChainIndex } from "../src/store/chain-index.ts";
import { Repository } from "../src/store/repository.ts";
import { ProviderStats } from "../src/stats.ts";
import type { TxStatus } from "../src/tx-manager.ts";
import { sessionTerms } from "./fixtures.ts";

/** ComputeEscrow.MAX_BATCH: the most vouchers one settlement takes. */
const ESCROW_MAX_BATCH = 100;
const ESCROW = "0x5FbDB2315678afecb367f032d93F642f64180aa3";

describe("settlement options", () => {
  it("take the defaults, whose batch fits the escrow's MAX_BATCH", () => {
    assert.deepEqual(settlementOptions({}, ESCROW_MAX_BATCH), DEFAULT_SETTLEMENT);
    assert.ok(DEFAULT_SETTLEMENT.maxBatch <= ESCROW_MAX_BATCH);
    assert.deepEqual(settlementOptions({ maxBatch: ESCROW_MAX_BATCH, maxAgeMs: 5 }, ESCROW_MAX_BATCH), {
      ...DEFAULT_SETTLEMENT,
      maxBatch: ESCROW_MAX_BATCH,
      maxAgeMs: 5,
    });
  });

  it("refuse a batch the escrow would always refuse, saying so", () => {
    for (const maxBatch of [ESCROW_MAX_BATCH + 1, 200, 0, -1, 2.5, Number.NaN]) {
      assert.throws(() => settlementOptions({ maxBatch }, ESCROW_MAX_BATCH), {
        name: "SettlementOptionsError",
        message: `the settlement batch size (--settle-batch) must be an integer from 1 to 100, the escrow's MAX_BATCH, got ${maxBatch}`,
      });
    }
    assert.throws(() => settlementOptions({ maxBatch: 60 }, 50), SettlementOptionsError);
  });
});

/** The escrow's custom error `errorName(args)`, as viem surfaces a reverted simulation. */
const revert = (errorName: string, args: readonly unknown[]) =>
  new ContractFunctionRevertedError({
    abi: computeEscrowAbi,
    data: encodeErrorResult({ abi: computeEscrowAbi, errorName, args } as never),
    functionName: "settle",
  });

/**
 * The escrow's settle, all or nothing, as far as the worker can tell: its simulation refuses a batch
 * at its first voucher whose session is finalized (EscrowSessionNotOpen), past its claim window,
 * already settled at that sequence (EscrowVoucherStale), or listed in `badSignature`. Its
 * transaction manager mines what is sent at once, unless `hold` is set: then the transaction stays
 * in flight until the test resolves it with `finish`.
 */
class FakeEscrow {
  readonly sessions = new Map<Hex, { settled: bigint; sequence: number; claimEnd: number }>();
  readonly badSignature = new Set<Hex>();
  /** Every batch simulated, and every one sent. */
  readonly attempts: Hex[][] = [];
  readonly mined: Hex[][] = [];
  readonly sent: Hex[][] = [];
  hold = false;
  now = 1_000;
  /** The store a sent transaction's `link` records in (the relayer's). */
  repo: Repository | undefined;
  /** The gas account that sends its transactions. */
  readonly account = { address: "0x00000000000000000000000000000000000000a5" as Hex };
  private readonly txs = new Map<number, { status: TxStatus; minedHash: Hex | null; vouchers: SignedVoucher[] }>();

  async prepareSettlement(_kind: "settle" | "close", vouchers: SignedVoucher[]) {
    const ids = vouchers.map(({ voucher }) => sessionIdOf(voucher.terms));
    this.attempts.push(ids);
    for (const { voucher } of vouchers) {
      const id = sessionIdOf(voucher.terms);
      const state = this.sessions.get(id)!;
      if (state.claimEnd <= 1) throw revert("EscrowSessionNotOpen", [id]);
      if (this.now >= state.claimEnd) throw revert("EscrowClaimWindowOver", [id, BigInt(state.claimEnd)]);
      if (voucher.sequence <= state.sequence) throw revert("EscrowVoucherStale", [id, BigInt(state.sequence), BigInt(voucher.sequence)]);
      if (this.badSignature.has(id)) throw revert("EscrowInvalidSignature", [id, voucher.terms.receiptSigner]);
    }
    return { to: ESCROW, data: "0x" as Hex, vouchers };
  }

  /** Applies the vouchers of transaction `id` (as mining it would); `status` is how it ends. */
  finish(id: number, status: "confirmed" | "replaced" | "reverted", apply = status === "confirmed") {
    const tx = this.txs.get(id)!;
    if (apply) {
      for (const { voucher } of tx.vouchers) Object.assign(this.sessions.get(sessionIdOf(voucher.terms))!, { settled: voucher.cumulativeCost, sequence: voucher.sequence });
      this.mined.push(tx.vouchers.map(({ voucher }) => sessionIdOf(voucher.terms)));
    }
    Object.assign(tx, { status, minedHash: status === "replaced" ? null : `0x${id.toString(16).padStart(64, "0")}` });
  }

  readonly transactions = {
    send: async (_purpose: string, request: { vouchers: SignedVoucher[] }, link?: (sent: { id: number; nonce: number; hash: Hex }, repo: Repository) => Promise<void>) => {
      const id = this.txs.size + 1;
      const sent = { id, nonce: id, hash: `0x${id.toString(16).padStart(64, "0")}` as Hex };
      this.txs.set(id, { status: "pending", minedHash: null, vouchers: request.vouchers });
      this.sent.push(request.vouchers.map(({ voucher }) => sessionIdOf(voucher.terms)));
      if (link !== undefined) await this.repo!.transaction((repo) => link(sent, repo));
      if (!this.hold) this.finish(id, "confirmed");
      return sent;
    },
    get: async (id: number) => ({ id, nonce: id, ...this.txs.get(id)! }),
    poll: async () => {},
  };

  async session(id: Hex) {
    const state = this.sessions.get(id)!;
    return { ...state, requestCount: 0, inputTokens: 0, outputTokens: 0, latencyMs: 0 };
  }
}

/** A store with `count` sessions of this relayer, each with one call served and its voucher signed. */
async function workerSetup(count: number, options: Partial<typeof DEFAULT_SETTLEMENT> = {}) {
  const database = await openTestDatabase();
  const repo = new Repository(database);
  const chainIndex = new ChainIndex(database);
  chainIndex.observeHead(1, 1_000);
  const escrow = new FakeEscrow();
  escrow.repo = repo;
  const ids: Hex[] = [];
  for (let index = 0; index < count; index++) {
    const terms = sessionTerms({ deadline: 100_000, salt: BigInt(index) });
    const id = sessionIdOf(terms);
    await repo.insertSession({ id, agent: terms.agent, providerId: 1, modelId: 0, model: "agentmesh-small", terms, state: INITIAL_STATE, openTx: `0x${"ab".repeat(32)}` });
    const receipt = {
      sessionId: id,
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
    const signature = { r: `0x${"11".repeat(32)}`, yParityAndS: `0x${"22".repeat(32)}` } as const;
    assert.ok(await repo.holdSession(id, "serving", Date.now() + 30_000));
    await repo.recordCall({ hash: receiptHash(receipt), receipt, state: checkReceipt(terms, id, INITIAL_STATE, receipt), providerSignature: signature, tokenMismatch: false }, "serving");
    await repo.recordAgentSignature(id, 1, signature);
    escrow.sessions.set(id, { settled: 0n, sequence: 0, claimEnd: terms.deadline + 86_400 });
    ids.push(id);
  }
  const stats = new ProviderStats();
  const ctx = { repo, chain: escrow, chainIndex, stats } as unknown as RelayerContext;
  const worker = new SettlementWorker(ctx, { ...DEFAULT_SETTLEMENT, maxAgeMs: 3_600_000, retryBaseMs: 5, ...options });
  /** The settlement rows recorded for session `id`: one per attempt. */
  const rows = async (id: Hex) =>
    ((await database.all("SELECT status, error, items FROM settlements ORDER BY id")) as { status: string; error: string | null; items: string }[])
      .filter((row) => (JSON.parse(row.items) as { sessionId: string }[]).some((item) => item.sessionId === id.toLowerCase()))
      .map((row) => [row.status, row.error]);
  /** `agentmesh_settlements_total` by outcome, as `/metrics` shows it. */
  const settlements = async () =>
    Object.fromEntries([...(await stats.prometheus()).matchAll(/^agentmesh_settlements_total\{outcome="(\w+)"\} (\d+)$/gm)].map(([, outcome, count]) => [outcome, Number(count)]));
  return { repo, chainIndex, escrow, ids, worker, rows, settlements };
}

describe("settlement worker", () => {
  it("settles the rest of a batch in the same pass when the escrow refuses it for a finalized session, which is then terminal", async () => {
    const { repo, escrow, ids, worker, rows, settlements } = await workerSetup(3);
    const [dead, alive, other] = ids;
    escrow.sessions.set(dead, { settled: 0n, sequence: 0, claimEnd: 1 }); // finalized on-chain, unseen by the indexer

    assert.match((await worker.settleDue(true)) ?? "", /^0x/);
    assert.deepEqual(escrow.mined, [[alive, other]]);
    assert.deepEqual(await rows(dead), [["failed", "EscrowSessionNotOpen"]]);
    assert.deepEqual(await rows(alive), [["failed", "EscrowSessionNotOpen"], ["confirmed", null]]);
    const recorded = (await repo.getSession(dead))!;
    assert.deepEqual(
      [recorded.status, recorded.finalSettled, recorded.finalSequence, recorded.settledSequence, recorded.signedSequence],
      ["closed", 0n, 0, 0, 1],
    );
    assert.equal(recorded.unsettledReason, "EscrowSessionNotOpen: the session was finalized on-chain with 0.000000 USDC settled (sequence 0)");

    for (let pass = 0; pass < 3; pass++) {
      await sleep(10); // past any retry delay
      assert.equal(await worker.settleDue(true), undefined);
    }
    assert.equal(escrow.attempts.length, 2, "never sent again");
    assert.equal((await rows(dead)).length, 1);
    assert.deepEqual(await settlements(), { settled: 2, unsettleable: 1 });
  });

  it("records a voucher past its session's claim window as terminal, without closing the session", async () => {
    const { repo, escrow, ids, worker, rows } = await workerSetup(2);
    const [late, fine] = ids;
    escrow.sessions.set(late, { settled: 0n, sequence: 0, claimEnd: 500 });
    await worker.settleDue(true);
    assert.deepEqual(escrow.mined, [[fine]]);
    assert.deepEqual([(await repo.getSession(late))?.status, await rows(late)], ["open", [["failed", "EscrowClaimWindowOver"]]]);
    assert.match((await repo.getSession(late))!.unsettledReason!, /^EscrowClaimWindowOver: its claim window ended at 1970-01-01T00:08:20/);
    await sleep(10);
    assert.equal(await worker.settleDue(true), undefined);
    assert.equal(escrow.attempts.length, 2);
  });

  it("counts a voucher the escrow already settled as settled", async () => {
    const { repo, escrow, ids, worker } = await workerSetup(2);
    const [settled, fine] = ids;
    escrow.sessions.set(settled, { settled: 195n, sequence: 1, claimEnd: 186_400 }); // posted by someone else
    await worker.settleDue(true);
    assert.deepEqual(escrow.mined, [[fine]]);
    assert.deepEqual([(await repo.getSession(settled))?.settledSequence, (await repo.getSession(settled))?.unsettledReason], [1, null]);
    assert.equal(await worker.settleDue(true), undefined);
  });

  it("backs off only the session of any other refusal, and retries it later", async () => {
    const { repo, escrow, ids, worker, rows, settlements } = await workerSetup(2, { retryBaseMs: 300 });
    const [bad, fine] = ids;
    escrow.badSignature.add(bad);
    await worker.settleDue(true);
    assert.deepEqual(escrow.mined, [[fine]]);
    assert.equal((await repo.getSession(bad))?.unsettledReason, null, "not terminal");
    assert.equal(await worker.settleDue(true), undefined, "backing off");
    assert.equal(escrow.attempts.length, 2);
    await sleep(350);
    escrow.badSignature.delete(bad);
    await worker.settleDue(true);
    assert.deepEqual(escrow.mined, [[fine], [bad]]);
    assert.deepEqual((await rows(bad)).map(([status]) => status), ["failed", "confirmed"]);
    assert.equal((await repo.getSession(bad))?.settledSequence, 1);
    assert.deepEqual(await settlements(), { settled: 2, retried: 1 });
  });

  it("settles at once a session that serves no more calls (closing, or past its deadline by the chain's clock); others wait for age or size", async () => {
    const { repo, escrow, ids, worker } = await workerSetup(2);
    const [closing, open] = ids;
    assert.equal(await worker.settleDue(), undefined, "young and few: not due");
    await repo.followChain({ id: closing, settled: 0n, sequence: 0, closeRequested: true, finalized: false, closeTx: null });
    await worker.settleDue();
    assert.deepEqual(escrow.mined, [[closing, open]], "the batch goes, with what else is due");

    const expired = await workerSetup(1);
    assert.equal(await expired.worker.settleDue(), undefined);
    expired.chainIndex.observeHead(2, 100_001); // past the session's deadline (100,000)
    await expired.worker.settleDue();
    assert.deepEqual(expired.escrow.mined, [expired.ids]);
  });

  it("issue 12 §3: sessions backing off never starve the others (the oldest stuck sessions once filled the due query)", async () => {
    const { repo, escrow, ids, worker } = await workerSetup(5, { maxBatch: 2, retryBaseMs: 60_000 });
    const stuck = ids.slice(0, 4); // the four oldest vouchers: refused for a bad signature, backing off a minute
    for (const id of stuck) escrow.badSignature.add(id);
    for (let pass = 0; pass < 3; pass++) await worker.settleDue(true);
    assert.deepEqual(escrow.mined, [[ids[4]]], "the youngest settles while the oldest back off");
    assert.equal((await repo.getSession(ids[4]))?.settledSequence, 1);
    assert.deepEqual(await Promise.all(stuck.map(async (id) => (await repo.getSession(id))?.settledSequence)), [0, 0, 0, 0]);
    assert.equal((await repo.sessionsToSettle(10)).length, 0, "backing off: not due now");
    assert.equal((await repo.sessionsToSettle(10, Date.now() + 61_000)).length, 4, "due again after their retry time");
  });

  it("issue 12 §3: never re-sends the vouchers of a batch that is still pending, and applies it once its transaction confirms", async () => {
    const { repo, escrow, ids, worker, rows } = await workerSetup(2);
    escrow.hold = true; // in flight: no receipt, however long it takes
    assert.match((await worker.settleDue(true)) ?? "", /^0x/);
    for (let pass = 0; pass < 3; pass++) assert.equal(await worker.settleDue(true), undefined);
    assert.deepEqual(escrow.sent, [ids], "sent once, as one batch");
    assert.equal(escrow.attempts.length, 1, "not even simulated again");
    assert.deepEqual(await rows(ids[0]), [["pending", null]]);
    escrow.finish(1, "confirmed");
    await worker.settleDue(true);
    assert.deepEqual(await Promise.all(ids.map(async (id) => (await repo.getSession(id))?.settledSequence)), [1, 1]);
    assert.deepEqual(await rows(ids[0]), [["confirmed", null]]);
  });

  it("issue 12 §3: a settlement whose receipt never comes is not left pending: a nonce taken by another transaction is resolved by the escrow's state", async () => {
    // A back-off long enough that a loaded machine cannot run out the first one between two passes.
    const { repo, escrow, ids, worker, rows } = await workerSetup(2, { retryBaseMs: 300 });
    const [lost] = ids;
    escrow.hold = true;
    await worker.settleDue(true); // batch of both, transaction 1
    escrow.finish(1, "replaced", false); // its nonce went to another transaction; the escrow settled neither
    escrow.hold = false;
    await worker.settleDue(true); // resolves it: failed, both back off briefly
    assert.deepEqual(await rows(lost), [["failed", "nonce 1 was used by another transaction"]]);
    await sleep(350);
    await worker.settleDue(true);
    assert.deepEqual(await Promise.all(ids.map(async (id) => (await repo.getSession(id))?.settledSequence)), [1, 1], "sent again and settled");

    // Whichever transaction settled it: if the escrow shows the voucher settled, that is success.
    const other = await workerSetup(1);
    other.escrow.hold = true;
    await other.worker.settleDue(true);
    other.escrow.finish(1, "replaced", true); // another transaction at that nonce carried these very vouchers
    await other.worker.settleDue(true);
    assert.equal((await other.repo.getSession(other.ids[0]))?.settledSequence, 1);
    assert.deepEqual(await other.rows(other.ids[0]), [["failed", "nonce 1 was used by another transaction; the escrow shows its vouchers settled"]]);
    assert.equal(await other.worker.settleDue(true), undefined, "nothing to send again");
    assert.equal(other.escrow.sent.length, 1);
  });
});

