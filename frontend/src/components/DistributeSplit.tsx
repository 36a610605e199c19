import type { Address } from "viem";
import { splitsLedgerAbi } from "@agentmesh/sdk/browser";
import { useAccountRestriction, useLedgerBalance } from "../hooks/useBalances.ts";
import { useTransaction } from "../hooks/useTransaction.ts";
import type { ChainDeployment } from "../lib/config.ts";
import { ChainLink } from "./ChainLink.tsx";
import { Link } from "./Link.tsx";
import { RestrictionNotice } from "./RestrictionNotice.tsx";
import { TransactionStatus } from "./TransactionStatus.tsx";
import { UsdcAmount } from "./UsdcAmount.tsx";

/**
 * What a split holds undistributed (payments to a split wait in its own balance) and a "Distribute"
 * button that pays it out to every recipient, nested splits included. Anyone may distribute; the
 * ledger refuses it while the split is frozen.
 */
export function DistributeSplit({ deployment, split, linked = false }: { deployment: ChainDeployment; split: Address; linked?: boolean }) {
  const balance = useLedgerBalance(split);
  const restriction = useAccountRestriction(split);
  const { state, run, busy } = useTransaction();
  const frozen = restriction.data?.frozenUntil !== undefined;
  return (
    <div className="split-undistributed" data-testid={`undistributed-${split.toLowerCase()}`}>
      <p>
        {linked ? (
          <>
            Split <Link to={`/splits?split=${split}`}>{split}</Link> holds{" "}
          </>
        ) : (
          <>
            Split <ChainLink kind="address" value={split} /> holds{" "}
          </>
        )}
        {balance.data === undefined ? "…" : <UsdcAmount value={balance.data} testId="split-undistributed" />} undistributed.{" "}
        <button
          type="button"
          disabled={busy || balance.data === undefined || balance.data === 0n || frozen}
          onClick={() => void run((tx) => tx.write("Distribute", { address: deployment.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "distribute", args: [split] }))}
        >
          Distribute
        </button>
      </p>
      {restriction.data && <RestrictionNotice restriction={restriction.data}>{frozen ? "Distributing it is refused too." : undefined}</RestrictionNotice>}
      <TransactionStatus state={state} />
    </div>
  );
}
