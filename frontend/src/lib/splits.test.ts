import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Address } from "viem";
import { buildSplit, creditedSlices, formatBps, formatShare, parsePercent, splitSlices, splitsPaying, type CreatedSplit, type SplitDefinition } from "./splits.ts";

const LOW = "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955";
const HIGH = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
const REST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const SPLIT_A: Address = "0xa16E02E87b7454126E5E10d957A927A7F5B5d2be";
const SPLIT_B: Address = "0xB7A5bd0345EF1Cc5E66bf61BdeC17D2461fBd968";
const SPLIT_C: Address = "0xeEBe00Ac0756308ac4AaBfD76c05c4F3088B8883";

describe("split editor", () => {
  it("converts percentages to shares of 1,000,000 and back", () => {
    assert.deepEqual(parsePercent("12.5"), { ok: true, value: 125_000 });
    assert.deepEqual(parsePercent("100%"), { ok: true, value: 1_000_000 });
    assert.deepEqual(parsePercent("0.0001"), { ok: true, value: 1 });
    assert.equal(parsePercent("0").ok, false);
    assert.equal(parsePercent("100.5").ok, false);
    assert.equal(parsePercent("1.00001").ok, false);
    assert.equal(formatShare(125_000), "12.5%");
    assert.equal(formatBps(250), "2.5%");
    assert.equal(formatBps(10_000n), "100%");
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

  it("finds the splits that pay an account, through nested splits too, but not through a remainder left no share", () => {
    const created: CreatedSplit[] = [
      { split: SPLIT_A, definition: { recipients: [{ account: LOW, share: 500_000 }], remainderRecipient: REST } },
      { split: SPLIT_B, definition: { recipients: [{ account: HIGH, share: 1_000_000 }], remainderRecipient: LOW } },
      { split: SPLIT_C, definition: { recipients: [{ account: SPLIT_A.toLowerCase() as Address, share: 300_000 }], remainderRecipient: HIGH } },
    ];
    assert.deepEqual(splitsPaying(REST, created), [SPLIT_A, SPLIT_C]);
    assert.deepEqual(splitsPaying(LOW, created), [SPLIT_A, SPLIT_C]);
    assert.deepEqual(splitsPaying(HIGH, created), [SPLIT_B, SPLIT_C]);
    assert.deepEqual(splitsPaying(SPLIT_A, created), [SPLIT_C]);
    assert.deepEqual(splitsPaying("0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65", created), []);
  });

  it("totals what each slice was credited from the distributions' credits, the remainder's entry last", () => {
    const split: SplitDefinition = { recipients: [{ account: LOW, share: 700_000 }, { account: HIGH, share: 200_000 }], remainderRecipient: REST };
    const credited = creditedSlices(split, [
      [700_000n, 200_000n, 100_000n],
      [2n, 0n, 1n],
    ]);
    assert.deepEqual(credited.map((slice) => [slice.account, slice.remainder, slice.credited]), [
      [LOW, false, 700_002n],
      [HIGH, false, 200_000n],
      [REST, true, 100_001n],
    ]);
    // A remainder left no share has no slice; its (zero) entry is skipped.
    const whole: SplitDefinition = { recipients: [{ account: LOW, share: 1_000_000 }], remainderRecipient: REST };
    assert.deepEqual(creditedSlices(whole, [[5n, 0n]]).map((slice) => slice.credited), [5n]);
    assert.deepEqual(creditedSlices(whole, []).map((slice) => slice.credited), [0n]);
  });
});
