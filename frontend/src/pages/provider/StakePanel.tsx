import { useState } from "react";
import { erc20Abi } from "viem";
import { useReadContract } from "wagmi";
import { providerRegistryAbi } from "@agentmesh/sdk/browser";
import { UsdcField } from "../../components/Field.tsx";
import { TransactionStatus } from "../../components/TransactionStatus.tsx";
import { UsdcAmount } from "../../components/UsdcAmount.tsx";
import { useTransaction } from "../../hooks/useTransaction.ts";
import type { ChainDeployment } from "../../lib/config.ts";
import { parseUsdcInput } from "../../lib/usdc.ts";
import { formatTimestamp } from "../../lib/validation.ts";

export interface StakeState {
  active: boolean;
  slashed: boolean;
  stake: bigint;
  pendingUnstake: bigint;
  unstakeAvailableAt: number;
}

/** Stake: add, request an unstake, withdraw it after the delay; deactivate or reactivate. */
export function StakePanel({ deployment, providerId, provider }: { deployment: ChainDeployment; providerId: bigint; provider: StakeState }) {
  const registry = deployment.contracts.ProviderRegistry;
  const delay = useReadContract({ address: registry, abi: providerRegistryAbi, functionName: "unstakeDelay" });
  const [addAmount, setAddAmount] = useState("");
  const [unstakeAmount, setUnstakeAmount] = useState("");
  const { state, run, busy } = useTransaction();
  const parsedAdd = parseUsdcInput(addAmount);
  const parsedUnstake = parseUsdcInput(unstakeAmount, { max: provider.stake });
  const now = Math.floor(Date.now() / 1000);
  const withdrawable = provider.pendingUnstake > 0n && now >= provider.unstakeAvailableAt;

  return (
    <section aria-label="Stake">
      <h3>Stake</h3>
      <dl className="facts">
        <dt>Staked</dt>
        <dd>
          <UsdcAmount value={provider.stake} testId={`stake-${providerId}`} />
        </dd>
        <dt>Pending unstake</dt>
        <dd>
          <UsdcAmount value={provider.pendingUnstake} />
          {provider.pendingUnstake > 0n && <> — withdrawable from {formatTimestamp(provider.unstakeAvailableAt)}</>}
        </dd>
      </dl>
      <form
        className="inline-form"
        onSubmit={(event) => {
          event.preventDefault();
          if (!parsedAdd.ok) return;
          void run(async (tx) => {
            await tx.write("Approve USDC", { address: deployment.usdc, abi: erc20Abi, functionName: "approve", args: [registry, parsedAdd.value] });
            await tx.write("Add stake", { address: registry, abi: providerRegistryAbi, functionName: "addStake", args: [providerId, parsedAdd.value] });
          });
        }}
      >
        <UsdcField label="Add stake" value={addAmount} onChange={(event) => setAddAmount(event.target.value)} error={addAmount && !parsedAdd.ok ? parsedAdd.error : undefined} />
        <button type="submit" disabled={busy || !parsedAdd.ok}>
          Approve and add
        </button>
      </form>
      <form
        className="inline-form"
        onSubmit={(event) => {
          event.preventDefault();
          if (!parsedUnstake.ok) return;
          void run((tx) => tx.write("Request unstake", { address: registry, abi: providerRegistryAbi, functionName: "requestUnstake", args: [providerId, parsedUnstake.value] }));
        }}
      >
        <UsdcField
          label="Request unstake"
          hint={delay.data !== undefined ? `Withdrawable ${Number(delay.data) / 86_400} days after the request; slashable until then.` : undefined}
          value={unstakeAmount}
          onChange={(event) => setUnstakeAmount(event.target.value)}
          error={unstakeAmount && !parsedUnstake.ok ? parsedUnstake.error : undefined}
        />
        <button type="submit" disabled={busy || !parsedUnstake.ok}>
          Request unstake
        </button>
      </form>
      <div className="actions">
        <button
          type="button"
          disabled={busy || !withdrawable}
          onClick={() => void run((tx) => tx.write("Withdraw unstaked", { address: registry, abi: providerRegistryAbi, functionName: "withdrawUnstaked", args: [providerId] }))}
        >
          Withdraw unstaked
        </button>
        {provider.active ? (
          <button
            type="button"
            className="danger"
            disabled={busy}
            onClick={() => void run((tx) => tx.write("Deactivate", { address: registry, abi: providerRegistryAbi, functionName: "deactivate", args: [providerId] }))}
          >
            Deactivate
          </button>
        ) : (
          <button
            type="button"
            disabled={busy || provider.slashed}
            onClick={() => void run((tx) => tx.write("Reactivate", { address: registry, abi: providerRegistryAbi, functionName: "reactivate", args: [providerId] }))}
          >
            Reactivate
          </button>
        )}
      </div>
      <TransactionStatus state={state} />
    </section>
  );
}
