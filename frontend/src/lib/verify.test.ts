import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSignature, signatureToCompactSignature, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { callCost, escrowDomain, receiptHash, sessionIdOf, voucherTypes, GENESIS_RECEIPT_HASH, type SessionTerms } from "@agentmesh/sdk/browser";
import type { RelayerReceipt, RelayerSessionTerms } from "./relayer.ts";
import { settlesReceipt, verifyReceipt } from "./verify.ts";

const signer = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
const escrow = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const chainId = 31337;
const terms: SessionTerms = {
  agent: "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
  budgetId: 1n,
  providerId: 1,
  modelId: 0,
  inputPricePer1K: 150,
  outputPricePer1K: 600,
  minChargePerCall: 10,
  maxSpend: 2_000_000n,
  deadline: 2_000_000_000,
  salt: 7n,
};
const termsJson: RelayerSessionTerms = { ...terms, budgetId: "1", maxSpend: "2000000", salt: "7" };
const sessionId = sessionIdOf(terms);

/** A session's receipts as the relayer serves them, each signed by the provider's receipt signer. */
async function chain(calls: [number, number][]): Promise<RelayerReceipt[]> {
  const receipts: RelayerReceipt[] = [];
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
    const signature = await signer.signTypedData({ domain: escrowDomain(chainId, escrow), types: voucherTypes, primaryType: "Voucher", message: { terms, ...state } });
    receipts.push({
      ...receipt,
      hash,
      cost: receipt.cost.toString(),
      providerSignature: signatureToCompactSignature(parseSignature(signature)),
      agentSigned: true,
      tokenMismatch: false,
      settlementTxHash: null,
      state: { ...state, cumulativeCost: state.cumulativeCost.toString() },
    });
    previous = { ...state, hash };
  }
  return receipts;
}

const verify = (receipt: RelayerReceipt, previous: RelayerReceipt | undefined, receiptSigner = signer.address) =>
  verifyReceipt({ receipt, previous, terms: termsJson, chainId, escrow, receiptSigner });

describe("receipt verification in the browser", () => {
  it("accepts a genuine receipt chain: hash, chain, price, state and signature", async () => {
    const [first, second] = await chain([[12, 30], [400, 90]]);
    for (const [receipt, previous] of [[first, undefined], [second, first]] as const) {
      const checks = await verify(receipt, previous);
      assert.deepEqual(checks.map((check) => [check.label, check.ok]), [
        ["Receipt hash", true],
        ["Hash chain", true],
        ["Price", true],
        ["Cumulative state", true],
        ["Provider signature", true],
      ]);
    }
    assert.equal((await verify(second, first))[1].detail, `follows receipt 1 (${first.hash.slice(0, 6)}…${first.hash.slice(-4)})`);
  });

  it("flags a tampered cost, a broken chain and a foreign signer", async () => {
    const [first, second] = await chain([[12, 30], [400, 90]]);
    const overcharged = { ...second, cost: (BigInt(second.cost) + 1n).toString() };
    const failed = (await verify(overcharged, first)).filter((check) => !check.ok).map((check) => check.label);
    assert.deepEqual(failed, ["Receipt hash", "Price", "Cumulative state"]);
    assert.deepEqual((await verify(second, undefined)).filter((check) => !check.ok).map((check) => check.label), ["Hash chain", "Cumulative state"]);
    const foreign = await verify(first, undefined, "0x90F79bf6EB2c4f870365E785982E1f101E93b906");
    assert.equal(foreign.find((check) => check.label === "Provider signature")?.ok, false);
  });

  it("recognises a settlement that covers the receipt", () => {
    assert.equal(settlesReceipt([{ sessionId, sequence: 3n }], sessionId, 2), true);
    assert.equal(settlesReceipt([{ sessionId, sequence: 1n }], sessionId, 2), false);
    assert.equal(settlesReceipt([{ sessionId: `0x${"00".repeat(32)}`, sequence: 9n }], sessionId, 2), false);
  });
});
