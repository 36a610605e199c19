/**
 * The settlement worker's query at scale (`npm run bench:soak`): a fresh relayer database, opened
 * and filled through the relayer's own store (`openSqlite`, `Repository`), holding about a week
 * of normal use — 100,000 sessions and 20,000 settlements — and the time the worker's look for due
 * sessions takes on it.
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Address, Hex } from "viem";
import { GENESIS_RECEIPT_HASH, type CompactSignature, type Receipt, type SessionTerms, type VoucherState } from "../../sdk/src/index.ts";
import { DEFAULT_SETTLEMENT } from "../../relayer/src/core/settlement.ts";
import { openSqlite } from "../../relayer/src/store/sqlite.ts";
import { Repository, type SettlementItem } from "../../relayer/src/store/repository.ts";

/** What the database holds: sizes and the mix of states. */
export interface SettleQueryOptions {
  sessions: number;
  settlements: number;
  /** Timed runs at most, and the time after which no further run starts (one always runs). */
  maxRuns: number;
  budgetMs: number;
  /** Progress lines (stderr). */
  log: (line: string) => void;
}

export interface SettleQueryResult {
  /** Median of the timed runs. */
  medianMs: number;
  runsMs: number[];
  /** Sessions the query returned (it is asked for the worker's limit). */
  returned: number;
  /** Sessions due by construction of the mix (signed beyond settled, not in flight, not terminal). */
  due: number;
  seedMs: number;
}

/** Share of sessions whose latest signed voucher is not settled yet (recent calls, or in flight). */
const UNSETTLED_SHARE = 0.03;
/** Share of the settled sessions that were then finalized on-chain (closed). */
const CLOSED_SHARE = 0.6;
/** Share of settlements that failed (refused or not mined; their vouchers went again later). */
const FAILED_SHARE = 0.05;
/** Settlements in flight (sent, not yet mined): a few batches. */
const PENDING_SETTLEMENTS = 10;
/** Vouchers per settlement batch in the seeded history (except pending ones: full batches). */
const FAILED_BATCH = 5;
/** Shares of the unsettled sessions: in pending batches, closing (close requested on-chain), terminal (never settling). */
const IN_FLIGHT_SHARE = 1 / 3;
const CLOSING_SHARE = 0.07;
const TERMINAL_SHARE = 0.03;

const sha256 = (text: string): Hex => `0x${createHash("sha256").update(text).digest("hex")}`;
const SIGNATURE: CompactSignature = { r: sha256("r"), yParityAndS: sha256("s") };
const AGENT: Address = "0x00000000000000000000000000000000000a9e17";
const SIGNER: Address = "0x000000000000000000000000000000000051e7e2";
const CALL_COST = 13n;
/** The gas account that sent the seeded settlements, and the token the seeded calls held their sessions with. */
const GAS_ACCOUNT: Address = "0x0000000000000000000000000000000000009a55";
const HOLD_TOKEN = "seed";

/**
 * Seeds a temporary database as described, then times `Repository.sessionsToSettle` with the limit
 * the settlement worker passes (`maxBatch * 2`): the median of up to `maxRuns` runs.
 */
