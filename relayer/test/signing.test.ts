import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { keccak256, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { recoverDigestSigner, signDigest } from "@agentmesh/sdk";
import { recoverSignerFast, signDigestFast } from "../src/signing.ts";

describe("hot-path signing", () => {
  it("signs exactly like the SDK and recovers the same signer", async () => {
    for (let i = 0; i < 50; i++) {
      const key = generatePrivateKey();
      const digest = keccak256(toHex(`digest ${i}`));
      const fast = signDigestFast(key, digest);
      assert.deepEqual(fast, await signDigest(key, digest), `signature ${i}`);
      assert.equal(recoverSignerFast(digest, fast), privateKeyToAccount(key).address);
      assert.equal(recoverSignerFast(digest, fast), await recoverDigestSigner(digest, fast));
    }
  });

  it("recovers another signer or none for a tampered digest or signature", () => {
    const key = generatePrivateKey();
    const digest = keccak256(toHex("voucher"));
    const signature = signDigestFast(key, digest);
    const signer = privateKeyToAccount(key).address;
    assert.notEqual(recoverSignerFast(keccak256(toHex("other")), signature), signer);
    const flipped = { ...signature, yParityAndS: toHex(BigInt(signature.yParityAndS) ^ (1n << 255n), { size: 32 }) };
    assert.notEqual(recoverSignerFast(digest, flipped), signer);
    assert.equal(recoverSignerFast(digest, { r: `0x${"00".repeat(32)}`, yParityAndS: `0x${"00".repeat(32)}` }), undefined);
    assert.equal(recoverSignerFast(digest, { r: `0x${"ff".repeat(32)}`, yParityAndS: signature.yParityAndS }), undefined);
  });
});
