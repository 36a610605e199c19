import { useState } from "react";
import { parseEventLogs, zeroAddress, type Address } from "viem";
import { agentMarketplaceAbi } from "@agentmesh/sdk/browser";
import { Field, UsdcField } from "../../components/Field.tsx";
import { TransactionStatus } from "../../components/TransactionStatus.tsx";
import { useTransaction } from "../../hooks/useTransaction.ts";
import { buildFlow, parseAgentMetadata, parseAgentPrice, type FlowInput } from "../../lib/flowOfFunds.ts";
import { parseAddress } from "../../lib/validation.ts";
import { FlowEditor, FlowPreview } from "./FlowEditor.tsx";

const INITIAL_FLOW: FlowInput = { fixedAmounts: [], shares: [], payerReferralPercent: "1", payeeReferralPercent: "1", remainder: { kind: "platform", target: "" } };

/** Lists an agent: name, endpoint, price per call, and a flow of funds previewed to the unit. */
export function PublishAgentForm({ marketplace, account }: { marketplace: Address; account: Address | undefined }) {
  const [name, setName] = useState("");
  const [endpoint, setEndpoint] = useState("");
  const [metadataURI, setMetadataURI] = useState("");
  const [price, setPrice] = useState("0.01");
  const [referrer, setReferrer] = useState("");
  const [flowInput, setFlowInput] = useState<FlowInput>({ ...INITIAL_FLOW, shares: account ? [{ kind: "account", target: account, percent: "90" }] : [] });
  const [attempted, setAttempted] = useState(false);
  const [listedId, setListedId] = useState<bigint>();
  const { state, run, busy } = useTransaction();
  const metadata = parseAgentMetadata({ name, metadataURI, endpoint });
  const parsedPrice = parseAgentPrice(price);
  const flow = parsedPrice.ok ? buildFlow(flowInput, parsedPrice.value) : undefined;
  const parsedReferrer = referrer.trim() === "" ? undefined : parseAddress(referrer);
  const error = !metadata.ok ? metadata.error : !parsedPrice.ok ? parsedPrice.error : flow && !flow.ok ? flow.error : parsedReferrer?.ok === false ? `Referrer: ${parsedReferrer.error}` : undefined;
  return (
    <form
      className="card"
      aria-labelledby="publish-agent-heading"
      onSubmit={(event) => {
        event.preventDefault();
        setAttempted(true);
        if (error !== undefined || !metadata.ok || !parsedPrice.ok || !flow?.ok) return;
        setListedId(undefined);
        void run(async (tx) => {
          const receipt = await tx.write("List agent", {
            address: marketplace,
            abi: agentMarketplaceAbi,
            functionName: "list",
            args: [metadata.value, parsedPrice.value, flow.value, parsedReferrer?.ok ? parsedReferrer.value : zeroAddress],
          });
          const [listed] = parseEventLogs({ abi: agentMarketplaceAbi, eventName: "AgentListed", logs: receipt.logs });
          setListedId(listed?.args.agentId);
        });
      }}
    >
      <h2 id="publish-agent-heading">Publish an agent</h2>
      <p className="muted">Callers pay the price per call in USDC over x402; each payment is split by the flow of funds below.</p>
      <div className="form-grid">
        <Field label="Name" value={name} onChange={(event) => setName(event.target.value)} placeholder="AutoDev" />
        <Field label="Endpoint" hint="Where the relayer forwards paid calls (JSON in, JSON out)." value={endpoint} onChange={(event) => setEndpoint(event.target.value)} placeholder="https://agent.example/run" />
        <Field label="Metadata URI" hint="Optional: a description document." value={metadataURI} onChange={(event) => setMetadataURI(event.target.value)} />
        <UsdcField label="Price per call" value={price} onChange={(event) => setPrice(event.target.value)} error={attempted && !parsedPrice.ok ? parsedPrice.error : undefined} />
        <Field label="Your referrer" hint="Optional: recorded once; it then earns the owner's referral rewards." value={referrer} onChange={(event) => setReferrer(event.target.value)} className="mono" placeholder="0x…" />
      </div>
      <FlowEditor value={flowInput} onChange={setFlowInput} />
      {flow?.ok && parsedPrice.ok ? (
        <FlowPreview flow={flow.value} price={parsedPrice.value} />
      ) : (
        flow && !flow.ok && <p className="field-error" role="alert">{flow.error}</p>
      )}
      {attempted && error !== undefined && (flow === undefined || flow.ok) && (
        <p className="field-error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" disabled={busy}>
        Publish agent
      </button>
      <TransactionStatus state={state} />
      {listedId !== undefined && <p data-testid="listed-agent">Listed as agent #{listedId.toString()}.</p>}
    </form>
  );
}
