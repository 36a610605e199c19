/**
 * Readiness and the indexer's range rule (issue 12 §12): what `GET /readyz` names while the relayer
 * starts, and which RPC errors halve the getLogs range.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError } from "@agentmesh/sdk/http";
import { ReorgTooDeepError, isRangeTooLargeError, type IndexerStatus } from "../src/indexer.ts";
import { Readiness } from "../src/readiness.ts";
import { OperatingChecks } from "../src/operating-checks.ts";
import { openSqlite } from "../src/store/sqlite.ts";
import { Repository } from "../src/store/repository.ts";

const status = (overrides: Partial<IndexerStatus> = {}): IndexerStatus => ({
  synced: false,
  lastBlock: undefined,
  target: undefined,
  lastError: undefined,
  range: 5_000,
  ...overrides,
});

describe("readiness", () => {
  it("issue 13: is not ready while the gas account cannot pay for a settlement or the store takes no writes, and says so", async () => {
    const readiness = new Readiness(() => status({ synced: true, lastBlock: 10, target: 10 }));
    readiness.chainChecked();
    const repo = new Repository(openSqlite(":memory:"));
    const chain = { balance: 0n, fee: 2_000_000_000n }; // 2 gwei
    const checks = new OperatingChecks({
      repo,
      publicClient: {
        getBalance: async () => chain.balance,
        estimateFeesPerGas: (async () => ({ maxFeePerGas: chain.fee, maxPriorityFeePerGas: 1n })) as never,
      },
      gasAddress: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
      maxFeePerGas: 50_000_000_000n,
      readiness,
    });
    const named = () => readiness.problems().map((problem) => [problem.check, problem.message]);

    await checks.check();
    assert.deepEqual(named(), [
      ["gas", "the gas account 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 holds 0 ETH; a settlement needs about 0.00022 ETH (110000 gas at 2 gwei)"],
    ]);
    chain.balance = 220_000_000_000_000n - 1n; // a wei short
    await checks.check();
    assert.equal(named()[0][0], "gas");
    chain.balance = 220_000_000_000_000n;
    await checks.check();
    assert.deepEqual(named(), [], "ready once it can pay");
    chain.fee = 500_000_000_000n; // fees spike above the relayer's cap: it prices at its cap (50 gwei)
    await checks.check();
    assert.match(named()[0][1], /a settlement needs about 0\.0055 ETH \(110000 gas at 50 gwei\)$/);
    chain.fee = 2_000_000_000n;

    await repo.close(); // a store that takes no writes
    await checks.check();
    assert.deepEqual(named().map(([check]) => check), ["store"]);
    assert.match(named()[0][1], /^the store takes no writes: /);
  });

  it("names the RPC and the indexer's lag until the index has caught up once", () => {
    let current = status();
    const readiness = new Readiness(() => current);
    assert.deepEqual(
      readiness.problems().map((problem) => [problem.check, problem.message]),
      [
        ["rpc", "the chain's RPC has not answered yet"],
        ["indexer", "the indexer has not seen the chain's head yet"],
      ],
    );
    readiness.startupFailed(new Error("HTTP request failed.\nURL: http://127.0.0.1:1/"));
    assert.equal(readiness.problems()[0].message, "the chain's RPC failed: HTTP request failed.");
    assert.throws(() => readiness.requireServing(), (error: ApiError) => error.status === 503 && error.code === "relayer_not_ready" && /RPC failed/.test(error.message));

    readiness.chainChecked();
    current = status({ lastBlock: 90, target: 130 });
    assert.deepEqual(readiness.problems(), [{ check: "indexer", behindBlocks: 40, message: "the indexer is 40 blocks behind the confirmed head" }]);
    assert.throws(() => readiness.requireServing(), (error: ApiError) => error.code === "relayer_not_ready" && error.headers["retry-after"] === "5");

    current = status({ synced: true, lastBlock: 130, target: 130 });
    assert.deepEqual(readiness.problems(), []);
    readiness.requireServing(); // serves
    // An RPC outage later makes it not ready, but calls the index can serve still are.
    current = status({ synced: true, lastBlock: 130, target: 131, lastError: new Error("fetch failed") });
    assert.deepEqual(readiness.problems(), [{ check: "rpc", message: "the chain's RPC failed: fetch failed" }]);
    readiness.requireServing();

    // A reorg deeper than the kept hashes: the index is wrong, and nothing is served from it.
    current = status({ synced: true, lastBlock: 130, target: 131, lastError: new ReorgTooDeepError("chain reorganized deeper than the 128 indexed blocks") });
    assert.deepEqual(readiness.problems(), [{ check: "indexer", message: "chain reorganized deeper than the 128 indexed blocks" }]);
    assert.throws(() => readiness.requireServing(), (error: ApiError) => error.code === "relayer_not_ready" && /reorganized deeper/.test(error.message));

    current = status({ synced: true, lastBlock: 130, target: 131, lastError: new Error("fetch failed") });
    readiness.drain();
    assert.deepEqual(readiness.problems().map((problem) => problem.check), ["shutdown", "rpc"]);
    assert.throws(() => readiness.requireServing(), (error: ApiError) => error.status === 503 && error.code === "relayer_shutting_down");
  });

  it("never becomes ready when the chain refuses the configuration", () => {
    const readiness = new Readiness(() => status({ synced: true, lastBlock: 1, target: 1 }));
    readiness.configurationRefused(new Error("the RPC serves chain 8453, not the configured chain 84532"));
    assert.deepEqual(readiness.problems().map((problem) => problem.check), ["configuration", "indexer"]);
  });
});

describe("getLogs range errors", () => {
  it("recognizes the RPCs' refusals of a range as too large, and nothing else", () => {
    const refusals = [
      { code: -32005, message: "query returned more than 10000 results" },
      { message: "exceed maximum block range: 5000" },
      { message: "eth_getLogs is limited to a 10,000 range", details: "block range too large" },
      { message: "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range" },
      { message: "query exceeds max block range 8" },
      { message: "RPC error", cause: { message: "too many blocks requested" } },
    ];
    for (const error of refusals) assert.equal(isRangeTooLargeError(error), true, JSON.stringify(error));
    for (const error of [new Error("fetch failed"), { code: -32603, message: "internal error" }, { message: "execution reverted" }, undefined]) {
      assert.equal(isRangeTooLargeError(error), false, JSON.stringify(error));
    }
  });
});
