import { formatUsdcAmount } from "../lib/usdc.ts";

/** An amount of USDC with its six decimals, e.g. "1,250.000000 USDC". */
export function UsdcAmount({ value, testId }: { value: bigint; testId?: string }) {
  return (
    <span className="amount" data-testid={testId}>
      {formatUsdcAmount(value)} <abbr title="USD Coin, 6 decimals">USDC</abbr>
    </span>
  );
}
