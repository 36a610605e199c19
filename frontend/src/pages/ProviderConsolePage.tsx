import { getAbiItem, type Address } from "viem";
import { providerRegistryAbi } from "@agentmesh/sdk/browser";
import { EmptyState, ErrorState, Loading, WithAccount, WithDeployment } from "../components/States.tsx";
import { useEventLogs } from "../hooks/useEventLogs.ts";
import type { ChainDeployment } from "../lib/config.ts";
import { ProviderCard } from "./provider/ProviderCard.tsx";
import { RegisterProviderForm } from "./provider/RegisterProviderForm.tsx";

const providerRegistered = getAbiItem({ abi: providerRegistryAbi, name: "ProviderRegistered" });

function OwnedProviders({ deployment, account }: { deployment: ChainDeployment; account: Address }) {
  const registered = useEventLogs({ address: deployment.contracts.ProviderRegistry, event: providerRegistered, args: { owner: account } });
  if (registered.isPending) return <Loading what="your providers" />;
  if (registered.isError) return <ErrorState error={registered.error} retry={() => void registered.refetch()} />;
  if (registered.data.length === 0) return <EmptyState>This account owns no provider yet: register one below.</EmptyState>;
  return (
    <>
      {registered.data.map((log) => (
        <ProviderCard key={String(log.args.providerId)} deployment={deployment} providerId={log.args.providerId} />
      ))}
    </>
  );
}

/** Providers owned by the connected account: register, edit, stake, models and prices, earnings. */
export default function ProviderConsolePage() {
  return (
    <section>
      <h1>Provider console</h1>
      <WithDeployment>
        {(deployment) => (
          <WithAccount purpose="manage your providers">
            {(account) => (
              <>
                <OwnedProviders deployment={deployment} account={account} />
                <RegisterProviderForm key={account} deployment={deployment} account={account} />
              </>
            )}
          </WithAccount>
        )}
      </WithDeployment>
    </section>
  );
}
