import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { accountRestriction, describeRestriction } from "./restriction.ts";

const NOW = 1_800_000_000;
const UNTIL = 1_893_456_000n; // 2030-01-01 00:00 UTC

describe("account restrictions", () => {
  it("finds none for an account the ledger lets move, whatever its stale freeze", () => {
    assert.equal(accountRestriction({ canMove: true, frozenUntil: 0n, blacklisted: false, nowSeconds: NOW }), null);
    assert.equal(accountRestriction({ canMove: true, frozenUntil: BigInt(NOW - 60), blacklisted: false, nowSeconds: NOW }), null);
  });

  it("tells a freeze from a blacklisting, and both at once", () => {
    assert.deepEqual(accountRestriction({ canMove: false, frozenUntil: UNTIL, blacklisted: false, nowSeconds: NOW }), { frozenUntil: UNTIL, blacklisted: false });
    assert.deepEqual(accountRestriction({ canMove: false, frozenUntil: 0n, blacklisted: true, nowSeconds: NOW }), { frozenUntil: undefined, blacklisted: true });
    assert.deepEqual(accountRestriction({ canMove: false, frozenUntil: BigInt(NOW - 60), blacklisted: true, nowSeconds: NOW }), { frozenUntil: undefined, blacklisted: true });
    assert.deepEqual(accountRestriction({ canMove: false, frozenUntil: UNTIL, blacklisted: true, nowSeconds: NOW }), { frozenUntil: UNTIL, blacklisted: true });
  });

  it("trusts the chain over a clock that runs ahead of it: a freeze the clock thinks over still holds", () => {
    const frozenUntil = BigInt(NOW - 5);
    assert.deepEqual(accountRestriction({ canMove: false, frozenUntil, blacklisted: false, nowSeconds: NOW }), { frozenUntil, blacklisted: false });
  });

  it("says why, what is refused and for how long", () => {
    assert.equal(
      describeRestriction({ frozenUntil: UNTIL, blacklisted: false }),
      "Frozen until 2030-01-01 00:00 UTC by the compliance role: withdrawals and transfers of this balance are refused until then; payments to it still arrive.",
    );
    assert.equal(
      describeRestriction({ frozenUntil: undefined, blacklisted: true }),
      "Blacklisted by USDC: withdrawals and transfers of this balance are refused for as long as USDC blacklists it; payments to it still arrive.",
    );
    assert.equal(
      describeRestriction({ frozenUntil: UNTIL, blacklisted: true }),
      "Frozen until 2030-01-01 00:00 UTC by the compliance role and blacklisted by USDC: withdrawals and transfers of this balance are refused while either lasts; payments to it still arrive.",
    );
  });
});
