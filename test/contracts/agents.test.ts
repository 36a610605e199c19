import { expect } from "chai";
import { ZeroAddress, keccak256 } from "ethers";
import { hashTypedData, type Address, type Hex } from "viem";
import {
  AUTODEV_PRICE,
  COUNT_MASK,
  cloneInitCode,
  ethersMaxUint,
  predictPaymentAddress,
  Kind,
  SCALE,
  Status,
  TREASURY,
  account,
  autoDevFlow,
  budget,
  flowOf,
  latestAgents,
  flowTuple,
  marketplaceDomain,
  metadataOf,
  referralTypes,
  setupAgents,
  signReferral,
  splitRecipient,
  type Agents,
  type Flow,
  type Metadata,
} from "./helpers/agents.ts";
import { createBudget, USDC } from "./helpers/escrow.ts";

const FLOW_TYPE =
  "tuple(tuple(tuple(uint8,address,uint64),uint64)[],tuple(tuple(uint8,address,uint64),uint32)[],uint32,uint32,tuple(uint8,address,uint64))";

/** The admin delay of contracts deployed by hand in these tests (two-step admin transfer). */
const DELAY = 2 * 24 * 3600;

function cast(a: Agents) {
  return { alice: a.alice.address, carol: a.carol.address, dave: a.dave.address, grace: a.grace.address, heidi: a.heidi.address };
}

