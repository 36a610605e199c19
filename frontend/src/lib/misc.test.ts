import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { explorerUrl, shortHex } from "./explorer.ts";
import { featureMask, featureNames } from "./features.ts";
import { parseModel, parseProviderTerms, termsInputOf } from "./provider.ts";
import { matchRoute } from "./routes.ts";

describe("routes", () => {
  it("maps paths to pages with their parameters", () => {
    assert.deepEqual(matchRoute("/"), { page: "marketplace" });
    assert.deepEqual(matchRoute("/agents/"), { page: "agents" });
    assert.deepEqual(matchRoute("/agents/7"), { page: "agent", agentId: 7n });
    assert.deepEqual(matchRoute("/agents/x"), { page: "not-found" });
    assert.deepEqual(matchRoute("/budgets/12/"), { page: "budget", budgetId: 12n });
    assert.deepEqual(matchRoute(`/sessions/0x${"AB".repeat(32)}`), { page: "session", sessionId: `0x${"ab".repeat(32)}` });
    assert.deepEqual(matchRoute("/sessions/0x12"), { page: "not-found" });
  });
});

describe("explorer links", () => {
  it("links Base and Base Sepolia, not the local chain", () => {
    assert.equal(explorerUrl(8453, "tx", "0xabc"), "https://basescan.org/tx/0xabc");
    assert.equal(explorerUrl(84532, "address", "0xdef"), "https://sepolia.basescan.org/address/0xdef");
    assert.equal(explorerUrl(31337, "tx", "0xabc"), undefined);
    assert.equal(shortHex("0x14dC79964da2C08b23698B3D3cc7Ca32193d9955"), "0x14dC…9955");
  });
});

describe("provider forms", () => {
  it("names feature bits and keeps unknown ones on edit", () => {
    assert.deepEqual(featureNames(0b1011n), ["streaming", "tool calls", "vision"]);
    assert.deepEqual(featureNames(0x31n), ["streaming", "other (0x30)"]);
    assert.equal(featureMask(["JSON mode"], 0x31n), 0x34n);
  });

  it("parses terms and models typed in USDC into the registry's atomic structs", () => {
    const input = {
      endpoint: "https://example.com/v1",
      providerType: "1",
      rateLimit: "600",
      minCharge: "0.00002",
      features: ["streaming"],
      receiptSigner: "0x90f79bf6eb2c4f870365e785982e1f101e93b906",
      payout: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    };
    const parsed = parseProviderTerms(input);
    assert.deepEqual(parsed.value, {
      endpoint: "https://example.com/v1",
      providerType: 1,
      rateLimitPerMinute: 600,
      minChargePerCall: 20,
      features: 1n,
      receiptSigner: "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
      payout: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    });
    assert.deepEqual(termsInputOf(parsed.value!), { ...input, receiptSigner: "0x90F79bf6EB2c4f870365E785982E1f101E93b906" });
    assert.deepEqual(Object.keys(parseProviderTerms({ ...input, rateLimit: "0", payout: "x" }).errors), ["rateLimit", "payout"]);
    assert.deepEqual(parseModel({ name: "m", inputPrice: "0.00015", outputPrice: "0.0006", context: "8192" }).value, {
      name: "m",
      inputPricePer1K: 150,
      outputPricePer1K: 600,
      maxContextTokens: 8192,
    });
    assert.match(parseModel({ name: "m", inputPrice: "4295", outputPrice: "0", context: "1" }).errors.inputPrice ?? "", /at most 4,294.967295 USDC/);
  });
});
