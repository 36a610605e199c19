import type { Hex } from "viem";
import type { CompletionOutput } from "./completion-output.ts";
import { callCost } from "./pricing.ts";
import { GENESIS_RECEIPT_HASH, hashCompletionOutput, receiptHash, type Receipt } from "./receipts.ts";
import type { CompactSignature, SessionTerms } from "./typed-data.ts";
import { recoverDigestSigner, voucherDigest, type VoucherState } from "./vouchers.ts";

/**
 * Session metering shared by the relayer (which computes each call's receipt and next state) and
 * the agent (which checks them before signing): a session's state after call n is its state after
 * call n − 1 plus receipt n.
 */

/** A session's state before its first call. */
export const INITIAL_STATE: VoucherState = {
  sequence: 0,
  cumulativeCost: 0n,
  requestCount: 0,
  inputTokens: 0,
  outputTokens: 0,
  latencyMs: 0,
  receiptHead: GENESIS_RECEIPT_HASH,
  isFinal: false,
};

/** Thrown when a receipt is not the correct next receipt of a session. */
export class ReceiptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReceiptError";
  }
}

/** The state after `receipt`; checks nothing (see {@link checkReceipt}). */
export function nextState(previous: VoucherState, receipt: Receipt): VoucherState {
  return {
    sequence: receipt.sequence,
    cumulativeCost: previous.cumulativeCost + receipt.cost,
    requestCount: previous.requestCount + 1,
    inputTokens: previous.inputTokens + receipt.inputTokens,
    outputTokens: previous.outputTokens + receipt.outputTokens,
    latencyMs: previous.latencyMs + receipt.latencyMs,
    receiptHead: receiptHash(receipt),
    isFinal: false,
  };
}

/**
 * Checks that `receipt` follows `previous` in the session of `terms`: the next sequence, chained
 * to the previous receipt, for this session and provider, priced exactly by the locked prices,
 * and within the session's lock. Returns the state after it.
 */
export function checkReceipt(
  terms: SessionTerms,
  sessionId: Hex,
  previous: VoucherState,
  receipt: Receipt,
): VoucherState {
  const fail = (reason: string) => {
    throw new ReceiptError(`receipt ${receipt.sequence} of session ${sessionId}: ${reason}`);
  };
  if (receipt.sessionId.toLowerCase() !== sessionId.toLowerCase()) fail(`belongs to session ${receipt.sessionId}`);
  if (receipt.providerId !== terms.providerId) fail(`names provider ${receipt.providerId}, not ${terms.providerId}`);
  if (receipt.sequence !== previous.sequence + 1) fail(`expected sequence ${previous.sequence + 1}`);
  if (receipt.previousHash.toLowerCase() !== previous.receiptHead.toLowerCase()) {
    fail(`does not chain to receipt ${previous.receiptHead}`);
  }
  const expected = callCost(terms, receipt.inputTokens, receipt.outputTokens);
  if (receipt.cost !== expected) fail(`costs ${receipt.cost}, but its tokens at the locked prices cost ${expected}`);
  const next = nextState(previous, receipt);
  if (next.cumulativeCost > terms.maxSpend) fail(`brings the total to ${next.cumulativeCost}, above the lock ${terms.maxSpend}`);
  return next;
}

/**
 * {@link checkReceipt}, plus the provider's signature: the receipt signer the session's terms name
 * (the only key the escrow accepts for it, whatever the registry says now) must have signed the
 * voucher of the resulting state. Returns the state, ready for the agent to sign.
 */
export function verifySignedReceipt(
  domainSeparator: Hex,
  terms: SessionTerms,
  sessionId: Hex,
  previous: VoucherState,
  receipt: Receipt,
  providerSignature: CompactSignature,
): VoucherState {
  const next = checkReceipt(terms, sessionId, previous, receipt);
  const signer = recoverDigestSigner(voucherDigest(domainSeparator, sessionId, next), providerSignature);
  if (signer?.toLowerCase() !== terms.receiptSigner.toLowerCase()) {
    throw new ReceiptError(
      `receipt ${receipt.sequence} of session ${sessionId}: signed by ${signer ?? "no valid key"}, not ${terms.receiptSigner}`,
    );
  }
  return next;
}

/**
 * How far a receipt's token counts may exceed the agent's own count of its call: up to
 * `own × (1 + relative) + absolute`. The relative part covers providers whose tokenizer is not the
 * one AgentMesh counts with (o200k); the absolute part, framing tokens a provider adds.
 */
export interface TokenTolerance {
  relative: number;
  absolute: number;
}

/** 5 % plus 16 tokens. */
export const DEFAULT_TOKEN_TOLERANCE: TokenTolerance = { relative: 0.05, absolute: 16 };

/** What the agent itself knows of one call, to check the call's receipt against. */
export interface ObservedCall {
  /** `hashRequestMessages` of the messages it sent. */
  inputHash: Hex;
  /** Its own count of the prompt (messages, tool definitions and response format). */
  promptTokens: number;
  /** What it received. */
  output: CompletionOutput;
  /** Its own count of `output`. */
  completionTokens: number;
  /**
   * Reasoning tokens the response's usage reports (`completion_tokens_details.reasoning_tokens`):
   * billed as output, never shown, so they cannot be counted, only bounded by `maxOutputTokens`.
   */
  reasoningTokens: number;
  /** The request's output limit (`max_completion_tokens` or `max_tokens`), if it set one. */
  maxOutputTokens?: number;
}

/**
 * Checks that `receipt` describes the call the agent made and received: the request and output
 * hashes are those of what it sent and got, and the token counts are within `tolerance` of its own
 * count (reasoning tokens added to the output allowance) and within the request's output limit. A
 * receipt the relayer flagged (`tokenMismatch`: the provider's count and the relayer's disagree) is
 * held to the agent's own count with no relative tolerance: the agent pays no more than it counts.
 *
 * @throws {ReceiptError} naming the first difference.
 */
export function checkReceiptMatchesCall(
  receipt: Receipt,
  call: ObservedCall,
  options: { tolerance?: TokenTolerance; flagged?: boolean } = {},
): void {
  const fail = (reason: string) => {
    throw new ReceiptError(`receipt ${receipt.sequence} of session ${receipt.sessionId}: ${reason}`);
  };
  const tolerance = options.tolerance ?? DEFAULT_TOKEN_TOLERANCE;
  const relative = options.flagged ? 0 : tolerance.relative;
  const allowance = (own: number) => Math.floor(own * (1 + relative)) + tolerance.absolute;
  if (receipt.inputHash.toLowerCase() !== call.inputHash.toLowerCase()) fail("its inputHash is not the hash of the messages sent");
  const outputHash = hashCompletionOutput(call.output.content, call.output.toolCalls);
  if (receipt.outputHash.toLowerCase() !== outputHash.toLowerCase()) fail("its outputHash is not the hash of the output received");
  if (receipt.inputTokens > allowance(call.promptTokens)) {
    fail(`bills ${receipt.inputTokens} input tokens; the request counts ${call.promptTokens}`);
  }
  const outputAllowance = allowance(call.completionTokens) + call.reasoningTokens;
  if (receipt.outputTokens > outputAllowance) {
    fail(`bills ${receipt.outputTokens} output tokens; the output counts ${call.completionTokens} (+${call.reasoningTokens} reasoning)`);
  }
  if (call.maxOutputTokens !== undefined && receipt.outputTokens > call.maxOutputTokens) {
    fail(`bills ${receipt.outputTokens} output tokens, above the request's limit of ${call.maxOutputTokens}`);
  }
}
