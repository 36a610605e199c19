import type { Address } from "viem";
import { erc20Abi } from "viem";
import { useReadContract, useReadContracts } from "wagmi";
import { mockUSDCAbi, splitsLedgerAbi } from "@agentmesh/sdk/browser";
import { accountRestriction } from "../lib/restriction.ts";
import { useDeployment } from "./useAppConfig.ts";

/** `account`'s balance in the SplitsLedger: its earnings, or what a split holds undistributed. */
export function useLedgerBalance(account: Address | undefined) {
  const { deployment } = useDeployment();
  return useReadContract({
    address: deployment?.contracts.SplitsLedger,
    abi: splitsLedgerAbi,
    functionName: "balanceOf",
    args: account && [account],
    query: { enabled: deployment !== undefined && account !== undefined },
  });
}

/** `account`'s USDC in its wallet. */
export function useUsdcBalance(account: Address | undefined) {
  const { deployment } = useDeployment();
  return useReadContract({
    address: deployment?.usdc,
    abi: erc20Abi,
    functionName: "balanceOf",
    args: account && [account],
    query: { enabled: deployment !== undefined && account !== undefined },
  });
}

/**
 * Why the ledger refuses to move `account`'s balance (frozen, or blacklisted by USDC), or null when
 * it does not: its `data` is a {@link accountRestriction} result.
 */
export function useAccountRestriction(account: Address | undefined) {
  const { deployment } = useDeployment();
  const ledger = deployment?.contracts.SplitsLedger;
  return useReadContracts({
    contracts: account && [
      { address: ledger, abi: splitsLedgerAbi, functionName: "canMove", args: [account] },
      { address: ledger, abi: splitsLedgerAbi, functionName: "frozenUntil", args: [account] },
      { address: deployment?.usdc, abi: mockUSDCAbi, functionName: "isBlacklisted", args: [account] },
    ],
    allowFailure: false,
    query: {
      enabled: deployment !== undefined && account !== undefined,
      select: ([canMove, frozenUntil, blacklisted]) => accountRestriction({ canMove, frozenUntil, blacklisted, nowSeconds: Math.floor(Date.now() / 1000) }),
    },
  });
}
