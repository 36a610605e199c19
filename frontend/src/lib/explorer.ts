/** Block explorers of the public networks; the local chain has none. */
const EXPLORERS: Record<number, string> = {
  8453: "https://basescan.org",
  84532: "https://sepolia.basescan.org",
};

/**
 * The explorer page of a transaction or an address on `chainId`, or undefined without an explorer.
 *
 * @example
 * explorerUrl(8453, "tx", hash); // "https://basescan.org/tx/0x…"
 */
export function explorerUrl(chainId: number, kind: "tx" | "address" | "block", value: string | bigint): string | undefined {
  const base = EXPLORERS[chainId];
  return base === undefined ? undefined : `${base}/${kind}/${value}`;
}

/** "0x1234…abcd": enough of a hash or address to recognise it. */
export function shortHex(value: string): string {
  return value.length > 14 ? `${value.slice(0, 6)}…${value.slice(-4)}` : value;
}
