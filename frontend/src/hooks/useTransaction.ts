import { useQueryClient } from "@tanstack/react-query";
import { useCallback, useState } from "react";
import type { Abi, Address, ContractFunctionName, ContractFunctionParameters, Hex, PublicClient, SimulateContractParameters, TransactionReceipt, WalletClient } from "viem";
import { useConfig, usePublicClient } from "wagmi";
import { getWalletClient } from "wagmi/actions";
import { describeError } from "@agentmesh/sdk/browser";

/** Where a transaction (or a signature) stands, for {@link TransactionStatus}. */
export type TxState =
  | { status: "idle" }
  | { status: "signing"; step: string }
  | { status: "pending"; step: string; hash: Hex }
  | { status: "confirmed"; step: string; hash?: Hex }
  | { status: "failed"; step: string; message: string; hash?: Hex };

type WriteCall<abi extends Abi, functionName extends ContractFunctionName<abi, "nonpayable" | "payable">> = ContractFunctionParameters<
  abi,
  "nonpayable" | "payable",
  functionName
>;

/** What an action gets: the connected account and clients, and steps that report their state. */
export interface TxContext {
  account: Address;
  publicClient: PublicClient;
  walletClient: WalletClient;
  /** Simulates the call (so reverts are decoded before the wallet asks), sends it and waits for it. */
  write<const abi extends Abi, functionName extends ContractFunctionName<abi, "nonpayable" | "payable">>(
    step: string,
    call: WriteCall<abi, functionName>,
  ): Promise<TransactionReceipt>;
  /** Runs a wallet signature (such as a permit) as a step. */
  sign<T>(step: string, signature: () => Promise<T>): Promise<T>;
}

/** Thrown when a mined transaction reverted. */
class TransactionRevertedError extends Error {
  readonly hash: Hex;
  constructor(hash: Hex) {
    super("The transaction was mined but reverted.");
    this.name = "TransactionRevertedError";
    this.hash = hash;
  }
}

/**
 * Runs an action of one or more transactions with pending, confirmed and failed states; failures
 * become one human sentence (custom errors decoded). Chain and relayer data refetch on success.
 *
 * @example
 * const { state, run, busy } = useTransaction();
 * run((tx) => tx.write("Deactivate", { address, abi, functionName: "deactivate", args: [id] }));
 */
export function useTransaction() {
  const [state, setState] = useState<TxState>({ status: "idle" });
  const config = useConfig();
  const publicClient = usePublicClient();
  const queryClient = useQueryClient();

  const run = useCallback(
    async (action: (tx: TxContext) => Promise<unknown>): Promise<boolean> => {
      // The wallet's client as of now: the account may have changed since the last render.
      const walletClient = await getWalletClient(config).catch(() => undefined);
      if (publicClient === undefined || walletClient === undefined) {
        setState({ status: "failed", step: "Connect", message: "Connect a wallet first." });
        return false;
      }
      let step = "Transaction";
      let lastHash: Hex | undefined;
      const tx: TxContext = {
        account: walletClient.account.address,
        publicClient,
        walletClient,
        async write(label, call) {
          step = label;
          lastHash = undefined;
          setState({ status: "signing", step });
          const { request } = await publicClient.simulateContract({ ...call, account: walletClient.account } as unknown as SimulateContractParameters);
          const hash = await walletClient.writeContract(request);
          lastHash = hash;
          setState({ status: "pending", step, hash });
          const receipt = await publicClient.waitForTransactionReceipt({ hash });
          if (receipt.status !== "success") throw new TransactionRevertedError(hash);
          return receipt;
        },
        async sign(label, signature) {
          step = label;
          setState({ status: "signing", step });
          return signature();
        },
      };
      try {
        await action(tx);
        setState({ status: "confirmed", step, hash: lastHash });
        await queryClient.invalidateQueries();
        return true;
      } catch (error) {
        setState({ status: "failed", step, message: describeError(error), hash: error instanceof TransactionRevertedError ? error.hash : lastHash });
        return false;
      }
    },
    [config, publicClient, queryClient],
  );

  return { state, run, busy: state.status === "signing" || state.status === "pending" };
}
