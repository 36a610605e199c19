import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PendingDistributionError, pendingDistribution } from "./agent-payouts.ts";

const ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const NONE = "0x0000000000000000000000000000000000000000";
const paid = [
  { payer: ALICE, referrer: NONE, amount: 50_000n },
  { payer: BOB, referrer: ALICE, amount: 60_000n },
  { payer: ALICE, referrer: NONE, amount: 70_000n },
] as const;

describe("pending distribution", () => {
  it("takes the last terms and the last `pending` payments, oldest first", () => {
    const result = pendingDistribution({ agentId: 1n, termsSet: [{ flow: "old" }, { flow: "current" }], paid, pending: 2n });
    assert.deepEqual(result, { flow: "current", payments: [paid[1], paid[2]], amount: 130_000n });
  });

  it("has nothing pending right after a distribution", () => {
    assert.deepEqual(pendingDistribution({ agentId: 1n, termsSet: [{ flow: 7 }], paid, pending: 0n }), { flow: 7, payments: [], amount: 0n });
  });

  it("refuses events that cannot rebuild the chain, saying why", () => {
    assert.throws(() => pendingDistribution({ agentId: 4n, termsSet: [], paid, pending: 0n }), {
      name: "PendingDistributionError",
      message: "No terms were found for agent #4: the events scanned start after it was listed.",
    });
    assert.throws(
      () => pendingDistribution({ agentId: 4n, termsSet: [{ flow: 1 }], paid, pending: 5n }),
      (error: unknown) => error instanceof PendingDistributionError && error.message === "Agent #4 has 5 pending payments, but only 3 were found: the events scanned start too late.",
    );
  });
});
