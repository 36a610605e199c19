import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  compactSignatureToSignature,
  concat,
  encodeAbiParameters,
  hashTypedData,
  hexToBytes,
  keccak256,
  recoverAddress,
  signatureToCompactSignature,
  toHex,
  type Hex,
} from "viem";
import { generatePrivateKey, privateKeyToAccount, sign } from "viem/accounts";
import { INITIAL_STATE, ReceiptError, checkReceipt, checkReceiptMatchesCall, verifySignedReceipt, type ObservedCall } from "./metering.ts";
import { callCost, formatUsdc } from "./pricing.ts";
import { GENESIS_RECEIPT_HASH, hashCompletionOutput, hashRequestMessages, receiptHash, type Receipt } from "./receipts.ts";
import { keccak256Bytes, keccakBackend } from "./keccak.node.ts";
import { secp256k1Backends } from "./native-crypto.ts";
import { escrowDomain, sessionIdOf, voucherTypes, type SessionTerms } from "./typed-data.ts";
import { escrowDomainSeparator, recoverDigestSigner, signDigest, voucherDigest, type VoucherState } from "./vouchers.ts";

const ESCROW = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
/** The provider's receipt signer when the session opened (a public Hardhat development key). */
const PROVIDER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const terms: SessionTerms = {
  agent: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
  budgetId: 1n,
  providerId: 2,
  modelId: 0,
  receiptSigner: privateKeyToAccount(PROVIDER_KEY).address,
  inputPricePer1K: 150,
  outputPricePer1K: 600,
  minChargePerCall: 10,
  feeBps: 250,
  maxSpend: 5_000_000n,
  deadline: 2_000_000_000,
  salt: 42n,
};
const sessionId = sessionIdOf(terms);

function receiptAfter(previous: VoucherState, inputTokens: number, outputTokens: number): Receipt {
  return {
    sessionId,
    sequence: previous.sequence + 1,
    providerId: terms.providerId,
    model: "agentmesh-small",
    inputTokens,
    outputTokens,
    cost: callCost(terms, inputTokens, outputTokens),
    latencyMs: 120,
    inputHash: hashRequestMessages([{ role: "user", content: "hi" }]),
    outputHash: hashCompletionOutput("hello"),
    previousHash: previous.receiptHead,
  };
}

describe("pricing", () => {
  it("rounds the exact sum up once and applies the minimum charge", () => {
    assert.equal(callCost(terms, 1000, 1000), 750n); // exact
    assert.equal(callCost(terms, 1, 1), 10n); // 0.75 rounds up to 1, below the minimum of 10
    assert.equal(callCost(terms, 500, 200), 195n); // 75 + 120 = 195 exactly
    assert.equal(callCost(terms, 333, 333), 250n); // 49.95 + 199.8 = 249.75 -> 250
    assert.equal(callCost({ ...terms, minChargePerCall: 0 }, 0, 0), 0n);
  });

  it("formats atomic USDC as a decimal string", () => {
    assert.equal(formatUsdc(0n), "0.000000");
    assert.equal(formatUsdc(1n), "0.000001");
    assert.equal(formatUsdc(12_345_678n), "12.345678");
  });
});

