import { encodeAbiParameters, keccak256, toHex, type Hex } from "viem";

/**
 * Receipts: one per call, hash-chained. A receipt commits to its session, sequence, model, provider,
 * token counts, cost, latency, the hashes of the request and the response, and the previous
 * receipt's hash; the voucher of sequence n carries receipt n's hash as `receiptHead`, so signing a
 * voucher signs the session's whole metering history.
 */
export interface Receipt {
  sessionId: Hex;
  /** 1 for a session's first call. */
  sequence: number;
  providerId: number;
  model: string;
  inputTokens: number;
  outputTokens: number;
  /** Atomic USDC. */
  cost: bigint;
  latencyMs: number;
  /** keccak256 of the request body the provider received. */
  inputHash: Hex;
  /** keccak256 of the completion the caller received (text and tool calls, as returned). */
  outputHash: Hex;
  /** Hash of the session's previous receipt (zero for the first). */
  previousHash: Hex;
}

/** `previousHash` of a session's first receipt. */
export const GENESIS_RECEIPT_HASH: Hex = `0x${"00".repeat(32)}`;

/** Domain tag hashed into every receipt, so a receipt hash cannot be mistaken for any other hash. */
const RECEIPT_TAG = keccak256(toHex("AgentMesh.Receipt.v1"));

const receiptParameters = [
  { type: "bytes32" }, // tag
  { type: "bytes32" }, // sessionId
  { type: "uint32" }, // sequence
  { type: "uint32" }, // providerId
  { type: "string" }, // model
  { type: "uint32" }, // inputTokens
  { type: "uint32" }, // outputTokens
  { type: "uint64" }, // cost
  { type: "uint32" }, // latencyMs
  { type: "bytes32" }, // inputHash
  { type: "bytes32" }, // outputHash
  { type: "bytes32" }, // previousHash
] as const;

/** The receipt's hash: keccak256 of its ABI encoding behind the receipt tag. */
export function receiptHash(receipt: Receipt): Hex {
  return keccak256(
    encodeAbiParameters(receiptParameters, [
      RECEIPT_TAG,
      receipt.sessionId,
      receipt.sequence,
      receipt.providerId,
      receipt.model,
      receipt.inputTokens,
      receipt.outputTokens,
      receipt.cost,
      receipt.latencyMs,
      receipt.inputHash,
      receipt.outputHash,
      receipt.previousHash,
    ]),
  );
}

/** A tool call as a receipt hashes it. */
export interface HashedToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** `inputHash` of a call: keccak256 of the JSON of the request's `messages`, exactly as the caller sent them. */
export function hashRequestMessages(messages: unknown): Hex {
  return keccak256(toHex(JSON.stringify(messages)));
}

/** `outputHash` of a call: keccak256 of the JSON of [content, tool calls] as the caller received them. */
export function hashCompletionOutput(content: string | null, toolCalls: readonly HashedToolCall[] = []): Hex {
  const calls = toolCalls.map((call) => [call.id, call.name, call.arguments]);
  return keccak256(toHex(JSON.stringify([content ?? "", calls])));
}
