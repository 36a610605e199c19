import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSignature, signatureToCompactSignature, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { callCost, escrowDomain, receiptHash, sessionIdOf, voucherTypes, GENESIS_RECEIPT_HASH, type SessionTerms } from "@agentmesh/sdk/browser";
import type { ReceiptView, SessionView } from "@agentmesh/sdk/protocol";
import { settlesReceipt, verifyReceipt } from "./verify.ts";

const signer = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
const otherKey = privateKeyToAccount("0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a");
const escrow = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const chainId = 31337;
const terms: SessionTerms = {
  agent: "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
  budgetId: 1n,
  providerId: 1,
  modelId: 0,
  receiptSigner: signer.address,
  inputPricePer1K: 150,
  outputPricePer1K: 600,
  minChargePerCall: 10,
  feeBps: 250,
  maxSpend: 2_000_000n,
  deadline: 2_000_000_000,
  salt: 7n,
};
const termsJson: SessionView["terms"] = { ...terms, budgetId: "1", maxSpend: "2000000", salt: "7" };
const sessionId = sessionIdOf(terms);

/**
 * A session's receipts as the relayer serves them, each state signed by `by` (default: the session's
 * receipt signer) over `signedTerms` (default: the session's terms).
 */
async function chain(calls: [number, number][], { by = signer, signedTerms = terms } = {}): Promise<ReceiptView[]> {
  const receipts: ReceiptView[] = [];
  let previous = { cumulativeCost: 0n, inputTokens: 0, outputTokens: 0, latencyMs: 0, hash: GENESIS_RECEIPT_HASH as Hex };
  for (const [index, [inputTokens, outputTokens]] of calls.entries()) {
    const receipt = {
      sessionId,
      sequence: index + 1,
      providerId: 1,
      model: "agentmesh-small",
      inputTokens,
      outputTokens,
      cost: callCost(terms, inputTokens, outputTokens),
      latencyMs: 40,
      inputHash: `0x${"11".repeat(32)}` as Hex,
      outputHash: `0x${"22".repeat(32)}` as Hex,
      previousHash: previous.hash,
    };
    const hash = receiptHash(receipt);
    const state = {
      sequence: index + 1,
      cumulativeCost: previous.cumulativeCost + receipt.cost,
      requestCount: index + 1,
      inputTokens: previous.inputTokens + inputTokens,
      outputTokens: previous.outputTokens + outputTokens,
      latencyMs: previous.latencyMs + 40,
      receiptHead: hash,
      isFinal: false,
    };
    const signature = await by.signTypedData({ domain: escrowDomain(chainId, escrow), types: voucherTypes, primaryType: "Voucher", message: { terms: signedTerms, ...state } });
    receipts.push({
      ...receipt,
      hash,
      cost: receipt.cost.toString(),
      providerSignature: signatureToCompactSignature(parseSignature(signature)),
      agentSigned: true,
      tokenMismatch: false,
      countedByRelayer: false,
      settlementTxHash: null,
      state: { ...state, cumulativeCost: state.cumulativeCost.toString() },
    });
    previous = { ...state, hash };
  }
  return receipts;
}

const verify = (receipt: ReceiptView, previous: ReceiptView | undefined, sessionTerms = termsJson) =>
  verifyReceipt({ receipt, previous, terms: sessionTerms, chainId, escrow });

describe("receipt verification in the browser", () => {
  it("accepts a genuine receipt chain: terms, hash, chain, price, state and signature", async () => {
    const [first, second] = await chain([[12, 30], [400, 90]]);
    for (const [receipt, previous] of [[first, undefined], [second, first]] as const) {
      const checks = await verify(receipt, previous);
      assert.deepEqual(checks.map((check) => [check.label, check.ok]), [
        ["Session terms", true],
        ["Receipt hash", true],
        ["Hash chain", true],
        ["Price", true],
        ["Cumulative state", true],
        ["Provider signature", true],
      ]);
    }
    const [termsCheck, , chained, , , signed] = await verify(second, first);
    assert.equal(termsCheck.detail, `hash to session ${sessionId.slice(0, 6)}…${sessionId.slice(-4)}: receipt signer 0x7099…79C8, protocol fee 2.5%`);
    assert.equal(chained.detail, `follows receipt 1 (${first.hash.slice(0, 6)}…${first.hash.slice(-4)})`);
    assert.equal(signed.detail, "signed by 0x7099…79C8; the session's receipt signer is 0x7099…79C8");
  });

  it("flags a tampered cost, a broken chain and a signer other than the session's", async () => {
    const [first, second] = await chain([[12, 30], [400, 90]]);
    const failed = async (receipt: ReceiptView, previous?: ReceiptView, sessionTerms?: SessionView["terms"]) =>
      (await verify(receipt, previous, sessionTerms)).filter((check) => !check.ok).map((check) => check.label);
    const overcharged = { ...second, cost: (BigInt(second.cost) + 1n).toString() };
    assert.deepEqual(await failed(overcharged, first), ["Receipt hash", "Price", "Cumulative state"]);
    assert.deepEqual(await failed(second), ["Hash chain", "Cumulative state"]);
    // Another key (say the provider's new signer after a rotation) does not bind this session.
    const [foreign] = await chain([[12, 30]], { by: otherKey });
    assert.deepEqual(await failed(foreign), ["Provider signature"]);
  });

  it("flags terms that are not the session's, such as a relayer naming its own key as the signer", async () => {
    const forged = { ...terms, receiptSigner: otherKey.address };
    const [receipt] = await chain([[12, 30]], { by: otherKey, signedTerms: forged });
    const checks = await verify(receipt, undefined, { ...termsJson, receiptSigner: otherKey.address });
    assert.deepEqual(checks.filter((check) => !check.ok).map((check) => check.label), ["Session terms"]);
    assert.match(checks[0].detail, new RegExp(`but the receipt is of session ${sessionId.slice(0, 6)}…${sessionId.slice(-4)}$`));
  });

  it("recognises a settlement that covers the receipt", () => {
    assert.equal(settlesReceipt([{ sessionId, sequence: 3n }], sessionId, 2), true);
    assert.equal(settlesReceipt([{ sessionId, sequence: 1n }], sessionId, 2), false);
    assert.equal(settlesReceipt([{ sessionId: `0x${"00".repeat(32)}`, sequence: 9n }], sessionId, 2), false);
  });
});
