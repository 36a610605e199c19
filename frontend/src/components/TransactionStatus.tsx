import type { TxState } from "../hooks/useTransaction.ts";
import { ChainLink } from "./ChainLink.tsx";

/** A transaction's state: waiting for the wallet, pending, confirmed or failed (with the reason). */
export function TransactionStatus({ state }: { state: TxState }) {
  if (state.status === "idle") return <p className="tx" role="status" aria-live="polite" />;
  const link = "hash" in state && state.hash ? <ChainLink kind="tx" value={state.hash} /> : null;
  return (
    <p className={`tx tx-${state.status}`} role="status" aria-live="polite" data-status={state.status}>
      {state.status === "signing" && <>{state.step}: confirm in your wallet…</>}
      {state.status === "pending" && <>{state.step}: pending {link}</>}
      {state.status === "confirmed" && <>{state.step}: confirmed {link}</>}
      {state.status === "failed" && (
        <>
          {state.step} failed: {state.message} {link}
        </>
      )}
    </p>
  );
}
