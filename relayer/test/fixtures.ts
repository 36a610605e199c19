import type { SessionTerms } from "@agentmesh/sdk";
import type { RegisteredProvider } from "../src/chain.ts";

/** The agent and payout account of the fixtures (a public Hardhat development account). */
const DEV_ACCOUNT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/** Session terms at the local stack's `agentmesh-small` prices; a test overrides what it varies. */
export function sessionTerms(overrides: Partial<SessionTerms> = {}): SessionTerms {
  return {
    agent: DEV_ACCOUNT,
    budgetId: 1n,
    providerId: 1,
    modelId: 0,
    receiptSigner: "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    inputPricePer1K: 150,
    outputPricePer1K: 600,
    minChargePerCall: 10,
    feeBps: 250,
    maxSpend: 5_000_000n,
    deadline: 2_000_000_000,
    salt: 7n,
    ...overrides,
  };
}

/** Provider 1 as the registry holds it, active, offering `agentmesh-small`; a test overrides what it varies. */
export function registeredProvider(overrides: Partial<RegisteredProvider> & Pick<RegisteredProvider, "receiptSigner">): RegisteredProvider {
  return {
    id: 1,
    owner: DEV_ACCOUNT,
    active: true,
    endpoint: "http://127.0.0.1:9001/v1",
    rateLimitPerMinute: 600,
    minChargePerCall: 10,
    features: 1n,
    payout: DEV_ACCOUNT,
    models: [{ id: 0, name: "agentmesh-small", inputPricePer1K: 150, outputPricePer1K: 600, maxContextTokens: 8192, active: true }],
    ...overrides,
  };
}
