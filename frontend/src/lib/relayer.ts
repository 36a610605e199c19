import type { Address, Hex } from "viem";
import type { CompactSignature } from "@agentmesh/sdk/browser";

/**
 * The relayer's HTTP API as the dApp reads it (`relayer/src/server.ts`, `sessions.ts`). Integers
 * that may exceed 2^53 arrive as decimal strings; USDC amounts named `…Usdc` arrive as decimal USDC.
 */

/** An integer the relayer sends as a number or a decimal string. */
export type JsonInt = number | string;

export interface RelayerModel {
  id: number;
  name: string;
  inputPricePer1K: number;
  outputPricePer1K: number;
  maxContextTokens: number;
  active: boolean;
}

export interface RelayerProvider {
  id: number;
  owner: Address;
  active: boolean;
  endpoint: string;
  rateLimitPerMinute: number;
  minChargePerCall: number;
  features: JsonInt;
  receiptSigner: Address;
  payout: Address;
  models: RelayerModel[];
  metrics: {
    requests: JsonInt;
    inputTokens: JsonInt;
    outputTokens: JsonInt;
    latencyMs: JsonInt;
    /** Decimal USDC. */
    earnings: string;
    averageLatencyMs: number | null;
    p50LatencyMs: number | null;
    p95LatencyMs: number | null;
    outputTokensPerSecond: number | null;
    uptimeScore: number | null;
  };
}

export interface RelayerSessionTerms {
  agent: Address;
  budgetId: JsonInt;
  providerId: number;
  modelId: number;
  receiptSigner: Address;
  inputPricePer1K: number;
  outputPricePer1K: number;
  minChargePerCall: number;
  feeBps: number;
  maxSpend: JsonInt;
  deadline: number;
  salt: JsonInt;
}

export interface RelayerState {
  sequence: number;
  cumulativeCost: JsonInt;
  requestCount: number;
  inputTokens: number;
  outputTokens: number;
  latencyMs: number;
  receiptHead: Hex;
  isFinal: boolean;
}

export interface RelayerReceipt {
  hash: Hex;
  sessionId: Hex;
  sequence: number;
  providerId: number;
  model: string;
  inputTokens: number;
  outputTokens: number;
  /** Atomic USDC. */
  cost: JsonInt;
  latencyMs: number;
  inputHash: Hex;
  outputHash: Hex;
  previousHash: Hex;
  providerSignature: CompactSignature;
  agentSigned: boolean;
  tokenMismatch: boolean;
  settlementTxHash: Hex | null;
  state: RelayerState;
}

export interface RelayerSession {
  sessionId: Hex;
  status: "open" | "closing" | "closed";
  agent: Address;
  providerId: number;
  model: string;
  terms: RelayerSessionTerms;
  state: RelayerState;
  /** Decimal USDC. */
  spent: string;
  remaining: string;
  signedSequence: number;
  settledSequence: number;
  openTxHash: Hex;
  closeTxHash: Hex | null;
  /** One page of receipts, oldest first: those after `receiptsPage.after`, at most `limit`. */
  receipts: RelayerReceipt[];
  /** `nextAfter`: the cursor of the next page, or null when this one is the last. */
  receiptsPage: { after: number; limit: number; nextAfter: number | null };
}

export interface RelayerBudgetSession {
  id: Hex;
  budgetId: number;
  agent: Address;
  providerId: number;
  /** Decimal USDC. */
  maxSpend: string;
  settled: string;
  spent: string;
  sequence: number;
  claimEnd: number;
  finalized: boolean;
  requests: number | null;
}

export interface RelayerBudget {
  id: number;
  creator: Address;
  available: string;
  perSessionLimit: string;
  expiry: number;
  indexedBlock: number | undefined;
  sessions: RelayerBudgetSession[];
}

/** `GET /v1/agents`: an agent listing with its paid x402 URL (`POST` to call it). */
export interface RelayerAgent {
  id: number;
  owner: Address;
  status: "active" | "paused" | "retired";
  /** Decimal USDC. */
  pricePerCall: string;
  /** Atomic USDC, as a decimal string. */
  pricePerCallAtomic: string;
  paymentAddress: Address;
  name: string;
  metadataURI: string;
  endpoint: string;
  /** The paid URL: POST JSON to it, paying with x402. */
  url: string;
}

/** Thrown when the relayer answers with an error (its OpenAI-shaped message) or cannot be reached. */
export class RelayerRequestError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "RelayerRequestError";
    this.status = status;
  }
}

/**
 * GETs `path` from the relayer at `baseUrl`.
 *
 * @example
 * const { data } = await relayerGet<{ data: RelayerProvider[] }>(relayerUrl, "/v1/providers");
 */
export async function relayerGet<T>(baseUrl: string, path: string, signal?: AbortSignal, headers?: Record<string, string>): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${baseUrl.replace(/\/$/, "")}${path}`, { signal, headers });
  } catch (cause) {
    if (signal?.aborted) throw cause;
    throw new RelayerRequestError(0, `The relayer at ${baseUrl} cannot be reached.`);
  }
  const body = (await response.json().catch(() => undefined)) as (T & { error?: { message?: string } }) | undefined;
  if (!response.ok || body === undefined) {
    throw new RelayerRequestError(response.status, body?.error?.message ?? `The relayer answered ${response.status}.`);
  }
  return body;
}
