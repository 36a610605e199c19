import type { Hex } from "viem";
import { callCost } from "./pricing.ts";
import { GENESIS_RECEIPT_HASH, receiptHash, type Receipt } from "./receipts.ts";
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
