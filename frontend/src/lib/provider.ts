import { featureMask, featureNames } from "./features.ts";
import type { Parsed } from "./parse.ts";
import { parseUsdcInput, usdcInputValue } from "./usdc.ts";
import { parseAddress, parseEndpoint, parseInteger, parseModelName, UINT32_MAX } from "./validation.ts";

/** `IProviderRegistry.ProviderType`, in enum order. */
export const PROVIDER_TYPES = ["Self-hosted", "Cloud", "Decentralized"] as const;

import type { ModelConfig, ProviderConfig } from "@agentmesh/sdk/browser";

export type { ModelConfig, ProviderConfig };

/** A provider's terms as typed in the console. */
export interface ProviderTermsInput {
  endpoint: string;
  providerType: string;
  rateLimit: string;
  /** USDC. */
  minCharge: string;
  features: string[];
  receiptSigner: string;
  payout: string;
}

/** A model as typed in the console; prices in USDC per 1K tokens. */
export interface ModelInput {
  name: string;
  inputPrice: string;
  outputPrice: string;
  context: string;
}

/** What went wrong with each field, by field name. */
export type FieldErrors<T> = Partial<Record<keyof T, string>>;

/** The parsed value when every field is valid, and each invalid field's message. */
export interface ParsedForm<T, V> {
  value?: V;
  errors: FieldErrors<T>;
}

/** Largest price or minimum charge the registry stores (uint32 of atomic USDC: 4,294.967295 USDC). */
const MAX_UINT32_USDC = BigInt(UINT32_MAX);

type Values<F> = { [K in keyof F]: F[K] extends Parsed<infer V> ? V : never };

function collect<T, F extends Record<string, Parsed<unknown>>, V>(fields: F, build: (values: Values<F>) => V): ParsedForm<T, V> {
  const errors: FieldErrors<T> = {};
  const values: Record<string, unknown> = {};
  for (const [name, parsed] of Object.entries(fields)) {
    if (parsed.ok) values[name] = parsed.value;
    else errors[name as keyof T] = parsed.error;
  }
  return Object.keys(errors).length === 0 ? { value: build(values as Values<F>), errors } : { errors };
}

/** Terms typed in the console as a `ProviderConfig`; `previousFeatures` keeps feature bits the UI does not name. */
export function parseProviderTerms(input: ProviderTermsInput, previousFeatures = 0n): ParsedForm<ProviderTermsInput, ProviderConfig> {
  const fields = {
    endpoint: parseEndpoint(input.endpoint),
    rateLimit: parseInteger(input.rateLimit, 1),
    minCharge: parseUsdcInput(input.minCharge, { min: 0n, max: MAX_UINT32_USDC }),
    receiptSigner: parseAddress(input.receiptSigner),
    payout: parseAddress(input.payout),
  };
  return collect<ProviderTermsInput, typeof fields, ProviderConfig>(fields, (values) => ({
    endpoint: values.endpoint,
    providerType: Number(input.providerType),
    rateLimitPerMinute: values.rateLimit,
    minChargePerCall: Number(values.minCharge),
    features: featureMask(input.features, previousFeatures),
    receiptSigner: values.receiptSigner,
    payout: values.payout,
  }));
}

/** A model typed in the console as a `ModelConfig`. */
export function parseModel(input: ModelInput): ParsedForm<ModelInput, ModelConfig> {
  const fields = {
    name: parseModelName(input.name),
    inputPrice: parseUsdcInput(input.inputPrice, { min: 0n, max: MAX_UINT32_USDC }),
    outputPrice: parseUsdcInput(input.outputPrice, { min: 0n, max: MAX_UINT32_USDC }),
    context: parseInteger(input.context, 1),
  };
  return collect<ModelInput, typeof fields, ModelConfig>(fields, (values) => ({
    name: values.name,
    inputPricePer1K: Number(values.inputPrice),
    outputPricePer1K: Number(values.outputPrice),
    maxContextTokens: values.context,
  }));
}

/** A registered provider's terms as the console's editable input. */
export function termsInputOf(provider: ProviderConfig): ProviderTermsInput {
  return {
    endpoint: provider.endpoint,
    providerType: String(provider.providerType),
    rateLimit: String(provider.rateLimitPerMinute),
    minCharge: usdcInputValue(BigInt(provider.minChargePerCall)) || "0",
    features: featureNames(provider.features),
    receiptSigner: provider.receiptSigner,
    payout: provider.payout,
  };
}
