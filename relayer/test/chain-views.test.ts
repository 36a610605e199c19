import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ChainViewCache } from "../src/context.ts";

// Issue 12 item 10: "/v1/providers makes uncached RPC calls per request". The views' chain reads are
// shared: one per block (and per cache period), whatever the number of requests. A counting
// gateway stands in for the chain (the route itself is exercised in test/e2e/keys.test.ts).

function setup() {
  const reads = { fee: 0, metrics: [] as number[] };
  let failNext = false;
  const chain = {
    async feeBps() {
      reads.fee++;
      if (failNext) {
        failNext = false;
        throw new Error("RPC down");
      }
      return 250;
    },
    async metrics(id: number) {
      reads.metrics.push(id);
      return { requests: BigInt(id), earnings: 0n, latencyMs: 0n } as never;
    },
  };
  const index = { block: 10, async lastBlock() { return this.block; } };
  return { reads, index, cache: new ChainViewCache(chain, index, 60_000), failOnce: () => (failNext = true) };
}

describe("provider view cache", () => {
  it("reads the fee and each provider's metrics once per indexed block, however many ask at once", async () => {
    const { reads, index, cache } = setup();
    const fees = await Promise.all(Array.from({ length: 50 }, () => cache.feeBps()));
    assert.deepEqual(new Set(fees), new Set([250]));
    await Promise.all(Array.from({ length: 50 }, (_, i) => cache.metrics(1 + (i % 2))));
    assert.equal(reads.fee, 1);
    assert.deepEqual(reads.metrics.sort(), [1, 2]);
    index.block = 11; // the index saw a new block: what the chain shows may have changed
    await cache.feeBps();
    await cache.metrics(1);
    assert.equal(reads.fee, 2);
    assert.deepEqual(reads.metrics.sort(), [1, 1, 2]);
  });

  it("keeps no failed read: the next request reads again", async () => {
    const { reads, cache, failOnce } = setup();
    failOnce();
    await assert.rejects(cache.feeBps(), /RPC down/);
    assert.equal(await cache.feeBps(), 250);
    assert.equal(reads.fee, 2);
  });
});
