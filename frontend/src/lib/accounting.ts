/** Aggregate flows from the contracts' events: volume over time, protocol fees, top providers. */

/** `ComputeEscrow.VoucherSettled`: what one settlement paid (before the protocol fee). */
export interface SettledPayment {
  blockNumber: bigint;
  paid: bigint;
}

/** `ProviderRegistry.SettlementRecorded`: a provider's share of one settlement. */
export interface ProviderSettlement {
  providerId: number;
  requests: bigint;
  earnings: bigint;
}

export interface VolumeBucket {
  /** First block of the bucket. */
  fromBlock: bigint;
  /** Last block of the bucket. */
  toBlock: bigint;
  volume: bigint;
}

export interface ProviderTotal {
  providerId: number;
  requests: bigint;
  earnings: bigint;
}

export interface AccountingSummary {
  /** Everything sessions paid (provider earnings + protocol fees), atomic USDC. */
  volume: bigint;
  providerEarnings: bigint;
  /** Volume minus provider earnings: what the treasury received from settlements. */
  protocolFees: bigint;
  settlements: number;
  buckets: VolumeBucket[];
  /** Highest earnings first. */
  topProviders: ProviderTotal[];
}

/**
 * Splits blocks [fromBlock, toBlock] into at most `count` consecutive buckets of (nearly) equal size.
 *
 * @example
 * bucketRanges(0n, 99n, 4); // [[0n, 24n], [25n, 49n], [50n, 74n], [75n, 99n]]
 */
export function bucketRanges(fromBlock: bigint, toBlock: bigint, count: number): [bigint, bigint][] {
  if (toBlock < fromBlock) return [];
  const blocks = toBlock - fromBlock + 1n;
  const buckets = BigInt(count) < blocks ? BigInt(count) : blocks;
  return Array.from({ length: Number(buckets) }, (_, index) => {
    const start = fromBlock + (blocks * BigInt(index)) / buckets;
    const end = fromBlock + (blocks * BigInt(index + 1)) / buckets - 1n;
    return [start, end];
  });
}

/** Totals, volume per bucket of `ranges`, and the `top` providers by earnings. */
export function summarizeFlows(
  payments: readonly SettledPayment[],
  settlements: readonly ProviderSettlement[],
  ranges: readonly [bigint, bigint][],
  top = 5,
): AccountingSummary {
  const volume = payments.reduce((sum, payment) => sum + payment.paid, 0n);
  const byProvider = new Map<number, ProviderTotal>();
  for (const settlement of settlements) {
    const total = byProvider.get(settlement.providerId) ?? { providerId: settlement.providerId, requests: 0n, earnings: 0n };
    total.requests += settlement.requests;
    total.earnings += settlement.earnings;
    byProvider.set(settlement.providerId, total);
  }
  const providerEarnings = [...byProvider.values()].reduce((sum, total) => sum + total.earnings, 0n);
  const buckets = ranges.map(([fromBlock, toBlock]) => ({
    fromBlock,
    toBlock,
    volume: payments.filter((payment) => payment.blockNumber >= fromBlock && payment.blockNumber <= toBlock).reduce((sum, payment) => sum + payment.paid, 0n),
  }));
  const topProviders = [...byProvider.values()]
    .sort((a, b) => (b.earnings > a.earnings ? 1 : b.earnings < a.earnings ? -1 : a.providerId - b.providerId))
    .slice(0, top);
  return { volume, providerEarnings, protocolFees: volume - providerEarnings, settlements: payments.length, buckets, topProviders };
}
