import { useState } from "react";
import { isAddressEqual, type Address } from "viem";
import { agentMarketplaceAbi } from "@agentmesh/sdk/browser";
import { Field } from "../../components/Field.tsx";
import { TransactionStatus } from "../../components/TransactionStatus.tsx";
import { useTransaction } from "../../hooks/useTransaction.ts";
import { readPendingDistribution } from "../../lib/agentChain.ts";
import type { ChainDeployment } from "../../lib/config.ts";
import { AgentStatus } from "../../lib/agentStatus.ts";
import { flowInputOf, parseAgentMetadata, parseAgentTerms, type FlowInput, type FlowOfFunds } from "../../lib/flowOfFunds.ts";
import { usdcInputValue } from "../../lib/usdc.ts";
import { invalid } from "../../lib/parse.ts";
import { parseAddress } from "../../lib/validation.ts";
import { AgentDetailsFields, AgentTermsFields, type AgentDetailsInput } from "./AgentFields.tsx";

interface OwnedAgent {
  id: bigint;
  owner: Address;
  status: number;
  pricePerCall: bigint;
  metadata: AgentDetailsInput;
}

interface OwnerActionProps {
  deployment: ChainDeployment;
  marketplace: Address;
  agent: OwnedAgent;
}

/** Name, endpoint and metadata URI (`updateAgent`). */
function AgentDetailsForm({ marketplace, agent }: Omit<OwnerActionProps, "deployment">) {
  const [details, setDetails] = useState<AgentDetailsInput>(agent.metadata);
  const [attempted, setAttempted] = useState(false);
  const { state, run, busy } = useTransaction();
  const metadata = parseAgentMetadata(details);
  return (
    <form
      aria-labelledby="agent-details-heading"
      onSubmit={(event) => {
        event.preventDefault();
        setAttempted(true);
        if (!metadata.ok) return;
        void run((tx) => tx.write("Update details", { address: marketplace, abi: agentMarketplaceAbi, functionName: "updateAgent", args: [agent.id, metadata.value] }));
      }}
    >
      <h3 id="agent-details-heading">Details</h3>
      <div className="form-grid">
        <AgentDetailsFields value={details} onChange={setDetails} />
      </div>
      {attempted && !metadata.ok && (
        <p className="field-error" role="alert">
          {metadata.error}
        </p>
      )}
      <button type="submit" disabled={busy}>
        Save details
      </button>
      <TransactionStatus state={state} />
    </form>
  );
}

/**
 * Price and flow of funds (`updateTerms`), starting from the current ones. What the agent received
 * under its current terms is distributed with them in the same transaction: its pending payments are
 * read afresh on submit.
 */
function AgentTermsForm({ deployment, marketplace, agent, flow }: OwnerActionProps & { flow: FlowOfFunds }) {
  const [price, setPrice] = useState(usdcInputValue(agent.pricePerCall));
  const [flowInput, setFlowInput] = useState<FlowInput>(() => flowInputOf(flow));
  const [attempted, setAttempted] = useState(false);
  const { state, run, busy } = useTransaction();
  const check = parseAgentTerms(price, flowInput);
  return (
    <form
      aria-labelledby="agent-terms-heading"
      onSubmit={(event) => {
        event.preventDefault();
        setAttempted(true);
        if (!check.terms.ok) return;
        const { pricePerCall, flow: next } = check.terms.value;
        void run(async (tx) => {
          const current = await readPendingDistribution(tx.publicClient, marketplace, agent.id, deployment.startBlock);
          await tx.write("Update terms", {
            address: marketplace,
            abi: agentMarketplaceAbi,
            functionName: "updateTerms",
            args: [agent.id, pricePerCall, next, current.flow, current.payments],
          });
        });
      }}
    >
      <h3 id="agent-terms-heading">Price and flow of funds</h3>
      <p className="hint">
        What the agent has received is first distributed under its current terms, in the same transaction. Pause it first so that no payment arrives meanwhile.
      </p>
      <AgentTermsFields price={price} onPriceChange={setPrice} flow={flowInput} onFlowChange={setFlowInput} check={check} attempted={attempted} />
      <button type="submit" disabled={busy}>
        Save terms
      </button>
      <TransactionStatus state={state} />
    </form>
  );
}

