import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import type { RegisteredProvider } from "../src/chain.ts";
import { ReceiptSigners } from "../src/context.ts";

const provider = (id: number, receiptSigner: `0x${string}`, active = true): RegisteredProvider => ({
  id,
  owner: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
  active,
  endpoint: "http://127.0.0.1:9001/v1",
  rateLimitPerMinute: 600,
  minChargePerCall: 10,
  features: 1n,
  receiptSigner,
  payout: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
  models: [],
});

describe("receipt signers", () => {
  it("serve every active provider whose current signer they hold, several providers per signer", () => {
    const [held, other] = [generatePrivateKey(), generatePrivateKey()];
    const signers = new ReceiptSigners([held]);
    const signer = privateKeyToAccount(held).address;
    assert.equal(signers.keyOf(signer), held);
    assert.equal(signers.keyOf(privateKeyToAccount(other).address), undefined);
    assert.deepEqual(
      [provider(1, signer), provider(2, signer), provider(3, signer, false), provider(4, privateKeyToAccount(other).address)].map((entry) => signers.serves(entry)),
      [true, true, false, false],
    );
  });
});
