import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { zeroAddress } from "viem";
import { buildFlow, describeRecipient, flowInputOf, flowRecipients, paymentParts, parseAgentMetadata, parseAgentPrice, parseAgentTerms, parseBudgetId, PLATFORM, RecipientKind, splitPayment, totalsByAgent, type FlowInput } from "./flowOfFunds.ts";

const ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const CAROL = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const DAVE = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
const GRACE = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65";
const HEIDI = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc";
const SPLIT = "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955";

const account = (target: string) => ({ kind: "account" as const, target });

/** The OpenAgents example: AutoDev (price 12,000 atomic = 0.012 USDC) and its contributors. */
const AUTODEV: FlowInput = {
  fixedAmounts: [
    { ...account(ALICE), amount: "0.002" },
    { ...account(CAROL), amount: "0.001" },
    { ...account(DAVE), amount: "0.0005" },
    { ...account(GRACE), amount: "0.0003" },
    { ...account(HEIDI), amount: "0.0003" },
  ],
  shares: [],
  payerReferralPercent: "1",
  payeeReferralPercent: "1",
  remainder: { kind: "platform", target: "" },
};

describe("flow of funds", () => {
  it("builds the contract's struct from the form", () => {
    const flow = buildFlow(
      {
        fixedAmounts: [{ kind: "budget", target: "7", amount: "0.5" }],
        shares: [{ kind: "split", target: SPLIT.toLowerCase(), percent: "12.5" }],
        payerReferralPercent: "",
        payeeReferralPercent: "0.5",
        remainder: account(ALICE),
      },
      1_000_000n,
    );
    assert.ok(flow.ok);
    assert.deepEqual(flow.value, {
      fixedAmounts: [{ recipient: { kind: RecipientKind.Budget, account: zeroAddress, budgetId: 7n }, amount: 500_000n }],
      shares: [{ recipient: { kind: RecipientKind.Split, account: SPLIT, budgetId: 0n }, share: 125_000 }],
      payerReferrerShare: 0,
      payeeReferrerShare: 5_000,
      remainder: { kind: RecipientKind.Account, account: ALICE, budgetId: 0n },
    });
  });

  it("turns a stored flow back into the editor's rows, which build the same flow", () => {
    const stored = buildFlow(
      {
        fixedAmounts: [{ ...account(ALICE), amount: "0.01" }, { kind: "budget", target: "3", amount: "1.5" }],
        shares: [{ kind: "split", target: SPLIT, percent: "12.3456" }],
        payerReferralPercent: "",
        payeeReferralPercent: "2.5",
        remainder: { kind: "platform", target: "" },
      },
      5_000_000n,
    );
    assert.ok(stored.ok);
    const input = flowInputOf(stored.value);
    assert.deepEqual(input, {
      fixedAmounts: [
        { kind: "account", target: ALICE, amount: "0.01" },
        { kind: "budget", target: "3", amount: "1.5" },
      ],
      shares: [{ kind: "split", target: SPLIT, percent: "12.3456" }],
      payerReferralPercent: "0",
      payeeReferralPercent: "2.5",
      remainder: { kind: "platform", target: "" },
    });
    assert.deepEqual(buildFlow(input, 5_000_000n), stored);
    assert.deepEqual(flowInputOf({ ...stored.value, remainder: { kind: RecipientKind.Account, account: CAROL, budgetId: 0n } }).remainder, account(CAROL));
  });

  it("splits the OpenAgents example to the unit", () => {
    const flow = buildFlow(AUTODEV, 12_000n);
    assert.ok(flow.ok);
    assert.deepEqual(flow.value.remainder, PLATFORM);
    const split = splitPayment(flow.value, 12_000n, 12_000n);
    assert.deepEqual(split, { outputs: [2_000n, 1_000n, 500n, 300n, 300n, 7_660n], payerReferrerReward: 120n, payeeReferrerReward: 120n });
    const parts = paymentParts(flow.value, 12_000n, 12_000n);
    assert.deepEqual(
      parts.map((part) => [part.label, part.recipient && describeRecipient(part.recipient), part.amount]),
      [
        ["Fixed amount 1", ALICE, 2_000n],
        ["Fixed amount 2", CAROL, 1_000n],
        ["Fixed amount 3", DAVE, 500n],
        ["Fixed amount 4", GRACE, 300n],
        ["Fixed amount 5", HEIDI, 300n],
        ["Payer's referrer", undefined, 120n],
        ["Owner's referrer", undefined, 120n],
        ["Remainder", "the platform", 7_660n],
      ],
    );
    assert.equal(parts.reduce((sum, part) => sum + part.amount, 0n), 12_000n);
  });

  it("pays a referral reward without a referrer to the remainder", () => {
    const flow = buildFlow(AUTODEV, 12_000n);
    assert.ok(flow.ok);
    const parts = paymentParts(flow.value, 12_000n, 12_000n, { payer: false, payee: true });
    assert.deepEqual(parts.slice(-2).map((part) => [part.label, part.amount]), [["Owner's referrer", 120n], ["Remainder", 7_780n]]);
    const none = paymentParts(flow.value, 12_000n, 12_000n, { payer: false, payee: false });
    assert.equal(none.at(-1)?.amount, 7_900n);
  });

  it("takes shares (floor) of what fixed amounts and referrals leave, the remainder the rest", () => {
    const flow = buildFlow(
      {
        fixedAmounts: [{ ...account(ALICE), amount: "0.000100" }],
        shares: [{ ...account(CAROL), percent: "33.3333" }, { ...account(DAVE), percent: "50" }],
        payerReferralPercent: "2.5",
        payeeReferralPercent: "",
        remainder: account(GRACE),
      },
      1_001n,
    );
    assert.ok(flow.ok);
    // left after the fixed 100 and the payer referral ⌊1001 × 2.5%⌋ = 25: 876; Carol ⌊876 × 33.3333%⌋ = 291, Dave 438, Grace 147.
    assert.deepEqual(splitPayment(flow.value, 1_001n, 1_001n), { outputs: [100n, 291n, 438n, 147n], payerReferrerReward: 25n, payeeReferrerReward: 0n });
  });

  it("splits several calls and a partial one, capping fixed amounts by what is left", () => {
    const flow = buildFlow(AUTODEV, 12_000n);
    assert.ok(flow.ok);
    // 2 full calls plus a partial call of 2,500: Alice 2,000, Carol 500, nothing else is left.
    const split = splitPayment(flow.value, 12_000n, 26_500n);
    assert.deepEqual(split, { outputs: [6_000n, 2_500n, 1_000n, 600n, 600n, 15_320n], payerReferrerReward: 240n, payeeReferrerReward: 240n });
    assert.equal(split.outputs.reduce((sum, part) => sum + part, 0n) + split.payerReferrerReward + split.payeeReferrerReward, 26_500n);
  });

  it("refuses fixed amounts above the price, shares above 100% and bad recipients, with clear messages", () => {
    assert.deepEqual(buildFlow({ ...AUTODEV, fixedAmounts: [{ ...account(ALICE), amount: "0.0119" }] }, 12_000n), {
      ok: false,
      error: "The fixed amounts (0.011900 USDC) plus the referral rewards (0.000240 USDC) come to 0.012140 USDC, above the price of 0.012000 USDC.",
    });
    assert.deepEqual(buildFlow({ ...AUTODEV, shares: [{ ...account(ALICE), percent: "60" }, { ...account(CAROL), percent: "50" }] }, 12_000n), {
      ok: false,
      error: "The shares add up to 110%, above 100%.",
    });
    assert.deepEqual(buildFlow({ ...AUTODEV, payerReferralPercent: "60", payeeReferralPercent: "50" }, 12_000n), {
      ok: false,
      error: "The two referral shares add up to 110%, above 100%.",
    });
    assert.match((buildFlow({ ...AUTODEV, fixedAmounts: [{ kind: "platform", target: "", amount: "1" }] }, 12_000n) as { error: string }).error, /^Fixed amount 1: Only the remainder/);
    assert.match((buildFlow({ ...AUTODEV, shares: [{ ...account("0x12"), percent: "5" }] }, 12_000n) as { error: string }).error, /^Share 1: This is not an address/);
    assert.match((buildFlow({ ...AUTODEV, fixedAmounts: [{ ...account(ALICE), amount: "0" }] }, 12_000n) as { error: string }).error, /^Fixed amount 1: Enter an amount above 0/);
    assert.equal(parseBudgetId("0").ok, false);
    assert.deepEqual(parseBudgetId("#12"), { ok: true, value: 12n });
  });

  it("checks the listing's name, endpoint and price", () => {
    assert.deepEqual(parseAgentMetadata({ name: " AutoDev ", metadataURI: "", endpoint: "https://autodev.example/run" }), {
      ok: true,
      value: { name: "AutoDev", metadataURI: "", endpoint: "https://autodev.example/run" },
    });
    assert.equal(parseAgentMetadata({ name: "", metadataURI: "", endpoint: "https://a.example" }).ok, false);
    assert.equal(parseAgentMetadata({ name: "x".repeat(65), metadataURI: "", endpoint: "https://a.example" }).ok, false);
    assert.equal(parseAgentMetadata({ name: "A", metadataURI: "", endpoint: "ftp://a.example" }).ok, false);
    assert.deepEqual(parseAgentPrice("0.012"), { ok: true, value: 12_000n });
    assert.deepEqual(parseAgentPrice("0"), { ok: false, error: "Price per call: Enter an amount above 0." });
  });

  it("checks a form's price and flow together, reporting the first error", () => {
    const ok = parseAgentTerms("0.012", AUTODEV);
    assert.ok(ok.terms.ok && ok.flow?.ok);
    assert.equal(ok.terms.value.pricePerCall, 12_000n);
    assert.deepEqual(ok.terms.value.flow, ok.flow.value);
    assert.deepEqual(flowRecipients(ok.flow.value).map(describeRecipient), [ALICE, CAROL, DAVE, GRACE, HEIDI, "the platform"]);
    const badPrice = parseAgentTerms("abc", AUTODEV);
    assert.deepEqual([badPrice.flow, badPrice.terms], [undefined, { ok: false, error: "Price per call: Enter a number of USDC, such as 12.5." }]);
    const tooCheap = parseAgentTerms("0.001", AUTODEV);
    assert.equal(tooCheap.price.ok, true);
    assert.match((tooCheap.terms as { error: string }).error, /^The fixed amounts \(0\.004100 USDC\)/);
  });

  it("sums AgentPaid amounts per agent", () => {
    const totals = totalsByAgent([
      { agentId: 1n, amount: 12_000n },
      { agentId: 2n, amount: 5n },
      { agentId: 1n, amount: 24_000n },
    ]);
    assert.deepEqual(totals.get(1n), { amount: 36_000n, payments: 2 });
    assert.deepEqual(totals.get(2n), { amount: 5n, payments: 1 });
    assert.equal(totals.get(3n), undefined);
  });
});
