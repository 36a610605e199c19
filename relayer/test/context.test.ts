import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { registeredProvider } from "./fixtures.ts";
import { ReceiptSigners } from "../src/context.ts";

const provider = (id: number, receiptSigner: `0x${string}`, active = true) => registeredProvider({ id, receiptSigner, active, models: [] });

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