export async function measureSettleQuery(options: SettleQueryOptions): Promise<SettleQueryResult> {
  const dir = await mkdtemp(path.join(tmpdir(), "agentmesh-settle-query-"));
  const file = path.join(dir, "relayer.db");
  try {
    const seedStarted = performance.now();
    let repo = new Repository(openSqlite(file));
    const due = await seed(repo, options);
    options.log(`settle query: rows written in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s; checkpointing`);
    // Reopened, as after a restart: the last connection's close checkpoints the log into the file,
    // as the relayer's checkpointer keeps it in steady state.
    await repo.close();
    repo = new Repository(openSqlite(file));
    const seedMs = performance.now() - seedStarted;
    options.log(`settle query: seeded ${options.sessions} sessions and ${options.settlements} settlements in ${(seedMs / 1000).toFixed(1)} s`);

    const limit = DEFAULT_SETTLEMENT.maxBatch; // what SettlementWorker.settleDue asks for
    const runsMs: number[] = [];
    let returned = 0;
    const started = performance.now();
    while (runsMs.length < options.maxRuns && (runsMs.length === 0 || performance.now() - started < options.budgetMs)) {
      const runStarted = performance.now();
      returned = (await repo.sessionsToSettle(limit)).length;
      runsMs.push(performance.now() - runStarted);
      options.log(`settle query: run ${runsMs.length}: ${runsMs.at(-1)!.toFixed(1)} ms, ${returned} sessions`);
    }
    await repo.close();
    const sorted = [...runsMs].sort((a, b) => a - b);
    const medianMs = (sorted[Math.floor((sorted.length - 1) / 2)] + sorted[Math.ceil((sorted.length - 1) / 2)]) / 2;
    return { medianMs, runsMs, returned, due, seedMs };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Fills `store` in one transaction through its own methods. Sessions have one to three calls, all
 * signed. The settled ones were settled by a confirmed batch (about five sessions each, so that the
 * history has `settlements` rows), most of them later closed; failed batches are spread through the
 * history; the unsettled ones are the newest: some in pending batches, some closing, some terminal,
 * the rest due. Returns how many are due.
 */
async function seed(store: Repository, { sessions, settlements }: SettleQueryOptions): Promise<number> {
  const unsettled = Math.round(sessions * UNSETTLED_SHARE);
  const settled = sessions - unsettled;
  const failed = Math.round(settlements * FAILED_SHARE);
  const confirmed = settlements - failed - PENDING_SETTLEMENTS;
  const pendingBatch = Math.min(DEFAULT_SETTLEMENT.maxBatch, Math.round((unsettled * IN_FLIGHT_SHARE) / PENDING_SETTLEMENTS));
  const closing = Math.round(unsettled * CLOSING_SHARE);
  const terminal = Math.round(unsettled * TERMINAL_SHARE);
  const ids: Hex[] = [];
  const lastSequence = (index: number) => 1 + (index % 3);
  const item = (index: number): SettlementItem => ({ sessionId: ids[index], sequence: lastSequence(index) });
  const deadline = Math.floor(Date.now() / 1000) + 7 * 86_400;
  let nonce = 0;
  const sendBatch = async (repo: Repository, items: SettlementItem[]) => {
    const id = await repo.insertSettlement("settle", items, GAS_ACCOUNT);
    if (id === undefined) throw new Error("seed: a session of this batch is in another pending settlement");
    await repo.linkSettlementTx(id, id, sha256(`tx ${id}`), nonce++);
    return id;
  };

  await store.transaction(async (repo) => {
    for (let index = 0; index < sessions; index++) {
      const id = sha256(`session ${index}`);
      ids.push(id);
      const terms: SessionTerms = {
        agent: AGENT,
        budgetId: 1n,
        providerId: 1 + (index % 2),
        modelId: 1,
        receiptSigner: SIGNER,
        inputPricePer1K: 150,
        outputPricePer1K: 600,
        minChargePerCall: 10,
        feeBps: 100,
        maxSpend: 200_000n,
        deadline,
        salt: BigInt(index),
      };
      const opened: VoucherState = { sequence: 0, cumulativeCost: 0n, requestCount: 0, inputTokens: 0, outputTokens: 0, latencyMs: 0, receiptHead: GENESIS_RECEIPT_HASH, isFinal: false };
      await repo.insertSession({ id, agent: AGENT, providerId: terms.providerId, modelId: 1, model: "agentmesh-small", terms, state: opened, openTx: sha256(`open ${index}`) });
      let previousHash = GENESIS_RECEIPT_HASH;
      for (let sequence = 1; sequence <= lastSequence(index); sequence++) {
        const receipt: Receipt = {
          sessionId: id,
          sequence,
          providerId: terms.providerId,
          model: "agentmesh-small",
          inputTokens: 20,
          outputTokens: 16,
          cost: CALL_COST,
          latencyMs: 40,
          inputHash: sha256(`input ${index} ${sequence}`),
          outputHash: sha256(`output ${index} ${sequence}`),
          previousHash,
        };
        const hash = sha256(`receipt ${index} ${sequence}`);
        const state: VoucherState = {
          sequence,
          cumulativeCost: CALL_COST * BigInt(sequence),
          requestCount: sequence,
          inputTokens: 20 * sequence,
          outputTokens: 16 * sequence,
          latencyMs: 40 * sequence,
          receiptHead: hash,
          isFinal: false,
        };
        // Each call holds its session while it runs (the hold is what recordCall checks).
        if ((await repo.holdSession(id, HOLD_TOKEN, Date.now() + 60_000)) === undefined) throw new Error("seed: session held");
        await repo.recordCall({ hash, receipt, state, providerSignature: SIGNATURE, tokenMismatch: false }, HOLD_TOKEN);
        previousHash = hash;
      }
      await repo.recordAgentSignature(id, lastSequence(index), SIGNATURE);
    }

    // The history: confirmed batches over the settled sessions, oldest first, with a failed batch
    // (of sessions the next confirmed batches settle) every so often.
    const failedEvery = Math.max(1, Math.floor(confirmed / Math.max(1, failed)));
    let failedSent = 0;
    for (let batch = 0; batch < confirmed; batch++) {
      const from = Math.floor((batch * settled) / confirmed);
      const to = Math.floor(((batch + 1) * settled) / confirmed);
      if (batch % failedEvery === 0 && failedSent < failed) {
        failedSent++;
        await repo.failSettlement(await sendBatch(repo, Array.from({ length: Math.min(FAILED_BATCH, settled - from) }, (_, offset) => item(from + offset))), "reverted");
      }
      await repo.confirmSettlement(await sendBatch(repo, Array.from({ length: to - from }, (_, offset) => item(from + offset))));
    }
    for (; failedSent < failed; failedSent++) await repo.failSettlement(await sendBatch(repo, [item(failedSent % settled)]), "reverted");
    for (let index = 0; index < Math.round(settled * CLOSED_SHARE); index++) {
      const sequence = lastSequence(index);
      await repo.followChain({ id: ids[index], settled: CALL_COST * BigInt(sequence), sequence, closeRequested: false, finalized: true, closeTx: sha256(`close ${index}`) });
    }

    // The newest sessions: in flight, closing, terminal, due.
    let next = settled;
    for (let batch = 0; batch < PENDING_SETTLEMENTS; batch++, next += pendingBatch) {
      await sendBatch(repo, Array.from({ length: pendingBatch }, (_, offset) => item(next + offset)));
    }
    for (let end = next + closing; next < end; next++) {
      await repo.followChain({ id: ids[next], settled: 0n, sequence: 0, closeRequested: true, finalized: false, closeTx: null });
    }
    for (let end = next + terminal; next < end; next++) await repo.markUnsettled(ids[next], "EscrowClaimWindowOver: seeded");
  });
  return unsettled - PENDING_SETTLEMENTS * pendingBatch - terminal;
}
