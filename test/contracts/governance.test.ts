import { expect } from "chai";
import { ZeroAddress } from "ethers";
import { DEFAULT_SUITE_OPTIONS, deploySuite } from "../../scripts/lib/deploy-suite.ts";
import { account, flowOf, metadataOf } from "./helpers/agents.ts";
import {
  DAY,
  NO_SIGNATURE,
  USDC,
  feeOf,
  openByAgent,
  setupMarket,
  voucher,
} from "./helpers/escrow.ts";

/**
 * SECURITY 23 / issue 11 §3: governance can neither seize nor freeze. The admin of each contract hands
 * its role over in two steps with a delay, has no path to a stake, a budget or a balance, cannot change
 * the fee of an open session, and freezes only with a reason, for a bounded time, never a custodian.
 */
describe("Governance (SECURITY 23, issue 11 §3)", () => {
  it("issue 11 §3: every contract's admin role changes hands only in two steps, after the delay", async () => {
    const m = await setupMarket();
    const { admin, stranger, time } = m;
    const delay = BigInt(DEFAULT_SUITE_OPTIONS.adminDelay);
    for (const contract of [m.ledger, m.registry, m.escrow, m.marketplace]) {
      const name = await contract.getAddress();
      expect(await contract.defaultAdmin(), name).to.equal(admin.address);
      expect(await contract.defaultAdminDelay(), name).to.equal(delay);
      await contract.connect(admin).beginDefaultAdminTransfer(stranger.address);
      const [pending, schedule] = await contract.pendingDefaultAdmin();
      expect(pending).to.equal(stranger.address);
      expect(schedule).to.equal(BigInt(await time.latest()) + delay);
      // Not before the delay has passed (the schedule itself is still too early).
      await time.setNextBlockTimestamp(schedule);
      await expect(contract.connect(stranger).acceptDefaultAdminTransfer())
        .to.be.revertedWithCustomError(contract, "AccessControlEnforcedDefaultAdminDelay")
        .withArgs(schedule);
      // Only the pending admin can accept.
      await expect(contract.connect(admin).acceptDefaultAdminTransfer())
        .to.be.revertedWithCustomError(contract, "AccessControlInvalidDefaultAdmin")
        .withArgs(admin.address);
      await time.setNextBlockTimestamp(schedule + 1n);
      await contract.connect(stranger).acceptDefaultAdminTransfer();
      expect(await contract.defaultAdmin(), name).to.equal(stranger.address);
      expect(await contract.hasRole(await contract.DEFAULT_ADMIN_ROLE(), admin.address), name).to.equal(false);
    }
  });

  it("issue 11 §3: the deployment hands every admin role to the given admin and keeps none for the deployer", async () => {
    const m = await setupMarket();
    const [deployer, multisig, treasury] = [m.others[0], m.others[1], m.others[2]];
    const suite = await deploySuite(m.ethers, deployer, { ...DEFAULT_SUITE_OPTIONS, admin: multisig.address, treasury: treasury.address });
    for (const contract of [suite.ledger, suite.registry, suite.escrow, suite.marketplace]) {
      expect(await contract.defaultAdmin()).to.equal(multisig.address);
      expect(await contract.hasRole(await contract.DEFAULT_ADMIN_ROLE(), deployer.address)).to.equal(false);
    }
    expect(await suite.escrow.treasury()).to.equal(treasury.address);
    expect(await suite.marketplace.treasury()).to.equal(treasury.address);
    // The one-time bindings are made and locked: not even the deployer can make them again.
    expect(await suite.registry.escrow()).to.equal(await suite.escrow.getAddress());
    for (const custodian of [suite.escrow, suite.registry, suite.marketplace]) {
      expect(await suite.ledger.isCustodian(await custodian.getAddress())).to.equal(true);
    }
    await expect(suite.registry.connect(deployer).bindEscrow(deployer.address)).to.be.revertedWithCustomError(suite.registry, "RegistryEscrowLocked");
    await expect(suite.ledger.connect(deployer).setCustodians([deployer.address])).to.be.revertedWithCustomError(suite.ledger, "LedgerCustodiansLocked");
  });

  it("issue 11 §3: no role the admin can grant itself takes a stake; only a proof checked by the bound escrow does", async () => {
    const m = await setupMarket();
    const { registry, escrow, admin, providerId } = m;
    // Whatever role the admin grants itself, the registry's slash answers only to the bound escrow.
    for (const role of [await registry.DEFAULT_ADMIN_ROLE(), "0x" + "11".repeat(32)]) {
      if (role !== (await registry.DEFAULT_ADMIN_ROLE())) await registry.connect(admin).grantRole(role, admin.address);
      await expect(registry.connect(admin).slash(providerId)).to.be.revertedWithCustomError(registry, "RegistryNotEscrow").withArgs(admin.address);
    }
    await expect(registry.connect(admin).bindEscrow(admin.address)).to.be.revertedWithCustomError(registry, "RegistryEscrowLocked");
    // The admin-only mutators of each contract, exhaustively: none moves a stake, a budget or a balance.
    const adminOnly = {
      registry: ["setMinStake"],
      escrow: ["setFee", "setTreasury"],
      ledger: [],
      marketplace: ["setTreasury"],
    };
    const accessControl = [
      "acceptDefaultAdminTransfer", "beginDefaultAdminTransfer", "cancelDefaultAdminTransfer", "changeDefaultAdminDelay",
      "grantRole", "renounceRole", "revokeRole", "rollbackDefaultAdminDelay",
    ];
    for (const [name, contract] of Object.entries({ registry, escrow, ledger: m.ledger, marketplace: m.marketplace })) {
      const adminRole = await contract.DEFAULT_ADMIN_ROLE();
      const guarded: string[] = [];
      for (const fragment of contract.interface.fragments) {
        if (fragment.type !== "function" || !("stateMutability" in fragment) || ["view", "pure"].includes(fragment.stateMutability as string)) continue;
        const fn = fragment as import("ethers").FunctionFragment;
        if (accessControl.includes(fn.name)) continue;
        // A call by a stranger that fails with the admin role's error is admin-only.
        const args = fn.inputs.map((input) => input.baseType === "array" ? [] : input.baseType === "tuple" ? undefined : input.type === "address" ? m.stranger.address : input.type === "bool" ? false : input.type.startsWith("bytes") ? "0x" + "00".repeat(Number(input.type.slice(5)) || 0) : 1n);
        if (args.includes(undefined)) continue; // tuple inputs: user functions (budgets, sessions, flows)
        try {
          await contract.connect(m.stranger).getFunction(fn.selector).staticCall(...args);
        } catch (error) {
          const data = (error as { data?: string | { data?: string } }).data;
          const decoded = contract.interface.parseError((typeof data === "string" ? data : data?.data) ?? "0x");
          if (decoded?.name === "AccessControlUnauthorizedAccount" && decoded.args[1] === adminRole) guarded.push(fn.name);
        }
      }
      expect(guarded.sort(), name).to.deep.equal([...adminOnly[name as keyof typeof adminOnly]].sort());
    }
    expect(await escrow.feeBps()).to.equal(250n);
  });

  it("issue 11 §3: the fee a session pays is fixed when it opens; a raise applies only to sessions opened afterwards", async () => {
    const m = await setupMarket();
    const { escrow, ledger, admin, agent, providerOwner, treasury, terms, sign } = m;
    const before = await terms();
    await openByAgent(escrow, agent, before);
    await escrow.connect(admin).setFee(1_000);
    // Terms signed at the old fee can no longer open a session...
    const stale = await terms();
    await expect(escrow.connect(agent).openSession({ ...stale, feeBps: 250 }, NO_SIGNATURE))
      .to.be.revertedWithCustomError(escrow, "EscrowFeeMismatch")
      .withArgs(1_000n, 250n);
    // ...but the session opened before the raise settles at its own 2.5%.
    await escrow.settle([await sign(voucher(before, { sequence: 1, cumulativeCost: 4n * USDC }))]);
    expect(await ledger.balanceOf(treasury.address)).to.equal(feeOf(4n * USDC, 250n));
    expect(await ledger.balanceOf(providerOwner.address)).to.equal(4n * USDC - feeOf(4n * USDC, 250n));
    // A session opened afterwards pays 10%.
    const after = await terms();
    expect(after.feeBps).to.equal(1_000);
    await openByAgent(escrow, agent, after);
    await escrow.settle([await sign(voucher(after, { sequence: 1, cumulativeCost: 2n * USDC }))]);
    expect(await ledger.balanceOf(treasury.address)).to.equal(feeOf(4n * USDC, 250n) + feeOf(2n * USDC, 1_000n));
  });

  it("issue 11 §3: compliance can freeze no custodian, so no budget, lock, stake or pending payment", async () => {
    const m = await setupMarket();
    const { ledger, admin, time } = m;
    await ledger.connect(admin).grantRole(await ledger.COMPLIANCE_ROLE(), admin.address);
    const until = (await time.latest()) + DAY;
    for (const custodian of [m.escrow, m.registry, m.marketplace]) {
      const address = await custodian.getAddress();
      await expect(ledger.connect(admin).freeze(address, until, 1))
        .to.be.revertedWithCustomError(ledger, "LedgerCustodianNotFreezable")
        .withArgs(address);
      expect(await ledger.canMove(address)).to.equal(true);
    }
  });

  it("issue 11 §3: no split, flow or referral can credit a custodian, whose balance only accounts for others' funds", async () => {
    const m = await setupMarket();
    const { ledger, marketplace, stranger, others } = m;
    for (const custodian of [m.escrow, m.registry, marketplace]) {
      const address = await custodian.getAddress();
      const [low, high] = [address, others[0].address].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
      await expect(ledger.createSplit({ recipients: [{ account: low, share: 500_000 }], remainderRecipient: high }))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidReceiver")
        .withArgs(address);
      const flow = flowOf({ fixedAmounts: [{ recipient: account(address), amount: 1n }] });
      await expect(marketplace.connect(stranger).list(metadataOf(), 100n, flow, ZeroAddress))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceFlowInvalidRecipient")
        .withArgs(0n);
      await expect(marketplace.connect(stranger).setReferrer(address))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceCustodianReferrer")
        .withArgs(address);
      // Named implicitly (at a listing), a custodian referrer is ignored, as a self-referral is.
      await marketplace.connect(others[1]).list(metadataOf(), 100n, flowOf(), address);
      expect(await marketplace.referrerOf(others[1].address)).to.equal(ZeroAddress);
    }
  });
});
