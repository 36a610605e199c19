import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import { expect } from "chai";
import { ZeroAddress } from "ethers";
import {
  AUTODEV_PRICE,
  GAS_CAP,
  SplitModel,
  Status,
  account,
  agentMemo,
  autoDevFlow,
  budget,
  buildWorstCase,
  createSplit,
  ethersMaxUint,
  expectConservation,
  expectedCredits,
  flowOf,
  latestAgents,
  flowTuple,
  freshAddress,
  link,
  metadataOf,
  offlineWallet,
  settled,
  setupAgents,
  signAuthorization,
  signPayFromBalance,
  signReferral,
  signTransferAuthorization,
  signWithdrawal,
  splitPayment,
  splitRecipient,
  transfersFrom,
  type Agents,
  type Flow,
  type Payment,
  type WorstCase,
} from "./helpers/agents.ts";
import { DAY, USDC, createBudget } from "./helpers/escrow.ts";
import { signPermit } from "./helpers/usdc.ts";
import type { AgentMarketplace, MockUSDC, SplitsLedger } from "../../types/ethers-contracts/index.ts";

function cast(a: Agents) {
  return { alice: a.alice.address, carol: a.carol.address, dave: a.dave.address, grace: a.grace.address, heidi: a.heidi.address };
}

/** Lists AutoDev (owner Alice, referred by Eve) and returns its id, payment address and flow. */
async function listAutoDev(a: Agents) {
  const flow = autoDevFlow(cast(a));
  const { agentId, paymentAddress } = await a.list(a.alice, flow, AUTODEV_PRICE, { referrer: a.eve.address });
  return { agentId, paymentAddress, flow };
}

/** Ledger balances of every account in `expected`, checked to the unit. */
async function expectCredits(a: Agents, before: Map<string, bigint>, expected: Map<string, bigint>) {
  for (const [who, amount] of expected) {
    expect(await a.ledger.balanceOf(who), who).to.equal((before.get(who) ?? 0n) + amount);
  }
}

async function ledgerBalances(a: Agents, who: string[]): Promise<Map<string, bigint>> {
  return new Map(await Promise.all(who.map(async (w) => [w.toLowerCase(), await a.ledger.balanceOf(w)] as const)));
}

