import { useState } from "react";
import { parseEventLogs, zeroAddress, type Address } from "viem";
import { useReadContract } from "wagmi";
import { agentMarketplaceAbi } from "@agentmesh/sdk/browser";
import { ChainLink } from "../../components/ChainLink.tsx";
import { Field } from "../../components/Field.tsx";
import { Link } from "../../components/Link.tsx";
import { TransactionStatus } from "../../components/TransactionStatus.tsx";
import { useTransaction } from "../../hooks/useTransaction.ts";
import { parseAgentMetadata, parseAgentTerms, type FlowInput } from "../../lib/flowOfFunds.ts";
import { parseAddress } from "../../lib/validation.ts";
import { AgentDetailsFields, AgentTermsFields, type AgentDetailsInput } from "./AgentFields.tsx";

const INITIAL_FLOW: FlowInput = { fixedAmounts: [], shares: [], payerReferralPercent: "1", payeeReferralPercent: "1", remainder: { kind: "platform", target: "" } };

/**
 * Lists an agent: name, endpoint, price per call, and a flow of funds previewed to the unit. The
 * payment address the listing will get (`nextPaymentAddress` of the connected account) shows before
 * listing; once listed, the one its `AgentListed` event names.
 */
export function PublishAgentForm({ marketplace, account }: { marketplace: Address; account: Address | undefined }) {
  const [details, setDetails] = useState<AgentDetailsInput>({ name: "", endpoint: "", metadataURI: "" });
  const [price, setPrice] = useState("0.01");
  const [referrer, setReferrer] = useState("");
  const [flowInput, setFlowInput] = useState<FlowInput>({ ...INITIAL_FLOW, shares: account ? [{ kind: "account", target: account, percent: "90" }] : [] });
  const [attempted, setAttempted] = useState(false);
  const [listed, setListed] = useState<{ agentId: bigint; paymentAddress: Address }>();
  const { state, run, busy } = useTransaction();
  const nextPaymentAddress = useReadContract({
    address: marketplace,
    abi: agentMarketplaceAbi,
    functionName: "nextPaymentAddress",
    args: account && [account],
    query: { enabled: account !== undefined },
  });
  const metadata = parseAgentMetadata(details);
  const check = parseAgentTerms(price, flowInput);
  const parsedReferrer = referrer.trim() === "" ? undefined : parseAddress(referrer);
  // The price's and the flow's errors show at their fields.
  const error = !metadata.ok ? metadata.error : parsedReferrer?.ok === false ? `Referrer: ${parsedReferrer.error}` : undefined;
  return (
    <form
      className="card"
      aria-labelledby="publish-agent-heading"
      onSubmit={(event) => {
        event.preventDefault();
        setAttempted(true);
        if (!metadata.ok || !check.terms.ok || parsedReferrer?.ok === false) return;
        const { pricePerCall, flow } = check.terms.value;
        setListed(undefined);
        void run(async (tx) => {
          const receipt = await tx.write("List agent", {
            address: marketplace,
            abi: agentMarketplaceAbi,
            functionName: "list",
            args: [metadata.value, pricePerCall, flow, parsedReferrer?.value ?? zeroAddress],
          });
          const [event] = parseEventLogs({ abi: agentMarketplaceAbi, eventName: "AgentListed", logs: receipt.logs });
          if (event) setListed({ agentId: event.args.agentId, paymentAddress: event.args.paymentAddress });
        });
      }}
    >
      <h2 id="publish-agent-heading">Publish an agent</h2>
      <p className="muted">Callers pay the price per call in USDC over x402; each payment is split by the flow of funds below.</p>
      <div className="form-grid">
        <AgentDetailsFields value={details} onChange={setDetails} />
        <Field label="Your referrer" hint="Optional: recorded once; it then earns the owner's referral rewards." value={referrer} onChange={(event) => setReferrer(event.target.value)} className="mono" placeholder="0x…" />
      </div>
      {nextPaymentAddress.data && (
        <p className="hint" data-testid="next-payment-address">
          Its payment address will be <ChainLink kind="address" value={nextPaymentAddress.data} label={nextPaymentAddress.data} />: only your next listing gets it,
          so USDC sent there before you list is this agent's.
        </p>
      )}
      <AgentTermsFields price={price} onPriceChange={setPrice} flow={flowInput} onFlowChange={setFlowInput} check={check} attempted={attempted} />
      {attempted && error !== undefined && (
        <p className="field-error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" disabled={busy}>
        Publish agent
      </button>
      <TransactionStatus state={state} />
      {listed !== undefined && (
        <p data-testid="listed-agent">
          Listed as <Link to={`/agents/${listed.agentId}`}>agent #{listed.agentId.toString()}</Link>, paid at{" "}
          <ChainLink kind="address" value={listed.paymentAddress} label={listed.paymentAddress} />: manage it and see its payouts on its page.
        </p>
      )}
    </form>
  );
}
