import type { PaymentPayload, PaymentRequirements, VerifyResponse } from "@x402/core/types";
import type { Address, Hex } from "viem";
import type { CompactSignature, SessionTerms, SignedVoucher } from "@agentmesh/sdk";
import type { ListedAgent, TransferAuthorization } from "../marketplace.ts";
import type { SentTx, TxOutcome, TxRecord, TxRequest } from "../tx-manager.ts";
import type { Repository } from "../store/repository.ts";

/**
 * The chain as the services in `core/` use it: exactly the reads and transactions they need, and
 * nothing else. `ChainGateway` (chain.ts) implements it over viem and the transaction manager; unit
 * tests of the rules implement it with a fake (see relayer/test/app-harness.ts).
 */
export interface ChainPort {
  readonly chainId: number;
  /** The escrow's address (its EIP-712 domain). */
  readonly escrow: Address;
  /** The gas account: it sends every transaction, and signs as the x402 facilitator. */
  readonly account: { readonly address: Address };
  /** The transaction manager (tx-manager.ts), which owns the gas account's nonces. */
  readonly transactions: TransactionsPort;
  /** Simulates opening a session with the agent's signature: the call to send, or the escrow's revert. */
  prepareOpen(terms: SessionTerms, agentSignature: CompactSignature): Promise<TxRequest>;
  /** Simulates `settle` or `closeCooperative` for `vouchers`: the call to send, or the escrow's revert. */
  prepareSettlement(kind: "settle" | "close", vouchers: SignedVoucher[]): Promise<TxRequest>;
  /** Session `id`'s state in the escrow as of the latest block (`claimEnd` 0: none; 1: finalized). */
  session(id: Hex): Promise<EscrowSessionState>;
  /** The protocol fee (basis points) that sessions opened now must carry in their terms. */
  feeBps(): Promise<number>;
  /** A provider's settlement totals as the registry records them. */
  metrics(providerId: number): Promise<ProviderMetrics>;
  /** The receipt status of transaction `hash`, or "unknown" when the chain has no receipt for it (yet). */
  receiptStatus(hash: Hex): Promise<"success" | "reverted" | "unknown">;
  /** Whether the node knows transaction `hash` (mined, or in its mempool). */
  knowsTransaction(hash: Hex): Promise<boolean>;
  /** The latest block's timestamp (the chain's clock), in seconds. */
  latestBlockTime(): Promise<bigint>;
}

/** What the services ask of the transaction manager (see `TxManager` for each method's rules). */
export interface TransactionsPort {
  send(purpose: string, request: TxRequest, link?: (sent: SentTx, repo: Repository) => Promise<void>): Promise<SentTx>;
  wait(id: number, timeoutMs?: number): Promise<TxOutcome>;
  get(id: number): Promise<TxRecord | undefined>;
  inFlight(): Promise<TxRecord[]>;
  poll(): Promise<void>;
}

/** A session as the escrow holds it (the fields the services read). */
export interface EscrowSessionState {
  settled: bigint;
  sequence: number;
  claimEnd: number;
}

/** A provider's on-chain settlement totals (the registry's `getMetrics`). */
export interface ProviderMetrics {
  requests: bigint;
  inputTokens: bigint;
  outputTokens: bigint;
  earnings: bigint;
  latencyMs: bigint;
}

/**
 * The agent marketplace as the x402 service uses it: listings, the payment token, and a payment's
 * verification, transfer and on-chain use. `MarketplaceGateway` (marketplace.ts) implements it.
 */
export interface MarketplacePort {
  /** Listing `id`, or undefined when there is none. */
  agent(id: number): Promise<ListedAgent | undefined>;
  /** Every listing. */
  agentList(): Promise<ListedAgent[]>;
  /** The agent whose payment address is `address`, if any. */
  agentPaidAt(address: string): Promise<ListedAgent | undefined>;
  /** The payment token with its EIP-712 name and version. */
  paymentToken(): Promise<{ address: Address; name: string; version: string }>;
  /** Checks an x402 `exact` payment against `requirements` (signature, amount, recipient, window, balance, nonce). */
  verifyPayment(payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse>;
  /** Simulates paying agent `agentId` with `authorization`: the call to send, or the chain's refusal. */
  preparePayment(agentId: number, authorization: TransferAuthorization, signature: Hex): Promise<TxRequest>;
  /** Whether the token has used `payer`'s authorization `nonce`. */
  authorizationUsed(payer: Address, nonce: Hex): Promise<boolean>;
  /** The transaction that used `payer`'s authorization `nonce`, when found. */
  authorizationTx(payer: Address, nonce: Hex): Promise<Hex | undefined>;
}
