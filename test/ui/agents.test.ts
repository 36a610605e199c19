/**
 * The agent marketplace in Debian's Chromium against the real local stack: the seeded demo agent
 * listed without a wallet, a call paid from the browser over x402 (the payment lands in the
 * marketplace's ledger balance), a distribution that credits each contributor the exact amount
 * (checked on-chain and in the earnings shown), and an agent published at the payment address shown
 * before listing, then changed, paused and retired through the forms. Screenshots go to
 * `.agentmesh/screenshots/`.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { erc20Abi, zeroAddress, type Address, type Hex } from "viem";
import { agentMarketplaceAbi, computeEscrowAbi, splitsLedgerAbi } from "../../sdk/src/index.ts";
import { shortHex } from "../../frontend/src/lib/explorer.ts";
import { startBrowserStack, usdcText, WAIT, type BrowserStack } from "./helpers.ts";

/** `IAgentMarketplace.AgentStatus`. */
const STATUS = { active: 1, paused: 2, retired: 3 } as const;

interface Listing {
  owner: Address;
  status: number;
  pricePerCall: bigint;
  flowHash: Hex;
  paymentAddress: Address;
  metadata: { name: string; metadataURI: string; endpoint: string };
}

describe("agents in Chromium", { timeout: 300_000 }, () => {
  let ui: BrowserStack;
  let page: Page;
  let publishedId: bigint;

  const demo = () => ui.running.stack.demoAgent;
  const marketplace = () => ui.running.stack.contracts.AgentMarketplace!;
  const getAgent = (agentId: bigint | number) => ui.read<Listing>({ address: marketplace(), abi: agentMarketplaceAbi, functionName: "getAgent", args: [BigInt(agentId)] });
  const agentCount = () => ui.read<bigint>({ address: marketplace(), abi: agentMarketplaceAbi, functionName: "agentCount" });
  const ledgerBalance = (account: Address) => ui.read<bigint>({ address: ui.running.stack.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "balanceOf", args: [account] });
  const usdcBalance = (account: Address) => ui.read<bigint>({ address: ui.running.stack.usdc, abi: erc20Abi, functionName: "balanceOf", args: [account] });
  const budgetAvailable = async () =>
    (await ui.read<{ available: bigint }>({ address: ui.running.stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getBudget", args: [BigInt(ui.running.stack.budgetId)] })).available;
  const statusRegion = () => page.getByRole("region", { name: "Status", exact: true });

  before(async () => {
    ui = await startBrowserStack({
      settlement: { maxAgeMs: 3_600_000, pollMs: 60_000 },
      healthProbeIntervalMs: 3_600_000,
      payoutIntervalMs: 3_600_000, // distributions only when the page asks
    });
    page = ui.page;
  });

  after(async () => {
    await ui?.stop();
  });

  it("lists the seeded demo agent with its price, without a wallet", async () => {
    await page.goto(`${ui.running.uiUrl}/agents`);
    const card = page.getByTestId(`agent-${demo().id}`);
    await ui.waitFor(card.waitFor(WAIT));
    assert.equal(await card.getByRole("heading").getByRole("link").textContent(), "AutoDev (demo)");
    assert.match((await card.textContent())!, /Price per call0\.050000 USDC/);
    assert.equal(await card.getByRole("button", { name: "Call (0.050000 USDC)" }).isEnabled(), true);
    await ui.waitForText(card.getByTestId(`agent-paid-${demo().id}`), "0.000000 USDC (0 payments)");
    await ui.shot("agents");
  });

  it("pays one call from the browser with the connected dev account and shows the agent's answer", async () => {
    await ui.connect();
    await ui.actAs("creator");
    const payer = ui.account("creator");
    const before = await usdcBalance(payer);
    const marketplaceBefore = await ledgerBalance(marketplace());
    const call = page.getByRole("form", { name: "Call AutoDev (demo)" });
    await call.getByLabel("Input").fill("Write a haiku about payment channels.");
    assert.match(await ui.submit(call, "Call (0.050000 USDC)"), /Pay 0\.050000 USDC and call AutoDev \(demo\): confirmed/);
    const answer = call.getByTestId(`agent-answer-${demo().id}`);
    await ui.waitFor(answer.waitFor(WAIT));
    const shown = JSON.parse((await answer.locator("pre").textContent())!) as { output: string; model: string };
    assert.equal(shown.model, "agentmesh-small");
    assert.ok(shown.output.length > 0);
    assert.match((await answer.textContent())!, /Paid in 0x[0-9a-f]{4}…[0-9a-f]{4}/);
    assert.equal(before - (await usdcBalance(payer)), 50_000n);
    // The payment passes through the agent's payment address into the marketplace's ledger balance.
    assert.equal(await usdcBalance(demo().paymentAddress as Address), 0n);
    assert.equal((await ledgerBalance(marketplace())) - marketplaceBefore, 50_000n);
    await ui.waitForText(page.getByTestId(`agent-paid-${demo().id}`), "0.050000 USDC (1 payments)");
    await ui.shot("agent-call");
  });

  it("distributes the payment from the agent's page, crediting each contributor the exact amount", async () => {
    await page.getByTestId(`agent-${demo().id}`).getByRole("link", { name: "AutoDev (demo)" }).click();
    await ui.waitForPath(new RegExp(`^/agents/${demo().id}$`));
    await ui.waitForText(page.getByTestId("pending-payments"), `1 payments, ${usdcText(50_000n)}`);
    assert.equal(await page.getByTestId("payment-address-balance").textContent(), usdcText(0n));

    const author = ui.account("agentAuthor");
    const treasury = ui.account("treasury");
    const [authorBefore, treasuryBefore, budgetBefore, marketplaceBefore] = [
      await ledgerBalance(author),
      await ledgerBalance(treasury),
      await budgetAvailable(),
      await ledgerBalance(marketplace()),
    ];
    const payouts = page.getByRole("region", { name: "Payouts" });
    assert.match(await ui.submit(payouts, "Distribute now"), /Distribute: confirmed/);

    // 10,000 to the author; the 1% + 1% referral rewards go to the platform (nobody has a referrer);
    // 20% of the 39,000 left tops up the demo budget; the platform keeps the remainder.
    const credited = {
      author: (await ledgerBalance(author)) - authorBefore,
      budget: (await budgetAvailable()) - budgetBefore,
      treasury: (await ledgerBalance(treasury)) - treasuryBefore,
    };
    assert.deepEqual(credited, { author: 10_000n, budget: 7_800n, treasury: 32_200n });
    assert.equal(marketplaceBefore - (await ledgerBalance(marketplace())), 50_000n);
    assert.equal(await usdcBalance(demo().paymentAddress as Address), 0n);

    // The earnings shown are the credits read back from the chain's events.
    const row = (key: string) => page.getByTestId(`earning-${key}`);
    await ui.waitForText(page.getByTestId("distribution-count"), "1");
    await ui.waitForText(row(`account:${author.toLowerCase()}`), usdcText(credited.author));
    assert.match((await row(`account:${author.toLowerCase()}`).textContent())!, /Fixed amount 1/);
    assert.match((await row(`budget:${ui.running.stack.budgetId}`).textContent())!, new RegExp(`Budget #${ui.running.stack.budgetId}Share 1${usdcText(credited.budget)}`));
    assert.match((await row(`account:${treasury.toLowerCase()}`).textContent())!, new RegExp(`Remainder \\(platform\\)${usdcText(credited.treasury)}`));
    assert.equal(await page.getByTestId("contributor-earnings").locator("tbody tr").count(), 3);
    await ui.waitForText(page.getByTestId("pending-payments"), `0 payments, ${usdcText(0n)}`);
    assert.equal(await payouts.getByRole("button", { name: "Distribute now" }).isDisabled(), true);
    await ui.shot("agent-payouts");
    await page.setViewportSize({ width: 390, height: 844 });
    await ui.shot("agent-payouts-narrow");
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it("shows the contributor payouts in the public accounting", async () => {
    await ui.go("/accounting");
    await ui.waitForText(page.getByTestId("contributor-paid-out"), usdcText(50_000n));
    assert.equal(await page.getByTestId("agent-revenue").textContent(), usdcText(50_000n));
    const rows = page.getByTestId("top-contributors").locator("tbody tr");
    assert.deepEqual(await rows.evaluateAll((items) => items.map((item) => item.getAttribute("data-testid"))), [
      `contributor-account:${ui.account("treasury").toLowerCase()}`,
      `contributor-account:${ui.account("agentAuthor").toLowerCase()}`,
      `contributor-budget:${ui.running.stack.budgetId}`,
    ]);
    assert.equal(await rows.nth(0).textContent(), `${shortHex(ui.account("treasury"))} (platform treasury)${usdcText(32_200n)}`);
    assert.equal(await rows.nth(1).textContent(), `${shortHex(ui.account("agentAuthor"))}${usdcText(10_000n)}`);
    assert.equal(await rows.nth(2).textContent(), `Budget #${ui.running.stack.budgetId}${usdcText(7_800n)}`);
    await ui.shot("accounting-contributors");
  });

  it("publishes an agent with the form, refusing a bad price first without sending anything", async () => {
    await ui.go("/agents");
    const form = page.locator('form[aria-labelledby="publish-agent-heading"]');
    await form.waitFor(WAIT);
    await form.getByLabel("Name").fill("UI agent");
    await form.getByLabel("Endpoint").fill("https://agent.example/run");
    await form.getByLabel("Price per call").fill("0");
    await form.getByRole("button", { name: "Publish agent" }).click();
    await ui.waitForText(form.getByRole("alert"), "Price per call: Enter an amount above 0.");
    assert.equal(await agentCount(), 1n);

    // The payment address is known before listing: the next one of the connected account.
    const next = await ui.read<Address>({ address: marketplace(), abi: agentMarketplaceAbi, functionName: "nextPaymentAddress", args: [ui.account("creator")] });
    await ui.waitForText(form.getByTestId("next-payment-address"), next);

    await form.getByLabel("Price per call").fill("0.02");
    assert.match(await ui.submit(form, "Publish agent"), /List agent: confirmed/);
    await ui.waitForText(form.getByTestId("listed-agent"), `Listed as agent #2, paid at ${next}`);
    publishedId = await agentCount();
    assert.equal(publishedId, 2n);
    const listing = await getAgent(publishedId);
    assert.deepEqual(
      [listing.owner, listing.status, listing.pricePerCall, listing.paymentAddress, listing.metadata],
      [ui.account("creator"), STATUS.active, 20_000n, next, { name: "UI agent", metadataURI: "", endpoint: "https://agent.example/run" }],
    );
  });

  it("changes the new agent's details and terms as its owner, decoding the contract's refusal", async () => {
    await page.getByTestId("listed-agent").getByRole("link").click();
    await ui.waitForPath(new RegExp(`^/agents/${publishedId}$`));
    const details = page.locator('form[aria-labelledby="agent-details-heading"]');
    await details.waitFor(WAIT);
    await details.getByLabel("Name").fill(" ");
    await details.getByRole("button", { name: "Save details" }).click();
    await ui.waitForText(details.getByRole("alert"), "Name: enter the agent's name.");
    await details.getByLabel("Name").fill("UI agent v2");
    assert.match(await ui.submit(details, "Save details"), /Update details: confirmed/);
    assert.equal((await getAgent(publishedId)).metadata.name, "UI agent v2");
    await ui.waitForText(page.getByRole("heading", { level: 1 }), "UI agent v2");

    // An account named as a split: the marketplace refuses it, in words.
    const terms = page.locator('form[aria-labelledby="agent-terms-heading"]');
    assert.equal(await terms.getByLabel("Price per call").inputValue(), "0.02");
    assert.equal(await terms.getByLabel("Share 1: percent").inputValue(), "90");
    await terms.getByLabel("Price per call").fill("0.03");
    await terms.getByLabel("Share 1: kind").selectOption("split");
    const notSplit = shortHex(ui.account("creator"));
    assert.match(await ui.submit(terms, "Save terms"), new RegExp(`Update terms failed: ${notSplit} is not a split of the ledger\\.`));
    assert.equal((await getAgent(publishedId)).pricePerCall, 20_000n);

    await terms.getByLabel("Share 1: kind").selectOption("account");
    await terms.getByLabel("Share 1: percent").fill("80");
    assert.match(await ui.submit(terms, "Save terms"), /Update terms: confirmed/);
    const listing = await getAgent(publishedId);
    const expectedFlow = {
      fixedAmounts: [],
      shares: [{ recipient: { kind: 0, account: ui.account("creator"), budgetId: 0n }, share: 800_000 }],
      payerReferrerShare: 10_000,
      payeeReferrerShare: 10_000,
      remainder: { kind: 0, account: zeroAddress, budgetId: 0n },
    };
    assert.equal(listing.pricePerCall, 30_000n);
    assert.equal(listing.flowHash, await ui.read<Hex>({ address: marketplace(), abi: agentMarketplaceAbi, functionName: "hashFlow", args: [expectedFlow] }));
    await ui.waitForText(page.getByTestId("agent-price"), usdcText(30_000n));
    await ui.shot("agent-owner");
  });

  it("transfers the new agent to another account and back, refusing its own owner first", async () => {
    const transfer = page.locator('form[aria-labelledby="agent-transfer-heading"]');
    const owner = page.getByTestId("agent-owner");
    const manage = page.getByRole("heading", { name: "Manage this agent" });
    await transfer.getByLabel("New owner", { exact: true }).fill(ui.account("creator"));
    await transfer.getByLabel("The new owner gets every right over this agent, and this account keeps none.").check();
    await transfer.getByRole("button", { name: "Transfer agent" }).click();
    await ui.waitForText(transfer.getByRole("alert"), "This account already owns the agent.");

    // Confirmed, the page shows the new owner, and the management leaves the former owner's view.
    await transfer.getByLabel("New owner", { exact: true }).fill(ui.account("agentAuthor"));
    await transfer.getByRole("button", { name: "Transfer agent" }).click();
    await ui.waitForText(owner, shortHex(ui.account("agentAuthor")));
    assert.equal((await getAgent(publishedId)).owner, ui.account("agentAuthor"));
    await ui.waitFor(manage.waitFor({ state: "detached", ...WAIT }));

    await ui.actAs("agentAuthor");
    await ui.waitForText(owner, `${shortHex(ui.account("agentAuthor"))} (you)`);
    await transfer.getByLabel("New owner", { exact: true }).fill(ui.account("creator"));
    await transfer.getByLabel("The new owner gets every right over this agent, and this account keeps none.").check();
    await transfer.getByRole("button", { name: "Transfer agent" }).click();
    await ui.waitFor(manage.waitFor({ state: "detached", ...WAIT }));
    assert.equal((await getAgent(publishedId)).owner, ui.account("creator"));
    await ui.actAs("creator");
    await ui.waitForText(owner, `${shortHex(ui.account("creator"))} (you)`);
  });

  it("pauses, then retires the new agent, as the chain records", async () => {
    assert.match(await ui.submit(statusRegion(), "Pause"), /Pause: confirmed/);
    assert.equal((await getAgent(publishedId)).status, STATUS.paused);
    await ui.waitForText(page.getByTestId("agent-status"), "paused");

    const retire = statusRegion().getByRole("button", { name: "Retire agent" });
    assert.equal(await retire.isDisabled(), true, "retiring waits for the confirmation");
    await statusRegion().getByLabel("Retiring is final: the agent can never be called or changed again.").check();
    assert.match(await ui.submit(statusRegion(), "Retire agent"), /Retire: confirmed/);
    assert.equal((await getAgent(publishedId)).status, STATUS.retired);
    await ui.waitForText(page.getByTestId("agent-status"), "retired");
    await ui.waitForText(statusRegion(), "This agent is retired for good");
    assert.equal(await page.getByTestId(`call-agent-${publishedId}`).isDisabled(), true);
    assert.equal(await page.locator('form[aria-labelledby="agent-details-heading"]').count(), 0);
    await ui.shot("agent-retired");
  });
});
