import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  http,
  nonceManager,
  parseEventLogs,
  type Address,
  type Chain,
  type Hex,
  type PublicClient,
  type WalletClient,
  type Account,
} from "viem";
import pMap from "p-map";
import { privateKeyToAccount } from "viem/accounts";
import { base, baseSepolia, hardhat } from "viem/chains";
import {
  computeEscrowAbi,
  providerRegistryAbi,
  type CompactSignature,
  type SessionTerms,
  type SignedVoucher,
} from "@agentmesh/sdk";
import { redactRpcErrors } from "./redact.ts";

/** Chains the relayer knows; anything else is refused at start-up. */
const CHAINS: Record<number, Chain> = { [hardhat.id]: hardhat, [base.id]: base, [baseSepolia.id]: baseSepolia };

export interface ChainOptions {
  rpcUrl: string;
  chainId: number;
  escrow: Address;
  registry: Address;
  /** The agent marketplace, when this relayer serves agents over x402. */
  marketplace?: Address;
  /** Key of the account that pays gas for opens and settlements; it holds no one's funds. */
  relayerPrivateKey: Hex;
}

/** A provider as the registry describes it, with its models. */
export interface RegisteredProvider {
  id: number;
  owner: Address;
  active: boolean;
  endpoint: string;
  rateLimitPerMinute: number;
  minChargePerCall: number;
  features: bigint;
  receiptSigner: Address;
  payout: Address;
  models: RegisteredModel[];
}

export interface RegisteredModel {
  id: number;
  name: string;
  inputPricePer1K: number;
  outputPricePer1K: number;
  maxContextTokens: number;
  active: boolean;
}

/** A contract's custom error, decoded: its Solidity name and arguments. */
export interface ContractRevert {
  errorName: string;
  args: readonly unknown[];
}

/**
 * The custom error a contract call or simulation reverted with, decoded with the contracts' ABIs,
 * or undefined when `error` is no such revert (a transport failure, say).
 *
 * @example
 * const revert = contractRevert(error);
 * if (revert?.errorName === "EscrowSessionNotOpen") console.log(revert.args[0]); // the session id
 */
export function contractRevert(error: unknown): ContractRevert | undefined {
  if (!(error instanceof BaseError)) return undefined;
  const reverted = error.walk((cause) => cause instanceof ContractFunctionRevertedError);
  if (!(reverted instanceof ContractFunctionRevertedError) || reverted.data === undefined) return undefined;
  return { errorName: reverted.data.errorName, args: reverted.data.args ?? [] };
}

/** The relayer's view of the chain: registry reads and the escrow transactions it pays gas for. */
export class ChainGateway {
  readonly chainId: number;
  readonly escrow: Address;
  readonly registry: Address;
  readonly publicClient: PublicClient;
  readonly walletClient: WalletClient;
  readonly account: Account;

  constructor(options: ChainOptions) {
    const chain = CHAINS[options.chainId];
    if (chain === undefined) throw new Error(`unsupported chain id ${options.chainId}`);
    this.chainId = options.chainId;
    this.escrow = options.escrow;
    this.registry = options.registry;
    this.account = privateKeyToAccount(options.relayerPrivateKey, { nonceManager });
    const transport = redactRpcErrors(http(options.rpcUrl, { retryCount: 2, timeout: 20_000 }), options.rpcUrl);
    this.publicClient = createPublicClient({ chain, transport, pollingInterval: 250 });
    this.walletClient = createWalletClient({ chain, transport, account: this.account });
  }

  /** Provider `id` with its models, as of `blockNumber` (default: latest). */
  async provider(id: number, blockNumber?: bigint): Promise<RegisteredProvider> {
    const provider = await this.publicClient.readContract({
      address: this.registry,
      abi: providerRegistryAbi,
      functionName: "getProvider",
      args: [BigInt(id)],
      blockNumber,
    });
    // ops: at most 4 model reads in flight (a provider may list any number of models).
    const models = await pMap(
      Array.from({ length: Number(provider.modelCount) }, (_, modelId) => modelId),
      async (modelId) => {
        const model = await this.publicClient.readContract({
          address: this.registry,
          abi: providerRegistryAbi,
          functionName: "getModel",
          args: [BigInt(id), BigInt(modelId)],
          blockNumber,
        });
        return { id: modelId, ...model };
      },
      { concurrency: 4 },
    );
    return {
      id,
      owner: provider.owner,
      active: provider.active,
      endpoint: provider.endpoint,
      rateLimitPerMinute: provider.rateLimitPerMinute,
      minChargePerCall: provider.minChargePerCall,
      features: provider.features,
      receiptSigner: provider.receiptSigner,
      payout: provider.payout,
      models,
    };
  }

