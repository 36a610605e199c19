import { compactSignatureToSignature, isAddressEqual, recoverTypedDataAddress, serializeSignature, type Address, type Hex } from "viem";
import {
  GENESIS_RECEIPT_HASH,
  callCost,
  escrowDomain,
  receiptHash,
  sessionIdOf,
  voucherTypes,
  type Receipt,
  type SessionTerms,
} from "@agentmesh/sdk/browser";
import type { ReceiptView, SessionView, VoucherStateView } from "@agentmesh/sdk/protocol";
import { shortHex } from "./explorer.ts";
import { formatBps } from "./splits.ts";
import { formatUsdcAmount } from "./usdc.ts";

/** One check of a receipt, with what was compared. */
export interface ReceiptCheck {
  label: string;
  ok: boolean;
  detail: string;
}

export interface VerifyReceiptParameters {
  receipt: ReceiptView;
  /** The session's previous receipt (undefined for its first). */
  previous: ReceiptView | undefined;
  /** The session's terms: they fix its prices and the receipt signer whose signature counts. */
  terms: SessionView["terms"];
  chainId: number;
  escrow: Address;
}

/** A receipt as the relayer sends it, in the SDK's types. */
export function toReceipt(json: ReceiptView): Receipt {
  const { sessionId, sequence, providerId, model, inputTokens, outputTokens, latencyMs, inputHash, outputHash, previousHash } = json;
  return { sessionId, sequence, providerId, model, inputTokens, outputTokens, cost: BigInt(json.cost), latencyMs, inputHash, outputHash, previousHash };
}

/** Session terms as the relayer sends them, in the SDK's types. */
export function toTerms(json: SessionView["terms"]): SessionTerms {
  return { ...json, budgetId: BigInt(json.budgetId), maxSpend: BigInt(json.maxSpend), salt: BigInt(json.salt) };
}

const sameHex = (a: Hex, b: Hex) => a.toLowerCase() === b.toLowerCase();

function stateCheck(receipt: ReceiptView, previous: VoucherStateView | undefined): ReceiptCheck {
  const before = previous ?? { cumulativeCost: 0, requestCount: 0, inputTokens: 0, outputTokens: 0, latencyMs: 0 };
  const { state } = receipt;
  const expectedCost = BigInt(before.cumulativeCost) + BigInt(receipt.cost);
  const problems = [
    !sameHex(state.receiptHead, receipt.hash) && "its head is not this receipt",
    state.sequence !== receipt.sequence && "its sequence differs",
    BigInt(state.cumulativeCost) !== expectedCost && `its total is ${formatUsdcAmount(BigInt(state.cumulativeCost))}, not ${formatUsdcAmount(expectedCost)}`,
    state.requestCount !== before.requestCount + 1 && "its request count does not add up",
    state.inputTokens !== before.inputTokens + receipt.inputTokens && "its input tokens do not add up",
    state.outputTokens !== before.outputTokens + receipt.outputTokens && "its output tokens do not add up",
    state.latencyMs !== before.latencyMs + receipt.latencyMs && "its latency does not add up",
  ].filter((problem): problem is string => problem !== false);
  return {
    label: "Cumulative state",
    ok: problems.length === 0,
    detail: problems.length === 0 ? `${formatUsdcAmount(expectedCost)} USDC over ${state.requestCount} calls` : problems.join("; "),
  };
}

/**
 * Verifies a receipt in the browser: that the session's terms hash to its session id (so the prices
 * and receipt signer checked are the ones the escrow holds the session to), its hash, its link to the
 * previous receipt, its price at the session's locked prices, the cumulative state it leads to, and
 * the provider's EIP-712 signature of that state (recovered with viem and compared with the receipt
 * signer fixed in the terms, which is the only key the escrow accepts for the session, even after
 * the provider rotates its signer).
 *
 * @example
 * const checks = await verifyReceipt({ receipt, previous, terms, chainId, escrow });
 * const valid = checks.every((check) => check.ok);
 */
export async function verifyReceipt(parameters: VerifyReceiptParameters): Promise<ReceiptCheck[]> {
  const { receipt, previous, chainId, escrow } = parameters;
  const terms = toTerms(parameters.terms);
  const sessionId = sessionIdOf(terms);
  const computed = receiptHash(toReceipt(receipt));
  const expectedPrevious = previous?.hash ?? GENESIS_RECEIPT_HASH;
  const chained = sameHex(receipt.previousHash, expectedPrevious) && receipt.sequence === (previous?.sequence ?? 0) + 1;
  const price = callCost(terms, receipt.inputTokens, receipt.outputTokens);
  const signer = await recoverTypedDataAddress({
    domain: escrowDomain(chainId, escrow),
    types: voucherTypes,
    primaryType: "Voucher",
    message: { terms, ...receipt.state, cumulativeCost: BigInt(receipt.state.cumulativeCost) },
    signature: serializeSignature(compactSignatureToSignature(receipt.providerSignature)),
  }).catch(() => undefined);
  return [
    {
      label: "Session terms",
      ok: sameHex(sessionId, receipt.sessionId),
      detail: sameHex(sessionId, receipt.sessionId)
        ? `hash to session ${shortHex(sessionId)}: receipt signer ${shortHex(terms.receiptSigner)}, protocol fee ${formatBps(terms.feeBps)}`
        : `hash to session ${shortHex(sessionId)}, but the receipt is of session ${shortHex(receipt.sessionId)}`,
    },
    {
      label: "Receipt hash",
      ok: sameHex(computed, receipt.hash),
      detail: sameHex(computed, receipt.hash) ? `recomputed ${shortHex(computed)}` : `recomputed ${shortHex(computed)}, but the receipt says ${shortHex(receipt.hash)}`,
    },
    {
      label: "Hash chain",
      ok: chained,
      detail: chained
        ? previous
          ? `follows receipt ${previous.sequence} (${shortHex(previous.hash)})`
          : "first receipt of the session"
        : `expected receipt ${(previous?.sequence ?? 0) + 1} after ${shortHex(expectedPrevious)}`,
    },
    {
      label: "Price",
      ok: BigInt(receipt.cost) === price,
      detail: `${receipt.inputTokens} in + ${receipt.outputTokens} out at the locked prices cost ${formatUsdcAmount(price)} USDC`,
    },
    stateCheck(receipt, previous?.state),
    {
      label: "Provider signature",
      ok: signer !== undefined && isAddressEqual(signer, terms.receiptSigner),
      detail: signer === undefined ? "the signature recovers to no key" : `signed by ${shortHex(signer)}; the session's receipt signer is ${shortHex(terms.receiptSigner)}`,
    },
  ];
}

/** A `VoucherSettled` event, decoded. */
export interface SettledVoucher {
  sessionId: Hex;
  sequence: bigint;
}

/** Whether a transaction's `VoucherSettled` events cover receipt `sequence` of session `sessionId`. */
export function settlesReceipt(events: readonly SettledVoucher[], sessionId: Hex, sequence: number): boolean {
  return events.some((event) => sameHex(event.sessionId, sessionId) && event.sequence >= BigInt(sequence));
}
