import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bucketRanges, summarizeFlows } from "./accounting.ts";

describe("aggregate flows", () => {
  it("splits a block range into consecutive buckets", () => {
    assert.deepEqual(bucketRanges(0n, 99n, 4), [[0n, 24n], [25n, 49n], [50n, 74n], [75n, 99n]]);
    assert.deepEqual(bucketRanges(10n, 12n, 12), [[10n, 10n], [11n, 11n], [12n, 12n]]);
    assert.deepEqual(bucketRanges(5n, 4n, 3), []);
  });

  it("sums volume per bucket, fees as volume minus earnings, and ranks providers", () => {
    const summary = summarizeFlows(
      [
        { blockNumber: 3n, paid: 1_000_000n },
        { blockNumber: 7n, paid: 400_000n },
        { blockNumber: 8n, paid: 600_000n },
      ],
      [
        { providerId: 1, requests: 3n, earnings: 975_000n },
        { providerId: 2, requests: 5n, earnings: 390_000n },
        { providerId: 2, requests: 1n, earnings: 600_000n },
      ],
      bucketRanges(0n, 9n, 2),
    );
    assert.equal(summary.volume, 2_000_000n);
    assert.equal(summary.providerEarnings, 1_965_000n);
    assert.equal(summary.protocolFees, 35_000n);
    assert.equal(summary.settlements, 3);
    assert.deepEqual(summary.buckets.map((bucket) => bucket.volume), [1_000_000n, 1_000_000n]);
    assert.deepEqual(summary.topProviders, [
      { providerId: 2, requests: 6n, earnings: 990_000n },
      { providerId: 1, requests: 3n, earnings: 975_000n },
    ]);
  });
});
