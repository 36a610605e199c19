import { formatUsdc } from "@agentmesh/sdk/browser";
import { invalid, valid, type Parsed } from "./parse.ts";

/** USDC's decimals: every amount on-chain is an integer of millionths. */
export const USDC_DECIMALS = 6;

/**
 * Atomic USDC as the UI shows it: thousands grouped, always six decimals ("1,234.500000").
 *
 * @example
 * formatUsdcAmount(1_234_500_000n); // "1,234.500000"
 */
export function formatUsdcAmount(atomic: bigint): string {
  const [whole, fraction] = formatUsdc(atomic).split(".");
  return `${whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",")}.${fraction}`;
}

/** A price in atomic USDC per 1,000 tokens, as "0.000150 USDC / 1K tokens" shows it. */
export function formatPricePer1K(atomicPer1K: number | bigint): string {
  return `${formatUsdcAmount(BigInt(atomicPer1K))} USDC / 1K tokens`;
}

export interface UsdcBounds {
  /** Smallest accepted amount, atomic (default 1: zero is refused). */
  min?: bigint;
  /** Largest accepted amount, atomic. */
  max?: bigint;
}

/**
 * Parses an amount typed in USDC ("12.5", "1,000", "0.000001") into atomic units, refusing more than
 * six decimals, negative numbers and anything outside `bounds`.
 *
 * @example
 * parseUsdcInput("12.5"); // { ok: true, value: 12_500_000n }
 */
export function parseUsdcInput(text: string, bounds: UsdcBounds = {}): Parsed<bigint> {
  const cleaned = text.trim().replace(/,/g, "");
  if (cleaned === "") return invalid("Enter an amount in USDC.");
  const match = /^(\d*)(?:\.(\d*))?$/.exec(cleaned);
  if (match === null || (match[1] === "" && (match[2] ?? "") === "")) return invalid("Enter a number of USDC, such as 12.5.");
  const fraction = match[2] ?? "";
  if (fraction.length > USDC_DECIMALS) return invalid("USDC has 6 decimals: use at most 6 digits after the point.");
  const atomic = BigInt(match[1] || "0") * 1_000_000n + BigInt(fraction.padEnd(USDC_DECIMALS, "0"));
  const min = bounds.min ?? 1n;
  if (atomic < min) return invalid(min === 1n ? "Enter an amount above 0." : `Enter at least ${formatUsdcAmount(min)} USDC.`);
  if (bounds.max !== undefined && atomic > bounds.max) return invalid(`Enter at most ${formatUsdcAmount(bounds.max)} USDC.`);
  return valid(atomic);
}

/** Atomic USDC as a plain decimal for an input field ("12.5"), the inverse of {@link parseUsdcInput}. */
export function usdcInputValue(atomic: bigint): string {
  return formatUsdc(atomic).replace(/\.?0+$/, "");
}

/** Atomic USDC as a float of whole USDC, for chart geometry only (never for amounts shown or sent). */
export function usdcToNumber(atomic: bigint): number {
  return Number(atomic) / 1e6;
}

/** Decimal USDC as the relayer sends it ("12.500000"), in atomic units. */
export function parseUsdcDecimal(text: string): bigint {
  const parsed = parseUsdcInput(text, { min: 0n });
  if (!parsed.ok) throw new Error(`"${text}" is not a USDC amount`);
  return parsed.value;
}
