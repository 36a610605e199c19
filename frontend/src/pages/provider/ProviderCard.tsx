import { useState } from "react";
import { useReadContract } from "wagmi";
import { providerRegistryAbi, splitsLedgerAbi } from "@agentmesh/sdk/browser";
import { DistributeSplit } from "../../components/DistributeSplit.tsx";
import { LedgerBalance } from "../../components/LedgerBalance.tsx";
import { Link } from "../../components/Link.tsx";
import { ErrorState, Loading } from "../../components/States.tsx";
import { TransactionStatus } from "../../components/TransactionStatus.tsx";
import { useTransaction } from "../../hooks/useTransaction.ts";
import type { ChainDeployment } from "../../lib/config.ts";
import { PROVIDER_TYPES, parseProviderTerms, termsInputOf, type ProviderTermsInput } from "../../lib/provider.ts";
import { ModelsEditor } from "./ModelsEditor.tsx";
import { ProviderTermsFields } from "./ProviderTermsFields.tsx";
import { StakePanel } from "./StakePanel.tsx";

type ProviderStruct = NonNullable<ReturnType<typeof useProvider>["data"]>;

const useProvider = (deployment: ChainDeployment, providerId: bigint) =>
  useReadContract({ address: deployment.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName: "getProvider", args: [providerId] });

/** Edits endpoint, type, rate limit, minimum charge, features, receipt signer and payout. */
function EditTermsForm({ deployment, providerId, provider }: { deployment: ChainDeployment; providerId: bigint; provider: ProviderStruct }) {
  const [input, setInput] = useState<ProviderTermsInput>(() => termsInputOf(provider));
  const [attempted, setAttempted] = useState(false);
  const { state, run, busy } = useTransaction();
  const parsed = parseProviderTerms(input, provider.features);
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        setAttempted(true);
        const config = parsed.value;
        if (config === undefined) return;
        void run((tx) => tx.write("Update terms", { address: deployment.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName: "updateProvider", args: [providerId, config] }));
      }}
    >
      <h3>Terms</h3>
      <ProviderTermsFields input={input} errors={attempted ? parsed.errors : {}} onChange={setInput} />
      <button type="submit" disabled={busy}>
        Save terms
      </button>
      <TransactionStatus state={state} />
    </form>
  );
}

/** Earnings: the payout's ledger balance, or what a payout split holds undistributed (one click distributes it). */
function EarningsPanel({ deployment, payout }: { deployment: ChainDeployment; payout: `0x${string}` }) {
  const isSplit = useReadContract({ address: deployment.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "isSplit", args: [payout] });
  return (
    <section aria-label="Earnings">
      <h3>Earnings</h3>
      {isSplit.data ? (
        <>
          <p>
            Earnings are paid to a split, where they wait until someone distributes them to its recipients. See who gets what, and withdraw, on the{" "}
            <Link to={`/splits?split=${payout}`}>Splits page</Link>.
          </p>
          <DistributeSplit deployment={deployment} split={payout} linked />
        </>
      ) : (
        <LedgerBalance deployment={deployment} account={payout} />
      )}
    </section>
  );
}

/** One provider the connected account owns, with everything its owner can change. */
export function ProviderCard({ deployment, providerId }: { deployment: ChainDeployment; providerId: bigint }) {
  const provider = useProvider(deployment, providerId);
  if (provider.isPending) return <Loading what={`provider #${providerId}`} />;
  if (provider.isError) return <ErrorState error={provider.error} retry={() => void provider.refetch()} />;
  const data = provider.data;
  return (
    <article className="card" data-testid={`provider-${providerId}`} aria-labelledby={`provider-${providerId}-heading`}>
      <h2 id={`provider-${providerId}-heading`}>
        Provider #{String(providerId)} <span className={`badge ${data.active ? "badge-ok" : ""}`}>{data.slashed ? "slashed" : data.active ? "active" : "inactive"}</span>
      </h2>
      <p className="muted">
        {PROVIDER_TYPES[data.providerType]} · {data.endpoint} · <Link to={`/sessions?provider=${providerId}`}>its sessions</Link>
      </p>
      <EarningsPanel deployment={deployment} payout={data.payout} />
      <StakePanel deployment={deployment} providerId={providerId} provider={{ ...data, unstakeAvailableAt: Number(data.unstakeAvailableAt) }} />
      <ModelsEditor deployment={deployment} providerId={providerId} modelCount={data.modelCount} />
      <EditTermsForm key={data.endpoint + data.payout + data.receiptSigner} deployment={deployment} providerId={providerId} provider={data} />
    </article>
  );
}
