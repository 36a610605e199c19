import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BaseError, ContractFunctionRevertedError, encodeErrorResult, UserRejectedRequestError, type Abi } from "viem";
import { computeEscrowAbi, mockUSDCAbi, providerRegistryAbi, splitsLedgerAbi } from "./abi/contracts.ts";
import { CONTRACT_ERRORS_ABI, DESCRIBED_ERRORS, describeContractError, describeError } from "./contract-errors.ts";

/** A revert as viem reports it from a simulation of `abi`'s `functionName`. */
function revert(abi: Abi, errorName: string, args: readonly unknown[], decodeWith: Abi = abi) {
  const data = encodeErrorResult({ abi, errorName, args } as never);
  return new BaseError("simulation failed", { cause: new ContractFunctionRevertedError({ abi: decodeWith, data, functionName: "f" }) });
}

describe("contract errors as sentences", () => {
  it("has a sentence for every custom error of every contract", () => {
    const names = CONTRACT_ERRORS_ABI.map((item) => (item.type === "error" ? item.name : ""));
    assert.ok(names.length > 60);
    assert.deepEqual(names.filter((name) => !DESCRIBED_ERRORS.includes(name)), []);
  });

  it("has no sentence for an error that no contract defines any more", () => {
    const names = new Set(CONTRACT_ERRORS_ABI.map((item) => (item.type === "error" ? item.name : "")));
    assert.deepEqual(DESCRIBED_ERRORS.filter((name) => !names.has(name)), []);
  });

  it("decodes a revert of the called contract, with USDC amounts at six decimals", () => {
    const error = revert(computeEscrowAbi as Abi, "EscrowInsufficientBudget", [3n, 1_500_000n, 2_000_000n]);
    assert.equal(describeError(error), "Budget #3 has 1.500000 USDC unallocated, but 2.000000 USDC is needed.");
  });

  it("decodes a revert bubbling up from a nested contract the caller's ABI does not know", () => {
    const spender = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    const error = revert(mockUSDCAbi as Abi, "ERC20InsufficientAllowance", [spender, 0n, 100_000_000n], computeEscrowAbi as Abi);
    assert.equal(describeError(error), "The contract may spend only 0.000000 USDC of your USDC, but 100.000000 USDC is needed: approve it first.");
  });

  it("phrases registry and ledger errors with their values", () => {
    assert.equal(describeError(revert(providerRegistryAbi as Abi, "RegistryStakeTooLow", [5_000_000n, 100_000_000n])), "A stake of 5.000000 USDC is below the minimum of 100.000000 USDC.");
    assert.equal(describeContractError("RegistryUnstakeNotReady", [2n, 0n]), "Provider #2 has no pending unstake.");
    assert.equal(describeContractError("RegistryUnstakeNotReady", [2n, 1_893_456_000n]), "The pending unstake of provider #2 can be withdrawn from 2030-01-01 00:00 UTC.");
    assert.equal(
      describeError(revert(splitsLedgerAbi as Abi, "LedgerSplitInvalidShares", [1_200_000n, 1_000_000n])),
      "Every recipient needs a share above 0%, and the shares may add up to at most 100% (they add up to 120%).",
    );
  });

  it("says until when a frozen account is frozen, and that a USDC-blacklisted one is refused", () => {
    const account = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    assert.equal(
      describeError(revert(splitsLedgerAbi as Abi, "LedgerAccountFrozen", [account, 1_893_456_000n])),
      "0x7099…79C8 is frozen until 2030-01-01 00:00 UTC: it cannot move its ledger balance until then (it still receives payments).",
    );
    assert.equal(
      describeError(revert(splitsLedgerAbi as Abi, "LedgerAccountBlacklisted", [account])),
      "USDC blacklists 0x7099…79C8, so the ledger refuses to move its balance (it still receives payments).",
    );
    assert.equal(
      describeError(revert(mockUSDCAbi as Abi, "TokenPaused", [], computeEscrowAbi as Abi)),
      "USDC is paused by its issuer: no USDC moves until it resumes (balances inside the ledger still do).",
    );
  });

  it("asks to reopen a session whose terms carry a stale receipt signer or fee", () => {
    const [current, stale] = ["0x90F79bf6EB2c4f870365E785982E1f101E93b906", "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"];
    assert.equal(
      describeError(revert(computeEscrowAbi as Abi, "EscrowReceiptSignerMismatch", [2n, current, stale])),
      "Provider #2's receipt signer is now 0x90F7…b906, not 0x15d3…6A65; open the session again with the current signer.",
    );
    assert.equal(describeContractError("EscrowFeeMismatch", [300n, 250n]), "The protocol fee is now 3%, not 2.5%; open the session again with the current fee.");
  });

  it("names an agent's status when it does not allow an action", () => {
    assert.equal(describeContractError("MarketplaceInvalidStatus", [4n, 3]), "Agent #4 is retired, which does not allow this.");
    assert.equal(describeContractError("MarketplaceNotAgentOwner", [4n, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]), "Only the owner of agent #4 can do this, and 0x7099…79C8 is not.");
  });

  it("turns wallet rejections and other failures into sentences", () => {
    assert.equal(describeError(new BaseError("x", { cause: new UserRejectedRequestError(new Error("no")) })), "You declined the request in your wallet.");
    assert.equal(describeError(new Error("boom")), "boom");
    assert.equal(describeContractError("NotAnError"), undefined);
  });
});
