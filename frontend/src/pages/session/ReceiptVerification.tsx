import { useQuery } from "@tanstack/react-query";
import { parseEventLogs } from "viem";
import { usePublicClient } from "wagmi";
import { computeEscrowAbi } from "@agentmesh/sdk/browser";
import { ChainLink } from "../../components/ChainLink.tsx";
import { ErrorState, Loading } from "../../components/States.tsx";
import type { ChainDeployment } from "../../lib/config.ts";
import type { ReceiptView, SessionView } from "@agentmesh/sdk/protocol";
import { settlesReceipt, verifyReceipt, type ReceiptCheck } from "../../lib/verify.ts";

/**
 * Verifies one receipt in the browser — the session's terms against its id, hashes, hash chain, price,
 * cumulative state, the provider's signature against the receipt signer fixed in the terms — and
 * checks its settlement transaction on-chain.
 */
export function ReceiptVerification({ deployment, session, receipt }: { deployment: ChainDeployment; session: SessionView; receipt: ReceiptView }) {
  const client = usePublicClient();
  const verification = useQuery({
    queryKey: ["verify", deployment.chainId, receipt.hash, receipt.settlementTxHash],
    enabled: client !== undefined,
    queryFn: async (): Promise<ReceiptCheck[]> => {
      const previous = session.receipts.find((candidate) => candidate.sequence === receipt.sequence - 1);
      const checks = await verifyReceipt({ receipt, previous, terms: session.terms, chainId: deployment.chainId, escrow: deployment.contracts.ComputeEscrow });
      if (receipt.settlementTxHash === null) return [...checks, { label: "Settlement", ok: true, detail: "not settled yet (the relayer settles in batches)" }];
      const mined = await client!.getTransactionReceipt({ hash: receipt.settlementTxHash });
      const settled = parseEventLogs({ abi: computeEscrowAbi, eventName: "VoucherSettled", logs: mined.logs }).map((log) => log.args);
      const ok = mined.status === "success" && settlesReceipt(settled, receipt.sessionId, receipt.sequence);
      return [...checks, { label: "Settlement", ok, detail: ok ? `settled on-chain in block ${mined.blockNumber}` : "the transaction does not settle this receipt" }];
    },
  });
  if (verification.isPending) return <Loading what="the verification" />;
  if (verification.isError) return <ErrorState error={verification.error} retry={() => void verification.refetch()} />;
  const valid = verification.data.every((check) => check.ok);
  return (
    <section className={`card verification ${valid ? "verified" : "rejected"}`} aria-label={`Verification of receipt ${receipt.sequence}`} data-testid="verification">
      <h3>
        Receipt {receipt.sequence}: <span data-testid="verification-result">{valid ? "valid" : "INVALID"}</span>
      </h3>
      <ul className="checks-list">
        {verification.data.map((check) => (
          <li key={check.label} data-ok={check.ok}>
            <span aria-hidden="true">{check.ok ? "✓" : "✗"}</span> <strong>{check.label}</strong>: {check.detail}
          </li>
        ))}
      </ul>
      {receipt.settlementTxHash && (
        <p>
          Settlement transaction: <ChainLink kind="tx" value={receipt.settlementTxHash} label={receipt.settlementTxHash} />
        </p>
      )}
    </section>
  );
}
