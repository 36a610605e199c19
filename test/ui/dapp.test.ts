/**
 * The dApp end to end in Debian's Chromium (playwright-core) against the real local stack: the
 * production build served by `vite preview`, wallet actions through the local dev account, agent
 * calls through the SDK. Screenshots of every page go to `.agentmesh/screenshots/`.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import type { Page } from "playwright-core";
import { createTestClient, erc20Abi, http, type Address, type Hex } from "viem";
import { AgentSession, computeEscrowAbi, mockUSDCAbi, providerRegistryAbi, splitsLedgerAbi } from "../../sdk/src/index.ts";
import { shortHex } from "../../frontend/src/lib/explorer.ts";
import { usdcInputValue } from "../../frontend/src/lib/usdc.ts";
import { formatTimestamp } from "../../frontend/src/lib/validation.ts";
import { startBrowserStack, usdcText, USDC, WAIT, type BrowserStack } from "./helpers.ts";

describe("dApp in Chromium", { timeout: 300_000 }, () => {
  let ui: BrowserStack;
  let page: Page;
  let budgetId: bigint;
  let session: AgentSession;
  let settledTotal = 0n;
  let split: Address;

  const ledger = () => ui.running.stack.contracts.SplitsLedger;
  const ledgerBalance = (account: Address) => ui.read<bigint>({ address: ledger(), abi: splitsLedgerAbi, functionName: "balanceOf", args: [account] });
  const usdcBalance = (account: Address) => ui.read<bigint>({ address: ui.running.stack.usdc, abi: erc20Abi, functionName: "balanceOf", args: [account] });
  const budgetAvailable = async (id: bigint) =>
    (await ui.read<{ available: bigint }>({ address: ui.running.stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getBudget", args: [id] })).available;
  /** Pays `amount` of the admin's USDC into `payee`'s ledger balance (an account's, or a split's), outside the page. */
  const payIntoLedger = async (payee: Address, amount: bigint) => {
    await ui.writeAs("admin", { address: ui.running.stack.usdc, abi: erc20Abi, functionName: "approve", args: [ledger(), amount] });
    await ui.writeAs("admin", { address: ledger(), abi: splitsLedgerAbi, functionName: "pay", args: [payee, amount] });
  };

  before(async () => {
    ui = await startBrowserStack({
      settlement: { maxAgeMs: 3_600_000, pollMs: 60_000 }, // settles only when a test asks
      healthProbeIntervalMs: 3_600_000,
    });
    page = ui.page;
  });

  after(async () => {
    await ui?.stop();
  });

  it("lists every provider and model with its prices on the marketplace, without a wallet", async () => {
    await page.goto(ui.running.uiUrl!);
    const small = page.getByTestId("offer-1-agentmesh-small");
    await small.waitFor(WAIT);
    assert.equal(await page.getByTestId("offers").locator("tbody tr").count(), 4);
    const row = await small.textContent();
    assert.match(row!, /0\.000150 USDC \/ 1K tokens/);
    assert.match(row!, /0\.000600 USDC \/ 1K tokens/);
    assert.match(row!, /8,192 tokens/);
    assert.match(row!, /streaming/);
    // Sorted by price: provider 2's small model (0.0001 + 0.0004) comes first.
    assert.equal(await page.getByTestId("offers").locator("tbody tr").first().getAttribute("data-testid"), "offer-2-agentmesh-small");
    await page.getByLabel("Model").fill("large");
    assert.equal(await page.getByTestId("offers").locator("tbody tr").count(), 2);
    await page.getByLabel("Model").fill("");
    await page.locator(".chart svg").first().waitFor(WAIT); // the lazily loaded charts
    await ui.shot("marketplace");
    await page.setViewportSize({ width: 390, height: 844 });
    await ui.shot("marketplace-narrow");
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it("connects the local dev account through RainbowKit, and stays connected as the same account after a reload", async () => {
    await ui.connect();
    await ui.actAs("creator");
    await page.reload();
    await ui.waitFor(page.getByLabel("Dev account").waitFor(WAIT));
    assert.equal(await page.getByLabel("Dev account").inputValue(), ui.account("creator"));
    await ui.actAs("admin");
    assert.equal(await page.getByLabel("Dev account").inputValue(), ui.account("admin"));
  });

  it("registers and stakes a provider with a permit and a shared receipt signer, decoding a refusal first", async () => {
    await ui.go("/provider");
    const form = page.locator('form[aria-labelledby="register-heading"]');
    await form.waitFor(WAIT);
    await form.getByLabel("Endpoint (OpenAI-compatible base URL)").fill("https://inference.example.com/v1");
    await form.getByLabel("Model name").fill("ui-model");
    await form.getByLabel("Input price per 1K tokens").fill("0.0002");
    await form.getByLabel("Output price per 1K tokens").fill("0.0008");
    await ui.waitForText(form.getByLabel("Stake"), "");
    assert.equal(await form.getByLabel("Stake").inputValue(), "100");
    // The receipt signer provider #1 uses: several providers may share one (a relayer's).
    const signer = ui.account("receiptSignerA");
    await form.getByLabel("Receipt signer").fill(signer);
    // A stake above the wallet's USDC: USDC's custom error, bubbling up through the registry, as a sentence.
    const wallet = await ui.read<bigint>({ address: ui.running.stack.usdc, abi: erc20Abi, functionName: "balanceOf", args: [ui.account("admin")] });
    await form.getByLabel("Stake").fill("20000");
    assert.match(
      await ui.submit(form, "Register and stake"),
      new RegExp(`Register and stake failed: ${shortHex(ui.account("admin"))} holds ${usdcText(wallet).replace(/[.]/g, "\\.")}, but 20,000\\.000000 USDC is needed\\.`),
    );

    await form.getByLabel("Stake").fill("100");
    assert.match(await ui.submit(form, "Register and stake"), /Register and stake: confirmed/);
    const card = page.getByTestId("provider-3");
    await ui.waitForText(card.getByTestId("stake-3"), "100.000000 USDC");
    const provider = await ui.read<{ owner: Address; stake: bigint; receiptSigner: Address; endpoint: string }>({
      address: ui.running.stack.contracts.ProviderRegistry,
      abi: providerRegistryAbi,
      functionName: "getProvider",
      args: [3n],
    });
    assert.deepEqual([provider.owner, provider.stake, provider.receiptSigner, provider.endpoint], [ui.account("admin"), 100n * USDC, signer, "https://inference.example.com/v1"]);
    const model = await ui.read<{ name: string; inputPricePer1K: number; outputPricePer1K: number }>({
      address: ui.running.stack.contracts.ProviderRegistry,
      abi: providerRegistryAbi,
      functionName: "getModel",
      args: [3n, 0n],
    });
    assert.deepEqual([model.name, model.inputPricePer1K, model.outputPricePer1K], ["ui-model", 200, 800]);
    await ui.shot("provider-console");
  });

  it("creates a budget with a permit, whitelists the agent and tops it up", async () => {
    await ui.actAs("creator");
    await ui.go("/budgets");
    const form = page.locator('form[aria-labelledby="create-budget-heading"]');
    await form.waitFor(WAIT);
    await form.getByLabel("Deposit").fill("50");
    await form.getByLabel("Per-session limit").fill("5");
    await form.getByLabel("Whitelisted agents").fill(ui.account("agent"));
    await form.getByRole("button", { name: "Sign permit and create" }).click();
    budgetId = BigInt((await ui.waitForPath(/^\/budgets\/\d+$/)).split("/").pop()!);
    await ui.waitForText(page.getByTestId("budget-available"), "50.000000 USDC");
    await ui.waitForText(page.getByTestId("agents"), ui.account("agent"));

    const funds = page.getByRole("region", { name: "Funds" });
    await funds.getByLabel("Top up").fill("10.25");
    assert.match(await ui.submit(funds, "Approve and top up"), /Top up: confirmed/);
    await ui.waitForText(page.getByTestId("budget-available"), "60.250000 USDC");
    const budget = await ui.read<{ available: bigint; perSessionLimit: bigint; creator: Address }>({
      address: ui.running.stack.contracts.ComputeEscrow,
      abi: computeEscrowAbi,
      functionName: "getBudget",
      args: [budgetId],
    });
    assert.deepEqual([budget.available, budget.perSessionLimit, budget.creator], [60_250_000n, 5n * USDC, ui.account("creator")]);
    await ui.shot("budget");
    await ui.go("/budgets");
    await ui.waitForText(page.getByTestId("budgets"), `Budget #${budgetId}`);
    await ui.shot("budgets");
  });

  it("shows an agent's session on its budget and its receipts arriving live", async () => {
    const { stack } = ui.running;
    session = await AgentSession.open({
      relayerUrl: ui.running.relayer.url,
      privateKey: stack.accounts.agent.privateKey,
      chainId: stack.chainId,
      escrow: stack.contracts.ComputeEscrow,
      budgetId,
      providerId: 1,
      model: "agentmesh-small",
      maxSpend: 2n * USDC,
    });
    await ui.go(`/budgets/${budgetId}`);
    await page.getByTestId(`budget-session-${session.sessionId}`).waitFor(WAIT);
    await page.getByTestId(`budget-session-${session.sessionId}`).getByRole("link").click();
    await ui.waitForPath(new RegExp(`^/sessions/${session.sessionId}$`));
    // Receipts are private (issue 12 item 10): the budget's creator signs a read request to see them.
    await page.getByRole("button", { name: "Sign to view" }).click();
    await page.getByText("No call yet").waitFor(WAIT);

    const openai = new OpenAI(session.openAIOptions());
    for (const [index, prompt] of ["Hello!", "Tell me about USDC.", "And about receipts?"].entries()) {
      const completion = (await openai.chat.completions.create({
        model: "agentmesh-small",
        messages: [{ role: "user", content: prompt }],
        max_tokens: 24,
      })) as OpenAI.Chat.Completions.ChatCompletion & { cost: { amountAtomic: string } };
      const cost = BigInt(completion.cost.amountAtomic);
      settledTotal += cost;
      // The page polls the relayer: each receipt appears without a reload, with its exact cost.
      const row = page.getByTestId(`receipt-${index + 1}`);
      await row.waitFor(WAIT);
      assert.match((await row.textContent())!, new RegExp(usdcText(cost).replace(/[.]/g, "\\.")));
    }
    await ui.waitForText(page.getByTestId("session-calls"), "3");
    await ui.waitForText(page.getByTestId("session-spent"), usdcText(settledTotal));
    // The terms fix the provider's receipt signer and the protocol fee when the session opens.
    assert.match((await page.getByTestId("session-receipt-signer").textContent())!, new RegExp(`^${shortHex(ui.account("receiptSignerA"))}`));
    assert.match((await page.getByTestId("session-fee").textContent())!, /^2\.5% of each settlement/);
    await ui.shot("session");
  });

  it("verifies a receipt in the browser and links its settlement transaction", async () => {
    await session.flushVoucher();
    const txHash = await ui.running.relayer.settlement.settleDue(true);
    assert.match(txHash ?? "", /^0x[0-9a-f]{64}$/);
    await ui.waitForText(page.getByTestId("receipt-2"), txHash!.slice(0, 6));
    await page.getByRole("button", { name: "Verify receipt 2" }).click();
    const verification = page.getByTestId("verification");
    await ui.waitForText(verification.getByTestId("verification-result"), "valid");
    const checks = verification.locator("li");
    assert.deepEqual(await checks.evaluateAll((items) => items.map((item) => [item.querySelector("strong")?.textContent, item.getAttribute("data-ok")])), [
      ["Session terms", "true"],
      ["Receipt hash", "true"],
      ["Hash chain", "true"],
      ["Price", "true"],
      ["Cumulative state", "true"],
      ["Provider signature", "true"],
      ["Settlement", "true"],
    ]);
    assert.match((await verification.textContent())!, new RegExp(txHash!));
    await ui.shot("receipt-verification");
  });

  it("withdraws a provider's earnings to the exact amount", async () => {
    const providerA = ui.account("providerA");
    const earned = await ui.read<bigint>({ address: ui.running.stack.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "balanceOf", args: [providerA] });
    assert.equal(earned, settledTotal - (settledTotal * 250n) / 10_000n);
    const walletBefore = await ui.read<bigint>({ address: ui.running.stack.usdc, abi: erc20Abi, functionName: "balanceOf", args: [providerA] });

    await ui.actAs("providerA");
    await ui.go("/provider");
    const card = page.getByTestId("provider-1");
    await ui.waitForText(card.getByTestId("ledger-balance"), usdcText(earned));
    assert.match(await ui.submit(card.getByRole("region", { name: "Earnings" }), "Withdraw to wallet"), /Withdraw: confirmed/);
    await ui.waitForText(card.getByTestId("ledger-balance"), usdcText(0n));
    await ui.waitForText(card.getByTestId("wallet-balance"), usdcText(walletBefore + earned));
    const walletAfter = await ui.read<bigint>({ address: ui.running.stack.usdc, abi: erc20Abi, functionName: "balanceOf", args: [providerA] });
    assert.equal(walletAfter - walletBefore, earned);
    await ui.shot("provider-earnings");
  });

  it("shows the public accounting of the settled flows", async () => {
    await ui.go("/accounting");
    const fee = (settledTotal * 250n) / 10_000n;
    await ui.waitForText(page.getByTestId("volume"), usdcText(settledTotal));
    assert.equal(await page.getByTestId("protocol-fees").textContent(), usdcText(fee));
    assert.equal(await page.getByTestId("provider-earnings").textContent(), usdcText(settledTotal - fee));
    assert.equal(await page.getByTestId("settlements").textContent(), "1");
    await page.locator(".chart svg").nth(1).waitFor(WAIT);
    await ui.shot("accounting");
  });

  it("composes a payout split with a picture of who gets what", async () => {
    await ui.go("/splits");
    const editor = page.locator('form[aria-labelledby="split-editor-heading"]');
    await editor.waitFor(WAIT);
    await editor.getByLabel("Share").fill("70");
    await editor.getByRole("button", { name: "Add recipient" }).click();
    await editor.getByRole("textbox", { name: "Recipient 2" }).fill(ui.account("treasury"));
    await editor.getByLabel("Share").nth(1).fill("20");
    await ui.waitForText(editor.locator(".legend"), "(remainder)");
    assert.match((await editor.locator(".legend").textContent())!, /70%.*20%.*10% \(remainder\)/);
    await editor.getByRole("button", { name: "Create split" }).click();
    split = (await ui.waitForPath(/^\/splits\?split=0x[0-9a-fA-F]{40}$/)).split("=")[1] as Address;
    assert.equal(await ui.read<boolean>({ address: ledger(), abi: splitsLedgerAbi, functionName: "isSplit", args: [split] }), true);
    await page.getByRole("region", { name: "Split", exact: true }).waitFor(WAIT);
    await ui.shot("splits");
  });

  it("shows what a split holds undistributed, and distributes it in one click from a recipient's balance", async () => {
    // Paying a split credits the split itself; its recipients are paid when someone distributes it.
    await payIntoLedger(split, USDC);
    await page.reload();
    const view = page.getByRole("region", { name: "Split", exact: true });
    await ui.waitForText(view.getByTestId("split-undistributed"), usdcText(USDC));
    assert.equal(await view.getByTestId("split-distributed").textContent(), usdcText(0n));

    // The treasury, one of its recipients, sees the split waiting to pay it, one click away.
    const treasury = ui.account("treasury");
    const treasuryBefore = await ledgerBalance(treasury);
    await ui.go(`/splits?split=${treasury}`);
    const waiting = page.getByTestId("paying-splits").getByTestId(`undistributed-${split.toLowerCase()}`);
    await ui.waitForText(waiting, usdcText(USDC));
    await ui.shot("splits-paying");
    assert.match(await ui.submit(waiting, "Distribute"), /Distribute: confirmed/);
    assert.equal((await ledgerBalance(treasury)) - treasuryBefore, 200_000n);
    assert.equal(await ledgerBalance(split), 0n);
    await ui.waitForText(page.getByTestId("ledger-balance"), usdcText(treasuryBefore + 200_000n));

    // The split's page: what it distributed, and each recipient's credit as the ledger's event records it.
    await ui.go(`/splits?split=${split}`);
    await ui.waitForText(view.getByTestId("split-distributed"), usdcText(USDC));
    const rows = view.getByTestId("split-credits").locator("tbody tr");
    await ui.waitForText(rows.first(), usdcText(700_000n));
    const providerA = shortHex(ui.account("providerA"));
    assert.deepEqual(await rows.allTextContents(), [
      `${providerA}70%${usdcText(700_000n)}`,
      `${shortHex(treasury)}20%${usdcText(200_000n)}`,
      `${providerA} (remainder)10%${usdcText(100_000n)}`,
    ]);
    assert.equal(await view.getByTestId("split-undistributed").textContent(), usdcText(0n));
    await ui.shot("split-distributed");
  });

  it("returns an expired budget's funds to its creator's ledger balance, which tops up a budget and is withdrawn", async () => {
    const escrow = ui.running.stack.contracts.ComputeEscrow;
    const creator = ui.account("creator");
    // A 3 USDC budget that expires in a minute, created outside the page; then the chain's clock
    // moves past its expiry.
    const expiry = (await ui.client.getBlock()).timestamp + 60n;
    await ui.writeAs("creator", { address: ui.running.stack.usdc, abi: erc20Abi, functionName: "approve", args: [escrow, 3n * USDC] });
    await ui.writeAs("creator", { address: escrow, abi: computeEscrowAbi, functionName: "createBudget", args: [3n * USDC, USDC, expiry, []] });
    const expiring = await ui.read<bigint>({ address: escrow, abi: computeEscrowAbi, functionName: "budgetCount" });
    const chain = createTestClient({ mode: "hardhat", transport: http(ui.running.stack.rpcUrl) });
    await chain.increaseTime({ seconds: 61 });
    await chain.mine({ blocks: 1 });

    await ui.actAs("creator");
    await ui.go(`/budgets/${expiring}`);
    await ui.waitForText(page.getByTestId("budget-available"), usdcText(3n * USDC));
    const before = await ledgerBalance(creator);
    const funds = page.getByRole("region", { name: "Funds" });
    assert.match(await ui.submit(funds, "Return funds after expiry"), /Return expired funds: confirmed/);
    await ui.waitForText(page.getByTestId("budget-available"), usdcText(0n));
    assert.equal((await ledgerBalance(creator)) - before, 3n * USDC);
    const balance = page.getByRole("region", { name: "Your ledger balance" });
    await ui.waitForText(balance.getByTestId("ledger-balance"), usdcText(before + 3n * USDC));
    await ui.shot("budget-returned");

    // 1 USDC of it tops up the first budget, straight from the ledger balance…
    await ui.go(`/budgets/${budgetId}`);
    const topUp = page.getByRole("form", { name: "Fund from your ledger balance" });
    await topUp.waitFor(WAIT);
    const availableBefore = await budgetAvailable(budgetId);
    await topUp.getByLabel("Amount from your ledger balance").fill("1");
    assert.match(await ui.submit(topUp, "Fund from balance"), /Top up from balance: confirmed/);
    assert.equal((await budgetAvailable(budgetId)) - availableBefore, USDC);
    assert.equal((await ledgerBalance(creator)) - before, 2n * USDC);

    // …and the rest goes to the creator's wallet.
    const walletBefore = await usdcBalance(creator);
    await ui.waitForText(balance.getByTestId("ledger-balance"), usdcText(before + 2n * USDC));
    await balance.getByLabel("Amount to withdraw").fill(usdcInputValue(before + 2n * USDC));
    assert.match(await ui.submit(balance, "Withdraw to wallet"), /Withdraw: confirmed/);
    assert.equal((await usdcBalance(creator)) - walletBefore, before + 2n * USDC);
    await ui.waitForText(balance.getByTestId("ledger-balance"), usdcText(0n));
  });

  it("shows a frozen or USDC-blacklisted account's state where its balance shows, and withdraws once the freeze is lifted", async () => {
    const { usdc } = ui.running.stack;
    const [frozen, blacklisted] = [ui.account("providerB"), ui.account("receiptSignerB")];
    await payIntoLedger(frozen, USDC);
    // The admin names a compliance officer (itself), who freezes provider B's owner for a day;
    // USDC's issuer (the local MockUSDC's deployer, also the admin) blacklists receipt signer B.
    const compliance = await ui.read<Hex>({ address: ledger(), abi: splitsLedgerAbi, functionName: "COMPLIANCE_ROLE" });
    await ui.writeAs("admin", { address: ledger(), abi: splitsLedgerAbi, functionName: "grantRole", args: [compliance, ui.account("admin")] });
    const until = (await ui.client.getBlock()).timestamp + 86_400n;
    await ui.writeAs("admin", { address: ledger(), abi: splitsLedgerAbi, functionName: "freeze", args: [frozen, until, 1] });
    await ui.writeAs("admin", { address: usdc, abi: mockUSDCAbi, functionName: "blacklist", args: [blacklisted] });

    await ui.actAs("providerB");
    await ui.go("/provider");
    await page.reload();
    const earnings = page.getByTestId("provider-2").getByRole("region", { name: "Earnings" });
    await ui.waitForText(earnings.getByTestId("ledger-balance"), usdcText(USDC));
    await ui.waitForText(
      earnings.getByTestId("account-restriction"),
      `Frozen until ${formatTimestamp(until)} by the compliance role: withdrawals and transfers of this balance are refused until then; payments to it still arrive.`,
    );
    assert.equal(await earnings.getByRole("button", { name: "Withdraw to wallet" }).isDisabled(), true);
    await ui.shot("account-frozen");

    await ui.go(`/splits?split=${blacklisted}`);
    await ui.waitForText(
      page.getByTestId("account-restriction"),
      "Blacklisted by USDC: withdrawals and transfers of this balance are refused for as long as USDC blacklists it; payments to it still arrive.",
    );

    // A frozen budget creator: its budget says what that stops.
    await ui.writeAs("admin", { address: ledger(), abi: splitsLedgerAbi, functionName: "freeze", args: [ui.account("creator"), until, 2] });
    await ui.go(`/budgets/${budgetId}`);
    await ui.waitForText(
      page.getByTestId("account-restriction"),
      `Frozen until ${formatTimestamp(until)} by the compliance role: withdrawals and transfers of this balance are refused until then; payments to it still arrive. While it lasts, no session opens on this budget and refunds are refused`,
    );

    // Lifted, the withdrawal goes through.
    await ui.writeAs("admin", { address: ledger(), abi: splitsLedgerAbi, functionName: "unfreeze", args: [frozen, 1] });
    await ui.go("/provider");
    await page.reload();
    await ui.waitForText(earnings.getByTestId("ledger-balance"), usdcText(USDC));
    const walletBefore = await usdcBalance(frozen);
    assert.match(await ui.submit(earnings, "Withdraw to wallet"), /Withdraw: confirmed/);
    assert.equal((await usdcBalance(frozen)) - walletBefore, USDC);
    assert.equal(await earnings.getByTestId("account-restriction").count(), 0);
  });
});
