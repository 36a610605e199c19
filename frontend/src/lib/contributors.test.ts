import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { zeroAddress, type Hex } from "viem";
import { contributorEarnings, creditsFromLogs, creditsOfAgent, payeeKey, payeeRoles, totalsByPayee, type Credit, type Payee } from "./contributors.ts";
import { buildFlow } from "./flowOfFunds.ts";

const AUTHOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const TREASURY = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const REFERRER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
const FORMER_REFERRER = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc";
const CREATOR = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65";
const ESCROW = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0";
const SPLIT = "0xa16E02E87b7454126E5E10d957A927A7F5B5d2be";
const TX1: Hex = `0x${"1".repeat(64)}`;
const TX2: Hex = `0x${"2".repeat(64)}`;

const account = (address: `0x${string}`): Payee => ({ kind: "account", account: address });
const budget = (budgetId: bigint): Payee => ({ kind: "budget", budgetId });
const credit = (transactionHash: Hex, logIndex: number, payee: Payee, amount: bigint): Credit => ({ transactionHash, logIndex, payee, amount });

/** The seeded demo agent: 0.05 USDC, 0.01 to its author, 20% to budget #1, 1% + 1% referrals, the rest to the platform. */
const demoFlow = buildFlow(
  {
    fixedAmounts: [{ kind: "account", target: AUTHOR, amount: "0.01" }],
    shares: [{ kind: "budget", target: "1", percent: "20" }],
    payerReferralPercent: "1",
    payeeReferralPercent: "1",
    remainder: { kind: "platform", target: "" },
  },
  50_000n,
);

describe("contributor payouts", () => {
  it("reads a distribution's credits from the ledger's transfers and the escrow's top-ups, each budget top-up once", () => {
    // The demo agent's distribution: the budget's top-up (BudgetToppedUp, and the Transferred that
    // funds it from the marketplace's balance), then one transferMany to the author, a split and the treasury.
    const credits = creditsFromLogs({
      transferred: [
        { transactionHash: TX1, logIndex: 2, args: { to: ESCROW, amount: 7_800n } },
        { transactionHash: TX1, logIndex: 3, args: { to: AUTHOR, amount: 10_000n } },
        { transactionHash: TX1, logIndex: 4, args: { to: SPLIT, amount: 500n } },
        { transactionHash: TX1, logIndex: 5, args: { to: TREASURY, amount: 31_700n } },
      ],
      toppedUp: [{ transactionHash: TX1, logIndex: 1, args: { budgetId: 1n, amount: 7_800n } }],
      escrow: ESCROW.toLowerCase() as `0x${string}`,
    });
    assert.deepEqual(credits, [
      credit(TX1, 3, account(AUTHOR), 10_000n),
      credit(TX1, 4, account(SPLIT), 500n),
      credit(TX1, 5, account(TREASURY), 31_700n),
      credit(TX1, 1, budget(1n), 7_800n),
    ]);
  });

  it("gives each credit to the last distribution logged before it in its transaction", () => {
    const distributions = [
      { transactionHash: TX1, logIndex: 2, agentId: 1n },
      { transactionHash: TX2, logIndex: 0, agentId: 2n },
      { transactionHash: TX2, logIndex: 4, agentId: 1n },
    ];
    const credits = [
      credit(TX1, 3, account(AUTHOR), 10_000n),
      credit(TX1, 1, account(AUTHOR), 99n), // logged before any distribution: not an agent payout
      credit(TX2, 1, account(AUTHOR), 5n), // agent #2's
      credit(TX2, 5, budget(1n), 7_800n),
      credit(`0x${"3".repeat(64)}`, 0, account(AUTHOR), 1n), // a transaction without a distribution
    ];
    assert.deepEqual(creditsOfAgent(1n, distributions, credits), [credits[0], credits[3]]);
    assert.deepEqual(creditsOfAgent(2n, distributions, credits), [credits[2]]);
    assert.deepEqual(creditsOfAgent(3n, distributions, credits), []);
  });

  it("totals credits per payee, largest first, addresses compared without case", () => {
    const totals = totalsByPayee([
      credit(TX1, 1, account(AUTHOR), 10_000n),
      credit(TX1, 2, budget(1n), 7_800n),
      credit(TX2, 1, account(AUTHOR.toLowerCase() as `0x${string}`), 10_000n),
      credit(TX2, 2, account(TREASURY), 32_200n),
    ]);
    assert.deepEqual(totals, [
      { payee: account(TREASURY), amount: 32_200n },
      { payee: account(AUTHOR), amount: 20_000n },
      { payee: budget(1n), amount: 7_800n },
    ]);
    assert.equal(payeeKey(budget(1n)), "budget:1");
    assert.equal(payeeKey(account(AUTHOR)), `account:${AUTHOR.toLowerCase()}`);
  });

  it("names every recipient's roles, the treasury for the platform, and budget creators only as such", () => {
    assert.ok(demoFlow.ok);
    const later = { ...demoFlow.value, remainder: { kind: 0, account: AUTHOR, budgetId: 0n } } as const;
    const roles = payeeRoles({
      flows: [demoFlow.value, later],
      payerReferrers: [zeroAddress, REFERRER],
      ownerReferrers: [FORMER_REFERRER, zeroAddress],
      treasury: TREASURY,
      budgetCreators: new Map([[1n, CREATOR]]),
    });
    assert.deepEqual([...roles.values()], [
      { payee: account(AUTHOR), roles: ["Fixed amount 1", "Remainder"], named: true },
      { payee: budget(1n), roles: ["Share 1"], named: true },
      { payee: account(CREATOR), roles: ["Share 1 (creator of expired budget #1)"], named: false },
      { payee: account(TREASURY), roles: ["Remainder (platform)"], named: true },
      { payee: account(REFERRER), roles: ["Payer's referrer"], named: true },
      { payee: account(FORMER_REFERRER), roles: ["Former owner's referrer"], named: true },
    ]);
  });

  it("lists an agent's contributors with what they were credited, zero for those not paid yet", () => {
    assert.ok(demoFlow.ok);
    const roles = payeeRoles({ flows: [demoFlow.value], payerReferrers: [zeroAddress], ownerReferrers: [REFERRER], treasury: TREASURY, budgetCreators: new Map([[1n, CREATOR]]) });
    const earnings = contributorEarnings(
      [credit(TX1, 1, budget(1n), 7_800n), credit(TX1, 2, account(AUTHOR), 10_000n), credit(TX1, 3, account(TREASURY), 32_200n), credit(TX2, 1, account(CREATOR), 3_900n)],
      roles,
    );
    assert.deepEqual(earnings, [
      { payee: account(TREASURY), amount: 32_200n, roles: ["Remainder (platform)"] },
      { payee: account(AUTHOR), amount: 10_000n, roles: ["Fixed amount 1"] },
      { payee: budget(1n), amount: 7_800n, roles: ["Share 1"] },
      { payee: account(CREATOR), amount: 3_900n, roles: ["Share 1 (creator of expired budget #1)"] },
      { payee: account(REFERRER), amount: 0n, roles: ["Owner's referrer"] },
    ]);
    const unknown = contributorEarnings([credit(TX1, 1, account(REFERRER), 5n)], new Map());
    assert.deepEqual(unknown, [{ payee: account(REFERRER), amount: 5n, roles: [] }]);
  });
});
