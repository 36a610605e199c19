import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  encodeFunctionData,
  http,
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
import type { ChainPort } from "./core/chain-port.ts";
import { redactRpcErrors } from "./redact.ts";
import type { Repository } from "./store/repository.ts";
import { TxManager, type SentTx, type TxManagerOptions, type TxRequest } from "./tx-manager.ts";

/** Chains the relayer knows; anything else is refused at start-up. */
const CHAINS: Record<number, Chain> = { [hardhat.id]: hardhat, [base.id]: base, [baseSepolia.id]: baseSepolia };

export interface ChainOptions {
  rpcUrl: string;
  chainId: number;
  escrow: Address;
  registry: Address;
  /** The agent marketplace, when this relayer serves agents over x402. */
  marketplace?: Address;
  /** The RelayerDirectory, where this relayer announces its public URL for its receipt signers. */
  directory?: Address;
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

/**
 * The relayer's view of the chain: registry reads and the escrow transactions it pays gas for. The
 * services use it through {@link ChainPort}; the indexer and the transaction manager use its clients.
 */
export class ChainGateway implements ChainPort {
  readonly chainId: number;
  readonly escrow: Address;
  readonly registry: Address;
  readonly publicClient: PublicClient;
  readonly walletClient: WalletClient;
  readonly account: Account;
  /** The sender of every transaction (see tx-manager.ts), once {@link manageTransactions} made it. */
  private manager: TxManager | undefined;

  constructor(options: ChainOptions) {
    const chain = CHAINS[options.chainId];
    if (chain === undefined) throw new Error(`unsupported chain id ${options.chainId}`);
    this.chainId = options.chainId;
    this.escrow = options.escrow;
    this.registry = options.registry;
    // No viem nonce manager: the transaction manager owns the account's nonces.
    this.account = privateKeyToAccount(options.relayerPrivateKey);
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

  /** Makes the transaction manager that sends every transaction of the gas account, recording in `repo`. */
  manageTransactions(repo: Repository, options: TxManagerOptions): TxManager {
    this.manager = new TxManager(repo, this, options);
    return this.manager;
  }

  /** The transaction manager. */
  get transactions(): TxManager {
    if (this.manager === undefined) throw new Error("the chain gateway has no transaction manager");
    return this.manager;
  }

  /** Simulates opening a session with the agent's signature: the call to send, or the escrow's revert. */
  async prepareOpen(terms: SessionTerms, agentSignature: CompactSignature): Promise<TxRequest> {
    const { request } = await this.publicClient.simulateContract({
      account: this.account,
      address: this.escrow,
      abi: computeEscrowAbi,
      functionName: "openSession",
      args: [terms, agentSignature],
    });
    return { to: this.escrow, data: encodeFunctionData({ abi: computeEscrowAbi, functionName: "openSession", args: request.args }) };
  }

  /** Simulates `settle` or `closeCooperative` for `vouchers`: the call to send, or the escrow's revert. */
  async prepareSettlement(kind: "settle" | "close", vouchers: SignedVoucher[]): Promise<TxRequest> {
    const functionName = kind === "settle" ? "settle" : "closeCooperative";
    await this.publicClient.simulateContract({ account: this.account, address: this.escrow, abi: computeEscrowAbi, functionName, args: [vouchers] });
    return { to: this.escrow, data: encodeFunctionData({ abi: computeEscrowAbi, functionName, args: [vouchers] }) };
  }

  /** The receipt status of `hash`, or "unknown" when the chain has no receipt for it (yet). */
  async receiptStatus(hash: Hex): Promise<"success" | "reverted" | "unknown"> {
    try {
      return (await this.publicClient.getTransactionReceipt({ hash })).status;
    } catch {
      return "unknown";
    }
  }

  /** Whether the node knows transaction `hash` (mined, or in its mempool). */
  async knowsTransaction(hash: Hex): Promise<boolean> {
    try {
      await this.publicClient.getTransaction({ hash });
      return true;
    } catch {
      return false;
    }
  }

  /** The latest block's timestamp, in seconds. */
  async latestBlockTime(): Promise<bigint> {
    return (await this.publicClient.getBlock({ blockTag: "latest" })).timestamp;
  }

  /**
   * Sends a simulated request through the transaction manager and waits for its confirmation; a
   * revert surfaces as an error, and so does a nonce taken by another transaction (outcome unknown:
   * the caller reconciles with the chain's state). {@link TxPendingError} when it is still in flight
   * after `timeoutMs`: it stays sent.
   */
  async sendAndConfirm(request: Parameters<WalletClient["writeContract"]>[0], timeoutMs = 60_000): Promise<Hex> {
    const data = encodeFunctionData({ abi: request.abi, functionName: request.functionName, args: request.args } as never);
    const sent: SentTx = await this.transactions.send(String(request.functionName), { to: request.address, data, value: request.value as bigint | undefined });
    const outcome = await this.transactions.wait(sent.id, timeoutMs);
    if (outcome.status === "confirmed") return outcome.hash;
    if (outcome.status === "reverted") throw new Error(`transaction ${outcome.hash} reverted`);
    throw new Error(`transaction ${sent.hash}'s nonce ${sent.nonce} was used by another transaction: its outcome is unknown`);
  }
}