describe("AgentMarketplace: listings", () => {
  // Conservation after every scenario (besides the checks inside them): see `expectConservation`.
  afterEach(async function () {
    if (this.currentTest?.state === "passed") await latestAgents()?.conservation();
  });

  describe("list", () => {
    it("lists at the predicted payment address, deploys its clone and stores hash-only terms", async () => {
      const a = await setupAgents();
      const { marketplace, alice, eve, ethers } = a;
      const flow = autoDevFlow(cast(a));
      const predicted = await marketplace.nextPaymentAddress(alice.address);
      expect(await ethers.provider.getCode(predicted)).to.equal("0x");
      const flowHash = await marketplace.hashFlow(flow);
      expect(flowHash).to.equal(keccak256(ethers.AbiCoder.defaultAbiCoder().encode([FLOW_TYPE], [flowTuple(flow)])));

      const metadata = metadataOf("AutoDev");
      const tx = marketplace.connect(alice).list(metadata, AUTODEV_PRICE, flow, eve.address);
      await expect(tx)
        .to.emit(marketplace, "AgentListed")
        .withArgs(1n, alice.address, predicted, [metadata.name, metadata.metadataURI, metadata.endpoint]);
      await expect(tx).to.emit(marketplace, "AgentTermsSet").withArgs(1n, AUTODEV_PRICE, flowHash, flowTuple(flow));
      await expect(tx).to.emit(marketplace, "ReferrerRecorded").withArgs(alice.address, eve.address);

      expect(await marketplace.agentCount()).to.equal(1n);
      const agent = await marketplace.getAgent(1);
      expect(agent.owner).to.equal(alice.address);
      expect(agent.status).to.equal(Status.Active);
      expect(agent.pricePerCall).to.equal(AUTODEV_PRICE);
      expect(agent.flowHash).to.equal(flowHash);
      expect(agent.paymentAddress).to.equal(predicted);
      expect(await marketplace.paymentAddressOf(1)).to.equal(predicted);
      expect([...agent.metadata]).to.deep.equal([metadata.name, metadata.metadataURI, metadata.endpoint]);
      // Alice's next listing gets another address.
      expect(await marketplace.nextPaymentAddress(alice.address)).to.not.equal(predicted);

      const implementation = await marketplace.paymentAddressImplementation();
      expect(await ethers.provider.getCode(predicted)).to.equal(
        `0x363d3d373d3d3d363d73${implementation.slice(2).toLowerCase()}5af43d82803e903d91602b57fd5bf3`,
      );
      const [head, base, pending] = await marketplace.paymentChain(1);
      expect(head).to.equal(base);
      expect(BigInt(head)).to.not.equal(0n);
      expect(BigInt(head) & COUNT_MASK).to.equal(0n);
      expect(pending).to.equal(0n);
      await a.conservation();
    });

    it("issue 11 §5: payment addresses are CREATE2 clones salted by (owner, owner's listing count), known before listing", async () => {
      const a = await setupAgents();
      const { marketplace, marketplaceAddress, alice, bob, ethers } = a;
      const implementation = await marketplace.paymentAddressImplementation();
      const predict = (owner: string, count: bigint) => predictPaymentAddress(marketplaceAddress, implementation, owner, count);
      // The salt is keccak256(abi.encode(owner, count)): the init code is EIP-1167's.
      expect(cloneInitCode(implementation)).to.equal(
        `0x3d602d80600a3d3981f3363d3d373d3d3d363d73${implementation.slice(2).toLowerCase()}5af43d82803e903d91602b57fd5bf3`,
      );
      expect(await marketplace.nextPaymentAddress(alice.address)).to.equal(predict(alice.address, 0n));
      expect(await marketplace.nextPaymentAddress(bob.address)).to.equal(predict(bob.address, 0n));
      expect(predict(alice.address, 0n)).to.not.equal(predict(bob.address, 0n));

      // Agent ids are interleaved between owners; each owner's addresses follow its own count.
      await a.list(alice, autoDevFlow(cast(a)), AUTODEV_PRICE);
      expect(await marketplace.nextPaymentAddress(alice.address)).to.equal(predict(alice.address, 1n));
      await a.list(bob, autoDevFlow(cast(a)), AUTODEV_PRICE, { name: "Bob's" });
      await a.list(alice, autoDevFlow(cast(a)), AUTODEV_PRICE, { name: "Other" });
      expect((await marketplace.getAgent(1)).paymentAddress).to.equal(predict(alice.address, 0n));
      expect((await marketplace.getAgent(2)).paymentAddress).to.equal(predict(bob.address, 0n));
      expect((await marketplace.getAgent(3)).paymentAddress).to.equal(predict(alice.address, 1n));
      expect(await marketplace.paymentAddressOf(3)).to.equal(predict(alice.address, 1n));
      expect(await marketplace.nextPaymentAddress(alice.address)).to.equal(predict(alice.address, 2n));
      expect(await marketplace.nextPaymentAddress(bob.address)).to.equal(predict(bob.address, 1n));
      for (const id of [1n, 2n, 3n]) expect(await ethers.provider.getCode(await marketplace.paymentAddressOf(id))).to.not.equal("0x");
      // Handing an agent over keeps its address; the new owner's next address is its own.
      await (await marketplace.connect(alice).transferAgent(1n, bob.address)).wait();
      expect(await marketplace.paymentAddressOf(1)).to.equal(predict(alice.address, 0n));
      expect(await marketplace.nextPaymentAddress(bob.address)).to.equal(predict(bob.address, 1n));
    });

    it("issue 11 §5: paymentAddressOf of an unknown agent reverts (no address is promised to an id)", async () => {
      const a = await setupAgents();
      const { marketplace, alice } = a;
      for (const id of [0n, 1n, 2n, 2n ** 64n]) {
        await expect(marketplace.paymentAddressOf(id)).to.be.revertedWithCustomError(marketplace, "MarketplaceUnknownAgent").withArgs(id);
      }
      const { paymentAddress } = await a.list(alice, autoDevFlow(cast(a)), AUTODEV_PRICE);
      expect(await marketplace.paymentAddressOf(1n)).to.equal(paymentAddress);
      await expect(marketplace.paymentAddressOf(2n)).to.be.revertedWithCustomError(marketplace, "MarketplaceUnknownAgent").withArgs(2n);
    });

    it("a payment address moves USDC only for the marketplace, into the ledger, and refuses ETH", async () => {
      const a = await setupAgents();
      const { marketplace, marketplaceAddress, ledgerAddress, alice, stranger, usdc, ethers } = a;
      const { paymentAddress } = await a.list(alice, autoDevFlow(cast(a)), AUTODEV_PRICE);
      const clone = await ethers.getContractAt("AgentPaymentAddress", paymentAddress);
      expect(await clone.marketplace()).to.equal(marketplaceAddress);
      expect(await clone.token()).to.equal(await usdc.getAddress());
      expect(await clone.ledger()).to.equal(ledgerAddress);
      await (await usdc.mint(paymentAddress, 1_000n)).wait();
      await expect(clone.connect(stranger).deposit(1_000n))
        .to.be.revertedWithCustomError(clone, "PaymentAddressUnauthorized")
        .withArgs(stranger.address);
      await expect(clone.connect(alice).deposit(1n))
        .to.be.revertedWithCustomError(clone, "PaymentAddressUnauthorized")
        .withArgs(alice.address);
      await expect(stranger.sendTransaction({ to: paymentAddress, value: 1n })).to.be.revert(ethers);
      expect(await usdc.balanceOf(paymentAddress)).to.equal(1_000n);
      expect(await usdc.allowance(paymentAddress, ledgerAddress)).to.equal(0n);
      // The implementation itself is no one's payment address and is guarded the same way.
      const implementation = await ethers.getContractAt("AgentPaymentAddress", await marketplace.paymentAddressImplementation());
      expect(await implementation.marketplace()).to.equal(marketplaceAddress);
      await expect(implementation.connect(stranger).deposit(0n))
        .to.be.revertedWithCustomError(implementation, "PaymentAddressUnauthorized")
        .withArgs(stranger.address);
      await a.conservation();
    });

    it("accepts Split and Budget recipients that exist, and the zero remainder as the treasury", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, escrow, usdc, alice, carol, dave, creator } = a;
      const split = { recipients: [{ account: carol.address, share: 500_000 }], remainderRecipient: dave.address };
      await (await ledger.createSplit(split)).wait();
      const splitAddress = await ledger.predictSplitAddress(split);
      const budgetId = await createBudget(usdc, escrow, { creator, amount: 10n * USDC, agents: [a.agent.address] });
      const flow = flowOf({
        fixedAmounts: [{ recipient: splitRecipient(splitAddress), amount: 100n }],
        shares: [{ recipient: budget(budgetId), share: 250_000n }],
        remainder: TREASURY,
      });
      await expect(marketplace.connect(alice).list(metadataOf(), 1_000n, flow, ZeroAddress)).to.emit(marketplace, "AgentListed");
    });
  });

  describe("bad input: each reverts with its named error and changes nothing", () => {
    const LONG = "x".repeat(513);
    type Case = {
      name: string;
      error: string;
      args: (a: Agents, flow: Flow) => unknown[];
      make: (a: Agents, flow: Flow) => Promise<{ metadata?: Metadata; price?: bigint; flow?: Flow }>;
    };
    const withFixed = (flow: Flow, n: number, r = account(ZeroAddress)) => ({
      ...flow,
      fixedAmounts: Array.from({ length: n }, () => ({ recipient: r, amount: 1n })),
    });
    const cases: Case[] = [
      { name: "zero price", error: "MarketplaceInvalidPrice", args: () => [0n], make: async () => ({ price: 0n }) },
      { name: "price above 64 bits", error: "MarketplaceInvalidPrice", args: () => [2n ** 64n], make: async () => ({ price: 2n ** 64n }) },
      { name: "empty name", error: "MarketplaceInvalidName", args: () => [0n, 64n], make: async () => ({ metadata: { ...metadataOf(), name: "" } }) },
      { name: "name too long", error: "MarketplaceInvalidName", args: () => [65n, 64n], make: async () => ({ metadata: { ...metadataOf(), name: "n".repeat(65) } }) },
      { name: "empty endpoint", error: "MarketplaceInvalidEndpoint", args: () => [0n, 512n], make: async () => ({ metadata: { ...metadataOf(), endpoint: "" } }) },
      { name: "endpoint too long", error: "MarketplaceInvalidEndpoint", args: () => [513n, 512n], make: async () => ({ metadata: { ...metadataOf(), endpoint: LONG } }) },
      { name: "metadata URI too long", error: "MarketplaceInvalidMetadataURI", args: () => [513n, 512n], make: async () => ({ metadata: { ...metadataOf(), metadataURI: LONG } }) },
      {
        name: "17 fixed amounts",
        error: "MarketplaceFlowTooManyComponents",
        args: () => [17n, 16n],
        make: async (a, flow) => ({ flow: withFixed(flow, 17, account(a.carol.address)) }),
      },
      {
        name: "17 shares",
        error: "MarketplaceFlowTooManyComponents",
        args: () => [17n, 16n],
        make: async (a, flow) => ({ flow: { ...flow, shares: Array.from({ length: 17 }, () => ({ recipient: account(a.carol.address), share: 1n })) } }),
      },
      {
        name: "zero account in a fixed amount",
        error: "MarketplaceFlowInvalidRecipient",
        args: () => [2n],
        make: async (_a, flow) => ({ flow: { ...flow, fixedAmounts: [...flow.fixedAmounts.slice(0, 2), { recipient: account(ZeroAddress), amount: 1n }] } }),
      },
      {
        name: "account recipient with a budget id",
        error: "MarketplaceFlowInvalidRecipient",
        args: () => [0n],
        make: async (a, flow) => ({ flow: { ...flow, fixedAmounts: [{ recipient: { ...account(a.carol.address), budgetId: 1n }, amount: 1n }] } }),
      },
      {
        name: "budget recipient with an account",
        error: "MarketplaceFlowInvalidRecipient",
        args: (_a, flow) => [BigInt(flow.fixedAmounts.length)],
        make: async (a, flow) => ({ flow: { ...flow, shares: [{ recipient: { ...budget(1n), account: a.carol.address }, share: 1n }] } }),
      },
      {
        name: "budget id zero",
        error: "MarketplaceFlowInvalidRecipient",
        args: (_a, flow) => [BigInt(flow.fixedAmounts.length)],
        make: async (_a, flow) => ({ flow: { ...flow, shares: [{ recipient: budget(0n), share: 1n }] } }),
      },
      {
        name: "zero Split as the remainder",
        error: "MarketplaceFlowInvalidRecipient",
        args: (_a, flow) => [BigInt(flow.fixedAmounts.length)],
        make: async (_a, flow) => ({ flow: { ...flow, remainder: splitRecipient(ZeroAddress) } }),
      },
      {
        name: "zero fixed amount",
        error: "MarketplaceFlowZeroComponent",
        args: () => [1n],
        make: async (_a, flow) => ({ flow: { ...flow, fixedAmounts: flow.fixedAmounts.map((f, i) => (i === 1 ? { ...f, amount: 0n } : f)) } }),
      },
      {
        name: "zero share",
        error: "MarketplaceFlowZeroComponent",
        args: (_a, flow) => [BigInt(flow.fixedAmounts.length + 1)],
        make: async (a, flow) => ({
          flow: { ...flow, shares: [{ recipient: account(a.carol.address), share: 5n }, { recipient: account(a.dave.address), share: 0n }] },
        }),
      },
      {
        name: "shares above 100%",
        error: "MarketplaceFlowInvalidShares",
        args: () => [SCALE + 1n, SCALE],
        make: async (a, flow) => ({
          flow: { ...flow, shares: [{ recipient: account(a.carol.address), share: SCALE }, { recipient: account(a.dave.address), share: 1n }] },
        }),
      },
      {
        name: "referral shares above 100%",
        error: "MarketplaceFlowInvalidShares",
        args: () => [SCALE + 1n, SCALE],
        make: async (_a, flow) => ({ flow: { ...flow, fixedAmounts: [], payerReferrerShare: SCALE, payeeReferrerShare: 1n } }),
      },
      {
        name: "fixed amounts above the price",
        error: "MarketplaceFlowExceedsPrice",
        args: () => [4_100n + 40n + 40n, 4_000n],
        make: async () => ({ price: 4_000n }),
      },
      {
        name: "fixed amounts plus referral rewards above the price",
        error: "MarketplaceFlowExceedsPrice",
        args: () => [4_100n + 6_000n + 2_400n, AUTODEV_PRICE],
        make: async (_a, flow) => ({ flow: { ...flow, payerReferrerShare: 500_000n, payeeReferrerShare: 200_000n } }),
      },
      {
        name: "Split recipient that is not a split",
        error: "MarketplaceFlowUnknownSplit",
        args: (a) => [a.carol.address],
        make: async (a, flow) => ({ flow: { ...flow, fixedAmounts: [{ recipient: splitRecipient(a.carol.address), amount: 1n }] } }),
      },
      {
        name: "Budget recipient that does not exist",
        error: "MarketplaceFlowUnknownBudget",
        args: () => [1n],
        make: async (_a, flow) => ({ flow: { ...flow, remainder: budget(1n) } }),
      },
    ];

    for (const c of cases) {
      it(`list: ${c.name} → ${c.error}`, async () => {
        const a = await setupAgents();
        const base = autoDevFlow(cast(a));
        const { metadata, price, flow } = await c.make(a, base);
        await expect(
          a.marketplace.connect(a.alice).list(metadata ?? metadataOf(), price ?? AUTODEV_PRICE, flow ?? base, a.eve.address),
        )
          .to.be.revertedWithCustomError(a.marketplace, c.error)
          .withArgs(...c.args(a, flow ?? base));
        expect(await a.marketplace.agentCount()).to.equal(0n);
        expect(await a.marketplace.referrerOf(a.alice.address)).to.equal(ZeroAddress);
      });
    }

    it("updateAgent and updateTerms apply the same checks and leave the listing as it was", async () => {
      const a = await setupAgents();
      const { marketplace, alice } = a;
      const base = autoDevFlow(cast(a));
      const { agentId } = await a.list(alice, base, AUTODEV_PRICE);
      const snapshot = async () => JSON.stringify(await marketplace.getAgent(agentId), (_k, v) => (typeof v === "bigint" ? v.toString() : v));
      const before = await snapshot();
      for (const c of cases) {
        const { metadata, price, flow } = await c.make(a, base);
        const call = metadata
          ? marketplace.connect(alice).updateAgent(agentId, metadata)
          : marketplace.connect(alice).updateTerms(agentId, price ?? AUTODEV_PRICE, flow ?? base, base, []);
        await expect(call, c.name).to.be.revertedWithCustomError(marketplace, c.error).withArgs(...c.args(a, flow ?? base));
      }
      expect(await snapshot()).to.equal(before);
    });
  });

  describe("lifecycle and access control", () => {
    it("owner updates metadata and terms; pause/unpause toggle; retired is final", async () => {
      const a = await setupAgents();
      const { marketplace, alice, stranger } = a;
      const flow = autoDevFlow(cast(a));
      const { agentId } = await a.list(alice, flow, AUTODEV_PRICE);

      const renamed = metadataOf("AutoDev2");
      await expect(marketplace.connect(alice).updateAgent(agentId, renamed))
        .to.emit(marketplace, "AgentUpdated")
        .withArgs(agentId, [renamed.name, renamed.metadataURI, renamed.endpoint]);
      expect((await marketplace.getAgent(agentId)).metadata.name).to.equal("AutoDev2");

      const cheaper = flowOf({ fixedAmounts: [{ recipient: account(alice.address), amount: 100n }] });
      const cheaperHash = await marketplace.hashFlow(cheaper);
      await expect(marketplace.connect(alice).updateTerms(agentId, 1_000n, cheaper, flow, []))
        .to.emit(marketplace, "AgentTermsSet")
        .withArgs(agentId, 1_000n, cheaperHash, flowTuple(cheaper));
      const updated = await marketplace.getAgent(agentId);
      expect([updated.pricePerCall, updated.flowHash]).to.deep.equal([1_000n, cheaperHash]);

      await expect(marketplace.connect(alice).unpause(agentId))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceInvalidStatus")
        .withArgs(agentId, Status.Active);
      await expect(marketplace.connect(alice).pause(agentId)).to.emit(marketplace, "AgentStatusChanged").withArgs(agentId, Status.Paused);
      await expect(marketplace.connect(alice).pause(agentId))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceInvalidStatus")
        .withArgs(agentId, Status.Paused);
      await expect(marketplace.connect(alice).unpause(agentId)).to.emit(marketplace, "AgentStatusChanged").withArgs(agentId, Status.Active);
      await expect(marketplace.connect(alice).retire(agentId)).to.emit(marketplace, "AgentStatusChanged").withArgs(agentId, Status.Retired);
      expect((await marketplace.getAgent(agentId)).status).to.equal(Status.Retired);

      for (const call of [
        () => marketplace.connect(alice).updateAgent(agentId, renamed),
        () => marketplace.connect(alice).updateTerms(agentId, 1_000n, cheaper, cheaper, []),
        () => marketplace.connect(alice).pause(agentId),
        () => marketplace.connect(alice).unpause(agentId),
        () => marketplace.connect(alice).retire(agentId),
        () => marketplace.connect(alice).transferAgent(agentId, stranger.address),
      ]) {
        await expect(call()).to.be.revertedWithCustomError(marketplace, "MarketplaceInvalidStatus").withArgs(agentId, Status.Retired);
      }
    });

    it("every owner action reverts for anyone else, and for unknown agents", async () => {
      const a = await setupAgents();
      const { marketplace, alice, stranger } = a;
      const flow = autoDevFlow(cast(a));
      const { agentId } = await a.list(alice, flow, AUTODEV_PRICE);
      const calls = (id: bigint, as = stranger) => [
        () => marketplace.connect(as).updateAgent(id, metadataOf("X")),
        // Valid terms: the owner check is the only reason this reverts.
        () => marketplace.connect(as).updateTerms(id, AUTODEV_PRICE, flow, flow, []),
        () => marketplace.connect(as).pause(id),
        () => marketplace.connect(as).unpause(id),
        () => marketplace.connect(as).retire(id),
        () => marketplace.connect(as).transferAgent(id, as.address),
      ];
      for (const call of calls(agentId)) {
        await expect(call()).to.be.revertedWithCustomError(marketplace, "MarketplaceNotAgentOwner").withArgs(agentId, stranger.address);
      }
      for (const call of [
        ...calls(99n, alice),
        () => marketplace.getAgent(99n),
        () => marketplace.paymentAddressOf(99n),
        () => marketplace.distribute(99n, flow, []),
      ]) {
        await expect(call()).to.be.revertedWithCustomError(marketplace, "MarketplaceUnknownAgent").withArgs(99n);
      }
      await expect(marketplace.getAgent(0n)).to.be.revertedWithCustomError(marketplace, "MarketplaceUnknownAgent").withArgs(0n);
      expect((await marketplace.getAgent(agentId)).status).to.equal(Status.Active);
    });

    it("transferAgent hands the listing over (zero address refused)", async () => {
      const a = await setupAgents();
      const { marketplace, alice, bob } = a;
      const { agentId } = await a.list(alice, autoDevFlow(cast(a)), AUTODEV_PRICE);
      await expect(marketplace.connect(alice).transferAgent(agentId, ZeroAddress)).to.be.revertedWithCustomError(marketplace, "MarketplaceZeroAddress");
      await expect(marketplace.connect(alice).transferAgent(agentId, bob.address))
        .to.emit(marketplace, "AgentOwnershipTransferred")
        .withArgs(agentId, alice.address, bob.address);
      expect((await marketplace.getAgent(agentId)).owner).to.equal(bob.address);
      await expect(marketplace.connect(alice).pause(agentId))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceNotAgentOwner")
        .withArgs(agentId, alice.address);
      await expect(marketplace.connect(bob).pause(agentId)).to.emit(marketplace, "AgentStatusChanged");
    });

    it("only the admin sets the treasury, never to zero", async () => {
      const { marketplace, admin, stranger, treasury } = await setupAgents();
      expect(await marketplace.treasury()).to.equal(treasury.address);
      await expect(marketplace.connect(stranger).setTreasury(stranger.address))
        .to.be.revertedWithCustomError(marketplace, "AccessControlUnauthorizedAccount")
        .withArgs(stranger.address, await marketplace.DEFAULT_ADMIN_ROLE());
      await expect(marketplace.connect(admin).setTreasury(ZeroAddress)).to.be.revertedWithCustomError(marketplace, "MarketplaceZeroAddress");
      await expect(marketplace.connect(admin).setTreasury(stranger.address)).to.emit(marketplace, "TreasurySet").withArgs(stranger.address);
      expect(await marketplace.treasury()).to.equal(stranger.address);
    });

    it("issue 11 §3: the marketplace admin changes only in two steps after the delay, and can only set the treasury", async () => {
      const a = await setupAgents();
      const { marketplace, admin, stranger, alice, connection } = a;
      const ADMIN = await marketplace.DEFAULT_ADMIN_ROLE();
      expect(await marketplace.defaultAdmin()).to.equal(admin.address);
      const delay = await marketplace.defaultAdminDelay();
      expect(delay).to.equal(2n * 24n * 3600n);
      await expect(marketplace.connect(stranger).beginDefaultAdminTransfer(stranger.address))
        .to.be.revertedWithCustomError(marketplace, "AccessControlUnauthorizedAccount")
        .withArgs(stranger.address, ADMIN);
      // No shortcut: the admin role cannot be granted directly.
      await expect(marketplace.connect(admin).grantRole(ADMIN, alice.address)).to.be.revertedWithCustomError(
        marketplace,
        "AccessControlEnforcedDefaultAdminRules",
      );
      await (await marketplace.connect(admin).beginDefaultAdminTransfer(alice.address)).wait();
      const [pending, schedule] = await marketplace.pendingDefaultAdmin();
      expect(pending).to.equal(alice.address);
      await expect(marketplace.connect(alice).acceptDefaultAdminTransfer())
        .to.be.revertedWithCustomError(marketplace, "AccessControlEnforcedDefaultAdminDelay")
        .withArgs(schedule);
      await expect(marketplace.connect(stranger).acceptDefaultAdminTransfer())
        .to.be.revertedWithCustomError(marketplace, "AccessControlInvalidDefaultAdmin")
        .withArgs(stranger.address);
      await connection.networkHelpers.time.increaseTo(schedule + 1n);
      await (await marketplace.connect(alice).acceptDefaultAdminTransfer()).wait();
      expect(await marketplace.defaultAdmin()).to.equal(alice.address);
      await expect(marketplace.connect(admin).setTreasury(admin.address))
        .to.be.revertedWithCustomError(marketplace, "AccessControlUnauthorizedAccount")
        .withArgs(admin.address, ADMIN);
      await expect(marketplace.connect(alice).setTreasury(alice.address)).to.emit(marketplace, "TreasurySet").withArgs(alice.address);
    });

    it("views name the suite's token, ledger and escrow; the constructor refuses a ledger or escrow on another token", async () => {
      const a = await setupAgents();
      const { marketplace, ledger, escrow, usdc, ethers, admin, treasury } = a;
      expect(await marketplace.token()).to.equal(await usdc.getAddress());
      expect(await marketplace.ledger()).to.equal(await ledger.getAddress());
      expect(await marketplace.escrow()).to.equal(await escrow.getAddress());
      const other = await ethers.deployContract("MockUSDC", ["USD Coin"]);
      const otherLedger = await ethers.deployContract("SplitsLedger", [await other.getAddress(), DELAY, admin.address]);
      const factory = await ethers.getContractFactory("AgentMarketplace");
      await expect(
        factory.deploy(await usdc.getAddress(), await otherLedger.getAddress(), await escrow.getAddress(), DELAY, admin.address, treasury.address),
      )
        .to.be.revertedWithCustomError(marketplace, "MarketplaceTokenMismatch")
        .withArgs(await usdc.getAddress(), await other.getAddress());
      await expect(
        factory.deploy(await other.getAddress(), await otherLedger.getAddress(), await escrow.getAddress(), DELAY, admin.address, treasury.address),
      )
        .to.be.revertedWithCustomError(marketplace, "MarketplaceTokenMismatch")
        .withArgs(await other.getAddress(), await usdc.getAddress());
      await expect(
        factory.deploy(await usdc.getAddress(), await ledger.getAddress(), await escrow.getAddress(), DELAY, admin.address, ZeroAddress),
      ).to.be.revertedWithCustomError(marketplace, "MarketplaceZeroAddress");
      // The deployed marketplace is one of the ledger's custodians and lets the escrow spend its balance (budget top-ups).
      expect(await ledger.isCustodian(a.marketplaceAddress)).to.equal(true);
      expect(await ledger.allowance(a.marketplaceAddress, await escrow.getAddress())).to.equal(ethersMaxUint);
    });
  });

  describe("referrers: recorded once, never changed", () => {
    it("setReferrer: zero and self refused, first recorded, any later one refused", async () => {
      const { marketplace, bob, frank, eve } = await setupAgents();
      await expect(marketplace.connect(bob).setReferrer(ZeroAddress)).to.be.revertedWithCustomError(marketplace, "MarketplaceZeroAddress");
      await expect(marketplace.connect(bob).setReferrer(bob.address))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceSelfReferral")
        .withArgs(bob.address);
      await expect(marketplace.connect(bob).setReferrer(frank.address)).to.emit(marketplace, "ReferrerRecorded").withArgs(bob.address, frank.address);
      for (const other of [eve.address, frank.address]) {
        await expect(marketplace.connect(bob).setReferrer(other))
          .to.be.revertedWithCustomError(marketplace, "MarketplaceReferrerAlreadySet")
          .withArgs(bob.address, frank.address);
      }
      expect(await marketplace.referrerOf(bob.address)).to.equal(frank.address);
    });

    it("setReferrerWithSig: a relayer submits the account's signature; forgeries and replays revert", async () => {
      const { marketplace, bob, frank, eve, stranger } = await setupAgents();
      const forged = await signReferral(marketplace, stranger, frank.address, bob.address);
      await expect(marketplace.connect(stranger).setReferrerWithSig(bob.address, frank.address, forged))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceInvalidSignature")
        .withArgs(bob.address);
      const signature = await signReferral(marketplace, bob, frank.address);
      // The signature names Frank: it cannot record anyone else.
      await expect(marketplace.connect(stranger).setReferrerWithSig(bob.address, eve.address, signature))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceInvalidSignature")
        .withArgs(bob.address);
      await expect(marketplace.connect(stranger).setReferrerWithSig(bob.address, frank.address, signature))
        .to.emit(marketplace, "ReferrerRecorded")
        .withArgs(bob.address, frank.address);
      await expect(marketplace.connect(stranger).setReferrerWithSig(bob.address, frank.address, signature))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceReferrerAlreadySet")
        .withArgs(bob.address, frank.address);
      const selfSigned = await signReferral(marketplace, eve, eve.address);
      await expect(marketplace.connect(stranger).setReferrerWithSig(eve.address, eve.address, selfSigned))
        .to.be.revertedWithCustomError(marketplace, "MarketplaceSelfReferral")
        .withArgs(eve.address);
    });

    it("the referral digest equals viem's hashTypedData (typehash string exact)", async () => {
      const { marketplace, bob, frank } = await setupAgents();
      const domain = await marketplaceDomain(marketplace);
      const expected = hashTypedData({
        domain: {
          name: "AgentMesh Marketplace",
          version: "1",
          chainId: Number(domain.chainId),
          verifyingContract: domain.verifyingContract as Address,
        },
        types: referralTypes,
        primaryType: "Referral",
        message: { account: bob.address as Address, referrer: frank.address as Address },
      });
      expect(await marketplace.referralDigest(bob.address, frank.address)).to.equal(expected as Hex);
      expect(await marketplace.REFERRAL_TYPEHASH()).to.equal(keccak256(Buffer.from("Referral(address account,address referrer)")));
    });

    it("a listing records the owner's referrer once; later listings and bad referrers are ignored", async () => {
      const a = await setupAgents();
      const { marketplace, alice, eve, frank } = a;
      const flow = autoDevFlow(cast(a));
      // Self-referral and zero are ignored by a listing (it still succeeds).
      await expect(marketplace.connect(alice).list(metadataOf(), AUTODEV_PRICE, flow, alice.address)).not.to.emit(marketplace, "ReferrerRecorded");
      await expect(marketplace.connect(alice).list(metadataOf(), AUTODEV_PRICE, flow, ZeroAddress)).not.to.emit(marketplace, "ReferrerRecorded");
      await expect(marketplace.connect(alice).list(metadataOf(), AUTODEV_PRICE, flow, eve.address))
        .to.emit(marketplace, "ReferrerRecorded")
        .withArgs(alice.address, eve.address);
      await expect(marketplace.connect(alice).list(metadataOf(), AUTODEV_PRICE, flow, frank.address)).not.to.emit(marketplace, "ReferrerRecorded");
      expect(await marketplace.referrerOf(alice.address)).to.equal(eve.address);
      expect(await marketplace.agentCount()).to.equal(4n);
    });

    it("a payment from balance records the payer's referrer the first time one is given, and rewards it at once", async () => {
      const a = await setupAgents();
      const { marketplace, alice, bob, frank, eve } = a;
      const flow = autoDevFlow(cast(a));
      const { agentId } = await a.list(alice, flow, AUTODEV_PRICE);
      await a.fundLedger(bob, 3n * AUTODEV_PRICE);
      await expect(marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE, ZeroAddress)).not.to.emit(marketplace, "ReferrerRecorded");
      const tx = marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE, frank.address);
      await expect(tx).to.emit(marketplace, "ReferrerRecorded").withArgs(bob.address, frank.address);
      const [head] = await marketplace.paymentChain(agentId);
      await expect(tx).to.emit(marketplace, "AgentPaid").withArgs(agentId, bob.address, frank.address, AUTODEV_PRICE, head);
      await expect(marketplace.connect(bob).payFromBalance(agentId, AUTODEV_PRICE, eve.address)).not.to.emit(marketplace, "ReferrerRecorded");
      expect(await marketplace.referrerOf(bob.address)).to.equal(frank.address);
      await a.conservation();
      // The first payment had no referrer (its 1% goes to the treasury); the second already rewards Frank, as does the
      // third. Alice has no referrer here: the payee rewards (3 × 120) go to the treasury too.
      const payments = [
        { payer: bob.address, referrer: ZeroAddress, amount: AUTODEV_PRICE },
        { payer: bob.address, referrer: frank.address, amount: AUTODEV_PRICE },
        { payer: bob.address, referrer: frank.address, amount: AUTODEV_PRICE },
      ];
      await (await marketplace.distribute(agentId, flow, payments)).wait();
      expect(await a.balances([frank.address, eve.address, a.treasury.address])).to.deep.equal([240n, 0n, 3n * 7_660n + 120n + 360n]);
      await a.conservation();
    });
  });

  it("splitPayment and hashFlow are pure previews (zero price refused)", async () => {
    const a = await setupAgents();
    const flow = autoDevFlow(cast(a));
    const parts = await a.marketplace.splitPayment(flow, AUTODEV_PRICE, AUTODEV_PRICE);
    expect(parts.outputs).to.deep.equal([2_000n, 1_000n, 500n, 300n, 300n, 7_660n]);
    expect([parts.payerReferrerReward, parts.payeeReferrerReward]).to.deep.equal([120n, 120n]);
    // Two calls and a partial one of 5,000: the partial call pays fixed amounts in order until it runs out.
    const two = await a.marketplace.splitPayment(flow, AUTODEV_PRICE, 2n * AUTODEV_PRICE + 5_000n);
    expect(two.outputs).to.deep.equal([6_000n, 3_000n, 1_500n, 900n, 900n, 2n * 7_660n + 800n]);
    expect([two.payerReferrerReward, two.payeeReferrerReward]).to.deep.equal([240n + 50n, 240n + 50n]);
    await expect(a.marketplace.splitPayment(flow, 0n, 1n)).to.be.revertedWithCustomError(a.marketplace, "MarketplaceInvalidPrice").withArgs(0n);
    expect(Kind.Budget).to.equal(2);
  });
});