describe("voucher digests", () => {
  it("equal viem's hashTypedData of the nested Voucher type", () => {
    const separator = escrowDomainSeparator(31337, ESCROW);
    for (const state of [
      INITIAL_STATE,
      { ...INITIAL_STATE, sequence: 7, cumulativeCost: 123_456n, requestCount: 6, inputTokens: 9000, outputTokens: 800, latencyMs: 4321, receiptHead: keccak256(toHex("head")), isFinal: true },
      { sequence: 2 ** 32 - 1, cumulativeCost: 2n ** 64n - 1n, requestCount: 2 ** 32 - 1, inputTokens: 1, outputTokens: 2, latencyMs: 3, receiptHead: GENESIS_RECEIPT_HASH, isFinal: false },
    ]) {
      const expected = hashTypedData({
        domain: escrowDomain(31337, ESCROW),
        types: voucherTypes,
        primaryType: "Voucher",
        message: { terms, ...state },
      });
      assert.equal(voucherDigest(separator, sessionId, state), expected);
    }
  });

  it("signs byte for byte like viem (RFC 6979, low-s) and recovers the signer", async () => {
    for (let i = 0; i < 25; i++) {
      const key = generatePrivateKey();
      const digest = voucherDigest(escrowDomainSeparator(1, ESCROW), sessionId, { ...INITIAL_STATE, sequence: i });
      const signature = signDigest(key, digest);
      assert.deepEqual(signature, signatureToCompactSignature(await sign({ hash: digest, privateKey: key })));
      assert.equal(recoverDigestSigner(digest, signature), privateKeyToAccount(key).address);
      assert.equal(recoverDigestSigner(digest, signature), await recoverAddress({ hash: digest, signature: compactSignatureToSignature(signature) }));
    }
  });

  it("has a native and a WebAssembly libsecp256k1 that agree with each other and with viem", async () => {
    assert.deepEqual(
      secp256k1Backends.map((backend) => backend.name),
      ["native", "wasm"],
    );
    for (let i = 0; i < 10; i++) {
      const key = generatePrivateKey();
      const digest = keccak256(toHex(`digest ${i}`));
      const viemSignature = await sign({ hash: digest, privateKey: key });
      const publicKey = privateKeyToAccount(key).publicKey;
      for (const backend of secp256k1Backends) {
        const { signature, recoveryId } = backend.sign(hexToBytes(digest), hexToBytes(key));
        assert.equal(toHex(signature), concat([viemSignature.r, viemSignature.s]), backend.name);
        assert.equal(recoveryId, viemSignature.yParity, backend.name);
        assert.equal(toHex(backend.recover(hexToBytes(digest), signature, recoveryId)!), publicKey, backend.name);
      }
    }
  });

  it("hashes with a native keccak256 exactly as viem does, at every length around the sponge's rate", () => {
    assert.equal(keccakBackend, "native");
    for (const length of [0, 1, 31, 32, 64, 135, 136, 137, 272, 1000]) {
      const data = Uint8Array.from({ length }, (_, i) => (i * 7 + length) & 0xff);
      assert.equal(toHex(keccak256Bytes(data)), keccak256(data), `length ${length}`);
    }
  });

  it("hashes a receipt as keccak256 of the ABI encoding of its fields, and refuses values its types cannot hold", () => {
    const abiHash = (receipt: Receipt) =>
      keccak256(
        encodeAbiParameters(
          ["bytes32", "bytes32", "uint32", "uint32", "string", "uint32", "uint32", "uint64", "uint32", "bytes32", "bytes32", "bytes32"].map((type) => ({ type })),
          [keccak256(toHex("AgentMesh.Receipt.v1")), receipt.sessionId, receipt.sequence, receipt.providerId, receipt.model, receipt.inputTokens,
            receipt.outputTokens, receipt.cost, receipt.latencyMs, receipt.inputHash, receipt.outputHash, receipt.previousHash],
        ),
      );
    const base: Receipt = {
      sessionId: sessionIdOf(terms),
      sequence: 4_294_967_295,
      providerId: 2,
      model: "",
      inputTokens: 123_456,
      outputTokens: 0,
      cost: 18_446_744_073_709_551_615n,
      latencyMs: 17,
      inputHash: hashRequestMessages([{ role: "user", content: "hé" }]),
      outputHash: hashCompletionOutput("ok", [{ id: "call_1", name: "f", arguments: "{}" }]),
      previousHash: GENESIS_RECEIPT_HASH,
    };
    for (const model of ["", "m", "x".repeat(31), "x".repeat(32), "x".repeat(33), "modèle-ü-模型", "y".repeat(100)]) {
      assert.equal(receiptHash({ ...base, model }), abiHash({ ...base, model }), JSON.stringify(model));
    }
    assert.throws(() => receiptHash({ ...base, inputTokens: 2 ** 32 }), /not a uint32/);
    assert.throws(() => receiptHash({ ...base, latencyMs: -1 }), /not a uint32/);
    assert.throws(() => receiptHash({ ...base, cost: -1n }), /not a uint64/);
    assert.throws(() => receiptHash({ ...base, previousHash: "0x1234" }), /not 32 bytes/);
    assert.throws(() => voucherDigest(escrowDomainSeparator(31337, ESCROW), sessionIdOf(terms), { ...INITIAL_STATE, outputTokens: 2 ** 32 }), /not a uint32/);
  });

  it("refuses a signature whose s is above half the curve order, as the contract does", () => {
    const highS = toHex(0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a1n, { size: 32 });
    const digest = keccak256(toHex("voucher"));
    const signature = signDigest(generatePrivateKey(), digest);
    assert.notEqual(recoverDigestSigner(digest, signature), undefined);
    assert.equal(recoverDigestSigner(digest, { r: signature.r, yParityAndS: highS }), undefined);
    assert.equal(recoverDigestSigner(digest, { r: signature.r, yParityAndS: "0x1234" }), undefined, "malformed");
    assert.equal(recoverDigestSigner(digest, { r: "0xzz", yParityAndS: signature.yParityAndS }), undefined, "malformed");
  });

  it("recovers another signer, or none, from tampered signatures", () => {
    const key = generatePrivateKey();
    const digest = keccak256(toHex("voucher"));
    const signature = signDigest(key, digest);
    const signer = privateKeyToAccount(key).address;
    assert.notEqual(recoverDigestSigner(keccak256(toHex("other")), signature), signer);
    const flipped = { ...signature, yParityAndS: toHex(BigInt(signature.yParityAndS) ^ (1n << 255n), { size: 32 }) };
    assert.notEqual(recoverDigestSigner(digest, flipped), signer);
    assert.equal(recoverDigestSigner(digest, { r: `0x${"00".repeat(32)}`, yParityAndS: `0x${"00".repeat(32)}` }), undefined);
    assert.equal(recoverDigestSigner(digest, { r: `0x${"ff".repeat(32)}`, yParityAndS: signature.yParityAndS }), undefined);
  });
});

