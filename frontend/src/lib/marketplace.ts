import type { ProviderView } from "@agentmesh/sdk/protocol";

/** One model of one provider, as a marketplace row. */
export interface Offer {
  provider: ProviderView;
  modelId: number;
  model: string;
  /** Atomic USDC per 1K tokens. */
  inputPricePer1K: number;
  outputPricePer1K: number;
  contextLength: number;
}

export type OfferSort = "price" | "latency" | "uptime";

export interface OfferFilter {
  /** Model name contains this (case-insensitive). */
  search: string;
  /** Features bitmask every row must have. */
  features: bigint;
  /** Largest input + output price per 1K tokens, atomic USDC. */
  maxPricePer1K?: number;
  /** Hide deactivated providers and retired models. */
  activeOnly: boolean;
}

/** Every model of every provider. */
export function offersOf(providers: readonly ProviderView[]): Offer[] {
  return providers.flatMap((provider) =>
    provider.models.map((model) => ({
      provider,
      modelId: model.id,
      model: model.name,
      inputPricePer1K: model.inputPricePer1K,
      outputPricePer1K: model.outputPricePer1K,
      contextLength: model.maxContextTokens,
    })),
  );
}

const isActive = (offer: Offer) => offer.provider.active && (offer.provider.models.find((model) => model.id === offer.modelId)?.active ?? false);

/** The price the marketplace compares: input plus output price per 1K tokens. */
export const pricePer1K = (offer: Offer) => offer.inputPricePer1K + offer.outputPricePer1K;

/** The latency the marketplace compares: p95 when measured, else the on-chain average. */
export const latencyOf = (offer: Offer) => offer.provider.metrics.p95LatencyMs ?? offer.provider.metrics.averageLatencyMs;

/** Rows matching `filter`. */
export function filterOffers(offers: readonly Offer[], filter: OfferFilter): Offer[] {
  const search = filter.search.trim().toLowerCase();
  return offers.filter(
    (offer) =>
      offer.model.toLowerCase().includes(search) &&
      (BigInt(offer.provider.features) & filter.features) === filter.features &&
      (filter.maxPricePer1K === undefined || pricePer1K(offer) <= filter.maxPricePer1K) &&
      (!filter.activeOnly || isActive(offer)),
  );
}

/**
 * Rows sorted cheapest first, fastest first or most available first; rows without a measurement
 * go last, ties by provider id.
 */
export function sortOffers(offers: readonly Offer[], by: OfferSort): Offer[] {
  const key = (offer: Offer): number | null =>
    by === "price" ? pricePer1K(offer) : by === "latency" ? latencyOf(offer) : offer.provider.metrics.uptimeScore === null ? null : -offer.provider.metrics.uptimeScore;
  return [...offers].sort((a, b) => {
    const [ka, kb] = [key(a), key(b)];
    if (ka === null || kb === null) return ka === kb ? a.provider.id - b.provider.id : ka === null ? 1 : -1;
    return ka - kb || a.provider.id - b.provider.id || a.modelId - b.modelId;
  });
}
