import { formatUsdc } from "@agentmesh/sdk";
import { ApiError } from "@agentmesh/sdk/http";
import type { RegisteredProvider } from "../chain.ts";
import type { RelayerContext } from "../context.ts";
import type { BudgetView, ModelList, ProviderList, ProviderView } from "@agentmesh/sdk/protocol";

/**
 * What the relayer offers, as the chain index and the relayer's own measures show it: models,
 * providers with their metrics, and budgets with their sessions' live spend. No HTTP: the routes
 * (routes/catalog.ts) parse the ids and write these views.
 */

/** Every model of every active served provider, grouped by name (`GET /v1/models`). */
export async function listModels(ctx: RelayerContext): Promise<ModelList> {
  const byName = new Map<string, ModelList["data"][number]["providers"]>();
  for (const provider of await servedProviders(ctx)) {
    for (const model of provider.models.filter((candidate) => candidate.active)) {
      const offers = byName.get(model.name) ?? [];
      offers.push({
        providerId: provider.id,
        modelId: model.id,
        inputPricePer1K: formatUsdc(BigInt(model.inputPricePer1K)),
        outputPricePer1K: formatUsdc(BigInt(model.outputPricePer1K)),
        minChargePerCall: formatUsdc(BigInt(provider.minChargePerCall)),
        contextLength: model.maxContextTokens,
        features: provider.features.toString(),
      });
      byName.set(model.name, offers);
    }
  }
  return {
    object: "list",
    data: [...byName].map(([id, providers]) => ({ id, object: "model", created: 0, owned_by: "agentmesh", providers })),
  };
}

async function servedProviders(ctx: RelayerContext): Promise<RegisteredProvider[]> {
  return (await ctx.chainIndex.providers()).filter((provider) => ctx.receiptSigners.serves(provider));
}

/**
 * A provider with its metrics, and `feeBps`, the escrow's current protocol fee: with the provider's
 * prices, minimum charge and receipt signer, what the terms of a session opened now must carry.
 */
async function providerView(ctx: RelayerContext, provider: RegisteredProvider, feeBps: number): Promise<ProviderView> {
  const metrics = await ctx.chainViews.metrics(provider.id);
  return {
    ...provider,
    feeBps,
    metrics: {
      ...metrics,
      earnings: formatUsdc(metrics.earnings),
      averageLatencyMs: metrics.requests === 0n ? null : Number(metrics.latencyMs) / Number(metrics.requests),
      p50LatencyMs: ctx.stats.latencyPercentile(provider.id, 50),
      p95LatencyMs: ctx.stats.latencyPercentile(provider.id, 95),
      outputTokensPerSecond: ctx.stats.throughput(provider.id),
      uptimeScore: ctx.stats.uptime(provider.id),
    },
  };
}

/** Every registered provider with its metrics (`GET /v1/providers`). */
export async function listProviders(ctx: RelayerContext): Promise<ProviderList> {
  const providers = await ctx.chainIndex.providers();
  const feeBps = await ctx.chainViews.feeBps();
  return { object: "list", data: await Promise.all(providers.map((provider) => providerView(ctx, provider, feeBps))) };
}

/** Provider `providerId` with its metrics (`GET /v1/providers/{id}`), or a 404. */
export async function showProvider(ctx: RelayerContext, providerId: number): Promise<ProviderView> {
  const provider = await ctx.chainIndex.provider(providerId);
  if (provider === undefined) throw new ApiError(404, "provider_not_found", `no provider ${providerId}`);
  return providerView(ctx, provider, await ctx.chainViews.feeBps());
}

/**
 * Budget `budgetId` and its sessions as the indexer last saw them on-chain (`GET /v1/budgets/{id}`),
 * each with its live spend when this relayer serves it (signed and served but not yet settled); a 404.
 */
export async function showBudget(ctx: RelayerContext, budgetId: number): Promise<BudgetView> {
  const budget = await ctx.chainIndex.budget(budgetId);
  const indexedBlock = (await ctx.chainIndex.lastBlock()) ?? null;
  if (budget === undefined) throw new ApiError(404, "budget_not_found", `no budget ${budgetId} (as of block ${indexedBlock})`);
  const onChain = await ctx.chainIndex.sessionsOfBudget(budgetId);
  const sessions = await Promise.all(onChain.map(async (session) => {
    const served = await ctx.repo.getSession(session.id);
    const spent = served?.state.cumulativeCost ?? session.settled;
    return {
      ...session,
      maxSpend: formatUsdc(session.maxSpend),
      settled: formatUsdc(session.settled),
      spent: formatUsdc(spent > session.settled ? spent : session.settled),
      requests: served?.state.requestCount ?? null,
    };
  }));
  return {
    ...budget,
    available: formatUsdc(budget.available),
    perSessionLimit: formatUsdc(budget.perSessionLimit),
    indexedBlock,
    sessions,
  };
}
