import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import { expect } from "chai";
import { ZeroAddress } from "ethers";
import {
  AUTODEV_PRICE,
  Status,
  account,
  autoDevFlow,
  budget,
  ethersMaxUint,
  expectedCredits,
  flowOf,
  link,
  metadataOf,
  setupAgents,
  signAuthorization,
  signReferral,
  signWithdrawal,
  splitRecipient,
  type Agents,
  type Flow,
  type Payment,
} from "./helpers/agents.ts";
import { DAY, USDC, createBudget } from "./helpers/escrow.ts";
import { signPermit } from "./helpers/usdc.ts";

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
      await expect(marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE, frank.address))
        .to.emit(marketplace, "ReferrerRecorded")
        .withArgs(bob.address, frank.address);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(AUTODEV_PRICE);
      expect(await ledger.allowance(bob.address, marketplaceAddress)).to.equal(0n);

      // Anyone distributes.
      const payments: Payment[] = [{ payer: bob.address, referrer: frank.address, amount: AUTODEV_PRICE }];
      const [head] = await marketplace.paymentChain(agentId);
      await expect(marketplace.connect(stranger).distribute(agentId, flow, payments))
        .to.emit(marketplace, "PaymentsDistributed")
        .withArgs(agentId, 1n, AUTODEV_PRICE, 0n, settled(head));

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
      expect(await usdc.balanceOf(paymentAddress)).to.equal(0n);
      expect(await usdc.balanceOf(marketplaceAddress)).to.equal(0n);

      // Each of the 9 withdraws everything to their own wallet.
      for (const [who, amount] of expected) {
        const wallet = await usdc.balanceOf(who.address);
        await expect(ledger.connect(who).withdraw(who.address, amount)).to.emit(ledger, "Withdrawn").withArgs(who.address, who.address, amount);
        expect(await usdc.balanceOf(who.address)).to.equal(wallet + amount);
        expect(await ledger.balanceOf(who.address)).to.equal(0n);
      }
      expect(await usdc.balanceOf(ledgerAddress)).to.equal(0n);
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
      expect(head).to.equal(link(a.ethers, base, payment));
      expect(pending).to.equal(1n);
      await expect(tx).to.emit(marketplace, "AgentPaid").withArgs(agentId, bob.address, frank.address, AUTODEV_PRICE, head);

      await (await marketplace.connect(stranger).distribute(agentId, flow, [payment])).wait();
      const people = [a.alice, a.carol, a.dave, a.grace, a.heidi, a.eve, frank, treasury];
      expect(await Promise.all(people.map((p) => ledger.balanceOf(p.address)))).to.deep.equal([
        2_000n, 1_000n, 500n, 300n, 300n, 120n, 120n, 7_660n,
      ]);
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
    });

    it("cannot be redirected: an authorization to one agent's payment address fails for another agent", async () => {
      const s = await setup();
      const { usdc, bob, marketplace, alice, paymentAddress } = s;
      const { agentId: otherId } = await s.list(alice, autoDevFlow(cast(s)), AUTODEV_PRICE, { name: "Other" });
      const auth = await signAuthorization(usdc, bob, paymentAddress, AUTODEV_PRICE);
      await expect(s.submit(auth, otherId)).to.be.revertedWithCustomError(usdc, "AuthorizationInvalidSignature").withArgs(bob.address);
      expect((await marketplace.paymentChain(otherId))[2]).to.equal(0n);
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
      const unknown = await signAuthorization(usdc, bob, await marketplace.paymentAddressOf(5n), AUTODEV_PRICE);
      await expect(s.submit(unknown, 5n)).to.be.revertedWithCustomError(marketplace, "MarketplaceUnknownAgent").withArgs(5n);
      // The payment address still takes plain transfers; a retired agent's funds are still distributed.
      await (await usdc.connect(bob).transfer(paymentAddress, AUTODEV_PRICE)).wait();
      const [head] = await marketplace.paymentChain(agentId);
      await expect(marketplace.distribute(agentId, s.flow, []))
        .to.emit(marketplace, "PaymentsDistributed")
        .withArgs(agentId, 0n, 0n, AUTODEV_PRICE, head);
    });

    it("a front-run authorization (executed on the token directly) still pays the agent, without attribution", async () => {
      const s = await setup();
      const { usdc, bob, frank, stranger, marketplace, agentId, paymentAddress, flow, treasury, ledger } = s;
      await (await marketplace.connect(bob).setReferrer(frank.address)).wait();
      const auth = await signAuthorization(usdc, bob, paymentAddress, AUTODEV_PRICE);
      const x = auth.authorization;
      await (
        await usdc
          .connect(stranger)
          ["transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)"](x.from, x.to, x.value, x.validAfter, x.validBefore, x.nonce, auth.signature)
      ).wait();
      await expect(s.submit(auth)).to.be.revertedWithCustomError(usdc, "AuthorizationAlreadyUsed");
      await (await marketplace.distribute(agentId, flow, [])).wait();
      expect(await ledger.balanceOf(frank.address)).to.equal(0n);
      expect(await ledger.balanceOf(treasury.address)).to.equal(7_660n + 120n);
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

      await (await ledger.connect(admin).grantRole(await ledger.COMPLIANCE_ROLE(), admin.address)).wait();
      await (await ledger.connect(admin).setFrozen(bob.address, true)).wait();
      await expect(marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE, ZeroAddress))
        .to.be.revertedWithCustomError(ledger, "LedgerAccountFrozen")
        .withArgs(bob.address);
      await (await ledger.connect(admin).setFrozen(bob.address, false)).wait();
      await (await ledger.connect(bob).approve(marketplaceAddress, ethersMaxUint)).wait();
      await (await marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE, ZeroAddress)).wait();
      expect(await ledger.allowance(bob.address, marketplaceAddress)).to.equal(ethersMaxUint);
      await expect(marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE, ZeroAddress))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientBalance")
        .withArgs(bob.address, 0n, AUTODEV_PRICE);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(2n * AUTODEV_PRICE);
      expect((await marketplace.paymentChain(agentId))[2]).to.equal(2n);
    });

    it("payFromBalanceWithSig: a relayer submits the payer's ledger withdrawal to the payment address", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, bob, stranger, alice } = a;
      const { agentId, paymentAddress, flow } = await listAutoDev(a);
      const { agentId: otherId, paymentAddress: otherAddress } = await a.list(alice, flow, AUTODEV_PRICE, { name: "Other" });
      await a.fundLedger(bob, 2n * AUTODEV_PRICE);
      await (await ledger.connect(bob).approve(a.marketplaceAddress, 0n)).wait(); // no allowance needed
      const deadline = BigInt(await a.connection.networkHelpers.time.latest()) + 600n;
      const signature = await signWithdrawal(ledger, bob, paymentAddress, AUTODEV_PRICE, deadline);
      // Made out to agent 1's address: useless for agent 2.
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(otherId, bob.address, AUTODEV_PRICE, deadline, signature))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(bob.address);
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(agentId, bob.address, AUTODEV_PRICE, deadline, signature))
        .to.emit(ledger, "Withdrawn")
        .withArgs(bob.address, paymentAddress, AUTODEV_PRICE);
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(agentId, bob.address, AUTODEV_PRICE, deadline, signature))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(bob.address);
      const late = await signWithdrawal(ledger, bob, otherAddress, AUTODEV_PRICE, deadline);
      await a.connection.networkHelpers.time.increaseTo(deadline + 1n);
      await expect(marketplace.connect(stranger).payFromBalanceWithSig(otherId, bob.address, AUTODEV_PRICE, deadline, late))
        .to.be.revertedWithCustomError(ledger, "LedgerSignatureExpired")
        .withArgs(deadline);
      await (await marketplace.distribute(agentId, flow, [{ payer: bob.address, referrer: ZeroAddress, amount: AUTODEV_PRICE }])).wait();
      expect(await ledger.balanceOf(alice.address)).to.equal(2_000n);
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
    });

    it("USDC sent to a payment address before its agent is listed is distributed after listing", async () => {
      const a = await setupAgents();
      const { marketplace, usdc, alice } = a;
      const early = await marketplace.paymentAddressOf(1);
      await (await usdc.mint(early, AUTODEV_PRICE)).wait();
      const { agentId, flow } = await listAutoDev(a);
      await (await marketplace.distribute(agentId, flow, [])).wait();
      expect(await a.ledger.balanceOf(alice.address)).to.equal(2_000n);
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
      const ledgerHeld = await usdc.balanceOf(await ledger.getAddress());
      const [pendingHead] = await marketplace.paymentChain(agentId);
      await expect(marketplace.connect(stranger).distribute(agentId, flow, payments))
        .to.emit(marketplace, "PaymentsDistributed")
        .withArgs(agentId, 36n, total, stray, settled(pendingHead));
      await expectCredits(a, before, expected.accounts);
      expect([...expected.accounts.values()].reduce((s, v) => s + v, 0n)).to.equal(total + stray);
      expect(await usdc.balanceOf(await ledger.getAddress())).to.equal(ledgerHeld + total + stray);
      const [head, base, pending] = await marketplace.paymentChain(agentId);
      expect([head === base, pending]).to.deep.equal([true, 0n]);
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
      await expect(tx).to.emit(ledger, "SplitDistributed").withArgs(splitAddress, 2_000n);
      expect((await escrow.getBudget(budgetId)).available).to.equal(available + 9_000n);
      expect(await ledger.balanceOf(carol.address)).to.equal(800n);
      expect(await ledger.balanceOf(dave.address)).to.equal(1_200n);
      expect(await ledger.balanceOf(alice.address)).to.equal(9_000n);
      expect(await ledger.balanceOf(treasury.address)).to.equal(0n);

      // Once the budget has expired its part goes to the budget's creator instead of blocking the payout.
      await a.connection.networkHelpers.time.increase(31 * DAY);
      await (await usdc.mint(paymentAddress, 10_000n)).wait();
      await expect(marketplace.distribute(agentId, flow, [])).not.to.emit(escrow, "BudgetToppedUp");
      expect(await ledger.balanceOf(creator.address)).to.equal(4_500n);
      expect((await escrow.getBudget(budgetId)).available).to.equal(available + 9_000n);
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
      }
    });

    it("a flow paying only budgets makes no ledger call; a part that rounds to zero is skipped", async () => {
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
      await expect(tx).not.to.emit(ledger, "Paid");
      await expect(tx).to.emit(escrow, "BudgetToppedUp").withArgs(budgetId, a.marketplaceAddress, 100n);
      await expect(tx).to.emit(escrow, "BudgetToppedUp").withArgs(budgetId, a.marketplaceAddress, 900n);
      expect((await escrow.getBudget(budgetId)).available).to.equal(available + 1_000n);
      expect(await ledger.balanceOf(carol.address)).to.equal(0n);
    });

    it("compliance: a frozen recipient keeps accruing but cannot withdraw until unfrozen", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, admin, dave, bob } = a;
      const { agentId, flow } = await listAutoDev(a);
      await (await ledger.connect(admin).grantRole(await ledger.COMPLIANCE_ROLE(), admin.address)).wait();
      await (await ledger.connect(admin).setFrozen(dave.address, true)).wait();
      const payment = await a.payFromBalance(agentId, bob, AUTODEV_PRICE);
      await (await marketplace.distribute(agentId, flow, [payment])).wait();
      expect(await ledger.balanceOf(dave.address)).to.equal(500n);
      await expect(ledger.connect(dave).withdraw(dave.address, 500n)).to.be.revertedWithCustomError(ledger, "LedgerAccountFrozen").withArgs(dave.address);
      await (await ledger.connect(admin).setFrozen(dave.address, false)).wait();
      await expect(ledger.connect(dave).withdraw(dave.address, 500n)).to.emit(ledger, "Withdrawn").withArgs(dave.address, dave.address, 500n);
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
    });
  });

  describe("reentrancy", () => {
    it("a token calling back into distribute during the sweep is stopped by the guard", async () => {
      const a = await setupAgents();
      const { ethers, admin, treasury, alice, stranger } = a;
      const token = await ethers.deployContract("ReentrantToken");
      const tokenAddress = await token.getAddress();
      const ledger = await ethers.deployContract("SplitsLedger", [tokenAddress, admin.address]);
      const registry = await ethers.deployContract("ProviderRegistry", [tokenAddress, 1n, 1n, admin.address]);
      const escrow = await ethers.deployContract("ComputeEscrow", [
        tokenAddress, await registry.getAddress(), await ledger.getAddress(), 3600, admin.address, treasury.address, 0,
      ]);
      const marketplace = await ethers.deployContract("AgentMarketplace", [
        tokenAddress, await ledger.getAddress(), await escrow.getAddress(), admin.address, treasury.address,
      ]);
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
    });
  });
});

const ZERO = `0x${"00".repeat(32)}`;

/** A chain head with its pending count zeroed: the head (and base) after a distribution. */
function settled(head: string): string {
  return `0x${((BigInt(head) >> 32n) << 32n).toString(16).padStart(64, "0")}`;
}
