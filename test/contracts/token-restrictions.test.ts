import { expect } from "chai";
import {
  DAY,
  NO_SIGNATURE,
  USDC,
  feeOf,
  openByAgent,
  setupMarket,
  signVoucher,
  voucher,
  type Market,
} from "./helpers/escrow.ts";

/**
 * SECURITY 24 / issue 11 §4: USDC's pause and blacklist (modelled by MockUSDC) never make a signed claim
 * expire unpaid, never let one party block another, and never let a blacklisted account move a balance.
 */
describe("Token pause and blacklist (SECURITY 24, issue 11 §4)", () => {
  /** An open session with a voucher for 4 USDC co-signed, not yet settled. */
  async function signedClaim(m: Market) {
    const t = await m.terms({ maxSpend: 10n * USDC });
    const id = await openByAgent(m.escrow, m.agent, t);
    const signed = await m.sign(voucher(t, { sequence: 1, cumulativeCost: 4n * USDC }));
    return { t, id, signed };
  }

  it("issue 11 §4: USDC paused for the whole challenge window — the provider still settles its co-signed voucher before finalize", async () => {
    const m = await setupMarket();
    const { escrow, ledger, usdc, admin, agent, providerOwner, treasury, budgetId, time } = m;
    const { t, id, signed } = await signedClaim(m);
    await usdc.connect(admin).pause();
    // The consumer closes; the provider answers inside the window, with no token transfer needed.
    await escrow.connect(agent).requestClose(t);
    await escrow.settle([signed]);
    await time.increase(m.window);
    await escrow.finalize(t);
    expect((await escrow.getSession(id)).settled).to.equal(4n * USDC);
    const earned = 4n * USDC - feeOf(4n * USDC);
    expect(await ledger.balanceOf(providerOwner.address)).to.equal(earned);
    expect(await ledger.balanceOf(treasury.address)).to.equal(feeOf(4n * USDC));
    expect((await escrow.getBudget(budgetId)).available).to.equal(100n * USDC - 4n * USDC);
    // Only taking USDC out waits for the token.
    await expect(ledger.connect(providerOwner).withdraw(providerOwner.address, earned)).to.be.revertedWithCustomError(usdc, "TokenPaused");
    await usdc.connect(admin).unpause();
    await ledger.connect(providerOwner).withdraw(providerOwner.address, earned);
    expect(await usdc.balanceOf(providerOwner.address)).to.equal(earned);
  });

  it("issue 11 §4: USDC blacklisting the escrow and the ledger past a claim window loses no signed claim", async () => {
    const m = await setupMarket();
    const { escrow, ledger, usdc, admin, agent, providerOwner, budgetId, time } = m;
    const { t, id, signed } = await signedClaim(m);
    await usdc.connect(admin).blacklist(await escrow.getAddress());
    await usdc.connect(admin).blacklist(await ledger.getAddress());
    await escrow.connect(agent).requestClose(t);
    await escrow.settle([signed]);
    await time.increase(m.window + DAY);
    await escrow.finalize(t);
    expect((await escrow.getSession(id)).settled).to.equal(4n * USDC);
    expect((await escrow.getBudget(budgetId)).available).to.equal(96n * USDC);
    const earned = 4n * USDC - feeOf(4n * USDC);
    expect(await ledger.balanceOf(providerOwner.address)).to.equal(earned);
    // The token refuses to move the ledger's USDC while it blacklists the ledger; the credit waits.
    await expect(ledger.connect(providerOwner).withdraw(providerOwner.address, earned))
      .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
      .withArgs(await ledger.getAddress());
    await usdc.connect(admin).unBlacklist(await ledger.getAddress());
    await ledger.connect(providerOwner).withdraw(providerOwner.address, earned);
    expect(await usdc.balanceOf(providerOwner.address)).to.equal(earned);
  });

  it("issue 11 §4: while USDC is paused a provider cannot withdraw stake that a double-sign proof then slashes", async () => {
    const m = await setupMarket();
    const { escrow, registry, ledger, usdc, admin, agent, providerOwner, stranger, treasury, receiptSigner, domain, providerId, time } = m;
    const t = await m.terms();
    await openByAgent(escrow, agent, t);
    const a = voucher(t, { sequence: 2, cumulativeCost: 1n * USDC });
    const b = voucher(t, { sequence: 2, cumulativeCost: 2n * USDC });
    await registry.connect(providerOwner).requestUnstake(providerId, 100n * USDC);
    await time.increase(Number(await registry.unstakeDelay()));
    await usdc.connect(admin).pause();
    await expect(registry.connect(providerOwner).withdrawUnstaked(providerId)).to.be.revertedWithCustomError(usdc, "TokenPaused");
    // The proof needs no transfer: it lands while the token is still paused.
    await escrow.connect(stranger).slashDoubleSign(a, await signVoucher(receiptSigner, domain, a), b, await signVoucher(receiptSigner, domain, b));
    expect((await registry.getProvider(providerId)).pendingUnstake).to.equal(0n);
    expect(await ledger.balanceOf(stranger.address)).to.equal(10n * USDC);
    expect(await ledger.balanceOf(treasury.address)).to.equal(90n * USDC);
    await usdc.connect(admin).unpause();
    await expect(registry.connect(providerOwner).withdrawUnstaked(providerId)).to.be.revertedWithCustomError(registry, "RegistryUnstakeNotReady");
  });

  it("issue 11 §4: a blacklisted budget creator blocks no one: returnExpired credits its ledger balance, which it cannot move", async () => {
    const m = await setupMarket();
    const { escrow, ledger, usdc, admin, agent, creator, stranger, providerOwner, budgetId, time } = m;
    const { signed } = await signedClaim(m);
    await usdc.connect(admin).blacklist(creator.address);
    // Its own refund is refused with a clear error and changes nothing...
    await expect(escrow.connect(creator).refund(budgetId, 1n * USDC))
      .to.be.revertedWithCustomError(escrow, "EscrowCreatorRestricted")
      .withArgs(budgetId, creator.address);
    // ...its budget opens no new session (no laundering through a colluding provider)...
    const next = await m.terms();
    await expect(escrow.connect(agent).openSession(next, NO_SIGNATURE))
      .to.be.revertedWithCustomError(escrow, "EscrowCreatorRestricted")
      .withArgs(budgetId, creator.address);
    // ...but the provider's co-signed claim on the open session settles,
    await escrow.settle([signed]);
    expect(await ledger.balanceOf(providerOwner.address)).to.equal(4n * USDC - feeOf(4n * USDC));
    // and after expiry anyone returns the rest: credited to the creator's ledger balance.
    const { expiry } = await escrow.getBudget(budgetId);
    await time.increaseTo(expiry);
    await escrow.connect(stranger).returnExpired(budgetId);
    expect(await ledger.balanceOf(creator.address)).to.equal(90n * USDC);
    expect(await ledger.canMove(creator.address)).to.equal(false);
    for (const attempt of [
      ledger.connect(creator).withdraw(stranger.address, 1n),
      ledger.connect(creator).transfer(stranger.address, 1n),
    ]) {
      await expect(attempt).to.be.revertedWithCustomError(ledger, "LedgerAccountBlacklisted").withArgs(creator.address);
    }
    // Lifted by the token, the balance is the creator's again.
    await usdc.connect(admin).unBlacklist(creator.address);
    await ledger.connect(creator).withdraw(creator.address, 90n * USDC);
    expect(await usdc.balanceOf(creator.address)).to.equal(90n * USDC);
  });

  it("issue 11 §4: a blacklisted payout and a blacklisted treasury still accrue settlements; nobody else is blocked", async () => {
    const m = await setupMarket();
    const { escrow, ledger, usdc, admin, providerOwner, treasury, creator, budgetId } = m;
    const { t, signed } = await signedClaim(m);
    await usdc.connect(admin).blacklist(providerOwner.address);
    await usdc.connect(admin).blacklist(treasury.address);
    await escrow.settle([signed]);
    await escrow.closeCooperative([await m.sign(voucher(t, { sequence: 2, cumulativeCost: 6n * USDC, isFinal: true }))]);
    expect(await ledger.balanceOf(providerOwner.address)).to.equal(6n * USDC - feeOf(4n * USDC) - feeOf(2n * USDC));
    expect(await ledger.balanceOf(treasury.address)).to.equal(feeOf(4n * USDC) + feeOf(2n * USDC));
    await expect(ledger.connect(providerOwner).withdraw(m.others[0].address, 1n)).to.be.revertedWithCustomError(ledger, "LedgerAccountBlacklisted");
    // The creator is untouched: its refund reaches its wallet.
    await escrow.connect(creator).refund(budgetId, 94n * USDC);
    expect(await usdc.balanceOf(creator.address)).to.equal(94n * USDC);
    expect((await escrow.getBudget(budgetId)).available).to.equal(0n);
  });

  it("issue 11 §5: a de-whitelisted agent opens nothing new, its open session still settles what it signed, and the creator can close it", async () => {
    const m = await setupMarket();
    const { escrow, ledger, agent, creator, providerOwner, budgetId, time } = m;
    const { t, id, signed } = await signedClaim(m);
    await escrow.connect(creator).setAgentsAllowed(budgetId, [agent.address], false);
    await expect(escrow.connect(agent).openSession(await m.terms(), NO_SIGNATURE))
      .to.be.revertedWithCustomError(escrow, "EscrowAgentNotAllowed")
      .withArgs(budgetId, agent.address);
    // Calls already served are paid: the voucher the agent signed still settles.
    await escrow.settle([signed]);
    expect(await ledger.balanceOf(providerOwner.address)).to.equal(4n * USDC - feeOf(4n * USDC));
    // The creator ends the session: the provider has one window for newer vouchers, then the rest returns.
    await escrow.connect(creator).requestClose(t);
    await time.increase(m.window);
    await escrow.finalize(t);
    expect((await escrow.getSession(id)).claimEnd).to.equal(1n);
    expect((await escrow.getBudget(budgetId)).available).to.equal(96n * USDC);
  });

  it("issue 11 §5: the escrow refuses a challenge window shorter than MIN_CHALLENGE_WINDOW (0 included)", async () => {
    const m = await setupMarket();
    const { ethers, escrow, admin, treasury } = m;
    const minimum = await escrow.MIN_CHALLENGE_WINDOW();
    const deploy = (window: bigint) =>
      ethers.deployContract("ComputeEscrow", [
        m.usdc.target, m.registry.target, m.ledger.target, window, 0, admin.address, treasury.address, 250,
      ]);
    for (const window of [0n, minimum - 1n]) {
      await expect(deploy(window)).to.be.revertedWithCustomError(escrow, "EscrowChallengeWindowTooShort").withArgs(window, minimum);
    }
    expect(await (await deploy(minimum)).challengeWindow()).to.equal(minimum);
  });
});
