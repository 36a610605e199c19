import { expect } from "chai";
import { hashStruct, hashTypedData, type Address } from "viem";
import { escrowDomain, sessionTermsTypes, voucherTypes } from "../../sdk/src/typed-data.ts";
import {
  DAY,
  NO_SIGNATURE,
  USDC,
  buildTerms,
  feeOf,
  latestTime,
  openByAgent,
  registerProvider,
  sessionIdOf,
  setupMarket,
  signBoth,
  signOpen,
  voucher,
  type SessionTerms,
  type SignedVoucher,
} from "./helpers/escrow.ts";
import { signPermit } from "./helpers/usdc.ts";

describe("ComputeEscrow: user flows", () => {
  it("exposes its wiring: token, registry, ledger, challenge window, fee and treasury", async () => {
    const { escrow, usdc, registry, ledger, treasury } = await setupMarket();
    expect(await escrow.token()).to.equal(await usdc.getAddress());
    expect(await escrow.registry()).to.equal(await registry.getAddress());
    expect(await escrow.ledger()).to.equal(await ledger.getAddress());
    expect(await escrow.challengeWindow()).to.equal(BigInt(DAY));
    expect(await escrow.feeBps()).to.equal(250n);
    expect(await escrow.treasury()).to.equal(treasury.address);
  });

  describe("budgets", () => {
    it("createBudget pulls the approved deposit and whitelists the agents", async () => {
      const m = await setupMarket();
      const { escrow, usdc, creator, agent, others } = m;
      const expiry = (await latestTime(escrow)) + 10 * DAY;
      await usdc.mint(creator.address, 50n * USDC);
      await usdc.connect(creator).approve(await escrow.getAddress(), 50n * USDC);
      await expect(escrow.connect(creator).createBudget(50n * USDC, 5n * USDC, expiry, [agent.address, others[0].address]))
        .to.emit(escrow, "BudgetCreated")
        .withArgs(2n, creator.address, 50n * USDC, 5n * USDC, expiry)
        .and.to.emit(escrow, "AgentAllowedSet")
        .withArgs(2n, others[0].address, true);
      const budget = await escrow.getBudget(2n);
      expect(budget.creator).to.equal(creator.address);
      expect(budget.available).to.equal(50n * USDC);
      expect(budget.perSessionLimit).to.equal(5n * USDC);
      expect(budget.expiry).to.equal(BigInt(expiry));
      expect(await escrow.isAgentAllowed(2n, agent.address)).to.equal(true);
      expect(await escrow.isAgentAllowed(2n, others[0].address)).to.equal(true);
      expect(await escrow.isAgentAllowed(2n, others[1].address)).to.equal(false);
      // The deposit sits in the ledger as the escrow's balance (the escrow holds no USDC itself).
      expect(await m.ledger.balanceOf(await escrow.getAddress())).to.equal(150n * USDC);
      expect(await usdc.balanceOf(await m.ledger.getAddress())).to.equal(150n * USDC + (await m.registry.minStake()));
      expect(await usdc.balanceOf(await escrow.getAddress())).to.equal(0n);
      expect(await usdc.balanceOf(creator.address)).to.equal(0n);
    });

    it("createBudgetWithPermit funds a budget from an EIP-2612 permit (domain USD Coin / 2)", async () => {
      const m = await setupMarket();
      const { escrow, usdc, creator, agent, stranger } = m;
      const amount = 7n * USDC;
      await usdc.mint(creator.address, amount);
      const escrowAddress = await escrow.getAddress();
      const deadline = (await latestTime(escrow)) + 3600;
      const expiry = (await latestTime(escrow)) + 10 * DAY;
      const sig = await signPermit(usdc, creator, escrowAddress, amount, deadline);
      expect(await usdc.allowance(creator.address, escrowAddress)).to.equal(0n);
      // A front-runner spending the permit first does not break the creation (tryPermit).
      await usdc.connect(stranger)["permit(address,address,uint256,uint256,uint8,bytes32,bytes32)"](
        creator.address, escrowAddress, amount, deadline, sig.v, sig.r, sig.s,
      );
      await expect(
        escrow.connect(creator).createBudgetWithPermit(amount, amount, expiry, [agent.address], deadline, sig.v, sig.r, sig.s),
      ).to.emit(escrow, "BudgetCreated");
      expect((await escrow.getBudget(2n)).available).to.equal(amount);
      expect(await usdc.balanceOf(creator.address)).to.equal(0n);
      expect(await usdc.nonces(creator.address)).to.equal(1n);
    });

    it("createBudgetWithPermit works without a front-runner", async () => {
      const m = await setupMarket();
      const { escrow, usdc, creator, agent } = m;
      const amount = 3n * USDC;
      await usdc.mint(creator.address, amount);
      const deadline = (await latestTime(escrow)) + 3600;
      const sig = await signPermit(usdc, creator, await escrow.getAddress(), amount, deadline);
      await escrow
        .connect(creator)
        .createBudgetWithPermit(amount, amount, deadline + DAY, [agent.address], deadline, sig.v, sig.r, sig.s);
      expect((await escrow.getBudget(2n)).available).to.equal(amount);
    });

    it("anyone can top a budget up", async () => {
      const { escrow, usdc, stranger, creator, budgetId } = await setupMarket();
      await usdc.mint(stranger.address, 5n * USDC);
      await usdc.connect(stranger).approve(await escrow.getAddress(), 5n * USDC);
      await expect(escrow.connect(stranger).topUp(budgetId, 5n * USDC))
        .to.emit(escrow, "BudgetToppedUp")
        .withArgs(budgetId, stranger.address, 5n * USDC);
      expect((await escrow.getBudget(budgetId)).available).to.equal(105n * USDC);
      expect((await escrow.getBudget(budgetId)).creator).to.equal(creator.address);
    });

    it("setAgentsAllowed adds and removes agents (creator only)", async () => {
      const { escrow, creator, agent, others, stranger, budgetId } = await setupMarket();
      await expect(escrow.connect(creator).setAgentsAllowed(budgetId, [others[0].address, others[1].address], true))
        .to.emit(escrow, "AgentAllowedSet")
        .withArgs(budgetId, others[1].address, true);
      await escrow.connect(creator).setAgentsAllowed(budgetId, [agent.address], false);
      expect(await escrow.isAgentAllowed(budgetId, agent.address)).to.equal(false);
      expect(await escrow.isAgentAllowed(budgetId, others[0].address)).to.equal(true);
      await expect(escrow.connect(stranger).setAgentsAllowed(budgetId, [stranger.address], true))
        .to.be.revertedWithCustomError(escrow, "EscrowNotBudgetCreator")
        .withArgs(budgetId, stranger.address);
    });

    it("setBudgetTerms changes the per-session limit and expiry", async () => {
      const { escrow, creator, budgetId, terms, agent } = await setupMarket();
      const expiry = (await latestTime(escrow)) + 60 * DAY;
      await expect(escrow.connect(creator).setBudgetTerms(budgetId, 2n * USDC, expiry))
        .to.emit(escrow, "BudgetTermsSet")
        .withArgs(budgetId, 2n * USDC, expiry);
      const budget = await escrow.getBudget(budgetId);
      expect(budget.perSessionLimit).to.equal(2n * USDC);
      expect(budget.expiry).to.equal(BigInt(expiry));
      const t = await terms({ maxSpend: 2n * USDC + 1n });
      await expect(escrow.connect(agent).openSession(t, NO_SIGNATURE))
        .to.be.revertedWithCustomError(escrow, "EscrowSessionLimitExceeded")
        .withArgs(budgetId, 2n * USDC, 2n * USDC + 1n);
      await expect(escrow.connect(creator).setBudgetTerms(budgetId, 2n * USDC, await latestTime(escrow)))
        .to.be.revertedWithCustomError(escrow, "EscrowInvalidExpiry");
      await expect(escrow.connect(creator).setBudgetTerms(budgetId, 0n, expiry))
        .to.be.revertedWithCustomError(escrow, "EscrowInvalidAmount");
    });

    it("refund sends unallocated funds to the creator's wallet at any time, never locked ones", async () => {
      const { escrow, ledger, usdc, creator, agent, budgetId, terms } = await setupMarket();
      await openByAgent(escrow, agent, await terms({ maxSpend: 10n * USDC }));
      await expect(escrow.connect(creator).refund(budgetId, 30n * USDC))
        .to.emit(escrow, "BudgetRefunded")
        .withArgs(budgetId, creator.address, 30n * USDC, false);
      expect(await usdc.balanceOf(creator.address)).to.equal(30n * USDC);
      await expect(escrow.connect(creator).refund(budgetId, 60n * USDC + 1n))
        .to.be.revertedWithCustomError(escrow, "EscrowInsufficientBudget")
        .withArgs(budgetId, 60n * USDC, 60n * USDC + 1n);
      await escrow.connect(creator).refund(budgetId, 60n * USDC);
      expect((await escrow.getBudget(budgetId)).available).to.equal(0n);
      expect(await ledger.balanceOf(await escrow.getAddress())).to.equal(10n * USDC);
      expect(await usdc.balanceOf(creator.address)).to.equal(90n * USDC);
    });

    it("returnExpired: anyone after expiry, never before; credits the creator's ledger balance", async () => {
      const { escrow, ledger, usdc, creator, stranger, budgetId, time } = await setupMarket();
      const { expiry } = await escrow.getBudget(budgetId);
      await time.setNextBlockTimestamp(expiry - 1n);
      await expect(escrow.connect(stranger).returnExpired(budgetId))
        .to.be.revertedWithCustomError(escrow, "EscrowBudgetNotExpired")
        .withArgs(budgetId, expiry);
      await time.setNextBlockTimestamp(expiry);
      await expect(escrow.connect(stranger).returnExpired(budgetId))
        .to.emit(escrow, "BudgetRefunded")
        .withArgs(budgetId, creator.address, 100n * USDC, true)
        .and.to.emit(ledger, "Transferred")
        .withArgs(await escrow.getAddress(), creator.address, 100n * USDC);
      expect(await ledger.balanceOf(creator.address)).to.equal(100n * USDC);
      expect(await ledger.balanceOf(await escrow.getAddress())).to.equal(0n);
      await ledger.connect(creator).withdraw(creator.address, 100n * USDC);
      expect(await usdc.balanceOf(creator.address)).to.equal(100n * USDC);
      await expect(escrow.connect(stranger).returnExpired(budgetId))
        .to.be.revertedWithCustomError(escrow, "EscrowInvalidAmount")
        .withArgs(0n);
    });
  });

  describe("opening sessions", () => {
    it("the agent opens a session itself", async () => {
      const { escrow, agent, budgetId, terms, window } = await setupMarket();
      const t = await terms();
      const id = sessionIdOf(t);
      expect(await escrow.connect(agent).openSession.staticCall(t, NO_SIGNATURE)).to.equal(id);
      await expect(escrow.connect(agent).openSession(t, NO_SIGNATURE))
        .to.emit(escrow, "SessionOpened")
        .withArgs(id, budgetId, agent.address, Object.values(t));
      expect((await escrow.getBudget(budgetId)).available).to.equal(90n * USDC);
      const state = await escrow.getSession(id);
      expect(state.claimEnd).to.equal(BigInt(t.deadline + window));
      expect(state.settled).to.equal(0n);
      expect(state.sequence).to.equal(0n);
      await expect(escrow.connect(agent).openSession(t, NO_SIGNATURE))
        .to.be.revertedWithCustomError(escrow, "EscrowSessionExists")
        .withArgs(id);
    });

    it("anyone opens a session gaslessly with the agent's signature", async () => {
      const { escrow, agent, stranger, budgetId, terms, domain } = await setupMarket();
      const t = await terms();
      const signature = await signOpen(agent, domain, t);
      await expect(escrow.connect(stranger).openSession(t, signature))
        .to.emit(escrow, "SessionOpened")
        .withArgs(sessionIdOf(t), budgetId, agent.address, Object.values(t));
    });

    it("openSessions opens a batch", async () => {
      const { escrow, agent, stranger, budgetId, terms, domain } = await setupMarket();
      const all = [await terms(), await terms({ maxSpend: 3n * USDC }), await terms({ maxSpend: 1n * USDC })];
      const requests = await Promise.all(all.map(async (t) => ({ terms: t, agentSignature: await signOpen(agent, domain, t) })));
      expect(await escrow.connect(stranger).openSessions.staticCall(requests)).to.deep.equal(all.map(sessionIdOf));
      await escrow.connect(stranger).openSessions(requests);
      for (const t of all) expect((await escrow.getSession(sessionIdOf(t))).claimEnd).to.be.greaterThan(1n);
      expect((await escrow.getBudget(budgetId)).available).to.equal(86n * USDC);
    });
  });

  describe("settlement", () => {
    it("settle pays only the difference to what was settled, fee to the treasury", async () => {
      const { escrow, ledger, registry, agent, stranger, providerOwner, treasury, providerId, terms, sign } =
        await setupMarket();
      const t = await terms();
      const id = await openByAgent(escrow, agent, t);
      const v1 = voucher(t, { sequence: 1, cumulativeCost: 1n * USDC });
      await expect(escrow.connect(stranger).settle([await sign(v1)]))
        .to.emit(escrow, "VoucherSettled")
        .withArgs(id, 1n, 1n * USDC);
      const v2 = voucher(t, { sequence: 4, cumulativeCost: 3n * USDC + 7n });
      await expect(escrow.connect(stranger).settle([await sign(v2)]))
        .to.emit(escrow, "VoucherSettled")
        .withArgs(id, 4n, 2n * USDC + 7n);
      const fees = feeOf(1n * USDC) + feeOf(2n * USDC + 7n);
      expect(await ledger.balanceOf(treasury.address)).to.equal(fees);
      expect(await ledger.balanceOf(providerOwner.address)).to.equal(3n * USDC + 7n - fees);
      const state = await escrow.getSession(id);
      expect(state.settled).to.equal(3n * USDC + 7n);
      expect(state.sequence).to.equal(4n);
      // Provider metrics equal the voucher totals (deltas summed).
      const metrics = await registry.getMetrics(providerId);
      expect(metrics.requests).to.equal(BigInt(v2.requestCount));
      expect(metrics.inputTokens).to.equal(BigInt(v2.inputTokens));
      expect(metrics.outputTokens).to.equal(BigInt(v2.outputTokens));
      expect(metrics.latencyMs).to.equal(BigInt(v2.latencyMs));
      expect(metrics.earnings).to.equal(3n * USDC + 7n - fees);
    });

    it("settleBatch aggregates several sessions of two providers exactly", async () => {
      const m = await setupMarket();
      const { escrow, ledger, registry, usdc, agent, stranger, others, providerOwner, treasury, providerId, domain } = m;
      const [owner2, signer2, payout2] = [others[0], others[1], others[2]];
      const provider2 = await registerProvider(usdc, registry, {
        owner: owner2,
        receiptSigner: signer2.address,
        payout: payout2.address,
        minChargePerCall: 5,
        models: [{ inputPricePer1K: 7, outputPricePer1K: 9 }],
      });
      const sessions: { terms: SessionTerms; signer: typeof signer2; cost: bigint; seq: number }[] = [];
      const costs1 = [1_234_567n, 2_000_001n, 333n];
      const costs2 = [4_444_449n, 999_999n];
      for (const [i, cost] of costs1.entries())
        sessions.push({ terms: await m.terms({ maxSpend: 5n * USDC }), signer: m.receiptSigner, cost, seq: i + 1 });
      for (const [i, cost] of costs2.entries())
        sessions.push({ terms: await m.terms({ providerId: provider2, maxSpend: 5n * USDC }), signer: signer2, cost, seq: i + 2 });
      for (const s of sessions) await openByAgent(escrow, agent, s.terms);
      // Interleave the providers in the batch.
      const order = [0, 3, 1, 4, 2];
      const batch: SignedVoucher[] = [];
      for (const i of order) {
        const s = sessions[i];
        batch.push(await signBoth(domain, voucher(s.terms, { sequence: s.seq, cumulativeCost: s.cost }), agent, s.signer));
      }
      const ledgerUsdc = await usdc.balanceOf(await ledger.getAddress());
      const tx = await escrow.connect(stranger).settle(batch);
      const receipt = (await tx.wait())!;
      const sum1 = costs1.reduce((a, b) => a + b);
      const sum2 = costs2.reduce((a, b) => a + b);
      // Each session pays the fee its terms fixed, rounded down per settlement.
      const fee1 = costs1.map((c) => feeOf(c)).reduce((a, b) => a + b);
      const fee2 = costs2.map((c) => feeOf(c)).reduce((a, b) => a + b);
      expect(await ledger.balanceOf(providerOwner.address)).to.equal(sum1 - fee1);
      expect(await ledger.balanceOf(payout2.address)).to.equal(sum2 - fee2);
      expect(await ledger.balanceOf(treasury.address)).to.equal(fee1 + fee2);
      // One internal ledger transfer: three Transferred events (two payouts and the fee), no token moved.
      const moved = receipt.logs.filter((l) => l.address === (ledger.target as string) && ledger.interface.parseLog(l)?.name === "Transferred");
      expect(moved.length).to.equal(3);
      const expectMetrics = async (id: bigint, seqs: number[], sum: bigint, fee: bigint) => {
        const metrics = await registry.getMetrics(id);
        const total = (f: (n: number) => number) => BigInt(seqs.reduce((a, n) => a + f(n), 0));
        expect(metrics.requests).to.equal(total((n) => n));
        expect(metrics.inputTokens).to.equal(total((n) => n * 1000));
        expect(metrics.outputTokens).to.equal(total((n) => n * 500));
        expect(metrics.latencyMs).to.equal(total((n) => n * 120));
        expect(metrics.earnings).to.equal(sum - fee);
      };
      await expectMetrics(providerId, [1, 2, 3], sum1, fee1);
      await expectMetrics(provider2, [2, 3], sum2, fee2);
      expect(await usdc.balanceOf(await ledger.getAddress())).to.equal(ledgerUsdc);
    });

    it("closeCooperative settles a final voucher and returns the rest to the budget", async () => {
      const { escrow, ledger, agent, stranger, providerOwner, budgetId, terms, sign } = await setupMarket();
      const t = await terms();
      const id = await openByAgent(escrow, agent, t);
      const notFinal = await sign(voucher(t, { sequence: 2, cumulativeCost: 4n * USDC }));
      await expect(escrow.connect(stranger).closeCooperative([notFinal]))
        .to.be.revertedWithCustomError(escrow, "EscrowVoucherNotFinal")
        .withArgs(id);
      const final = await sign(voucher(t, { sequence: 2, cumulativeCost: 4n * USDC, isFinal: true }));
      await expect(escrow.connect(stranger).closeCooperative([final]))
        .to.emit(escrow, "SessionFinalized")
        .withArgs(id, 4n * USDC, 6n * USDC);
      expect((await escrow.getSession(id)).claimEnd).to.equal(1n);
      expect((await escrow.getBudget(budgetId)).available).to.equal(96n * USDC);
      expect(await ledger.balanceOf(providerOwner.address)).to.equal(4n * USDC - feeOf(4n * USDC));
    });

    it("closeCooperativeBatch closes several sessions", async () => {
      const { escrow, agent, stranger, budgetId, terms, sign } = await setupMarket();
      const ts = [await terms(), await terms({ maxSpend: 2n * USDC })];
      for (const t of ts) await openByAgent(escrow, agent, t);
      const batch = [
        await sign(voucher(ts[0], { sequence: 1, cumulativeCost: 1n * USDC, isFinal: true })),
        await sign(voucher(ts[1], { sequence: 3, cumulativeCost: 2n * USDC, isFinal: true })),
      ];
      await escrow.connect(stranger).closeCooperative(batch);
      for (const t of ts) expect((await escrow.getSession(sessionIdOf(t))).claimEnd).to.equal(1n);
      expect((await escrow.getBudget(budgetId)).available).to.equal(97n * USDC);
    });

    for (const who of ["agent", "creator"] as const) {
      it(`requestClose by the ${who}, then finalize after the window`, async () => {
        const m = await setupMarket();
        const { escrow, agent, creator, stranger, budgetId, terms, sign, time, window } = m;
        const t = await terms();
        const id = await openByAgent(escrow, agent, t);
        await escrow.connect(stranger).settle([await sign(voucher(t, { sequence: 1, cumulativeCost: 2n * USDC }))]);
        await expect(escrow.connect(stranger).requestClose(t))
          .to.be.revertedWithCustomError(escrow, "EscrowNotAuthorized")
          .withArgs(id, stranger.address);
        const caller = who === "agent" ? agent : creator;
        const now = (await time.latest()) + 1;
        await time.setNextBlockTimestamp(now);
        await expect(escrow.connect(caller).requestClose(t))
          .to.emit(escrow, "CloseRequested")
          .withArgs(id, caller.address, now + window);
        expect((await escrow.getSession(id)).claimEnd).to.equal(BigInt(now + window));
        await expect(escrow.connect(stranger).finalize(t))
          .to.be.revertedWithCustomError(escrow, "EscrowClaimWindowOpen")
          .withArgs(id, now + window);
        await time.increaseTo(now + window);
        await expect(escrow.connect(stranger).finalize(t))
          .to.emit(escrow, "SessionFinalized")
          .withArgs(id, 2n * USDC, 8n * USDC);
        expect((await escrow.getBudget(budgetId)).available).to.equal(98n * USDC);
        await expect(escrow.connect(stranger).finalize(t))
          .to.be.revertedWithCustomError(escrow, "EscrowSessionNotOpen")
          .withArgs(id);
      });
    }

    it("closeByProvider: owner or receipt signer finalize at once", async () => {
      const { escrow, agent, stranger, providerOwner, receiptSigner, budgetId, terms, sign } = await setupMarket();
      const t1 = await terms();
      const t2 = await terms();
      await openByAgent(escrow, agent, t1);
      await openByAgent(escrow, agent, t2);
      await escrow.settle([await sign(voucher(t1, { sequence: 1, cumulativeCost: 1n * USDC }))]);
      await expect(escrow.connect(stranger).closeByProvider(t1))
        .to.be.revertedWithCustomError(escrow, "EscrowNotAuthorized")
        .withArgs(sessionIdOf(t1), stranger.address);
      await expect(escrow.connect(providerOwner).closeByProvider(t1))
        .to.emit(escrow, "SessionFinalized")
        .withArgs(sessionIdOf(t1), 1n * USDC, 9n * USDC);
      await expect(escrow.connect(receiptSigner).closeByProvider(t2))
        .to.emit(escrow, "SessionFinalized")
        .withArgs(sessionIdOf(t2), 0n, 10n * USDC);
      expect((await escrow.getBudget(budgetId)).available).to.equal(99n * USDC);
    });

    it("finalize after deadline + challenge window without any close request", async () => {
      const { escrow, agent, stranger, budgetId, terms, sign, time, window } = await setupMarket();
      const t = await terms();
      const id = await openByAgent(escrow, agent, t);
      await time.setNextBlockTimestamp(t.deadline + window - 1);
      await escrow.connect(stranger).settle([await sign(voucher(t, { sequence: 1, cumulativeCost: 5n * USDC }))]);
      await expect(escrow.connect(stranger).finalize(t)).to.emit(escrow, "SessionFinalized").withArgs(id, 5n * USDC, 5n * USDC);
      expect((await escrow.getBudget(budgetId)).available).to.equal(95n * USDC);
    });

    it("a payout that is a 3-recipient ledger split holds the earnings until distributed, then credits each recipient exactly", async () => {
      const m = await setupMarket();
      const { escrow, ledger, registry, usdc, agent, stranger, others, treasury, domain } = m;
      const accounts = [others[3], others[4], others[5]].map((s) => s.address).sort((a, b) =>
        BigInt(a) < BigInt(b) ? -1 : 1,
      );
      const definition = {
        recipients: [
          { account: accounts[0], share: 500_000 },
          { account: accounts[1], share: 300_000 },
        ],
        remainderRecipient: accounts[2],
      };
      const split = await ledger.createSplit.staticCall(definition);
      await ledger.createSplit(definition);
      const signer2 = others[6];
      const provider2 = await registerProvider(usdc, registry, { owner: others[7], receiptSigner: signer2.address, payout: split });
      const t = await m.terms({ providerId: provider2 });
      await openByAgent(escrow, agent, t);
      const cost = 1_000_003n;
      await escrow.connect(stranger).settle([await signBoth(domain, voucher(t, { sequence: 1, cumulativeCost: cost }), agent, signer2)]);
      const fee = feeOf(cost); // 25_000
      const earnings = cost - fee; // 975_003
      expect(await ledger.balanceOf(treasury.address)).to.equal(fee);
      // Settlement credits the split as one account: its cost does not grow with the split's size.
      expect(await ledger.balanceOf(split)).to.equal(earnings);
      expect(await ledger.balanceOf(accounts[0])).to.equal(0n);
      const credits = [(earnings * 500_000n) / 1_000_000n, (earnings * 300_000n) / 1_000_000n, (earnings * 200_000n) / 1_000_000n];
      await expect(ledger.connect(stranger).distribute(split))
        .to.emit(ledger, "SplitDistributed")
        .withArgs(split, earnings, credits);
      for (const [i, account] of accounts.entries()) expect(await ledger.balanceOf(account)).to.equal(credits[i]);
      expect(await ledger.balanceOf(split)).to.equal(0n);
      const [received, dust] = await ledger.splitTotals(split);
      expect(received).to.equal(earnings);
      expect(dust).to.equal(2n);
    });

    it("price snapshot: a reprice does not change an open session", async () => {
      const { escrow, registry, ledger, agent, stranger, providerOwner, providerId, terms, sign } = await setupMarket();
      const old = await terms();
      await openByAgent(escrow, agent, old);
      await expect(registry.connect(providerOwner).repriceModel(providerId, 0, 999, 1999)).to.emit(registry, "ModelRepriced");
      const stale = await buildTerms(registry, { ...old, budgetId: old.budgetId, providerId, maxSpend: old.maxSpend, salt: 777n });
      expect(stale.inputPricePer1K).to.equal(999);
      const mismatched = { ...stale, inputPricePer1K: old.inputPricePer1K, outputPricePer1K: old.outputPricePer1K };
      await expect(escrow.connect(agent).openSession(mismatched, NO_SIGNATURE))
        .to.be.revertedWithCustomError(escrow, "EscrowPriceMismatch")
        .withArgs(providerId, 0);
      await openByAgent(escrow, agent, stale); // current prices open fine
      // The old session still settles at its own terms.
      await escrow.connect(stranger).settle([await sign(voucher(old, { sequence: 1, cumulativeCost: 2n * USDC }))]);
      expect(await ledger.balanceOf(providerOwner.address)).to.equal(2n * USDC - feeOf(2n * USDC));
      expect((await escrow.getSession(sessionIdOf(old))).settled).to.equal(2n * USDC);
    });
  });

  describe("EIP-712", () => {
    it("openDigest, voucherDigest and sessionIdOf equal viem's hashTypedData / hashStruct", async () => {
      const { escrow, terms, chainId } = await setupMarket();
      const domain = escrowDomain(chainId, (await escrow.getAddress()) as Address);
      const t = await terms({ salt: 2n ** 64n - 1n, maxSpend: 12_345_678n });
      expect(await escrow.sessionIdOf(t)).to.equal(
        hashStruct({ data: t, primaryType: "SessionTerms", types: sessionTermsTypes }),
      );
      expect(await escrow.openDigest(t)).to.equal(
        hashTypedData({ domain, types: sessionTermsTypes, primaryType: "SessionTerms", message: t }),
      );
      const v = voucher(t, {
        sequence: 2 ** 32 - 1,
        cumulativeCost: 2n ** 64n - 1n,
        requestCount: 3,
        inputTokens: 4,
        outputTokens: 5,
        latencyMs: 6,
        receiptHead: `0x${"ab".repeat(32)}`,
        isFinal: true,
      });
      expect(await escrow.voucherDigest(v)).to.equal(
        hashTypedData({ domain, types: voucherTypes, primaryType: "Voucher", message: v }),
      );
    });
  });
});
