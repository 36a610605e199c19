import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { filterOffers, offersOf, sortOffers } from "./marketplace.ts";
import type { ProviderView } from "@agentmesh/sdk/protocol";

function provider(id: number, overrides: Partial<ProviderView["metrics"]>, input: number, features = "1", active = true): ProviderView {
  return {
    id,
    owner: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    active,
    endpoint: `http://127.0.0.1:900${id}/v1`,
    rateLimitPerMinute: 600,
    minChargePerCall: 10,
    features,
    receiptSigner: "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    payout: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    feeBps: 250,
    models: [
      { id: 0, name: "small", inputPricePer1K: input, outputPricePer1K: input * 4, maxContextTokens: 8192, active: true },
      { id: 1, name: "large", inputPricePer1K: input * 4, outputPricePer1K: input * 16, maxContextTokens: 32768, active: false },
    ],
    metrics: {
      requests: "0",
      inputTokens: "0",
      outputTokens: "0",
      latencyMs: "0",
      earnings: "0.000000",
      averageLatencyMs: null,
      p50LatencyMs: null,
      p95LatencyMs: null,
      outputTokensPerSecond: null,
      uptimeScore: null,
      ...overrides,
    },
  };
}

const providers = [
  provider(1, { p95LatencyMs: 120, uptimeScore: 0.9 }, 150),
  provider(2, { averageLatencyMs: 80, uptimeScore: 1 }, 100, "3"),
  provider(3, {}, 50, "1", false),
];
const label = (offers: ReturnType<typeof offersOf>) => offers.map((offer) => `${offer.provider.id}:${offer.model}`);

describe("marketplace filter and sort", () => {
  it("lists every model of every provider", () => {
    assert.equal(offersOf(providers).length, 6);
  });

  it("filters by model, features, price and activity", () => {
    const all = offersOf(providers);
    assert.deepEqual(label(filterOffers(all, { search: "SMA", features: 0n, activeOnly: true })), ["1:small", "2:small"]);
    assert.deepEqual(label(filterOffers(all, { search: "", features: 2n, activeOnly: false })), ["2:small", "2:large"]);
    assert.deepEqual(label(filterOffers(all, { search: "", features: 0n, maxPricePer1K: 500, activeOnly: false })), ["2:small", "3:small"]);
  });

  it("sorts by price, latency (p95, else average) and uptime, unmeasured last", () => {
    const small = filterOffers(offersOf(providers), { search: "small", features: 0n, activeOnly: false });
    assert.deepEqual(label(sortOffers(small, "price")), ["3:small", "2:small", "1:small"]);
    assert.deepEqual(label(sortOffers(small, "latency")), ["2:small", "1:small", "3:small"]);
    assert.deepEqual(label(sortOffers(small, "uptime")), ["2:small", "1:small", "3:small"]);
  });
});