  /** Budget `id` as of `blockNumber`. */
  budget(id: number, blockNumber: bigint) {
    return this.publicClient.readContract({ address: this.escrow, abi: computeEscrowAbi, functionName: "getBudget", args: [BigInt(id)], blockNumber });
  }

  /** Session `id`'s on-chain state as of `blockNumber` (default: latest). */
  session(id: Hex, blockNumber?: bigint) {
    return this.publicClient.readContract({ address: this.escrow, abi: computeEscrowAbi, functionName: "getSession", args: [id], blockNumber });
  }

  /** The registry's and the escrow's events in [fromBlock, toBlock], decoded. */
  async events(fromBlock: bigint, toBlock: bigint) {
    const logs = await this.publicClient.getLogs({ address: [this.registry, this.escrow], fromBlock, toBlock });
    return parseEventLogs({ abi: [...providerRegistryAbi, ...computeEscrowAbi], logs });
  }

  /** The protocol fee (basis points) that sessions opened now must carry in their terms. */
  async feeBps(): Promise<number> {
    return Number(await this.publicClient.readContract({ address: this.escrow, abi: computeEscrowAbi, functionName: "feeBps" }));
  }

  /** The most vouchers one `settle` or `closeCooperative` takes (the escrow's MAX_BATCH). */
  async maxBatch(): Promise<number> {
    return Number(await this.publicClient.readContract({ address: this.escrow, abi: computeEscrowAbi, functionName: "MAX_BATCH" }));
  }

  /** A provider's settlement totals as the registry records them. */
  metrics(providerId: number) {
    return this.publicClient.readContract({
      address: this.registry,
      abi: providerRegistryAbi,
      functionName: "getMetrics",
      args: [BigInt(providerId)],
    });
  }

  /** Opens a session with the agent's signature; resolves once mined. Reverts surface as errors. */
  async openSession(terms: SessionTerms, agentSignature: CompactSignature): Promise<Hex> {
    const { request } = await this.publicClient.simulateContract({
      account: this.account,
      address: this.escrow,
      abi: computeEscrowAbi,
      functionName: "openSession",
      args: [terms, agentSignature],
    });
    return this.sendAndConfirm(request);
  }

  /** Simulates, then sends `settle` or `closeCooperative` for `vouchers`; returns the hash at once. */
  async sendSettlement(kind: "settle" | "close", vouchers: SignedVoucher[]): Promise<{ hash: Hex; nonce: number }> {
    const { request } = await this.publicClient.simulateContract({
      account: this.account,
      address: this.escrow,
      abi: computeEscrowAbi,
      functionName: kind === "settle" ? "settle" : "closeCooperative",
      args: [vouchers],
    });
    const hash = await this.walletClient.writeContract(request);
    const { nonce } = await this.publicClient.getTransaction({ hash });
    return { hash, nonce };
  }

  /** Waits for `hash`; true when it succeeded, false when it reverted. */
  async waitFor(hash: Hex, timeoutMs = 60_000): Promise<boolean> {
    const receipt = await this.publicClient.waitForTransactionReceipt({ hash, timeout: timeoutMs });
    return receipt.status === "success";
  }

  /** The receipt status of `hash`, or "unknown" when the chain has no receipt for it (yet). */
  async statusOf(hash: Hex): Promise<"success" | "reverted" | "unknown"> {
    try {
      return (await this.publicClient.getTransactionReceipt({ hash })).status;
    } catch {
      return "unknown";
    }
  }

  /** Sends a simulated request and waits for it; a revert surfaces as an error. */
  async sendAndConfirm(request: Parameters<WalletClient["writeContract"]>[0]): Promise<Hex> {
    const hash = await this.walletClient.writeContract(request);
    if (!(await this.waitFor(hash))) throw new Error(`transaction ${hash} reverted`);
    return hash;
  }
}
