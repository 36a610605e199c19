import { useState } from "react";
import { ChainLink } from "../../components/ChainLink.tsx";
import { Field } from "../../components/Field.tsx";
import { TransactionStatus } from "../../components/TransactionStatus.tsx";
import { useTransaction } from "../../hooks/useTransaction.ts";
import type { ChainDeployment } from "../../lib/config.ts";
import type { AgentView } from "@agentmesh/sdk/protocol";
import { formatUsdcAmount } from "../../lib/usdc.ts";
import type { AgentCallResult } from "@agentmesh/sdk/x402";

/** What calling an agent needs: its paid URL on the relayer, its name, status and price. */
export interface CallableAgent {
  id: string;
  name: string;
  /** "active", "paused", "retired". */
  status: string;
  /** Atomic USDC. */
  pricePerCall: bigint;
  /** The paid URL (`AgentView.url`). */
  url: string;
}

/** A relayer listing as a {@link CallableAgent}. */
export const callableAgent = (agent: AgentView): CallableAgent => ({
  id: String(agent.id),
  name: agent.name,
  status: agent.status,
  pricePerCall: BigInt(agent.pricePerCallAtomic),
  url: agent.url,
});

/**
 * Calls an agent from the browser, the connected wallet paying its price over x402: an input, a
 * "Call (price USDC)" button, then the agent's JSON answer and the settlement transaction. The x402
 * client is imported on the first call.
 */
export function AgentCall({ agent, deployment }: { agent: CallableAgent; deployment: ChainDeployment }) {
  const [input, setInput] = useState("");
  const [result, setResult] = useState<AgentCallResult>();
  const { state, run, busy } = useTransaction();
  const price = agent.pricePerCall;
  const active = agent.status === "active";
  return (
    <form
      className="agent-call"
      aria-label={`Call ${agent.name}`}
      onSubmit={(event) => {
        event.preventDefault();
        setResult(undefined);
        void run(async (tx) => {
          const { callAgentWithPayment } = await import("@agentmesh/sdk/x402");
          const answer = await tx.sign(`Pay ${formatUsdcAmount(price)} USDC and call ${agent.name}`, () =>
            callAgentWithPayment({
              url: agent.url,
              input,
              chainId: deployment.chainId,
              usdc: deployment.usdc,
              maxAmount: price,
              walletClient: tx.walletClient,
              publicClient: tx.publicClient,
            }),
          );
          setResult(answer);
        });
      }}
    >
      <Field label="Input" value={input} onChange={(event) => setInput(event.target.value)} placeholder="What should the agent do?" />
      <button type="submit" disabled={busy || !active} data-testid={`call-agent-${agent.id}`}>
        Call ({formatUsdcAmount(price)} USDC)
      </button>
      {!active && <p className="muted">This agent is {agent.status} and accepts no calls.</p>}
      <TransactionStatus state={state} />
      {result && (
        <div className="agent-answer" data-testid={`agent-answer-${agent.id}`}>
          <h4>Answer</h4>
          <pre className="mono">{typeof result.answer === "string" ? result.answer : JSON.stringify(result.answer, null, 2)}</pre>
          {result.settlement?.transaction ? (
            <p>
              Paid in <ChainLink kind="tx" value={result.settlement.transaction} />
              {result.settlement.success ? "" : ` (settlement failed: ${result.settlement.errorReason ?? "unknown reason"})`}
            </p>
          ) : (
            <p className="muted">The relayer reported no settlement transaction.</p>
          )}
        </div>
      )}
    </form>
  );
}
