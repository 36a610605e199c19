import { useState } from "react";
import { useReadContracts } from "wagmi";
import { providerRegistryAbi } from "@agentmesh/sdk/browser";
import { UsdcField } from "../../components/Field.tsx";
import { ErrorState, Loading } from "../../components/States.tsx";
import { TransactionStatus } from "../../components/TransactionStatus.tsx";
import { useTransaction } from "../../hooks/useTransaction.ts";
import type { ChainDeployment } from "../../lib/config.ts";
import { parseModel, type ModelInput } from "../../lib/provider.ts";
import { formatPricePer1K, parseUsdcInput, usdcInputValue } from "../../lib/usdc.ts";
import { UINT32_MAX } from "../../lib/validation.ts";
import { ModelFields } from "./ModelFields.tsx";

interface ModelRow {
  id: number;
  name: string;
  inputPricePer1K: number;
  outputPricePer1K: number;
  maxContextTokens: number;
  active: boolean;
}

const MAX_PRICE = BigInt(UINT32_MAX);

/** Changes one model's prices or retires it. */
function ModelItem({ deployment, providerId, model }: { deployment: ChainDeployment; providerId: bigint; model: ModelRow }) {
  const [input, setInput] = useState(usdcInputValue(BigInt(model.inputPricePer1K)) || "0");
  const [output, setOutput] = useState(usdcInputValue(BigInt(model.outputPricePer1K)) || "0");
  const { state, run, busy } = useTransaction();
  const parsedInput = parseUsdcInput(input, { min: 0n, max: MAX_PRICE });
  const parsedOutput = parseUsdcInput(output, { min: 0n, max: MAX_PRICE });
  const registry = deployment.contracts.ProviderRegistry;
  return (
    <li className="model-item">
      <p>
        <strong>{model.name}</strong> (#{model.id}) — {formatPricePer1K(model.inputPricePer1K)} in, {formatPricePer1K(model.outputPricePer1K)} out,{" "}
        {model.maxContextTokens.toLocaleString("en-US")} tokens {!model.active && <span className="badge">retired</span>}
      </p>
      {model.active && (
        <form
          className="inline-form"
          onSubmit={(event) => {
            event.preventDefault();
            if (!parsedInput.ok || !parsedOutput.ok) return;
            void run((tx) =>
              tx.write("Reprice", {
                address: registry,
                abi: providerRegistryAbi,
                functionName: "repriceModel",
                args: [providerId, BigInt(model.id), Number(parsedInput.value), Number(parsedOutput.value)],
              }),
            );
          }}
        >
          <UsdcField label={`${model.name} input price / 1K`} value={input} onChange={(event) => setInput(event.target.value)} error={parsedInput.ok ? undefined : parsedInput.error} />
          <UsdcField label={`${model.name} output price / 1K`} value={output} onChange={(event) => setOutput(event.target.value)} error={parsedOutput.ok ? undefined : parsedOutput.error} />
          <button type="submit" disabled={busy}>
            Save prices
          </button>
          <button
            type="button"
            className="danger"
            disabled={busy}
            onClick={() => void run((tx) => tx.write("Retire model", { address: registry, abi: providerRegistryAbi, functionName: "retireModel", args: [providerId, BigInt(model.id)] }))}
          >
            Retire
          </button>
          <TransactionStatus state={state} />
        </form>
      )}
    </li>
  );
}

/** Adds a model. */
function AddModelForm({ deployment, providerId }: { deployment: ChainDeployment; providerId: bigint }) {
  const [input, setInput] = useState<ModelInput>({ name: "", inputPrice: "", outputPrice: "", context: "8192" });
  const [attempted, setAttempted] = useState(false);
  const { state, run, busy } = useTransaction();
  const parsed = parseModel(input);
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        setAttempted(true);
        const model = parsed.value;
        if (model === undefined) return;
        void run((tx) => tx.write("Add model", { address: deployment.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName: "addModel", args: [providerId, model] }));
      }}
    >
      <ModelFields legend="Add a model" input={input} errors={attempted ? parsed.errors : {}} onChange={setInput} />
      <button type="submit" disabled={busy}>
        Add model
      </button>
      <TransactionStatus state={state} />
    </form>
  );
}

/** A provider's models with their prices: reprice, retire, add. */
export function ModelsEditor({ deployment, providerId, modelCount }: { deployment: ChainDeployment; providerId: bigint; modelCount: number }) {
  const models = useReadContracts({
    contracts: Array.from({ length: modelCount }, (_, index) => ({
      address: deployment.contracts.ProviderRegistry,
      abi: providerRegistryAbi,
      functionName: "getModel",
      args: [providerId, BigInt(index)],
    }) as const),
    allowFailure: false,
  });
  return (
    <section aria-label="Models and prices">
      <h3>Models and prices</h3>
      {models.isPending ? (
        <Loading what="models" />
      ) : models.isError ? (
        <ErrorState error={models.error} retry={() => void models.refetch()} />
      ) : (
        <ul className="plain">
          {models.data.map((model, index) => (
            <ModelItem key={index} deployment={deployment} providerId={providerId} model={{ ...model, id: index }} />
          ))}
        </ul>
      )}
      <AddModelForm deployment={deployment} providerId={providerId} />
    </section>
  );
}
