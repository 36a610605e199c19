import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeAbiParameters, hashStruct, keccak256, toHex } from "viem";
import { transferAuthorizationTypes } from "./typed-data.ts";

describe("typed data", () => {
  it("hashes a TransferAuthorization as SplitsLedger.transferWithSig does", () => {
    const message = {
      account: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
      to: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
      amount: 50_000n,
      caller: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
      memo: toHex(7n, { size: 32 }),
      nonce: 3n,
      deadline: 2_000_000_000n,
    } as const;
    // The typehash string of contracts/SplitsLedger.sol, encoded as the contract encodes the struct.
    const typehash = keccak256(
      toHex("TransferAuthorization(address account,address to,uint256 amount,address caller,bytes32 memo,uint256 nonce,uint256 deadline)"),
    );
    const expected = keccak256(
      encodeAbiParameters(
        ["bytes32", "address", "address", "uint256", "address", "bytes32", "uint256", "uint256"].map((type) => ({ type })),
        [typehash, message.account, message.to, message.amount, message.caller, message.memo, message.nonce, message.deadline],
      ),
    );
    assert.equal(hashStruct({ data: message, primaryType: "TransferAuthorization", types: transferAuthorizationTypes }), expected);
  });
});
