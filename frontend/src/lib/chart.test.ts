import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { barLayout, compactNumber, linearScale, niceCeiling, ticks } from "./chart.ts";

describe("chart scaling", () => {
  it("rounds axis maxima up to 1, 2 or 5 × 10^k", () => {
    assert.deepEqual([0, 0.3, 1, 1.2, 3, 7, 42, 100, 101].map(niceCeiling), [1, 0.5, 1, 2, 5, 10, 50, 100, 200]);
  });

  it("scales linearly and clamps to the range", () => {
    const y = linearScale(100, 40);
    assert.deepEqual([y(0), y(50), y(100), y(150), y(-5)], [0, 20, 40, 40, 0]);
    assert.equal(linearScale(0, 10)(0), 0);
    assert.deepEqual(ticks(10, 4), [0, 2.5, 5, 7.5, 10]);
  });

  it("lays out bottom-aligned bars and compact labels", () => {
    assert.deepEqual(barLayout([1, 2], 100, 50, 2, 0), [
      { x: 0, y: 25, width: 50, height: 25 },
      { x: 50, y: 0, width: 50, height: 50 },
    ]);
    assert.equal(compactNumber(1500), "1.5K");
  });
});