describe("AgentMarketplace: payments and distribution", () => {
  // Conservation after every scenario (besides the checks inside them): see `expectConservation`.
  afterEach(async function () {
    if (this.currentTest?.state === "passed") await latestAgents()?.conservation();
  });

  describe("the OpenAgents example", () => {
    it("Bob pays 12,000 for an AutoDev job: every contributor is credited to the unit and all 9 withdraw", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, usdc, alice, bob, carol, dave, eve, frank, grace, heidi, treasury, stranger, marketplaceAddress } = a;
      const { agentId, paymentAddress, flow } = await listAutoDev(a);
      expect(await marketplace.referrerOf(alice.address)).to.equal(eve.address);

      // Bob tops up 20,000 with an EIP-3009 authorization that a relayer submits (gasless for him)…
      await (await usdc.mint(bob.address, 20_000n)).wait();
      const ledgerAddress = await ledger.getAddress();
      const { authorization: au, signature: auSig } = await signAuthorization(usdc, bob, ledgerAddress, 20_000n, { kind: "receive" });
      await expect(ledger.connect(stranger).depositWithAuthorization(bob.address, au.value, au.validAfter, au.validBefore, au.nonce, auSig))
        .to.emit(ledger, "Paid")
        .withArgs(bob.address, bob.address, 20_000n);
      // …lets the marketplace spend one job's price of it, and pays, naming Frank (who referred him).
      await (await ledger.connect(bob).approve(marketplaceAddress, AUTODEV_PRICE)).wait();
      const pay = marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE, frank.address);
      await expect(pay).to.emit(marketplace, "ReferrerRecorded").withArgs(bob.address, frank.address);
      // The payment waits, in the same transaction, as the marketplace's ledger balance: no token moves.
      await expect(pay).to.emit(ledger, "Transferred").withArgs(bob.address, marketplaceAddress, AUTODEV_PRICE);
      await expect(pay).not.to.emit(usdc, "Transfer");
      expect(await ledger.balanceOf(marketplaceAddress)).to.equal(AUTODEV_PRICE);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(0n);
      expect(await ledger.allowance(bob.address, marketplaceAddress)).to.equal(0n);
      await a.conservation();

      // Anyone distributes.
      const payments: Payment[] = [{ payer: bob.address, referrer: frank.address, amount: AUTODEV_PRICE }];
      const [head] = await marketplace.paymentChain(agentId);
      const distribution = marketplace.connect(stranger).distribute(agentId, flow, payments);
      await expect(distribution)
        .to.emit(marketplace, "PaymentsDistributed")
        .withArgs(agentId, 1n, AUTODEV_PRICE, 0n, settled(head));
      await expect(distribution).not.to.emit(usdc, "Transfer");

      const expected: [HardhatEthersSigner, bigint][] = [
        [alice, 2_000n], // the skill
        [carol, 1_000n], // compute for embeddings and open-model calls
        [dave, 500n], // his API key served the GPT-4 call
        [grace, 300n], // her fine-tuned model
        [heidi, 300n], // her dataset
        [eve, 120n], // she referred Alice
        [frank, 120n], // he referred Bob
        [treasury, 7_660n], // the platform keeps the rest
        [bob, 8_000n], // what is left of Bob's top-up
      ];
      for (const [who, amount] of expected) expect(await ledger.balanceOf(who.address), who.address).to.equal(amount);
      expect(expected.slice(0, 8).reduce((sum, [, amount]) => sum + amount, 0n)).to.equal(AUTODEV_PRICE);
      // Each of the 8 is one ledger credit from the marketplace (was a `Paid` by the marketplace).
      const receipt = await (await distribution).wait();
      expect(transfersFrom(ledger, receipt!.logs, marketplaceAddress)).to.deep.equal(
        new Map(expected.slice(0, 8).map(([who, amount]) => [who.address.toLowerCase(), amount])),
      );
      expect(await usdc.balanceOf(paymentAddress)).to.equal(0n);
      expect(await usdc.balanceOf(marketplaceAddress)).to.equal(0n);
      expect(await ledger.balanceOf(marketplaceAddress)).to.equal(0n);
      await a.conservation();

      // Each of the 9 withdraws everything to their own wallet.
      for (const [who, amount] of expected) {
        const wallet = await usdc.balanceOf(who.address);
        await expect(ledger.connect(who).withdraw(who.address, amount)).to.emit(ledger, "Withdrawn").withArgs(who.address, who.address, amount);
        expect(await usdc.balanceOf(who.address)).to.equal(wallet + amount);
        expect(await ledger.balanceOf(who.address)).to.equal(0n);
      }
      expect(await usdc.balanceOf(ledgerAddress)).to.equal(0n);
      await a.conservation();
    });

    it("the same job paid as an x402 'exact' payment (EIP-3009 to the payment address) splits identically", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, usdc, bob, frank, stranger, treasury } = a;
      const { agentId, paymentAddress, flow } = await listAutoDev(a);
      // Bob names Frank once with a signed referral the relayer submits.
      await (await marketplace.connect(stranger).setReferrerWithSig(bob.address, frank.address, await signReferral(marketplace, bob, frank.address))).wait();
      await (await usdc.mint(bob.address, AUTODEV_PRICE)).wait();
      // What the x402 client signs: TransferWithAuthorization(from Bob, to = payTo = the payment address).
      const { authorization: x, signature } = await signAuthorization(usdc, bob, paymentAddress, AUTODEV_PRICE);
      const tx = marketplace.connect(stranger).payWithAuthorization(agentId, x.from, x.value, x.validAfter, x.validBefore, x.nonce, signature);
      await expect(tx).to.emit(usdc, "AuthorizationUsed").withArgs(bob.address, x.nonce);
      const [head, base, pending] = await marketplace.paymentChain(agentId);
      const payment = { payer: bob.address, referrer: frank.address, amount: AUTODEV_PRICE };
      expect(head).to.equal(link(base, payment));
      expect(pending).to.equal(1n);
      await expect(tx).to.emit(marketplace, "AgentPaid").withArgs(agentId, bob.address, frank.address, AUTODEV_PRICE, head);
      // The payment address pays it into the ledger for the marketplace in the same transaction.
      await expect(tx).to.emit(ledger, "Paid").withArgs(paymentAddress, a.marketplaceAddress, AUTODEV_PRICE);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(0n);
      expect(await ledger.balanceOf(a.marketplaceAddress)).to.equal(AUTODEV_PRICE);
      await a.conservation();

      await (await marketplace.connect(stranger).distribute(agentId, flow, [payment])).wait();
      const people = [a.alice, a.carol, a.dave, a.grace, a.heidi, a.eve, frank, treasury];
      expect(await Promise.all(people.map((p) => ledger.balanceOf(p.address)))).to.deep.equal([
        2_000n, 1_000n, 500n, 300n, 300n, 120n, 120n, 7_660n,
      ]);
      await a.conservation();
    });
  });

  describe("payWithAuthorization", () => {
    async function setup() {
      const a = await setupAgents();
      const agent = await listAutoDev(a);
      await (await a.usdc.mint(a.bob.address, 10n * AUTODEV_PRICE)).wait();
      const submit = (auth: Awaited<ReturnType<typeof signAuthorization>>, agentId = agent.agentId) => {
        const x = auth.authorization;
        return a.marketplace.connect(a.stranger).payWithAuthorization(agentId, x.from, x.value, x.validAfter, x.validBefore, x.nonce, auth.signature);
      };
      const state = async () => [await a.marketplace.paymentChain(agent.agentId), await a.usdc.balanceOf(agent.paymentAddress), await a.usdc.balanceOf(a.bob.address)].toString();
      return { ...a, ...agent, submit, state };
    }

    it("forged, expired, not-yet-valid and replayed authorizations revert in the token and change nothing", async () => {
      const s = await setup();
      const { usdc, bob, stranger, paymentAddress } = s;
      const before = await s.state();
      const forged = await signAuthorization(usdc, stranger, paymentAddress, AUTODEV_PRICE, { from: bob.address });
      await expect(s.submit(forged)).to.be.revertedWithCustomError(usdc, "AuthorizationInvalidSignature").withArgs(bob.address);
      const now = BigInt(await s.connection.networkHelpers.time.latest());
      const expired = await signAuthorization(usdc, bob, paymentAddress, AUTODEV_PRICE, { validBefore: now });
      await expect(s.submit(expired)).to.be.revertedWithCustomError(usdc, "AuthorizationNotValidNow");
      const early = await signAuthorization(usdc, bob, paymentAddress, AUTODEV_PRICE, { validAfter: now + 1000n });
      await expect(s.submit(early)).to.be.revertedWithCustomError(usdc, "AuthorizationNotValidNow");
      // A valid one with a tampered value is another message.
      const valid = await signAuthorization(usdc, bob, paymentAddress, AUTODEV_PRICE);
      await expect(s.submit({ ...valid, authorization: { ...valid.authorization, value: 2n * AUTODEV_PRICE } }))
        .to.be.revertedWithCustomError(usdc, "AuthorizationInvalidSignature")
        .withArgs(bob.address);
      expect(await s.state()).to.equal(before);

      await (await s.submit(valid)).wait();
      const paid = await s.state();
      await expect(s.submit(valid)).to.be.revertedWithCustomError(usdc, "AuthorizationAlreadyUsed").withArgs(bob.address, valid.authorization.nonce);
      expect(await s.state()).to.equal(paid);
      await s.conservation();
    });

    it("cannot be redirected: an authorization to one agent's payment address fails for another agent", async () => {
      const s = await setup();
      const { usdc, bob, marketplace, alice, paymentAddress } = s;
      const { agentId: otherId } = await s.list(alice, autoDevFlow(cast(s)), AUTODEV_PRICE, { name: "Other" });
      const auth = await signAuthorization(usdc, bob, paymentAddress, AUTODEV_PRICE);
      await expect(s.submit(auth, otherId)).to.be.revertedWithCustomError(usdc, "AuthorizationInvalidSignature").withArgs(bob.address);
      expect((await marketplace.paymentChain(otherId))[2]).to.equal(0n);
      await s.conservation();
    });

    it("refuses payments below the price, to paused, retired or unknown agents", async () => {
      const s = await setup();
      const { usdc, bob, marketplace, alice, agentId, paymentAddress } = s;
      const small = await signAuthorization(usdc, bob, paymentAddress, AUTODEV_PRICE - 1n);
      await expect(s.submit(small))
        .to.be.revertedWithCustomError(marketplace, "MarketplacePaymentBelowPrice")
        .withArgs(agentId, AUTODEV_PRICE, AUTODEV_PRICE - 1n);
      const auth = await signAuthorization(usdc, bob, paymentAddress, AUTODEV_PRICE);
      await (await marketplace.connect(alice).pause(agentId)).wait();
      await expect(s.submit(auth)).to.be.revertedWithCustomError(marketplace, "MarketplaceInvalidStatus").withArgs(agentId, Status.Paused);
      await (await marketplace.connect(alice).retire(agentId)).wait();
      await expect(s.submit(auth)).to.be.revertedWithCustomError(marketplace, "MarketplaceInvalidStatus").withArgs(agentId, Status.Retired);
      const unknown = await signAuthorization(usdc, bob, await marketplace.nextPaymentAddress(alice.address), AUTODEV_PRICE);
      await expect(s.submit(unknown, 5n)).to.be.revertedWithCustomError(marketplace, "MarketplaceUnknownAgent").withArgs(5n);
      // The payment address still takes plain transfers; a retired agent's funds are still distributed.
      await (await usdc.connect(bob).transfer(paymentAddress, AUTODEV_PRICE)).wait();
      const [head] = await marketplace.paymentChain(agentId);
      await expect(marketplace.distribute(agentId, s.flow, []))
        .to.emit(marketplace, "PaymentsDistributed")
        .withArgs(agentId, 0n, 0n, AUTODEV_PRICE, head);
      expect(await s.ledger.balanceOf(alice.address)).to.equal(2_000n);
      await s.conservation();
    });

    it("issue 11 §5: an x402 authorization a third party submits to the token first reaches the flow unattributed; only the payer's referral reward goes to the remainder; payWithAuthorization reverts AuthorizationAlreadyUsed", async () => {
      const s = await setup();
      const { usdc, bob, frank, eve, stranger, marketplace, agentId, paymentAddress, flow, treasury, ledger, marketplaceAddress } = s;
      await (await marketplace.connect(bob).setReferrer(frank.address)).wait();
      const auth = await signAuthorization(usdc, bob, paymentAddress, AUTODEV_PRICE);
      const x = auth.authorization;
      // x402 'exact' is EIP-3009 TransferWithAuthorization: the token lets anyone submit it.
      await expect(
        usdc
          .connect(stranger)
          ["transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)"](x.from, x.to, x.value, x.validAfter, x.validBefore, x.nonce, auth.signature),
      )
        .to.emit(usdc, "Transfer")
        .withArgs(bob.address, paymentAddress, AUTODEV_PRICE);
      const [head] = await marketplace.paymentChain(agentId);
      await expect(s.submit(auth)).to.be.revertedWithCustomError(usdc, "AuthorizationAlreadyUsed").withArgs(bob.address, x.nonce);
      expect(await marketplace.paymentChain(agentId)).to.deep.equal([head, head, 0n]);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(AUTODEV_PRICE);
      expect(await ledger.balanceOf(marketplaceAddress)).to.equal(0n);
      await s.conservation();

      // The next distribution (anyone's) moves it into the ledger and splits it as a payment without a payer referrer.
      const tx = marketplace.connect(stranger).distribute(agentId, flow, []);
      await expect(tx).to.emit(marketplace, "PaymentsDistributed").withArgs(agentId, 0n, 0n, AUTODEV_PRICE, head);
      await expect(tx).to.emit(ledger, "Paid").withArgs(paymentAddress, marketplaceAddress, AUTODEV_PRICE);
      const credits = transfersFrom(ledger, (await (await tx).wait())!.logs, marketplaceAddress);
      expect(credits.has(frank.address.toLowerCase())).to.equal(false);
      const people = [s.alice, s.carol, s.dave, s.grace, s.heidi, eve, frank, treasury];
      expect(await Promise.all(people.map((p) => ledger.balanceOf(p.address)))).to.deep.equal([
        2_000n, 1_000n, 500n, 300n, 300n, 120n, // every contributor and the payee's referrer as if attributed
        0n, // Frank, Bob's referrer, gets nothing…
        7_660n + 120n, // …his 1% goes to the flow's remainder (the treasury)
      ]);
      const model = expectedCredits(flow, AUTODEV_PRICE, [], AUTODEV_PRICE, eve.address, treasury.address);
      for (const [who, amount] of model.accounts) expect(await ledger.balanceOf(who), who).to.equal(amount);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(0n);
      await s.conservation();
    });
  });

  describe("payFromBalance", () => {
    it("needs the ledger allowance and balance, spends a finite allowance, and a frozen payer cannot pay", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, usdc, bob, admin, marketplaceAddress } = a;
      const { agentId, paymentAddress } = await listAutoDev(a);
      await (await usdc.mint(bob.address, 2n * AUTODEV_PRICE)).wait();
      const permit = await signPermit(usdc, bob, await ledger.getAddress(), 2n * AUTODEV_PRICE, ethersMaxUint);
      await expect(ledger.connect(bob).depositWithPermit(2n * AUTODEV_PRICE, ethersMaxUint, permit.v, permit.r, permit.s))
        .to.emit(ledger, "Paid")
        .withArgs(bob.address, bob.address, 2n * AUTODEV_PRICE);

      await expect(marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE, ZeroAddress))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientAllowance")
        .withArgs(bob.address, marketplaceAddress, 0n, AUTODEV_PRICE);
      await expect(ledger.connect(bob).approve(marketplaceAddress, 2n * AUTODEV_PRICE + 1n))
        .to.emit(ledger, "Approved")
        .withArgs(bob.address, marketplaceAddress, 2n * AUTODEV_PRICE + 1n);
      await (await marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE, ZeroAddress)).wait();
      expect(await ledger.allowance(bob.address, marketplaceAddress)).to.equal(AUTODEV_PRICE + 1n);
      await expect(marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE + 2n, ZeroAddress))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientAllowance")
        .withArgs(bob.address, marketplaceAddress, AUTODEV_PRICE + 1n, AUTODEV_PRICE + 2n);

      const officer = await a.complianceOfficer();
      const until = BigInt(await a.connection.networkHelpers.time.latest()) + 86_400n;
      await expect(ledger.connect(officer).freeze(bob.address, until, 1))
        .to.emit(ledger, "AccountFrozen")
        .withArgs(bob.address, until, 1, admin.address);
      await expect(marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE, ZeroAddress))
        .to.be.revertedWithCustomError(ledger, "LedgerAccountFrozen")
        .withArgs(bob.address, until);
      await expect(ledger.connect(officer).unfreeze(bob.address, 2)).to.emit(ledger, "AccountUnfrozen").withArgs(bob.address, 2, admin.address);
      await (await ledger.connect(bob).approve(marketplaceAddress, ethersMaxUint)).wait();
      await (await marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE, ZeroAddress)).wait();
      expect(await ledger.allowance(bob.address, marketplaceAddress)).to.equal(ethersMaxUint);
      await expect(marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE, ZeroAddress))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientBalance")
        .withArgs(bob.address, 0n, AUTODEV_PRICE);
      // Both payments wait as the marketplace's ledger balance; nothing sits on the payment address.
      expect(await ledger.balanceOf(marketplaceAddress)).to.equal(2n * AUTODEV_PRICE);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(0n);
      expect((await marketplace.paymentChain(agentId))[2]).to.equal(2n);
      await a.conservation();
    });

    it("payFromBalanceWithSig: a relayer submits the payer's signed ledger transfer to the marketplace (no allowance needed)", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, bob, stranger, alice, marketplaceAddress } = a;
      const { agentId, flow } = await listAutoDev(a);
      const { agentId: otherId } = await a.list(alice, flow, AUTODEV_PRICE, { name: "Other" });
      await a.fundLedger(bob, 2n * AUTODEV_PRICE);
      await (await ledger.connect(bob).approve(a.marketplaceAddress, 0n)).wait(); // no allowance needed
      const deadline = BigInt(await a.connection.networkHelpers.time.latest()) + 600n;
      const signature = await signPayFromBalance(ledger, marketplaceAddress, bob, agentId, AUTODEV_PRICE, deadline);
      // Made out to agent 1 (its memo): useless for agent 2.
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(otherId, bob.address, AUTODEV_PRICE, deadline, signature))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(bob.address);
      const tx = marketplace.connect(stranger).payFromBalanceWithSig(agentId, bob.address, AUTODEV_PRICE, deadline, signature);
      await expect(tx).to.emit(ledger, "Transferred").withArgs(bob.address, marketplaceAddress, AUTODEV_PRICE);
      const [head] = await marketplace.paymentChain(agentId);
      await expect(tx).to.emit(marketplace, "AgentPaid").withArgs(agentId, bob.address, ZeroAddress, AUTODEV_PRICE, head);
      expect(await ledger.nonces(bob.address)).to.equal(1n);
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(agentId, bob.address, AUTODEV_PRICE, deadline, signature))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(bob.address);
      const late = await signPayFromBalance(ledger, marketplaceAddress, bob, otherId, AUTODEV_PRICE, deadline);
      await a.connection.networkHelpers.time.increaseTo(deadline + 1n);
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(otherId, bob.address, AUTODEV_PRICE, deadline, late))
        .to.be.revertedWithCustomError(ledger, "LedgerSignatureExpired")
        .withArgs(deadline);
      expect((await marketplace.paymentChain(otherId))[2]).to.equal(0n);
      expect(await ledger.balanceOf(bob.address)).to.equal(AUTODEV_PRICE);
      await a.conservation();
      await (await marketplace.distribute(agentId, flow, [{ payer: bob.address, referrer: ZeroAddress, amount: AUTODEV_PRICE }])).wait();
      expect(await ledger.balanceOf(alice.address)).to.equal(2_000n);
      await a.conservation();
    });

    it("deposits: zero refused; an authorization is single-use and only of the Receive type", async () => {
      const a = await setupAgents();
      const { ledger, usdc, bob, stranger } = a;
      const ledgerAddress = await ledger.getAddress();
      await (await usdc.mint(bob.address, 5_000n)).wait();
      await expect(ledger.connect(bob).depositWithPermit(0n, 0n, 0, ZERO, ZERO)).to.be.revertedWithCustomError(ledger, "LedgerZeroAmount");
      await expect(ledger.depositWithAuthorization(bob.address, 0n, 0n, 0n, ZERO, "0x")).to.be.revertedWithCustomError(ledger, "LedgerZeroAmount");
      const transferKind = await signAuthorization(usdc, bob, ledgerAddress, 5_000n);
      const t = transferKind.authorization;
      await expect(ledger.connect(stranger).depositWithAuthorization(bob.address, t.value, t.validAfter, t.validBefore, t.nonce, transferKind.signature))
        .to.be.revertedWithCustomError(usdc, "AuthorizationInvalidSignature")
        .withArgs(bob.address);
      const receive = await signAuthorization(usdc, bob, ledgerAddress, 5_000n, { kind: "receive" });
      const r = receive.authorization;
      // Only the ledger can execute it: submitted to the token by anyone else, it fails.
      await expect(
        usdc.connect(stranger)["receiveWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)"](r.from, r.to, r.value, r.validAfter, r.validBefore, r.nonce, receive.signature),
      ).to.be.revertedWithCustomError(usdc, "AuthorizationCallerMustBePayee");
      await (await ledger.connect(stranger).depositWithAuthorization(bob.address, r.value, r.validAfter, r.validBefore, r.nonce, receive.signature)).wait();
      expect(await ledger.balanceOf(bob.address)).to.equal(5_000n);
      expect(await ledger.balanceOf(stranger.address)).to.equal(0n);
      await expect(ledger.connect(stranger).depositWithAuthorization(bob.address, r.value, r.validAfter, r.validBefore, r.nonce, receive.signature))
        .to.be.revertedWithCustomError(usdc, "AuthorizationAlreadyUsed")
        .withArgs(bob.address, r.nonce);
      // approve() refuses the zero spender.
      await expect(ledger.connect(bob).approve(ZeroAddress, 1n)).to.be.revertedWithCustomError(ledger, "LedgerInvalidReceiver").withArgs(ZeroAddress);
      await a.conservation();
    });
  });

  describe("distribute", () => {
    it("a plain transfer to the payment address is split as calls without a payer referrer", async () => {
      const a = await setupAgents();
      const { marketplace, usdc, stranger, treasury, eve } = a;
      const { agentId, paymentAddress, flow } = await listAutoDev(a);
      const amount = 3n * AUTODEV_PRICE + 5_000n;
      await (await usdc.mint(stranger.address, amount)).wait();
      await (await usdc.connect(stranger).transfer(paymentAddress, amount)).wait();
      const expected = expectedCredits(flow, AUTODEV_PRICE, [], amount, eve.address, treasury.address);
      const before = await ledgerBalances(a, [...expected.accounts.keys()]);
      const [head] = await marketplace.paymentChain(agentId);
      await expect(marketplace.connect(stranger).distribute(agentId, flow, []))
        .to.emit(marketplace, "PaymentsDistributed")
        .withArgs(agentId, 0n, 0n, amount, head);
      await expectCredits(a, before, expected.accounts);
      expect(expected.accounts.get(treasury.address.toLowerCase())).to.equal(3n * (7_660n + 120n) + 800n + 50n);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(0n);
      await expect(marketplace.distribute(agentId, flow, []))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceNothingToDistribute")
        .withArgs(agentId);
      await a.conservation();
    });

    it("USDC sent to a payment address before its agent is listed is distributed after listing", async () => {
      const a = await setupAgents();
      const { marketplace, usdc, alice } = a;
      const early = await marketplace.nextPaymentAddress(alice.address);
      await (await usdc.mint(early, AUTODEV_PRICE)).wait();
      const { agentId, paymentAddress, flow } = await listAutoDev(a);
      expect(paymentAddress).to.equal(early);
      await (await marketplace.distribute(agentId, flow, [])).wait();
      expect(await a.ledger.balanceOf(alice.address)).to.equal(2_000n);
      await a.conservation();
    });

    it("issue 11 §5: USDC sent ahead to nextPaymentAddress(alice) is distributed under alice's listing, even if bob lists first", async () => {
      const a = await setupAgents();
      const { marketplace, usdc, ledger, alice, bob, carol, stranger, treasury } = a;
      const early = await marketplace.nextPaymentAddress(alice.address);
      await (await usdc.mint(stranger.address, AUTODEV_PRICE)).wait();
      await (await usdc.connect(stranger).transfer(early, AUTODEV_PRICE)).wait();
      // Bob lists first (agent 1), with a flow that would pay him everything: he does not get the early money.
      const bobsFlow = flowOf({ remainder: account(bob.address) });
      const bobs = await a.list(bob, bobsFlow, AUTODEV_PRICE, { name: "Bob" });
      expect(bobs.agentId).to.equal(1n);
      expect(bobs.paymentAddress).to.not.equal(early);
      await expect(marketplace.distribute(bobs.agentId, bobsFlow, []))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceNothingToDistribute")
        .withArgs(bobs.agentId);
      expect(await marketplace.nextPaymentAddress(alice.address)).to.equal(early);
      // Alice lists (agent 2): her listing gets the address and the money.
      const alicesFlow = flowOf({ fixedAmounts: [{ recipient: account(carol.address), amount: 1_000n }], remainder: account(alice.address) });
      const alices = await a.list(alice, alicesFlow, AUTODEV_PRICE, { name: "Alice" });
      expect([alices.agentId, alices.paymentAddress]).to.deep.equal([2n, early]);
      const [head] = await marketplace.paymentChain(alices.agentId);
      await expect(marketplace.connect(stranger).distribute(alices.agentId, alicesFlow, []))
        .to.emit(marketplace, "PaymentsDistributed")
        .withArgs(alices.agentId, 0n, 0n, AUTODEV_PRICE, head);
      expect(await a.balances([alice.address, carol.address, bob.address, treasury.address])).to.deep.equal([
        AUTODEV_PRICE - 1_000n, 1_000n, 0n, 0n,
      ]);
      expect(await usdc.balanceOf(early)).to.equal(0n);
      expect(await ledger.balanceOf(bobs.paymentAddress)).to.equal(0n);
      await a.conservation();
    });

    it("a batch of many payments (varied payers, referrers, amounts, plus stray funds) credits each recipient to the unit", async () => {
      const a = await setupAgents();
      const { marketplace, usdc, ledger, stranger, treasury, eve, bob, frank, ivan, judy, rest, carol } = a;
      // A flow with every kind of component: fixed amounts, shares, an explicit remainder.
      const flow: Flow = flowOf({
        fixedAmounts: [
          { recipient: account(a.alice.address), amount: 700n },
          { recipient: account(carol.address), amount: 333n },
        ],
        shares: [
          { recipient: account(a.dave.address), share: 123_457n },
          { recipient: account(carol.address), share: 250_000n },
        ],
        payerReferrerShare: 15_000n,
        payeeReferrerShare: 5_000n,
        remainder: account(a.grace.address),
      });
      const price = 2_500n;
      const { agentId, paymentAddress } = await a.list(a.alice, flow, price, { referrer: eve.address });
      await (await marketplace.connect(ivan).setReferrer(frank.address)).wait();
      await (await marketplace.connect(judy).setReferrer(bob.address)).wait();
      const payers = [bob, ivan, judy, ...rest];
      const payments: Payment[] = [];
      for (let i = 0; i < 36; i++) {
        const payer = payers[i % payers.length];
        const amount = price * BigInt(1 + (i % 3)) + BigInt((i * 977) % 2_500) * BigInt(i % 2);
        payments.push(i % 4 === 0 ? await a.payWithAuthorization(agentId, payer, amount) : await a.payFromBalance(agentId, payer, amount));
      }
      const stray = 12_345n;
      await (await usdc.mint(paymentAddress, stray)).wait();
      expect((await marketplace.paymentChain(agentId))[2]).to.equal(36n);

      const expected = expectedCredits(flow, price, payments, stray, eve.address, treasury.address);
      const before = await ledgerBalances(a, [...expected.accounts.keys()]);
      const total = payments.reduce((sum, p) => sum + p.amount, 0n);
      // The 36 payments already sit in the ledger (the marketplace's balance); only the stray USDC comes in now.
      expect(await ledger.balanceOf(a.marketplaceAddress)).to.equal(total);
      await a.conservation();
      const ledgerHeld = await usdc.balanceOf(await ledger.getAddress());
      const [pendingHead] = await marketplace.paymentChain(agentId);
      const tx = marketplace.connect(stranger).distribute(agentId, flow, payments);
      await expect(tx)
        .to.emit(marketplace, "PaymentsDistributed")
        .withArgs(agentId, 36n, total, stray, settled(pendingHead));
      await expectCredits(a, before, expected.accounts);
      expect([...expected.accounts.values()].reduce((s, v) => s + v, 0n)).to.equal(total + stray);
      // One ledger credit per distinct recipient, to the unit.
      expect(transfersFrom(ledger, (await (await tx).wait())!.logs, a.marketplaceAddress)).to.deep.equal(expected.accounts);
      expect(await usdc.balanceOf(await ledger.getAddress())).to.equal(ledgerHeld + stray);
      expect(await ledger.balanceOf(a.marketplaceAddress)).to.equal(0n);
      const [head, base, pending] = await marketplace.paymentChain(agentId);
      expect([head === base, pending]).to.deep.equal([true, 0n]);
      await a.conservation();
    });

    it("the chain admits exactly the pending payments: missing, reordered, altered, invented or replayed ones revert", async () => {
      const a = await setupAgents();
      const { marketplace, usdc, bob, ivan, judy, frank, stranger } = a;
      const { agentId, paymentAddress, flow } = await listAutoDev(a);
      await (await marketplace.connect(ivan).setReferrer(frank.address)).wait();
      const payments = [
        await a.payFromBalance(agentId, bob, AUTODEV_PRICE),
        await a.payFromBalance(agentId, ivan, 2n * AUTODEV_PRICE),
        await a.payWithAuthorization(agentId, judy, AUTODEV_PRICE + 7n),
      ];
      const [head] = await marketplace.paymentChain(agentId);
      const bad: [string, Payment[]][] = [
        ["none", []],
        ["one missing", payments.slice(0, 2)],
        ["reordered", [payments[1], payments[0], payments[2]]],
        ["amount altered", [payments[0], { ...payments[1], amount: payments[1].amount - 1n }, payments[2]]],
        ["referrer dropped", [payments[0], { ...payments[1], referrer: ZeroAddress }, payments[2]]],
        ["referrer invented", [{ ...payments[0], referrer: stranger.address }, payments[1], payments[2]]],
        ["payer altered", [payments[0], payments[1], { ...payments[2], payer: stranger.address }]],
        ["one invented", [...payments, { payer: stranger.address, referrer: stranger.address, amount: 1n }]],
      ];
      for (const [name, list] of bad) {
        await expect(marketplace.distribute(agentId, flow, list), name).to.be.revertedWithCustomError(marketplace, "MarketplaceChainMismatch");
      }
      await expect(marketplace.distribute(agentId, { ...flow, payeeReferrerShare: 0n }, payments))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceFlowMismatch")
        .withArgs(agentId, (await marketplace.getAgent(agentId)).flowHash, await marketplace.hashFlow({ ...flow, payeeReferrerShare: 0n }));
      expect((await marketplace.paymentChain(agentId))[0]).to.equal(head);

      await (await marketplace.distribute(agentId, flow, payments)).wait();
      // Replaying the distributed payments, even with new funds on the address, matches nothing.
      await (await usdc.mint(paymentAddress, 4n * AUTODEV_PRICE)).wait();
      await expect(marketplace.distribute(agentId, flow, payments)).to.be.revertedWithCustomError(marketplace, "MarketplaceChainMismatch");
      const next = await a.payFromBalance(agentId, bob, AUTODEV_PRICE);
      await expect(marketplace.distribute(agentId, flow, [...payments, next])).to.be.revertedWithCustomError(marketplace, "MarketplaceChainMismatch");
      const [nextHead] = await marketplace.paymentChain(agentId);
      await expect(marketplace.distribute(agentId, flow, [next]))
        .to.emit(marketplace, "PaymentsDistributed")
        .withArgs(agentId, 1n, AUTODEV_PRICE, 4n * AUTODEV_PRICE, settled(nextHead));
      await a.conservation();
    });

    it("MAX_PENDING payments fill the chain; then payments wait for a distribution", async () => {
      const a = await setupAgents();
      const { marketplace, bob } = a;
      const flow = flowOf({ fixedAmounts: [{ recipient: account(a.alice.address), amount: 1n }] });
      const { agentId } = await a.list(a.alice, flow, 2n);
      const max = await marketplace.MAX_PENDING();
      await a.fundLedger(bob, 2n * max + 2n);
      const payments: Payment[] = [];
      for (let i = 0n; i < max; i++) {
        await (await marketplace.connect(bob).payFromBalance(agentId, 2n, ZeroAddress)).wait();
        payments.push({ payer: bob.address, referrer: ZeroAddress, amount: 2n });
      }
      await expect(marketplace.connect(bob).payFromBalance(agentId, 2n, ZeroAddress))
        .to.be.revertedWithCustomError(marketplace, "MarketplacePendingFull")
        .withArgs(agentId, max);
      const receipt = await (await marketplace.distribute(agentId, flow, payments)).wait();
      expect(receipt!.gasUsed).to.be.lessThan(5_000_000n);
      await (await marketplace.connect(bob).payFromBalance(agentId, 2n, ZeroAddress)).wait();
      expect((await marketplace.paymentChain(agentId))[2]).to.equal(1n);
      expect(await a.ledger.balanceOf(a.alice.address)).to.equal(max);
      await a.conservation();
    });

    it("a Split recipient passes its part through the split; the escrow budget recipient funds the agent's compute", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, escrow, usdc, creator, carol, dave, alice, treasury, stranger } = a;
      const split = { recipients: [{ account: carol.address, share: 400_000 }], remainderRecipient: dave.address };
      await (await ledger.createSplit(split)).wait();
      const splitAddress = await ledger.predictSplitAddress(split);
      const budgetId = await createBudget(usdc, escrow, { creator, amount: 10n * USDC, agents: [a.agent.address] });
      const flow = flowOf({
        fixedAmounts: [{ recipient: splitRecipient(splitAddress), amount: 1_000n }],
        shares: [{ recipient: budget(budgetId), share: 500_000n }], // half of what is left funds the compute budget
        remainder: account(alice.address),
      });
      const { agentId, paymentAddress } = await a.list(alice, flow, 10_000n);
      await (await usdc.mint(stranger.address, 20_000n)).wait();
      await (await usdc.connect(stranger).transfer(paymentAddress, 20_000n)).wait();
      const available = (await escrow.getBudget(budgetId)).available;
      const tx = marketplace.distribute(agentId, flow, []);
      await expect(tx).to.emit(escrow, "BudgetToppedUp").withArgs(budgetId, a.marketplaceAddress, 9_000n);
      await expect(tx).to.emit(ledger, "Transferred").withArgs(a.marketplaceAddress, await escrow.getAddress(), 9_000n);
      // Splits are lazy: the distribution credits the split's own balance, one write whatever its size.
      await expect(tx).to.emit(ledger, "Transferred").withArgs(a.marketplaceAddress, splitAddress, 2_000n);
      await expect(tx).not.to.emit(ledger, "SplitDistributed");
      expect((await escrow.getBudget(budgetId)).available).to.equal(available + 9_000n);
      expect(await a.balances([splitAddress, carol.address, dave.address])).to.deep.equal([2_000n, 0n, 0n]);
      expect(await ledger.balanceOf(alice.address)).to.equal(9_000n);
      expect(await ledger.balanceOf(treasury.address)).to.equal(0n);
      await a.conservation();
      // Anyone passes it on through the split.
      await expect(ledger.connect(stranger).distribute(splitAddress))
        .to.emit(ledger, "SplitDistributed")
        .withArgs(splitAddress, 2_000n, [800n, 1_200n]);
      expect(await a.balances([splitAddress, carol.address, dave.address])).to.deep.equal([0n, 800n, 1_200n]);
      await a.conservation();

      // Once the budget has expired its part goes to the budget's creator instead of blocking the payout.
      await a.connection.networkHelpers.time.increase(31 * DAY);
      await (await usdc.mint(paymentAddress, 10_000n)).wait();
      await expect(marketplace.distribute(agentId, flow, [])).not.to.emit(escrow, "BudgetToppedUp");
      expect(await ledger.balanceOf(creator.address)).to.equal(4_500n);
      expect((await escrow.getBudget(budgetId)).available).to.equal(available + 9_000n);
      expect(await ledger.balanceOf(splitAddress)).to.equal(1_000n);
      await a.conservation();
    });

    it("a budget recipient is topped up until its expiry (end - 1); from end on, its part goes to the creator", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, escrow, usdc, creator, alice } = a;
      const budgetId = await createBudget(usdc, escrow, { creator, amount: 10n * USDC, agents: [a.agent.address] });
      const flow = flowOf({ shares: [{ recipient: budget(budgetId), share: 500_000n }], remainder: account(alice.address) });
      const { agentId, paymentAddress } = await a.list(alice, flow, 1_000n);
      const { expiry, available } = await escrow.getBudget(budgetId);
      await (await usdc.mint(paymentAddress, 1_000n)).wait();
      // The same distribution at end - 1, end and end + 1.
      const snapshot = await a.connection.networkHelpers.takeSnapshot();
      const distributeAt = async (timestamp: bigint) => {
        await snapshot.restore();
        await a.connection.networkHelpers.time.setNextBlockTimestamp(timestamp);
        return marketplace.distribute(agentId, flow, []);
      };
      await expect(distributeAt(expiry - 1n)).to.emit(escrow, "BudgetToppedUp").withArgs(budgetId, a.marketplaceAddress, 500n);
      expect((await escrow.getBudget(budgetId)).available).to.equal(available + 500n);
      expect(await ledger.balanceOf(creator.address)).to.equal(0n);
      // From the expiry second on topUp would revert: the part goes to the creator instead of blocking the payout.
      for (const timestamp of [expiry, expiry + 1n]) {
        await expect(distributeAt(timestamp)).not.to.emit(escrow, "BudgetToppedUp");
        expect((await escrow.getBudget(budgetId)).available).to.equal(available);
        expect(await ledger.balanceOf(creator.address)).to.equal(500n);
        expect(await ledger.balanceOf(alice.address)).to.equal(500n);
        await a.conservation();
      }
    });

    it("a flow paying only budgets credits no ledger account but the escrow's; a part that rounds to zero is skipped", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, escrow, usdc, creator, carol, alice } = a;
      const budgetId = await createBudget(usdc, escrow, { creator, amount: 10n * USDC, agents: [a.agent.address] });
      const flow = flowOf({
        fixedAmounts: [{ recipient: budget(budgetId), amount: 100n }],
        shares: [{ recipient: account(carol.address), share: 1n }], // 1 ppm of 900: rounds to zero
        remainder: budget(budgetId),
      });
      const { agentId, paymentAddress } = await a.list(alice, flow, 1_000n);
      await (await usdc.mint(paymentAddress, 1_000n)).wait();
      const available = (await escrow.getBudget(budgetId)).available;
      const tx = marketplace.distribute(agentId, flow, []);
      // The only USDC deposit is the payment address's own; the only credits are the escrow's top-ups.
      await expect(tx).to.emit(ledger, "Paid").withArgs(paymentAddress, a.marketplaceAddress, 1_000n);
      await expect(tx).to.emit(escrow, "BudgetToppedUp").withArgs(budgetId, a.marketplaceAddress, 100n);
      await expect(tx).to.emit(escrow, "BudgetToppedUp").withArgs(budgetId, a.marketplaceAddress, 900n);
      const receipt = (await (await tx).wait())!;
      expect(transfersFrom(ledger, receipt.logs, a.marketplaceAddress)).to.deep.equal(new Map([[(await escrow.getAddress()).toLowerCase(), 1_000n]]));
      const paidEvents = receipt.logs.map((l) => ledger.interface.parseLog(l)).filter((l) => l?.name === "Paid");
      expect(paidEvents.length).to.equal(1);
      expect((await escrow.getBudget(budgetId)).available).to.equal(available + 1_000n);
      expect(await ledger.balanceOf(carol.address)).to.equal(0n);
      await a.conservation();
    });

    it("compliance: a frozen recipient keeps accruing but cannot withdraw until unfrozen", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, dave, bob } = a;
      const { agentId, flow } = await listAutoDev(a);
      const officer = await a.complianceOfficer();
      const until = BigInt(await a.connection.networkHelpers.time.latest()) + 7n * 86_400n;
      await (await ledger.connect(officer).freeze(dave.address, until, 3)).wait();
      const payment = await a.payFromBalance(agentId, bob, AUTODEV_PRICE);
      await (await marketplace.distribute(agentId, flow, [payment])).wait();
      expect(await ledger.balanceOf(dave.address)).to.equal(500n);
      await expect(ledger.connect(dave).withdraw(dave.address, 500n))
        .to.be.revertedWithCustomError(ledger, "LedgerAccountFrozen")
        .withArgs(dave.address, until);
      await (await ledger.connect(officer).unfreeze(dave.address, 3)).wait();
      await expect(ledger.connect(dave).withdraw(dave.address, 500n)).to.emit(ledger, "Withdrawn").withArgs(dave.address, dave.address, 500n);
      await a.conservation();
    });

    it("updateTerms first settles everything paid under the old terms with them", async () => {
      const a = await setupAgents();
      const { marketplace, usdc, ledger, alice, bob, carol, stranger } = a;
      const { agentId, paymentAddress, flow } = await listAutoDev(a);
      const paid = await a.payFromBalance(agentId, bob, AUTODEV_PRICE);
      await (await usdc.mint(paymentAddress, 1_000n)).wait();
      const newFlow = flowOf({ fixedAmounts: [{ recipient: account(carol.address), amount: 5_000n }], remainder: account(alice.address) });
      // Pending payments must be passed: a stale list reverts.
      await expect(marketplace.connect(alice).updateTerms(agentId, 10_000n, newFlow, flow, [])).to.be.revertedWithCustomError(marketplace, "MarketplaceChainMismatch");
      await (await marketplace.connect(alice).pause(agentId)).wait();
      const [pendingHead] = await marketplace.paymentChain(agentId);
      const tx = marketplace.connect(alice).updateTerms(agentId, 10_000n, newFlow, flow, [paid]);
      await expect(tx).to.emit(marketplace, "PaymentsDistributed").withArgs(agentId, 1n, AUTODEV_PRICE, 1_000n, settled(pendingHead));
      await expect(tx).to.emit(marketplace, "AgentTermsSet");
      // Old terms: Carol's 1,000 fixed per call, and a partial call of 1,000 (Alice's first 1,000 of 2,000).
      expect(await ledger.balanceOf(carol.address)).to.equal(1_000n);
      expect(await ledger.balanceOf(alice.address)).to.equal(2_000n + 1_000n);
      await (await marketplace.connect(alice).unpause(agentId)).wait();
      await expect(marketplace.connect(bob).payFromBalance(agentId, 9_999n, ZeroAddress))
        .to.be.revertedWithCustomError(marketplace, "MarketplacePaymentBelowPrice")
        .withArgs(agentId, 10_000n, 9_999n);
      const next = await a.payFromBalance(agentId, bob, 10_000n);
      await expect(marketplace.connect(stranger).distribute(agentId, flow, [next])).to.be.revertedWithCustomError(marketplace, "MarketplaceFlowMismatch");
      await (await marketplace.connect(stranger).distribute(agentId, newFlow, [next])).wait();
      expect(await ledger.balanceOf(carol.address)).to.equal(1_000n + 5_000n);
      expect(await ledger.balanceOf(alice.address)).to.equal(3_000n + 5_000n);
      await a.conservation();
    });
  });

  describe("issue 11 §1: no one can lock an agent's payments (the worst case, under Base's 2^24 gas cap)", function () {
    this.timeout(900_000);
    let a: Agents;
    let w: WorstCase;
    let snapshot: { restore(): Promise<void> };
    const gas: Record<string, bigint> = {};

    before(async () => {
      a = await setupAgents();
      w = await buildWorstCase(a);
      snapshot = await a.connection.networkHelpers.takeSnapshot();
    });
    beforeEach(async () => snapshot.restore());
    after(() => {
      console.log(`      worst-case gas (cap ${GAS_CAP}): ${Object.entries(gas).map(([k, v]) => `${k} ${v}`).join(", ")}`);
    });

    /** What a distribution of the whole worst case must credit, as `expectedCredits` models it. */
    const expected = () => expectedCredits(w.flow, w.price, w.payments, w.stray, w.ownerReferrer, a.treasury.address);

    /** Checks a distribution of the worst case credited everything, to the unit, and nothing else. */
    async function expectWorstCaseCredited(receipt: { logs: readonly import("ethers").Log[]; gasUsed: bigint }) {
      const { accounts, budgets } = expected();
      const escrowAddress = (await a.escrow.getAddress()).toLowerCase();
      const budgetTotal = [...budgets.values()].reduce((sum, v) => sum + v, 0n);
      // Every credit is one ledger transfer from the marketplace: per account, and the escrow per budget.
      expect(transfersFrom(a.ledger, receipt.logs, a.marketplaceAddress)).to.deep.equal(
        new Map([...accounts, [escrowAddress, budgetTotal]]),
      );
      expect(accounts.size).to.equal(256 + 1 + 20); // 256 payer referrers, the owner's referrer, 10 splits and 10 accounts
      expect(budgets.size).to.equal(13);
      for (const [who, amount] of accounts) expect(await a.ledger.balanceOf(who), who).to.equal(amount); // all fresh
      const toppedUp = new Map<bigint, bigint>();
      for (const log of receipt.logs) {
        const parsed = log.address === (await a.escrow.getAddress()) ? a.escrow.interface.parseLog(log) : null;
        if (parsed?.name === "BudgetToppedUp") toppedUp.set(parsed.args.budgetId, (toppedUp.get(parsed.args.budgetId) ?? 0n) + parsed.args.amount);
      }
      expect(toppedUp).to.deep.equal(budgets);
      for (const [budgetId, amount] of budgets) expect((await a.escrow.getBudget(budgetId)).available).to.equal(1n + amount);
      // Each referrer split holds its payer's reward: ⌊calls⌋ × 1,000 plus 10% of the partial call.
      for (const [i, p] of w.payments.entries()) {
        expect(await a.ledger.balanceOf(w.referrers[i])).to.equal(splitPayment(w.flow, w.price, p.amount).payerReward);
      }
      expect(await a.ledger.balanceOf(a.marketplaceAddress)).to.equal(0n);
      expect(await a.usdc.balanceOf(w.paymentAddress)).to.equal(0n);
      const [head, base, pending] = await a.marketplace.paymentChain(w.agentId);
      expect([head, pending]).to.deep.equal([base, 0n]);
      expect(receipt.gasUsed).to.be.lessThan(GAS_CAP);
    }

    it("issue 11 §1: a full chain (256 payers, each referred by its own 64-leaf depth-4 split) refuses a 257th payment and distributes in one transaction under 2^24 gas, to the unit", async () => {
      const { marketplace, ledger, usdc, stranger } = a;
      expect((await marketplace.paymentChain(w.agentId))[2]).to.equal(256n);
      const total = w.payments.reduce((sum, p) => sum + p.amount, 0n);
      expect(await ledger.balanceOf(a.marketplaceAddress)).to.equal(total);
      expect(await usdc.balanceOf(w.paymentAddress)).to.equal(w.stray);
      await a.conservation();
      // The chain is full: a 257th payment waits for the distribution (it cannot race it).
      const late = offlineWallet("late payer");
      await (await ledger.connect(a.frank).pay(late.address, w.price)).wait();
      const signature = await signPayFromBalance(ledger, a.marketplaceAddress, late, w.agentId, w.price, w.deadline, 0n);
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(w.agentId, late.address, w.price, w.deadline, signature))
        .to.be.revertedWithCustomError(marketplace, "MarketplacePendingFull")
        .withArgs(w.agentId, 256n);

      const [head] = await marketplace.paymentChain(w.agentId);
      const tx = marketplace.connect(stranger).distribute(w.agentId, w.flow, w.payments);
      await expect(tx).to.emit(marketplace, "PaymentsDistributed").withArgs(w.agentId, 256n, total, w.stray, settled(head));
      const receipt = (await (await tx).wait())!;
      gas.distribute = receipt.gasUsed;
      await expectWorstCaseCredited(receipt);
      // The late payer pays now.
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(w.agentId, late.address, w.price, w.deadline, signature)).to.emit(
        marketplace,
        "AgentPaid",
      );
      await a.conservation();
    });

    it("issue 11 §1: updateTerms with the same full chain distributes it under the old terms under 2^24 gas, then applies the new ones", async () => {
      const { marketplace, alice } = a;
      await (await marketplace.connect(alice).pause(w.agentId)).wait();
      // New terms as large as the old: the same 33 recipients, another price and shares.
      const newFlow: Flow = { ...w.flow, shares: w.flow.shares.map((x) => ({ ...x, share: 40_000n })), payeeReferrerShare: 10_000n };
      const newPrice = 20_000n;
      const [head] = await marketplace.paymentChain(w.agentId);
      const total = w.payments.reduce((sum, p) => sum + p.amount, 0n);
      const tx = marketplace.connect(alice).updateTerms(w.agentId, newPrice, newFlow, w.flow, w.payments);
      await expect(tx).to.emit(marketplace, "PaymentsDistributed").withArgs(w.agentId, 256n, total, w.stray, settled(head));
      await expect(tx).to.emit(marketplace, "AgentTermsSet").withArgs(w.agentId, newPrice, await marketplace.hashFlow(newFlow), flowTuple(newFlow));
      const receipt = (await (await tx).wait())!;
      gas.updateTerms = receipt.gasUsed;
      await expectWorstCaseCredited(receipt);
      const agent = await marketplace.getAgent(w.agentId);
      expect([agent.pricePerCall, agent.flowHash, agent.status]).to.deep.equal([newPrice, await marketplace.hashFlow(newFlow), Status.Paused]);
      await a.conservation();
    });

    it("issue 11 §1: retire never strands funds: a retired agent's full chain, and USDC sent to it later, still distribute", async () => {
      const { marketplace, usdc, stranger, alice, treasury } = a;
      await expect(marketplace.connect(alice).retire(w.agentId)).to.emit(marketplace, "AgentStatusChanged").withArgs(w.agentId, Status.Retired);
      await expect(marketplace.connect(alice).updateTerms(w.agentId, w.price, w.flow, w.flow, w.payments))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceInvalidStatus")
        .withArgs(w.agentId, Status.Retired);
      const receipt = (await (await marketplace.connect(stranger).distribute(w.agentId, w.flow, w.payments)).wait())!;
      gas.distributeRetired = receipt.gasUsed;
      await expectWorstCaseCredited(receipt);
      await a.conservation();
      // Money sent to a retired agent's address later is not stuck either.
      const late = offlineWallet("after retirement");
      await (await usdc.mint(late.address, w.price)).wait();
      const { authorization: x, signature } = await signAuthorization(usdc, late, w.paymentAddress, w.price);
      await expect(marketplace.connect(stranger).payWithAuthorization(w.agentId, x.from, x.value, x.validAfter, x.validBefore, x.nonce, signature))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceInvalidStatus")
        .withArgs(w.agentId, Status.Retired);
      await (await usdc.mint(w.paymentAddress, w.price + 1n)).wait();
      const lateCredits = expectedCredits(w.flow, w.price, [], w.price + 1n, w.ownerReferrer, treasury.address);
      const before = await ledgerBalances(a, [...lateCredits.accounts.keys()]);
      const [head] = await marketplace.paymentChain(w.agentId);
      const lateDistribution = marketplace.connect(stranger).distribute(w.agentId, w.flow, []);
      await expect(lateDistribution).to.emit(marketplace, "PaymentsDistributed").withArgs(w.agentId, 0n, 0n, w.price + 1n, head);
      const budgetTotal = [...lateCredits.budgets.values()].reduce((sum, v) => sum + v, 0n);
      expect(transfersFrom(a.ledger, (await (await lateDistribution).wait())!.logs, a.marketplaceAddress)).to.deep.equal(
        new Map([...lateCredits.accounts, [(await a.escrow.getAddress()).toLowerCase(), budgetTotal]]),
      );
      await expectCredits(a, before, lateCredits.accounts);
      expect(await usdc.balanceOf(w.paymentAddress)).to.equal(0n);
      await a.conservation();
    });

    it("issue 11 §1: split referrers hold their credit; ledger.distribute(split) pays all 64 leaves through 4 levels under the cap", async () => {
      const { marketplace, ledger, stranger } = a;
      await (await marketplace.connect(stranger).distribute(w.agentId, w.flow, w.payments)).wait();
      // Nothing has reached a leaf yet.
      for (const leaf of w.model.leaves(w.referrers[0])) expect(await ledger.balanceOf(leaf)).to.equal(0n);
      expect(w.model.leaves(w.referrers[0]).length).to.equal(64);
      expect(new Set(w.model.leaves(w.referrers[0])).size).to.equal(64);
      const credited = new Map<string, bigint>();
      const model = w.model;
      const splitAddresses = [w.referrers[0], w.referrers[1], w.referrers[255], w.ownerReferrer, w.flow.fixedAmounts[1].recipient.account];
      for (const split of splitAddresses) {
        const amount = await ledger.balanceOf(split);
        expect(amount).to.be.greaterThan(0n);
        const { events } = model.distribute(split, amount, credited);
        const receipt = (await (await ledger.connect(stranger).distribute(split)).wait())!;
        gas.ledgerDistribute = gas.ledgerDistribute === undefined || receipt.gasUsed > gas.ledgerDistribute ? receipt.gasUsed : gas.ledgerDistribute;
        expect(receipt.gasUsed).to.be.lessThan(GAS_CAP);
        const emitted = receipt.logs
          .map((l) => ledger.interface.parseLog(l))
          .filter((l) => l?.name === "SplitDistributed")
          .map((l) => ({ split: String(l!.args.split).toLowerCase(), amount: l!.args.amount, credits: [...l!.args.credits] }));
        expect(emitted).to.deep.equal(events); // the split, then L3, L2 and L1, each entry's credit
        expect(emitted.length).to.equal(4);
        expect(await ledger.balanceOf(split)).to.equal(0n);
        const [distributed, dust] = await ledger.splitTotals(split);
        expect(distributed).to.equal(amount);
        expect(dust).to.be.lessThan(2n); // 2 entries: at most 1 unit held back
        await expect(ledger.connect(stranger).distribute(split)).to.be.revertedWithCustomError(ledger, "LedgerZeroAmount");
      }
      for (const [leaf, amount] of credited) expect(await ledger.balanceOf(leaf), leaf).to.equal(amount);
      // The shared depth-3 tree's lifetime totals match the model (rounding carried across splits).
      for (const split of [w.l1, w.l2, w.l3]) expect((await ledger.splitTotals(split))[0]).to.equal(model.distributed.get(split.toLowerCase()));
      await a.conservation();
    });

    it("issue 11 §1: the referrer splits are the largest the ledger allows (a 5th level or a 65th leaf is refused)", async () => {
      const { ledger } = a;
      const model = new SplitModel();
      await expect(
        createSplit(ledger, model, { recipients: [{ account: w.referrers[0], share: 500_000n }], remainderRecipient: freshAddress("depth 5") }),
      )
        .to.be.revertedWithCustomError(ledger, "LedgerSplitTooDeep")
        .withArgs(5n, 4n);
      await expect(
        createSplit(ledger, model, {
          recipients: [{ account: w.l3, share: 500_000n }, { account: freshAddress("leaf 64"), share: 1n }],
          remainderRecipient: freshAddress("leaf 65"),
        }),
      )
        .to.be.revertedWithCustomError(ledger, "LedgerSplitTooManyLeaves")
        .withArgs(65n, 64n);
    });
  });

  describe("issue 11 §4: USDC's pause and blacklist stall no distribution", () => {
    /** AutoDev with two pending payments (one with a referrer), stray USDC on its address, and its checks. */
    async function withPending() {
      const a = await setupAgents();
      const agent = await listAutoDev(a);
      const payments = [
        await a.payFromBalance(agent.agentId, a.bob, AUTODEV_PRICE, a.frank.address),
        await a.payWithAuthorization(agent.agentId, a.judy, 2n * AUTODEV_PRICE + 5_005n),
      ];
      const stray = 5_000n;
      await (await a.usdc.mint(agent.paymentAddress, stray)).wait();
      /**
       * Sends a distribution (`send`) and checks it credited exactly `paid` (and `unattributed`) under
       * `flow` at `price`, each recipient once, to the unit; and, when `unattributed` is zero, that no
       * token moved at all (ledger credits only).
       */
      const expectDistributed = async (
        send: () => Promise<import("ethers").ContractTransactionResponse>,
        paid: Payment[],
        unattributed: bigint,
        flow: Flow = agent.flow,
        price: bigint = AUTODEV_PRICE,
      ) => {
        const expected = expectedCredits(flow, price, paid, unattributed, a.eve.address, a.treasury.address);
        const before = await ledgerBalances(a, [...expected.accounts.keys()]);
        const [head] = await a.marketplace.paymentChain(agent.agentId);
        const total = paid.reduce((sum, p) => sum + p.amount, 0n);
        const tx = send();
        await expect(tx)
          .to.emit(a.marketplace, "PaymentsDistributed")
          .withArgs(agent.agentId, BigInt(paid.length), total, unattributed, settled(head));
        const receipt = (await (await tx).wait())!;
        expect(transfersFrom(a.ledger, receipt.logs, a.marketplaceAddress)).to.deep.equal(expected.accounts);
        await expectCredits(a, before, expected.accounts);
        const tokenLogs = receipt.logs.filter((l) => l.address === a.usdc.target);
        if (unattributed === 0n) expect(tokenLogs, "no token transfer").to.deep.equal([]);
        return receipt;
      };
      return { ...a, ...agent, payments, stray, expectDistributed };
    }

    it("issue 11 §4: with USDC paused, distribute still credits every pending payment (ledger credits, no token transfer); stray USDC waits for the unpause", async () => {
      const s = await withPending();
      const { marketplace, ledger, usdc, admin, ivan, judy, alice, stranger, agentId, paymentAddress, flow } = s;
      await s.fundLedger(ivan, AUTODEV_PRICE + 1n);
      await (await usdc.mint(judy.address, AUTODEV_PRICE)).wait();
      const auth = await signAuthorization(usdc, judy, paymentAddress, AUTODEV_PRICE);
      await expect(usdc.connect(admin).pause()).to.emit(usdc, "Pause");
      // An x402 payment needs the token: refused, and nothing is recorded.
      const chain = await marketplace.paymentChain(agentId);
      const x = auth.authorization;
      await expect(marketplace.connect(stranger).payWithAuthorization(agentId, x.from, x.value, x.validAfter, x.validBefore, x.nonce, auth.signature))
        .to.be.revertedWithCustomError(usdc, "TokenPaused");
      expect(await marketplace.paymentChain(agentId)).to.deep.equal(chain);
      // A payment from a ledger balance needs none: accepted while paused.
      await expect(marketplace.connect(ivan).payFromBalance(agentId, AUTODEV_PRICE + 1n, ZeroAddress)).not.to.emit(usdc, "Transfer");
      const payments = [...s.payments, { payer: ivan.address, referrer: ZeroAddress, amount: AUTODEV_PRICE + 1n }];

      await s.expectDistributed(() => marketplace.connect(stranger).distribute(agentId, flow, payments), payments, 0n);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(s.stray);
      expect(await ledger.balanceOf(s.marketplaceAddress)).to.equal(0n);
      await s.conservation();
      // Withdrawals wait for the token; with nothing pending and the stray stuck, there is nothing to distribute.
      await expect(ledger.connect(alice).withdraw(alice.address, 1n)).to.be.revertedWithCustomError(usdc, "TokenPaused");
      await expect(marketplace.distribute(agentId, flow, []))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceNothingToDistribute")
        .withArgs(agentId);

      await expect(usdc.connect(admin).unpause()).to.emit(usdc, "Unpause");
      await s.expectDistributed(() => marketplace.connect(stranger).distribute(agentId, flow, []), [], s.stray);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(0n);
      await s.conservation();
    });

    it("issue 11 §4: with USDC paused, updateTerms still credits every pending payment under the old terms; the stray USDC follows after the unpause", async () => {
      const s = await withPending();
      const { marketplace, usdc, admin, alice, carol, stranger, agentId, paymentAddress, flow } = s;
      await (await marketplace.connect(alice).pause(agentId)).wait();
      await (await usdc.connect(admin).pause()).wait();
      const newFlow = flowOf({ fixedAmounts: [{ recipient: account(carol.address), amount: 4_000n }], remainder: account(alice.address) });
      const newHash = await marketplace.hashFlow(newFlow);
      const receipt = await s.expectDistributed(() => marketplace.connect(alice).updateTerms(agentId, 10_000n, newFlow, flow, s.payments), s.payments, 0n);
      const termsSet = receipt.logs.map((l) => marketplace.interface.parseLog(l)).find((l) => l?.name === "AgentTermsSet");
      expect([termsSet?.args.agentId, termsSet?.args.pricePerCall, termsSet?.args.flowHash]).to.deep.equal([agentId, 10_000n, newHash]);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(s.stray);
      await s.conservation();
      await (await usdc.connect(admin).unpause()).wait();
      // The stray USDC had not moved before the change: it is split by the terms in force when it can move.
      await s.expectDistributed(() => marketplace.connect(stranger).distribute(agentId, newFlow, []), [], s.stray, newFlow, 10_000n);
      // Carol: 1,000 per old call (Bob's, Judy's two and her partial one of 5,005), then 4,000 of the stray 5,000.
      expect(await s.balances([carol.address])).to.deep.equal([4n * 1_000n + 4_000n]);
      await s.conservation();
    });

    it("issue 11 §4: a payment address blacklisted by USDC stalls neither distribute nor updateTerms of its agent; its stray USDC is left for later; x402 payments to it fail cleanly", async () => {
      const s = await withPending();
      const { marketplace, ledger, usdc, admin, judy, ivan, alice, stranger, agentId, paymentAddress, flow } = s;
      await expect(usdc.connect(admin).blacklist(paymentAddress)).to.emit(usdc, "Blacklisted").withArgs(paymentAddress);
      // An x402 payment to it fails in the token and changes nothing.
      await (await usdc.mint(judy.address, AUTODEV_PRICE)).wait();
      const wallet = await usdc.balanceOf(judy.address);
      const auth = await signAuthorization(usdc, judy, paymentAddress, AUTODEV_PRICE);
      const x = auth.authorization;
      const chain = await marketplace.paymentChain(agentId);
      await expect(marketplace.connect(stranger).payWithAuthorization(agentId, x.from, x.value, x.validAfter, x.validBefore, x.nonce, auth.signature))
        .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
        .withArgs(paymentAddress);
      expect(await marketplace.paymentChain(agentId)).to.deep.equal(chain);
      expect(await usdc.balanceOf(judy.address)).to.equal(wallet);
      expect(await usdc.authorizationState(judy.address, x.nonce)).to.equal(false);

      // Pending payments already sit in the ledger: they are distributed; the stray USDC stays put.
      await s.expectDistributed(() => marketplace.connect(stranger).distribute(agentId, flow, s.payments), s.payments, 0n);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(s.stray);
      await s.conservation();
      // Payments from balances still come in, and updateTerms distributes them too.
      const next = await s.payFromBalance(agentId, ivan, AUTODEV_PRICE);
      await (await marketplace.connect(alice).pause(agentId)).wait();
      const receipt = await s.expectDistributed(() => marketplace.connect(alice).updateTerms(agentId, AUTODEV_PRICE, flow, flow, [next]), [next], 0n);
      expect(receipt.logs.some((l) => marketplace.interface.parseLog(l)?.name === "AgentTermsSet")).to.equal(true);
      await expect(marketplace.distribute(agentId, flow, []))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceNothingToDistribute")
        .withArgs(agentId);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(s.stray);
      expect(await ledger.balanceOf(s.marketplaceAddress)).to.equal(0n);
      await s.conservation();

      await (await usdc.connect(admin).unBlacklist(paymentAddress)).wait();
      await s.expectDistributed(() => marketplace.connect(stranger).distribute(agentId, flow, []), [], s.stray);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(0n);
      await s.conservation();
    });

    it("issue 11 §4: USDC blacklisting the ledger stalls no distribution of pending payments (stray USDC waits); blacklisting the marketplace changes nothing", async () => {
      const s = await withPending();
      const { marketplace, usdc, admin, judy, stranger, agentId, paymentAddress, flow, ledgerAddress, marketplaceAddress } = s;
      await (await usdc.connect(admin).blacklist(ledgerAddress)).wait();
      await (await usdc.mint(judy.address, AUTODEV_PRICE)).wait();
      const auth = await signAuthorization(usdc, judy, paymentAddress, AUTODEV_PRICE);
      const x = auth.authorization;
      await expect(marketplace.connect(stranger).payWithAuthorization(agentId, x.from, x.value, x.validAfter, x.validBefore, x.nonce, auth.signature))
        .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
        .withArgs(ledgerAddress);
      await s.expectDistributed(() => marketplace.connect(stranger).distribute(agentId, flow, s.payments), s.payments, 0n);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(s.stray);
      await s.conservation();
      await (await usdc.connect(admin).unBlacklist(ledgerAddress)).wait();

      await (await usdc.connect(admin).blacklist(marketplaceAddress)).wait();
      const paid = await s.payWithAuthorization(agentId, judy, AUTODEV_PRICE);
      const fromBalance = await s.payFromBalance(agentId, s.ivan, AUTODEV_PRICE);
      await s.expectDistributed(() => marketplace.connect(stranger).distribute(agentId, flow, [paid, fromBalance]), [paid, fromBalance], s.stray);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(0n);
      await s.conservation();
    });

    it("issue 11 §4: a payer blacklisted by USDC cannot pay from its ledger balance (payFromBalance, payFromBalanceWithSig) but keeps accruing; unlisted, the same signature pays", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, usdc, admin, bob, judy, frank, stranger, marketplaceAddress } = a;
      const { agentId, paymentAddress, flow } = await listAutoDev(a);
      await a.fundLedger(bob, 2n * AUTODEV_PRICE);
      await (await usdc.mint(bob.address, AUTODEV_PRICE)).wait();
      const deadline = BigInt(await a.connection.networkHelpers.time.latest()) + 3_600n;
      const signature = await signPayFromBalance(ledger, marketplaceAddress, bob, agentId, AUTODEV_PRICE, deadline);
      const auth = await signAuthorization(usdc, bob, paymentAddress, AUTODEV_PRICE);
      await (await usdc.connect(admin).blacklist(bob.address)).wait();
      expect(await ledger.canMove(bob.address)).to.equal(false);

      await expect(marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE, frank.address))
        .to.be.revertedWithCustomError(ledger, "LedgerAccountBlacklisted")
        .withArgs(bob.address);
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(agentId, bob.address, AUTODEV_PRICE, deadline, signature))
        .to.be.revertedWithCustomError(ledger, "LedgerAccountBlacklisted")
        .withArgs(bob.address);
      const x = auth.authorization;
      await expect(marketplace.connect(stranger).payWithAuthorization(agentId, x.from, x.value, x.validAfter, x.validBefore, x.nonce, auth.signature))
        .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
        .withArgs(bob.address);
      // Nor can it move the balance any other way.
      await expect(ledger.connect(bob).withdraw(stranger.address, 1n)).to.be.revertedWithCustomError(ledger, "LedgerAccountBlacklisted").withArgs(bob.address);
      await expect(ledger.connect(bob).transfer(stranger.address, 1n)).to.be.revertedWithCustomError(ledger, "LedgerAccountBlacklisted").withArgs(bob.address);
      // Nothing changed: no payment, no referrer, no nonce used, the balance intact.
      expect((await marketplace.paymentChain(agentId))[2]).to.equal(0n);
      expect(await marketplace.referrerOf(bob.address)).to.equal(ZeroAddress);
      expect(await ledger.nonces(bob.address)).to.equal(0n);
      expect(await ledger.balanceOf(bob.address)).to.equal(2n * AUTODEV_PRICE);
      expect(await ledger.balanceOf(marketplaceAddress)).to.equal(0n);
      // It still accrues: Judy names Bob as her referrer and pays.
      await (await marketplace.connect(judy).setReferrer(bob.address)).wait();
      const judys = await a.payFromBalance(agentId, judy, AUTODEV_PRICE);
      await (await marketplace.distribute(agentId, flow, [judys])).wait();
      expect(await ledger.balanceOf(bob.address)).to.equal(2n * AUTODEV_PRICE + 120n);
      await a.conservation();

      await (await usdc.connect(admin).unBlacklist(bob.address)).wait();
      const [head] = await marketplace.paymentChain(agentId);
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(agentId, bob.address, AUTODEV_PRICE, deadline, signature))
        .to.emit(marketplace, "AgentPaid")
        .withArgs(agentId, bob.address, ZeroAddress, AUTODEV_PRICE, link(head, { payer: bob.address, referrer: ZeroAddress, amount: AUTODEV_PRICE }));
      expect(await ledger.balanceOf(bob.address)).to.equal(AUTODEV_PRICE + 120n);
      await a.conservation();
    });
  });

  describe("issue 11 §5: signatures are bound to the marketplace and the agent", () => {
    it("issue 11 §5: a payFromBalanceWithSig signature cannot be executed on the ledger first (transferWithSig / withdrawWithSig by anyone else) nor redirected to another agent; the real call credits the payer's referrer and emits AgentPaid", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, bob, frank, eve, stranger, alice, treasury, marketplaceAddress } = a;
      const { agentId, flow } = await listAutoDev(a);
      const { agentId: otherId } = await a.list(alice, flow, AUTODEV_PRICE, { name: "Other" });
      await (await marketplace.connect(bob).setReferrer(frank.address)).wait();
      await a.fundLedger(bob, 2n * AUTODEV_PRICE);
      await (await ledger.connect(bob).approve(marketplaceAddress, 0n)).wait();
      const deadline = BigInt(await a.connection.networkHelpers.time.latest()) + 3_600n;
      const signature = await signPayFromBalance(ledger, marketplaceAddress, bob, agentId, AUTODEV_PRICE, deadline);
      const memo = agentMemo(agentId);
      const snapshot = async () => [
        await ledger.balanceOf(bob.address),
        await ledger.balanceOf(marketplaceAddress),
        await ledger.nonces(bob.address),
        await marketplace.paymentChain(agentId),
        await marketplace.paymentChain(otherId),
      ].toString();
      const before = await snapshot();

      // On the ledger, by anyone but the marketplace: refused, whatever the destination.
      for (const to of [marketplaceAddress, stranger.address]) {
        await expect(ledger.connect(stranger).transferWithSig(bob.address, to, AUTODEV_PRICE, memo, deadline, signature))
          .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
          .withArgs(bob.address);
      }
      await expect(ledger.connect(stranger).withdrawWithSig(bob.address, stranger.address, AUTODEV_PRICE, deadline, signature))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(bob.address);
      await expect(ledger.connect(stranger).withdrawWithSig(bob.address, marketplaceAddress, AUTODEV_PRICE, deadline, signature))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(bob.address);
      // A withdrawal signature is no payment signature either.
      const withdrawal = await signWithdrawal(ledger, bob, marketplaceAddress, AUTODEV_PRICE, deadline);
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(agentId, bob.address, AUTODEV_PRICE, deadline, withdrawal))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(bob.address);
      // Through the marketplace, for another agent or amount: refused.
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(otherId, bob.address, AUTODEV_PRICE, deadline, signature))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(bob.address);
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(agentId, bob.address, AUTODEV_PRICE + 1n, deadline, signature))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(bob.address);
      // A transfer Bob signed for another caller is useless to the marketplace.
      const forStranger = await signTransferAuthorization(ledger, bob, { to: marketplaceAddress, amount: AUTODEV_PRICE, caller: stranger.address, memo, deadline });
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(agentId, bob.address, AUTODEV_PRICE, deadline, forStranger))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(bob.address);
      expect(await snapshot()).to.equal(before);
      await a.conservation();

      // The real call: attributed to Bob, with Frank as his referrer.
      const [base] = await marketplace.paymentChain(agentId);
      const tx = marketplace.connect(stranger).payFromBalanceWithSig(agentId, bob.address, AUTODEV_PRICE, deadline, signature);
      const payment = { payer: bob.address, referrer: frank.address, amount: AUTODEV_PRICE };
      await expect(tx).to.emit(marketplace, "AgentPaid").withArgs(agentId, bob.address, frank.address, AUTODEV_PRICE, link(base, payment));
      await expect(tx).to.emit(ledger, "Transferred").withArgs(bob.address, marketplaceAddress, AUTODEV_PRICE);
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(agentId, bob.address, AUTODEV_PRICE, deadline, signature))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(bob.address);
      await a.conservation();
      await (await marketplace.connect(stranger).distribute(agentId, flow, [payment])).wait();
      expect(await a.balances([frank.address, eve.address, treasury.address, bob.address])).to.deep.equal([120n, 120n, 7_660n, AUTODEV_PRICE]);
      await a.conservation();
    });

    it("issue 11 §5: an offline payer pays with signatures only (a relayer submits its referral and its payment)", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, usdc, frank, stranger, marketplaceAddress } = a;
      const { agentId, flow } = await listAutoDev(a);
      const payer = offlineWallet("gasless");
      await (await marketplace.connect(stranger).setReferrerWithSig(payer.address, frank.address, await signReferral(marketplace, payer, frank.address))).wait();
      await (await usdc.mint(payer.address, AUTODEV_PRICE)).wait();
      const deposit = await signAuthorization(usdc, payer, a.ledgerAddress, AUTODEV_PRICE, { kind: "receive" });
      const d = deposit.authorization;
      await (await ledger.connect(stranger).depositWithAuthorization(payer.address, d.value, d.validAfter, d.validBefore, d.nonce, deposit.signature)).wait();
      const deadline = BigInt(await a.connection.networkHelpers.time.latest()) + 600n;
      const signature = await signPayFromBalance(ledger, marketplaceAddress, payer, agentId, AUTODEV_PRICE, deadline);
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(agentId, payer.address, AUTODEV_PRICE, deadline, signature))
        .to.emit(marketplace, "AgentPaid");
      await (await marketplace.distribute(agentId, flow, [{ payer: payer.address, referrer: frank.address, amount: AUTODEV_PRICE }])).wait();
      expect(await ledger.balanceOf(frank.address)).to.equal(120n);
      expect(await ledger.balanceOf(payer.address)).to.equal(0n);
      await a.conservation();
    });
  });

  describe("reentrancy", () => {
    it("a token calling back into distribute during the deposit into the ledger is stopped by the guard", async () => {
      const a = await setupAgents();
      const { ethers, admin, treasury, alice, stranger } = a;
      const token = await ethers.deployContract("ReentrantToken", [], admin);
      const tokenAddress = await token.getAddress();
      const delay = 2 * 24 * 3600;
      const ledger = await ethers.deployContract("SplitsLedger", [tokenAddress, delay, admin.address], admin);
      const ledgerAddress = await ledger.getAddress();
      const registry = await ethers.deployContract("ProviderRegistry", [tokenAddress, ledgerAddress, 1n, 1n, delay, admin.address], admin);
      const escrow = await ethers.deployContract("ComputeEscrow", [
        tokenAddress, await registry.getAddress(), ledgerAddress, 3600, delay, admin.address, treasury.address, 0,
      ], admin);
      const marketplace = await ethers.deployContract("AgentMarketplace", [
        tokenAddress, ledgerAddress, await escrow.getAddress(), delay, admin.address, treasury.address,
      ], admin);
      await (await registry.connect(admin).bindEscrow(await escrow.getAddress())).wait();
      await (await ledger.connect(admin).setCustodians([await escrow.getAddress(), await registry.getAddress(), await marketplace.getAddress()])).wait();
      const flow = flowOf({ fixedAmounts: [{ recipient: account(alice.address), amount: 100n }] });
      await (await marketplace.connect(alice).list(metadataOf(), 1_000n, flow, ZeroAddress)).wait();
      const paymentAddress = await marketplace.paymentAddressOf(1);
      await (await token.mint(paymentAddress, 2_000n)).wait();
      await (await token.arm(await marketplace.getAddress(), marketplace.interface.encodeFunctionData("distribute", [1n, flow, []]))).wait();
      await (await marketplace.connect(stranger).distribute(1n, flow, [])).wait();
      expect(await token.attempted()).to.equal(true);
      expect(await token.reentryReverted()).to.equal(true);
      expect(marketplace.interface.parseError(await token.reentryRevertData())?.name).to.equal("ReentrancyGuardReentrantCall");
      expect(await ledger.balanceOf(alice.address)).to.equal(200n);
      expect(await ledger.balanceOf(treasury.address)).to.equal(1_800n);
      expect(await token.balanceOf(paymentAddress)).to.equal(0n);
      expect(await token.balanceOf(ledgerAddress)).to.equal(2_000n);
      expect(await ledger.balanceOf(await marketplace.getAddress())).to.equal(0n);
      await expectConservation({
        usdc: token as unknown as MockUSDC,
        ledger: ledger as unknown as SplitsLedger,
        marketplace: marketplace as unknown as AgentMarketplace,
      });
    });
  });
});

const ZERO = `0x${"00".repeat(32)}`;

