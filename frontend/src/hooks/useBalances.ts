import type { Address } from "viem";
import { erc20Abi } from "viem";
import { useReadContract } from "wagmi";
import { splitsLedgerAbi } from "@agentmesh/sdk/browser";
import { useDeployment } from "./useAppConfig.ts";

/** `account`'s withdrawable balance in the SplitsLedger (its earnings). */
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
