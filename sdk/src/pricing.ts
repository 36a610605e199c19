/**
 * What a call costs, in atomic USDC (6 decimals), from the prices a session locked at open.
 *
 * cost = max(minChargePerCall, ceil((inputTokens × inputPricePer1K + outputTokens × outputPricePer1K) / 1000))
 *
 * Rounding is up, once per call, on the exact sum: a call never costs more than 1 atomic unit
 * (0.000001 USDC) above its exact price, and a provider is never paid below it.
 */
export interface Prices {
  /** Atomic USDC per 1,000 input tokens. */
  inputPricePer1K: number;
  /** Atomic USDC per 1,000 output tokens. */
  outputPricePer1K: number;
  /** Floor of every call's cost, in atomic USDC. */
  minChargePerCall: number;
}

/** Cost of one call with the given token counts. */
export function callCost(prices: Prices, inputTokens: number, outputTokens: number): bigint {
  const exactTimes1000 =
    BigInt(inputTokens) * BigInt(prices.inputPricePer1K) + BigInt(outputTokens) * BigInt(prices.outputPricePer1K);
  const rounded = (exactTimes1000 + 999n) / 1000n;
  const minimum = BigInt(prices.minChargePerCall);
  return rounded > minimum ? rounded : minimum;
}

/** Formats atomic USDC as a decimal string ("0.000123"). */
export function formatUsdc(atomic: bigint): string {
  const sign = atomic < 0n ? "-" : "";
  const magnitude = atomic < 0n ? -atomic : atomic;
  const whole = magnitude / 1_000_000n;
  const fraction = (magnitude % 1_000_000n).toString().padStart(6, "0");
  return `${sign}${whole}.${fraction}`;
}
