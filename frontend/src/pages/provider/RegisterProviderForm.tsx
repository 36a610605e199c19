import { useState } from "react";
import type { Address } from "viem";
import { erc20Abi } from "viem";
import { useReadContract } from "wagmi";
import { providerRegistryAbi } from "@agentmesh/sdk/browser";
import { UsdcField } from "../../components/Field.tsx";
import { TransactionStatus } from "../../components/TransactionStatus.tsx";
import { useTransaction } from "../../hooks/useTransaction.ts";
import { signUsdcPermit } from "../../lib/chain.ts";
import type { ChainDeployment } from "../../lib/config.ts";
import { parseModel, parseProviderTerms, type ModelInput, type ProviderTermsInput } from "../../lib/provider.ts";
import { formatUsdcAmount, parseUsdcInput, usdcInputValue } from "../../lib/usdc.ts";
import { ModelFields } from "./ModelFields.tsx";
import { ProviderTermsFields } from "./ProviderTermsFields.tsx";

const EMPTY_MODEL: ModelInput = { name: "", inputPrice: "", outputPrice: "", context: "8192" };

/** Registers a provider with its first models and stakes USDC, approving by permit or by an approve transaction. */
export function RegisterProviderForm({ deployment, account }: { deployment: ChainDeployment; account: Address }) {
  const registry = deployment.contracts.ProviderRegistry;
  const minStake = useReadContract({ address: registry, abi: providerRegistryAbi, functionName: "minStake" });
  const [terms, setTerms] = useState<ProviderTermsInput>({
    endpoint: "",
    providerType: "0",
    rateLimit: "600",
    minCharge: "0.00001",
    features: ["streaming"],
    receiptSigner: "",
    payout: account,
  });
  const [models, setModels] = useState<ModelInput[]>([EMPTY_MODEL]);
  const [stake, setStake] = useState("");
  const [approval, setApproval] = useState<"permit" | "approve">("permit");
  const [attempted, setAttempted] = useState(false);
  const { state, run, busy } = useTransaction();

  const parsedTerms = parseProviderTerms(terms);
  const parsedModels = models.map(parseModel);
  const stakeText = stake === "" && minStake.data !== undefined ? usdcInputValue(minStake.data) : stake;
  const parsedStake = parseUsdcInput(stakeText, { min: minStake.data ?? 1n });
  const show = <T,>(errors: T) => (attempted ? errors : ({} as T));

  const register = () => {
    setAttempted(true);
    const config = parsedTerms.value;
    const modelConfigs = parsedModels.map((model) => model.value);
    if (config === undefined || modelConfigs.some((model) => model === undefined) || !parsedStake.ok) return;
    const validModels = modelConfigs as NonNullable<(typeof modelConfigs)[number]>[];
    const amount = parsedStake.value;
    void run(async (tx) => {
      if (approval === "permit") {
        const permit = await tx.sign("Sign the USDC permit", () =>
          signUsdcPermit({ publicClient: tx.publicClient, walletClient: tx.walletClient, token: deployment.usdc, owner: tx.account, spender: registry, value: amount }),
        );
        await tx.write("Register and stake", {
          address: registry,
          abi: providerRegistryAbi,
          functionName: "registerWithPermit",
          args: [config, validModels, amount, permit.deadline, permit.v, permit.r, permit.s],
        });
      } else {
        await tx.write("Approve USDC", { address: deployment.usdc, abi: erc20Abi, functionName: "approve", args: [registry, amount] });
        await tx.write("Register and stake", { address: registry, abi: providerRegistryAbi, functionName: "register", args: [config, validModels, amount] });
      }
    }).then((done) => {
      if (done) {
        setModels([EMPTY_MODEL]);
        setAttempted(false);
      }
    });
  };

  return (
    <form
      className="card"
      aria-labelledby="register-heading"
      onSubmit={(event) => {
        event.preventDefault();
        register();
      }}
    >
      <h2 id="register-heading">Register a provider</h2>
      <ProviderTermsFields input={terms} errors={show(parsedTerms.errors)} onChange={setTerms} />
      {models.map((model, index) => (
        <div key={index} className="model-row">
          <ModelFields legend={`Model ${index + 1}`} input={model} errors={show(parsedModels[index].errors)} onChange={(next) => setModels(models.map((item, at) => (at === index ? next : item)))} />
          {models.length > 1 && (
            <button type="button" className="secondary" onClick={() => setModels(models.filter((_, at) => at !== index))}>
              Remove model {index + 1}
            </button>
          )}
        </div>
      ))}
      <button type="button" className="secondary" onClick={() => setModels([...models, EMPTY_MODEL])}>
        Add another model
      </button>
      <div className="form-grid">
        <UsdcField
          label="Stake"
          hint={minStake.data !== undefined ? `At least ${formatUsdcAmount(minStake.data)} USDC; slashable if the receipt signer double-signs.` : undefined}
          value={stakeText}
          onChange={(event) => setStake(event.target.value)}
          error={attempted && !parsedStake.ok ? parsedStake.error : undefined}
        />
        <fieldset className="checks">
          <legend>Approve the stake</legend>
          <label>
            <input type="radio" name="approval" checked={approval === "permit"} onChange={() => setApproval("permit")} />
            with a permit signature (one transaction)
          </label>
          <label>
            <input type="radio" name="approval" checked={approval === "approve"} onChange={() => setApproval("approve")} />
            with an approve transaction (two transactions)
          </label>
        </fieldset>
      </div>
      <button type="submit" disabled={busy}>
        Register and stake
      </button>
      <TransactionStatus state={state} />
    </form>
  );
}
