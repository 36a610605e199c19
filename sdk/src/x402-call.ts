import { x402Client } from "@x402/core/client";
import { decodePaymentResponseHeader } from "@x402/core/http";
import { toClientEvmSigner } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import type { Address, Hex, PublicClient, WalletClient } from "viem";

/**
 * A paid call to an agent over x402 (v2), shared by the dApp and `agentmesh agent call`
 * (`@agentmesh/sdk/x402`): the first POST answers 402 with `PAYMENT-REQUIRED`, the wallet signs an
 * EIP-3009 USDC authorization (typed data, no gas), the call is retried with `PAYMENT-SIGNATURE`,
 * and the answer carries `PAYMENT-RESPONSE` with the settlement transaction. The dApp loads it with
 * a dynamic `import()` on the first call, so the x402 libraries stay out of its first load.
 */

export interface AgentCallParameters {
  /** The agent's paid URL (`AgentView.url`). */
  url: string;
  input: string;
  chainId: number;
  /** The only asset the client may pay with (the deployment's USDC). */
  usdc: Address;
  /** Most the client may pay for the call, atomic USDC (the listed price). */
  maxAmount: bigint;
  walletClient: WalletClient;
  publicClient: PublicClient;
}

export interface AgentCallResult {
  /** The agent's answer: parsed JSON, or the text when it is not JSON. */
  answer: unknown;
  /** The settlement, from `PAYMENT-RESPONSE` (absent if the relayer sent none). */
  settlement?: { success: boolean; transaction: Hex | ""; payer?: string; network: string; amount?: string; errorReason?: string };
}

/** Calls the agent at `url` with `{ input }`, paying its price from the wallet's USDC. */
export async function callAgentWithPayment({ url, input, chainId, usdc, maxAmount, walletClient, publicClient }: AgentCallParameters): Promise<AgentCallResult> {
  const account = walletClient.account;
  if (account === undefined) throw new Error("Connect a wallet first (the wallet client has no account).");
  const network = `eip155:${chainId}` as const;
  const signer = toClientEvmSigner(
    {
      address: account.address,
      signTypedData: (args) => walletClient.signTypedData({ account, ...args } as Parameters<WalletClient["signTypedData"]>[0]),
    },
    publicClient as unknown as Parameters<typeof toClientEvmSigner>[1],
  );
  const client = x402Client.fromConfig({
    schemes: [{ network, client: new ExactEvmScheme(signer) }],
    spendControls: { allowedAssets: [{ network, asset: usdc, maxAmountPerPayment: maxAmount.toString() }] },
  });
  const paidFetch = wrapFetchWithPayment(fetch, client);
  const response = await paidFetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input }) });
  const text = await response.text();
  let answer: unknown = text;
  try {
    answer = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  const header = response.headers.get("PAYMENT-RESPONSE");
  const settlement = header ? (decodePaymentResponseHeader(header) as AgentCallResult["settlement"]) : undefined;
  if (!response.ok) {
    const message = (answer as { error?: { message?: string } } | undefined)?.error?.message;
    throw new Error(response.status === 402 ? `The payment was refused${message ? `: ${message}` : "."}` : (message ?? `The agent answered ${response.status}.`));
  }
  return { answer, settlement };
}
