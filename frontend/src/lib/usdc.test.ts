import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatPricePer1K, formatUsdcAmount, parseUsdcDecimal, parseUsdcInput, usdcInputValue } from "./usdc.ts";

describe("USDC amounts", () => {
  it("shows six decimals with grouped thousands", () => {
    assert.equal(formatUsdcAmount(0n), "0.000000");
    assert.equal(formatUsdcAmount(1n), "0.000001");
    assert.equal(formatUsdcAmount(1_234_567_890_123n), "1,234,567.890123");
    assert.equal(formatUsdcAmount(-2_500_000n), "-2.500000");
    assert.equal(formatPricePer1K(150), "0.000150 USDC / 1K tokens");
  });

  it("parses typed amounts into atomic units", () => {
    assert.deepEqual(parseUsdcInput("12.5"), { ok: true, value: 12_500_000n });
    assert.deepEqual(parseUsdcInput(" 1,000 "), { ok: true, value: 1_000_000_000n });
    assert.deepEqual(parseUsdcInput(".000001"), { ok: true, value: 1n });
    assert.deepEqual(parseUsdcInput("7."), { ok: true, value: 7_000_000n });
  });

  it("refuses more than six decimals, signs, junk and out-of-bounds amounts", () => {
    assert.deepEqual(parseUsdcInput("0.0000001"), { ok: false, error: "USDC has 6 decimals: use at most 6 digits after the point." });
    assert.deepEqual(parseUsdcInput(""), { ok: false, error: "Enter an amount in USDC." });
    assert.equal(parseUsdcInput("-1").ok, false);
    assert.equal(parseUsdcInput("1e6").ok, false);
    assert.equal(parseUsdcInput(".").ok, false);
    assert.deepEqual(parseUsdcInput("0"), { ok: false, error: "Enter an amount above 0." });
    assert.deepEqual(parseUsdcInput("0", { min: 0n }), { ok: true, value: 0n });
    assert.deepEqual(parseUsdcInput("99", { min: 100_000_000n }), { ok: false, error: "Enter at least 100.000000 USDC." });
    assert.deepEqual(parseUsdcInput("5.000001", { max: 5_000_000n }), { ok: false, error: "Enter at most 5.000000 USDC." });
  });

  it("round-trips input values and relayer decimals", () => {
    assert.equal(usdcInputValue(12_500_000n), "12.5");
    assert.equal(usdcInputValue(100_000_000n), "100");
    assert.equal(usdcInputValue(1n), "0.000001");
    assert.equal(parseUsdcDecimal("0.002475"), 2_475n);
    assert.throws(() => parseUsdcDecimal("abc"), /not a USDC amount/);
  });
});
