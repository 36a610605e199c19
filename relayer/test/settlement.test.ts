import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_SETTLEMENT, SettlementOptionsError, settlementOptions } from "../src/settlement.ts";

/** ComputeEscrow.MAX_BATCH: the most vouchers one settlement takes. */
const ESCROW_MAX_BATCH = 100;

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
