import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatTimestamp, parseAddress, parseAddressList, parseEndpoint, parseExpiry, parseInteger, parseModelName } from "./validation.ts";

const A = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
const B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

describe("form validation", () => {
  it("checksums addresses and refuses malformed or zero ones", () => {
    assert.deepEqual(parseAddress(` ${A} `), { ok: true, value: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" });
    assert.equal(parseAddress("0x1234").ok, false);
    assert.deepEqual(parseAddress(`0x${"0".repeat(40)}`), { ok: false, error: "The zero address cannot be used." });
  });

  it("parses address lists and names the bad or repeated entry", () => {
    assert.deepEqual(parseAddressList(`${A}, ${B}\n`), { ok: true, value: ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8", B] });
    assert.deepEqual(parseAddressList(""), { ok: true, value: [] });
    assert.match((parseAddressList(`${A} nope`) as { error: string }).error, /^Address 2: /);
    assert.deepEqual(parseAddressList(`${A} ${A.toUpperCase().replace("0X", "0x")}`), { ok: false, error: "Address 2 is listed twice." });
  });

  it("bounds integers, endpoints and model names", () => {
    assert.deepEqual(parseInteger("1,200", 1), { ok: true, value: 1200 });
    assert.deepEqual(parseInteger("0", 1), { ok: false, error: "Enter at least 1." });
    assert.deepEqual(parseInteger("4294967296", 1), { ok: false, error: "Enter at most 4,294,967,295." });
    assert.equal(parseInteger("1.5", 1).ok, false);
    assert.deepEqual(parseEndpoint("https://example.com/v1"), { ok: true, value: "https://example.com/v1" });
    assert.equal(parseEndpoint("ftp://example.com").ok, false);
    assert.equal(parseEndpoint(`https://e.com/${"a".repeat(600)}`).ok, false);
    assert.equal(parseModelName("  ").ok, false);
    assert.deepEqual(parseModelName(" llama "), { ok: true, value: "llama" });
  });

  it("needs expiries in the future and formats timestamps in UTC", () => {
    const now = Date.parse("2030-01-01T00:00:00") / 1000;
    assert.deepEqual(parseExpiry("2030-01-02T00:00", now), { ok: true, value: now + 86_400 });
    assert.deepEqual(parseExpiry("2029-12-31T23:00", now), { ok: false, error: "Pick a time in the future." });
    assert.equal(parseExpiry("", now).ok, false);
    assert.equal(formatTimestamp(1_893_456_000), "2030-01-01 00:00 UTC");
  });
});
