import type { Address } from "viem";

/** `IProviderRegistry.ProviderConfig`: a provider's terms as the registry stores them. */
export interface ProviderConfig {
  endpoint: string;
  providerType: number;
  rateLimitPerMinute: number;
  minChargePerCall: number;
  features: bigint;
  receiptSigner: Address;
  payout: Address;
}

/** `IProviderRegistry.ModelConfig`: a model and its prices (atomic USDC per 1K tokens). */
export interface ModelConfig {
  name: string;
  inputPricePer1K: number;
  outputPricePer1K: number;
  maxContextTokens: number;
}
