import { useState } from "react";
import { isAddressEqual, type Address } from "viem";
import { useAccount } from "wagmi";
import { splitsLedgerAbi } from "@agentmesh/sdk/browser";
import { useAccountRestriction, useLedgerBalance, useUsdcBalance } from "../hooks/useBalances.ts";
import { useTransaction } from "../hooks/useTransaction.ts";
import type { ChainDeployment } from "../lib/config.ts";
import { parseUsdcInput, usdcInputValue } from "../lib/usdc.ts";
import { ChainLink } from "./ChainLink.tsx";
import { UsdcField } from "./Field.tsx";
import { RestrictionNotice } from "./RestrictionNotice.tsx";
import { ErrorState, Loading } from "./States.tsx";
import { TransactionStatus } from "./TransactionStatus.tsx";
import { UsdcAmount } from "./UsdcAmount.tsx";

/** Withdraws part or all of the connected account's ledger balance to its wallet (refused while `restricted`). */
function WithdrawForm({ deployment, account, balance, restricted }: { deployment: ChainDeployment; account: Address; balance: bigint; restricted: boolean }) {
  const [amount, setAmount] = useState(usdcInputValue(balance));
  const [attempted, setAttempted] = useState(false);
  const { state, run, busy } = useTransaction();
  const parsed = parseUsdcInput(amount, { max: balance });
  const withdraw = () => {
    setAttempted(true);
    if (!parsed.ok) return;
    void run((tx) =>
      tx.write("Withdraw", { address: deployment.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "withdraw", args: [account, parsed.value] }),
    ).then((done) => {
      if (done) {
        setAmount("");
        setAttempted(false);
      }
    });
  };
  return (
    <form
      className="inline-form"
      onSubmit={(event) => {
        event.preventDefault();
        withdraw();
      }}
    >
      <UsdcField label="Amount to withdraw" value={amount} onChange={(event) => setAmount(event.target.value)} error={attempted && !parsed.ok ? parsed.error : undefined} />
      <button type="submit" disabled={busy || balance === 0n || restricted}>
        Withdraw to wallet
      </button>
      <TransactionStatus state={state} />
    </form>
  );
}

/**
 * An account's earnings in the ledger, and why it cannot move them when it is frozen or blacklisted by
 * USDC; its owner can withdraw them.
 */
export function LedgerBalance({ deployment, account }: { deployment: ChainDeployment; account: Address }) {
  const { address } = useAccount();
  const balance = useLedgerBalance(account);
  const restriction = useAccountRestriction(account);
  const wallet = useUsdcBalance(address);
  const own = address !== undefined && isAddressEqual(address, account);
  if (balance.isPending) return <Loading what="the balance" />;
  if (balance.isError) return <ErrorState error={balance.error} retry={() => void balance.refetch()} />;
  return (
    <div className="ledger-balance">
      <dl className="facts">
        <dt>Withdrawable in the ledger</dt>
        <dd>
          <UsdcAmount value={balance.data} testId="ledger-balance" /> <span className="muted">of</span> <ChainLink kind="address" value={account} />
        </dd>
        {own && wallet.data !== undefined && (
          <>
            <dt>Your wallet</dt>
            <dd>
              <UsdcAmount value={wallet.data} testId="wallet-balance" />
            </dd>
          </>
        )}
      </dl>
      {restriction.data && <RestrictionNotice restriction={restriction.data} />}
      {own ? (
        <WithdrawForm deployment={deployment} account={account} balance={balance.data} restricted={restriction.data !== null} />
      ) : (
        <p className="muted">Only {account} can withdraw this balance.</p>
      )}
    </div>
  );
}