describe("receipts and metering", () => {
  it("chains receipts and accumulates the session state", () => {
    const first = receiptAfter(INITIAL_STATE, 500, 200);
    const afterFirst = checkReceipt(terms, sessionId, INITIAL_STATE, first);
    assert.deepEqual(afterFirst, {
      sequence: 1, cumulativeCost: 195n, requestCount: 1, inputTokens: 500, outputTokens: 200, latencyMs: 120,
      receiptHead: receiptHash(first), isFinal: false,
    });
    const second = receiptAfter(afterFirst, 1, 1);
    const afterSecond = checkReceipt(terms, sessionId, afterFirst, second);
    assert.equal(afterSecond.cumulativeCost, 205n);
    assert.equal(afterSecond.receiptHead, receiptHash(second));
    assert.notEqual(receiptHash(second), receiptHash({ ...second, outputHash: hashCompletionOutput("hellO") }));
  });

  it("rejects a receipt that is mispriced, unchained, out of order, for another session or over the lock", () => {
    const good = receiptAfter(INITIAL_STATE, 500, 200);
    const cases: [string, Receipt, RegExp][] = [
      ["overcharged", { ...good, cost: good.cost + 1n }, /costs 196/],
      ["unchained", { ...good, previousHash: keccak256(toHex("x")) }, /does not chain/],
      ["skipped sequence", { ...good, sequence: 2 }, /expected sequence 1/],
      ["other session", { ...good, sessionId: keccak256(toHex("other")) as Hex }, /belongs to session/],
      ["other provider", { ...good, providerId: 3 }, /names provider 3/],
      ["over the lock", { ...good, inputTokens: 40_000_000, cost: callCost(terms, 40_000_000, 200) }, /above the lock/],
    ];
    for (const [name, receipt, message] of cases) {
      assert.throws(() => checkReceipt(terms, sessionId, INITIAL_STATE, receipt), (error: unknown) => {
        assert.ok(error instanceof ReceiptError, name);
        assert.match(error.message, message, name);
        return true;
      });
    }
  });

  it("verifies the signature of the session's receipt signer over the resulting state", () => {
    const separator = escrowDomainSeparator(31337, ESCROW);
    const receipt = receiptAfter(INITIAL_STATE, 500, 200);
    const state = checkReceipt(terms, sessionId, INITIAL_STATE, receipt);
    const signature = signDigest(PROVIDER_KEY, voucherDigest(separator, sessionId, state));
    assert.deepEqual(verifySignedReceipt(separator, terms, sessionId, INITIAL_STATE, receipt, signature), state);
    const forged = signDigest(generatePrivateKey(), voucherDigest(separator, sessionId, state));
    assert.throws(
      () => verifySignedReceipt(separator, terms, sessionId, INITIAL_STATE, receipt, forged),
      /signed by 0x[0-9a-fA-F]{40}, not/,
    );
  });

  it("keeps a session's receipt signer and fee: the provider's next signer cannot sign for it, and the id commits to both", () => {
    const separator = escrowDomainSeparator(31337, ESCROW);
    const receipt = receiptAfter(INITIAL_STATE, 500, 200);
    const state = checkReceipt(terms, sessionId, INITIAL_STATE, receipt);
    // The provider rotates its receipt signer in the registry: sessions opened before keep the old one.
    const rotatedKey = generatePrivateKey();
    const byRotated = signDigest(rotatedKey, voucherDigest(separator, sessionId, state));
    assert.throws(
      () => verifySignedReceipt(separator, terms, sessionId, INITIAL_STATE, receipt, byRotated),
      new RegExp(`signed by ${privateKeyToAccount(rotatedKey).address}, not ${terms.receiptSigner}`),
    );
    // Terms with the new signer, or another fee, are another session.
    assert.notEqual(sessionIdOf({ ...terms, receiptSigner: privateKeyToAccount(rotatedKey).address }), sessionId);
    assert.notEqual(sessionIdOf({ ...terms, feeBps: 500 }), sessionId);
  });
});

