import { useMemo, useState } from "react";
import { BarChart } from "../components/Charts.tsx";
import { Field, SelectField } from "../components/Field.tsx";
import { Link } from "../components/Link.tsx";
import { EmptyState, ErrorState, Loading, WithDeployment } from "../components/States.tsx";
import { UsdcAmount } from "../components/UsdcAmount.tsx";
import { useProviders } from "../hooks/useRelayer.ts";
import { FEATURES, featureMask, featureNames } from "../lib/features.ts";
import { filterOffers, offersOf, sortOffers, type OfferSort } from "../lib/marketplace.ts";
import type { ProviderView } from "@agentmesh/sdk/protocol";
import { formatPricePer1K, parseUsdcDecimal, parseUsdcInput } from "../lib/usdc.ts";

const ms = (value: number | null) => (value === null ? "—" : `${Math.round(value)} ms`);
const uptime = (score: number | null) => (score === null ? "—" : `${(score * 100).toFixed(1)}%`);

/** Small charts comparing providers: earnings, p95 latency, uptime. */
function ProviderCharts({ providers }: { providers: readonly ProviderView[] }) {
  const label = (provider: ProviderView) => `Provider #${provider.id}`;
  return (
    <div className="charts">
      <BarChart
        title="Earnings (USDC)"
        data={providers.map((provider) => ({ label: label(provider), value: Number(provider.metrics.earnings), display: provider.metrics.earnings }))}
      />
      <BarChart
        title="p95 latency"
        data={providers.map((provider) => ({ label: label(provider), value: provider.metrics.p95LatencyMs ?? 0, display: ms(provider.metrics.p95LatencyMs) }))}
      />
      <BarChart
        title="Uptime"
        data={providers.map((provider) => ({ label: label(provider), value: (provider.metrics.uptimeScore ?? 0) * 100, display: uptime(provider.metrics.uptimeScore) }))}
      />
    </div>
  );
}

function Marketplace() {
  const providers = useProviders();
  const [search, setSearch] = useState("");
  const [features, setFeatures] = useState<string[]>([]);
  const [maxPrice, setMaxPrice] = useState("");
  const [sort, setSort] = useState<OfferSort>("price");
  const [activeOnly, setActiveOnly] = useState(true);
  const maxPriceParsed = maxPrice.trim() === "" ? undefined : parseUsdcInput(maxPrice, { min: 0n });
  const offers = useMemo(() => offersOf(providers.data?.data ?? []), [providers.data]);
  const shown = sortOffers(
    filterOffers(offers, {
      search,
      features: featureMask(features),
      maxPricePer1K: maxPriceParsed?.ok ? Number(maxPriceParsed.value) : undefined,
      activeOnly,
    }),
    sort,
  );

  if (providers.isPending) return <Loading what="providers" />;
  if (providers.isError) return <ErrorState error={providers.error} retry={() => void providers.refetch()} />;
  if (offers.length === 0) return <EmptyState>No provider has registered a model yet. Register one in the provider console.</EmptyState>;

  return (
    <>
      <ProviderCharts providers={providers.data.data} />
      <form className="filters" role="search" onSubmit={(event) => event.preventDefault()}>
        <Field label="Model" value={search} onChange={(event) => setSearch(event.target.value)} placeholder="any model" />
        <Field
          label="Max price (input + output)"
          suffix="USDC / 1K"
          inputMode="decimal"
          value={maxPrice}
          onChange={(event) => setMaxPrice(event.target.value)}
          error={maxPriceParsed?.ok === false ? maxPriceParsed.error : undefined}
        />
        <SelectField label="Sort by" value={sort} onChange={(event) => setSort(event.target.value as OfferSort)}>
          <option value="price">Price (lowest first)</option>
          <option value="latency">Latency (fastest first)</option>
          <option value="uptime">Uptime (highest first)</option>
        </SelectField>
        <fieldset className="checks">
          <legend>Features</legend>
          {FEATURES.map((feature) => (
            <label key={feature.name}>
              <input
                type="checkbox"
                checked={features.includes(feature.name)}
                onChange={(event) => setFeatures(event.target.checked ? [...features, feature.name] : features.filter((name) => name !== feature.name))}
              />
              {feature.name}
            </label>
          ))}
          <label>
            <input type="checkbox" checked={activeOnly} onChange={(event) => setActiveOnly(event.target.checked)} />
            active only
          </label>
        </fieldset>
      </form>
      {shown.length === 0 ? (
        <EmptyState>No model matches these filters.</EmptyState>
      ) : (
        <div className="table-wrap">
          <table className="responsive" data-testid="offers">
            <thead>
              <tr>
                <th scope="col">Provider</th>
                <th scope="col">Model</th>
                <th scope="col">Input price</th>
                <th scope="col">Output price</th>
                <th scope="col">Context</th>
                <th scope="col">Features</th>
                <th scope="col">Requests</th>
                <th scope="col">Tokens</th>
                <th scope="col">Earnings</th>
                <th scope="col">Avg / p95 latency</th>
                <th scope="col">Uptime</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((offer) => {
                const { metrics } = offer.provider;
                return (
                  <tr key={`${offer.provider.id}-${offer.modelId}`} data-testid={`offer-${offer.provider.id}-${offer.model}`}>
                    <td data-label="Provider">
                      <Link to={`/sessions?provider=${offer.provider.id}`}>#{offer.provider.id}</Link>{" "}
                      <span className="muted">{new URL(offer.provider.endpoint).host}</span>
                      {!offer.provider.active && <span className="badge">inactive</span>}
                    </td>
                    <td data-label="Model">{offer.model}</td>
                    <td data-label="Input price">{formatPricePer1K(offer.inputPricePer1K)}</td>
                    <td data-label="Output price">{formatPricePer1K(offer.outputPricePer1K)}</td>
                    <td data-label="Context">{offer.contextLength.toLocaleString("en-US")} tokens</td>
                    <td data-label="Features">{featureNames(BigInt(offer.provider.features)).join(", ") || "—"}</td>
                    <td data-label="Requests">{BigInt(metrics.requests).toLocaleString("en-US")}</td>
                    <td data-label="Tokens">{(BigInt(metrics.inputTokens) + BigInt(metrics.outputTokens)).toLocaleString("en-US")}</td>
                    <td data-label="Earnings">
                      <UsdcAmount value={parseUsdcDecimal(metrics.earnings)} />
                    </td>
                    <td data-label="Avg / p95 latency">
                      {ms(metrics.averageLatencyMs)} / {ms(metrics.p95LatencyMs)}
                    </td>
                    <td data-label="Uptime">{uptime(metrics.uptimeScore)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

/** Every provider and model with prices, features and metrics; filter and sort. Readable without a wallet. */
export default function MarketplacePage() {
  return (
    <section>
      <h1>Marketplace</h1>
      <p className="lead">Models served through AgentMesh, priced in USDC per 1,000 tokens and paid per call from compute budgets.</p>
      <WithDeployment relayer>{() => <Marketplace />}</WithDeployment>
    </section>
  );
}