/** Pause or unpause, and retire for good (after ticking a confirmation); once retired, only says so. */
function AgentStatusActions({ marketplace, agent }: Omit<OwnerActionProps, "deployment">) {
  const [confirmRetire, setConfirmRetire] = useState(false);
  const { state, run, busy } = useTransaction();
  const setStatus = (step: string, functionName: "pause" | "unpause" | "retire") =>
    void run((tx) => tx.write(step, { address: marketplace, abi: agentMarketplaceAbi, functionName, args: [agent.id] }));
  if (agent.status === AgentStatus.Retired) {
    return (
      <section aria-labelledby="agent-status-heading">
        <h3 id="agent-status-heading">Status</h3>
        <p>This agent is retired for good: it can no longer be called or changed, and what it received can still be distributed.</p>
        <TransactionStatus state={state} />
      </section>
    );
  }
  const active = agent.status === AgentStatus.Active;
  return (
    <section aria-labelledby="agent-status-heading">
      <h3 id="agent-status-heading">Status</h3>
      <p className="muted">A paused agent accepts no payment through the marketplace; what it received can still be distributed.</p>
      <div className="actions">
        {active ? (
          <button type="button" className="secondary" disabled={busy} onClick={() => setStatus("Pause", "pause")}>
            Pause
          </button>
        ) : (
          <button type="button" className="secondary" disabled={busy} onClick={() => setStatus("Unpause", "unpause")}>
            Unpause
          </button>
        )}
      </div>
      <label className="confirm">
        <input type="checkbox" checked={confirmRetire} onChange={(event) => setConfirmRetire(event.target.checked)} />
        Retiring is final: the agent can never be called or changed again.
      </label>
      <div className="actions">
        <button type="button" className="danger" disabled={busy || !confirmRetire} onClick={() => setStatus("Retire", "retire")}>
          Retire agent
        </button>
      </div>
      <TransactionStatus state={state} />
    </section>
  );
}

/**
 * Hands the listing to another account (`transferAgent`), after ticking a confirmation. What the agent
 * has received and not yet distributed goes, at distribution, to the new owner's referrer.
 */
function AgentTransferForm({ marketplace, agent }: Omit<OwnerActionProps, "deployment">) {
  const [newOwner, setNewOwner] = useState("");
  const [confirmed, setConfirmed] = useState(false);
  const [attempted, setAttempted] = useState(false);
  const { state, run, busy } = useTransaction();
  const address = parseAddress(newOwner);
  const parsed = address.ok && isAddressEqual(address.value, agent.owner) ? invalid<Address>("This account already owns the agent.") : address;
  return (
    <form
      aria-labelledby="agent-transfer-heading"
      onSubmit={(event) => {
        event.preventDefault();
        setAttempted(true);
        if (!parsed.ok) return;
        void run((tx) => tx.write("Transfer", { address: marketplace, abi: agentMarketplaceAbi, functionName: "transferAgent", args: [agent.id, parsed.value] }));
      }}
    >
      <h3 id="agent-transfer-heading">Transfer</h3>
      <p className="hint">Once the transfer is confirmed, only the new owner can manage the agent; this section then leaves your view.</p>
      <Field label="New owner" className="mono" placeholder="0x…" value={newOwner} onChange={(event) => setNewOwner(event.target.value)} error={attempted && !parsed.ok ? parsed.error : undefined} />
      <label className="confirm">
        <input type="checkbox" checked={confirmed} onChange={(event) => setConfirmed(event.target.checked)} />
        The new owner gets every right over this agent, and this account keeps none.
      </label>
      <div className="actions">
        <button type="submit" className="danger" disabled={busy || !confirmed}>
          Transfer agent
        </button>
      </div>
      <TransactionStatus state={state} />
    </form>
  );
}

/**
 * What the owner of a listing can change: its details, its terms, its status and its owner (nothing
 * once retired).
 * The forms start from the values at mount (`flow` is the agent's current flow of funds, undefined
 * until read) and keep what was typed after a change, so their confirmations stay on screen.
 */
export function OwnerActions({ deployment, marketplace, agent, flow }: OwnerActionProps & { flow: FlowOfFunds | undefined }) {
  const retired = agent.status === AgentStatus.Retired;
  return (
    <section className="card" aria-labelledby="owner-actions-heading">
      <h2 id="owner-actions-heading">Manage this agent</h2>
      {!retired && <AgentDetailsForm marketplace={marketplace} agent={agent} />}
      {!retired &&
        (flow === undefined ? (
          <p className="muted">The price and flow of funds can be changed once the current flow is read (see Payouts above).</p>
        ) : (
          <AgentTermsForm deployment={deployment} marketplace={marketplace} agent={agent} flow={flow} />
        ))}
      <AgentStatusActions marketplace={marketplace} agent={agent} />
      {!retired && <AgentTransferForm marketplace={marketplace} agent={agent} />}
    </section>
  );
}
