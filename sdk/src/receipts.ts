import { bytesToHex, type Hex } from "viem";
import { keccak256Bytes } from "#keccak";
import { writeBytes32, writeUint32, writeUint64 } from "./abi-words.ts";

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

const utf8 = new TextEncoder();
const keccakHex = (bytes: Uint8Array): Hex => bytesToHex(keccak256Bytes(bytes));

/** Domain tag hashed into every receipt, so a receipt hash cannot be mistaken for any other hash. */
const RECEIPT_TAG = keccak256Bytes(utf8.encode("AgentMesh.Receipt.v1"));

/**
 * The receipt's hash: keccak256 of the ABI encoding of (bytes32 tag, bytes32 sessionId, uint32
 * sequence, uint32 providerId, string model, uint32 inputTokens, uint32 outputTokens, uint64 cost,
 * uint32 latencyMs, bytes32 inputHash, bytes32 outputHash, bytes32 previousHash), written in place
 * (tested against viem's `encodeAbiParameters`): 12 head words, the model's at its offset, then
 * the model's length and its UTF-8 bytes padded to a whole word.
 */
export function receiptHash(receipt: Receipt): Hex {
  const model = utf8.encode(receipt.model);
  const encoded = new Uint8Array(32 * 13 + Math.ceil(model.length / 32) * 32);
  const view = new DataView(encoded.buffer);
  encoded.set(RECEIPT_TAG, 0);
  writeBytes32(encoded, 32, receipt.sessionId);
  writeUint32(view, 64, receipt.sequence);
  writeUint32(view, 96, receipt.providerId);
  writeUint32(view, 128, 32 * 12); // where the model's encoding starts
  writeUint32(view, 160, receipt.inputTokens);
  writeUint32(view, 192, receipt.outputTokens);
  writeUint64(view, 224, receipt.cost);
  writeUint32(view, 256, receipt.latencyMs);
  writeBytes32(encoded, 288, receipt.inputHash);
  writeBytes32(encoded, 320, receipt.outputHash);
  writeBytes32(encoded, 352, receipt.previousHash);
  writeUint32(view, 384, model.length);
  encoded.set(model, 416);
  return keccakHex(encoded);
}

/** A tool call as a receipt hashes it. */
export interface HashedToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** `inputHash` of a call: keccak256 of the JSON of the request's `messages`, exactly as the caller sent them. */
export function hashRequestMessages(messages: unknown): Hex {
  return keccakHex(utf8.encode(JSON.stringify(messages)));
}

/** `outputHash` of a call: keccak256 of the JSON of [content, tool calls] as the caller received them. */
export function hashCompletionOutput(content: string | null, toolCalls: readonly HashedToolCall[] = []): Hex {
  const calls = toolCalls.map((call) => [call.id, call.name, call.arguments]);
  return keccakHex(utf8.encode(JSON.stringify([content ?? "", calls])));
}