describe("checkReceiptMatchesCall (the agent signs only what it can check against its own call)", () => {
  const messages = [{ role: "user", content: "hi" }];
  const observed = (overrides: Partial<ObservedCall> = {}): ObservedCall => ({
    inputHash: hashRequestMessages(messages),
    promptTokens: 100,
    output: { content: "hello", toolCalls: [] },
    completionTokens: 200,
    reasoningTokens: 0,
    ...overrides,
  });
  const receipt = (inputTokens: number, outputTokens: number, overrides: Partial<Receipt> = {}): Receipt => ({
    ...receiptAfter(INITIAL_STATE, inputTokens, outputTokens),
    ...overrides,
  });

  it("accepts counts up to own × 1.05 + 16, reasoning tokens on top of the output allowance", () => {
    checkReceiptMatchesCall(receipt(121, 226), observed());
    checkReceiptMatchesCall(receipt(100, 526), observed({ reasoningTokens: 300 }));
    checkReceiptMatchesCall(receipt(100, 250), observed(), { tolerance: { relative: 0.2, absolute: 10 } });
  });

  it("refuses one token more than the allowance, input or output", () => {
    assert.throws(() => checkReceiptMatchesCall(receipt(122, 200), observed()), /bills 122 input tokens; the request counts 100/);
    assert.throws(() => checkReceiptMatchesCall(receipt(100, 227), observed()), /bills 227 output tokens; the output counts 200/);
    assert.throws(() => checkReceiptMatchesCall(receipt(100, 527), observed({ reasoningTokens: 300 })), ReceiptError);
  });

  it("refuses output above the request's own limit, even within the tolerance", () => {
    assert.throws(() => checkReceiptMatchesCall(receipt(100, 201), observed({ maxOutputTokens: 200 })), /above the request's limit of 200/);
    checkReceiptMatchesCall(receipt(100, 200), observed({ maxOutputTokens: 200 }));
  });

  it("holds a flagged receipt to the agent's own count (no relative tolerance)", () => {
    checkReceiptMatchesCall(receipt(116, 216), observed(), { flagged: true });
    assert.throws(() => checkReceiptMatchesCall(receipt(117, 200), observed(), { flagged: true }), /bills 117 input tokens/);
    assert.throws(() => checkReceiptMatchesCall(receipt(100, 217), observed(), { flagged: true }), /bills 217 output tokens/);
  });

  it("refuses a receipt for other messages or another output", () => {
    const otherInput = hashRequestMessages([{ role: "user", content: "hi!" }]);
    assert.throws(() => checkReceiptMatchesCall(receipt(100, 200, { inputHash: otherInput }), observed()), /inputHash is not the hash of the messages sent/);
    assert.throws(
      () => checkReceiptMatchesCall(receipt(100, 200), observed({ output: { content: "hello", toolCalls: [{ id: "c", name: "f", arguments: "" }] } })),
      /outputHash is not the hash of the output received/,
    );
    assert.throws(() => checkReceiptMatchesCall(receipt(100, 200), observed({ output: { content: null, toolCalls: [] } })), /outputHash/);
  });
});
