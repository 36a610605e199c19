import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildSplit, formatShare, parsePercent, splitSlices } from "./splits.ts";

const LOW = "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955";
const HIGH = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
const REST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

describe("split editor", () => {
  it("converts percentages to shares of 1,000,000 and back", () => {
    assert.deepEqual(parsePercent("12.5"), { ok: true, value: 125_000 });
    assert.deepEqual(parsePercent("100%"), { ok: true, value: 1_000_000 });
    assert.deepEqual(parsePercent("0.0001"), { ok: true, value: 1 });
    assert.equal(parsePercent("0").ok, false);
    assert.equal(parsePercent("100.5").ok, false);
    assert.equal(parsePercent("1.00001").ok, false);
    assert.equal(formatShare(125_000), "12.5%");
  });

  it("builds a split sorted by address, with the remainder taking what is left", () => {
    const split = buildSplit([{ account: HIGH, percent: "60" }, { account: LOW, percent: "30" }], REST);
    assert.ok(split.ok);
    assert.deepEqual(split.value, { recipients: [{ account: LOW, share: 300_000 }, { account: HIGH, share: 600_000 }], remainderRecipient: REST });
    assert.deepEqual(splitSlices(split.value).map((slice) => [slice.account, slice.share, slice.remainder]), [
      [LOW, 300_000, false],
      [HIGH, 600_000, false],
      [REST, 100_000, true],
    ]);
  });

  it("refuses duplicates, shares above 100% and missing recipients", () => {
    assert.deepEqual(buildSplit([{ account: LOW, percent: "60" }, { account: LOW.toLowerCase(), percent: "10" }], REST), { ok: false, error: "Recipient 2 is listed twice." });
    assert.deepEqual(buildSplit([{ account: LOW, percent: "60" }, { account: HIGH, percent: "50" }], REST), { ok: false, error: "The shares add up to 110%, above 100%." });
    assert.deepEqual(buildSplit([], REST), { ok: false, error: "Add at least one recipient." });
    assert.match((buildSplit([{ account: LOW, percent: "50" }], "") as { error: string }).error, /^Remainder recipient: /);
  });
});
