/**
 * What a provider's `features` bitmask means. The registry stores the mask as is; these are the
 * bits the dApp names (bit 0 is what the reference providers set).
 */
export const FEATURES = [
  { bit: 1n, name: "streaming" },
  { bit: 2n, name: "tool calls" },
  { bit: 4n, name: "JSON mode" },
  { bit: 8n, name: "vision" },
] as const;

/** Names of the features set in `mask`, plus "other" bits when unknown ones are set. */
export function featureNames(mask: bigint): string[] {
  const known = FEATURES.filter((feature) => (mask & feature.bit) !== 0n).map((feature) => feature.name as string);
  const knownBits = FEATURES.reduce((bits, feature) => bits | feature.bit, 0n);
  return (mask & ~knownBits) === 0n ? known : [...known, `other (0x${(mask & ~knownBits).toString(16)})`];
}

/** The mask of `names`, keeping the unknown bits of `previous` so an edit never drops them. */
export function featureMask(names: readonly string[], previous = 0n): bigint {
  const knownBits = FEATURES.reduce((bits, feature) => bits | feature.bit, 0n);
  return FEATURES.filter((feature) => names.includes(feature.name)).reduce((mask, feature) => mask | feature.bit, previous & ~knownBits);
}
