import { expect } from "chai";
import { type Address, type Hex, hashTypedData, keccak256, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import type { FeeOnTransferToken, SplitsLedger } from "../../types/ethers-contracts/index.ts";
import { ledgerDomain, withdrawalTypes } from "../../sdk/src/typed-data.ts";
import { receiveWithAuthorizationTypes, usdcDomain } from "../../sdk/src/usdc.ts";
import { ethersTypes } from "../../scripts/lib/ethers-types.ts";
import { deployFixture } from "./fixture.ts";
import { signPermit } from "./helpers/usdc.ts";
import {
  DAY,
  ONE_USDC,
  SCALE,
  TRANSFER_AUTHORIZATION_TYPE,
  TX_GAS_CAP,
  WITHDRAWAL_TYPE,
  ZERO_ADDRESS as ethersZero,
  SplitModel,
  type Split,
  addr,
  approveDigest,
  entriesOf,
  flatSplit,
  impersonate,
  installWallet,
  signTransferBy,
  signTransferMessage,
  signWithdrawalBy,
  splitDistributions,
  splitOf,
  transferAuthorizationDigest,
  transferAuthorizationTypes,
  withdrawalDigest,
} from "./helpers/ledger.ts";

const ZERO_MEMO: Hex = `0x${"00".repeat(32)}`;
const MAX_UINT = 2n ** 256n - 1n;
/** A reason code for freezes (any non-zero value; the README lists them). */
const REASON_SANCTIONS = 1;
const REASON_REVIEW_DONE = 2;

async function setup() {
  const fx = await deployFixture();
  const { ethers, usdc, ledger, connection } = fx;
  const ledgerAddress = (await ledger.getAddress()) as Address;
  const chainId = Number((await ethers.provider.getNetwork()).chainId);
  const time = connection.networkHelpers.time;
  const officer = fx.others[0]!;

  /** Mints `amount` to `payer` and approves the ledger for it. */
  async function fund(payer: { address: string }, amount: bigint) {
    await (await usdc.mint(payer.address, amount)).wait();
    const signer = await ethers.getSigner(payer.address);
    await (await usdc.connect(signer).approve(ledgerAddress, amount)).wait();
  }

  /** Gives `account` (an account or a split) a ledger balance of `amount` more, paid in by the agent. */
  async function credit(account: string, amount: bigint) {
    await fund(fx.agent, amount);
    await (await ledger.connect(fx.agent).pay(account, amount)).wait();
  }

  async function create(definition: Split): Promise<string> {
    const split = await ledger.createSplit.staticCall(definition);
    await (await ledger.createSplit(definition)).wait();
    return split;
  }

  async function grantCompliance(to: { address: string }) {
    await (await ledger.connect(fx.admin).grantRole(await ledger.COMPLIANCE_ROLE(), to.address)).wait();
  }

  /** The latest block's timestamp. */
  const now = async () => BigInt(await time.latest());

  /** Freezes `account` by the officer (granted the compliance role first) until `until`. */
  async function freeze(account: string, until: bigint, reason = REASON_SANCTIONS) {
    if (!(await ledger.hasRole(await ledger.COMPLIANCE_ROLE(), officer.address))) await grantCompliance(officer);
    await (await ledger.connect(officer).freeze(account, until, reason)).wait();
  }

  /** USDC the ledger holds, and what its books say it owes: `accounts` and splits' balances plus the splits' dust. */
  async function books(accounts: string[], splits: string[]) {
    let owed = 0n;
    for (const a of [...accounts, ...splits]) owed += await ledger.balanceOf(a);
    for (const s of splits) owed += (await ledger.splitTotals(s))[1];
    return { held: await usdc.balanceOf(ledgerAddress), owed };
  }

  return { ...fx, ledgerAddress, chainId, time, officer, fund, credit, create, grantCompliance, now, freeze, books };
}

type Setup = Awaited<ReturnType<typeof setup>>;

/** Every way an account's balance can leave it, tried on `holder`'s behalf (holder approved `fx.stranger`). */
function movesOut(fx: Setup, holder: Setup["creator"], amount: bigint) {
  const { ledger, stranger, treasury } = fx;
  const fresh = fx.others[9]!.address;
  return {
    withdraw: () => ledger.connect(holder).withdraw(fresh, amount),
    transfer: () => ledger.connect(holder).transfer(treasury.address, amount),
    transferMany: () => ledger.connect(holder).transferMany([treasury.address], [amount]),
    transferFrom: () => ledger.connect(stranger).transferFrom(holder.address, stranger.address, amount),
    withdrawFrom: () => ledger.connect(stranger).withdrawFrom(holder.address, fresh, amount),
    withdrawWithSig: async () => {
      const deadline = (await fx.now()) + 600n;
      const sig = await signWithdrawalBy(ledger, holder, { to: fresh, amount, deadline });
      return ledger.connect(stranger).withdrawWithSig(holder.address, fresh, amount, deadline, sig);
    },
    transferWithSig: async () => {
      const deadline = (await fx.now()) + 600n;
      const sig = await signTransferBy(ledger, holder, { to: treasury.address, amount, caller: stranger.address, deadline });
      return ledger.connect(stranger).transferWithSig(holder.address, treasury.address, amount, ZERO_MEMO, deadline, sig);
    },
  };
}

describe("SplitsLedger", () => {
  describe("createSplit", () => {
    it("creates at the predicted deterministic address, once; the second call returns it without an event", async () => {
      const { ledger, creator } = await setup();
      const definition = splitOf(
        [
          { account: addr(1, 0), share: 250_000n },
          { account: addr(1, 1), share: 100_000n },
        ],
        addr(1, 2),
      );
      const predicted = await ledger.predictSplitAddress(definition);
      expect(await ledger.isSplit(predicted)).to.equal(false);
      expect(await ledger.createSplit.staticCall(definition)).to.equal(predicted);

      const first = ledger.connect(creator).createSplit(definition);
      await expect(first)
        .to.emit(ledger, "SplitCreated")
        .withArgs(predicted, [definition.recipients.map((r) => [r.account, r.share]), definition.remainderRecipient]);
      expect(await ledger.isSplit(predicted)).to.equal(true);

      // Creating again returns the same address and emits nothing.
      expect(await ledger.createSplit.staticCall(definition)).to.equal(predicted);
      const second = await ledger.createSplit(definition);
      await expect(second).not.to.emit(ledger, "SplitCreated");
      const receipt = await second.wait();
      expect(receipt?.logs.length).to.equal(0);

      // A different definition lives elsewhere.
      const other = splitOf([{ account: addr(1, 0), share: 250_001n }], addr(1, 2));
      expect(await ledger.predictSplitAddress(other)).to.not.equal(predicted);
    });

    it("getSplit round-trips the definition; splitTotals starts at zero", async () => {
      const { ledger, create } = await setup();
      const definition = splitOf(
        [
          { account: addr(2, 5), share: 1n },
          { account: addr(2, 3), share: 333_333n },
          { account: addr(2, 9), share: 200_000n },
        ],
        addr(2, 100),
      );
      const split = await create(definition);
      const read = await ledger.getSplit(split);
      expect(read.remainderRecipient).to.equal(definition.remainderRecipient);
      expect(read.recipients.map((r) => [r.account, r.share])).to.deep.equal(
        definition.recipients.map((r) => [r.account, BigInt(r.share)]),
      );
      const [received, dust] = await ledger.splitTotals(split);
      expect(received).to.equal(0n);
      expect(dust).to.equal(0n);
    });

    it("getSplit, splitTotals and distribute reject an address that is not a split", async () => {
      const { ledger, stranger } = await setup();
      await expect(ledger.getSplit(stranger.address))
        .to.be.revertedWithCustomError(ledger, "LedgerNotASplit")
        .withArgs(stranger.address);
      await expect(ledger.splitTotals(stranger.address))
        .to.be.revertedWithCustomError(ledger, "LedgerNotASplit")
        .withArgs(stranger.address);
      await expect(ledger.distribute(stranger.address))
        .to.be.revertedWithCustomError(ledger, "LedgerNotASplit")
        .withArgs(stranger.address);
    });

    it("rejects unsorted and duplicate recipients", async () => {
      const { ledger } = await setup();
      const unsorted: Split = {
        recipients: [
          { account: addr(3, 2), share: 10n },
          { account: addr(3, 1), share: 10n },
        ],
        remainderRecipient: addr(3, 9),
      };
      await expect(ledger.createSplit(unsorted))
        .to.be.revertedWithCustomError(ledger, "LedgerSplitRecipientsUnsorted")
        .withArgs(1n);
      await expect(ledger.predictSplitAddress(unsorted))
        .to.be.revertedWithCustomError(ledger, "LedgerSplitRecipientsUnsorted")
        .withArgs(1n);
      const duplicate: Split = {
        recipients: [
          { account: addr(3, 1), share: 10n },
          { account: addr(3, 2), share: 10n },
          { account: addr(3, 2), share: 10n },
        ],
        remainderRecipient: addr(3, 9),
      };
      await expect(ledger.createSplit(duplicate))
        .to.be.revertedWithCustomError(ledger, "LedgerSplitRecipientsUnsorted")
        .withArgs(2n);
    });

    it("rejects a zero share and shares above the scale, accepts shares summing to exactly the scale", async () => {
      const { ledger } = await setup();
      await expect(ledger.createSplit(splitOf([{ account: addr(4, 0), share: 0n }], addr(4, 9))))
        .to.be.revertedWithCustomError(ledger, "LedgerSplitInvalidShares")
        .withArgs(0n, SCALE);
      await expect(
        ledger.createSplit(
          splitOf(
            [
              { account: addr(4, 0), share: 600_000n },
              { account: addr(4, 1), share: 400_001n },
            ],
            addr(4, 9),
          ),
        ),
      )
        .to.be.revertedWithCustomError(ledger, "LedgerSplitInvalidShares")
        .withArgs(1_000_001n, SCALE);
      const full = splitOf(
        [
          { account: addr(4, 0), share: 600_000n },
          { account: addr(4, 1), share: 400_000n },
        ],
        addr(4, 9),
      );
      await ledger.createSplit(full);
      expect(await ledger.isSplit(await ledger.predictSplitAddress(full))).to.equal(true);
    });

    it("rejects a zero remainder recipient and a zero recipient", async () => {
      const { ledger } = await setup();
      await expect(ledger.createSplit(splitOf([{ account: addr(5, 0), share: 10n }], ethersZero)))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidReceiver")
        .withArgs(ethersZero);
      await expect(ledger.createSplit(splitOf([{ account: ethersZero, share: 10n }], addr(5, 1))))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidReceiver")
        .withArgs(ethersZero);
    });

    it("rejects no recipients and more than MAX_RECIPIENTS (32); accepts exactly 32", async () => {
      const { ledger } = await setup();
      expect(await ledger.MAX_RECIPIENTS()).to.equal(32n);
      await expect(ledger.createSplit({ recipients: [], remainderRecipient: addr(6, 0) }))
        .to.be.revertedWithCustomError(ledger, "LedgerSplitRecipientCount")
        .withArgs(0n, 32n);
      await expect(ledger.createSplit(flatSplit(6, 33)))
        .to.be.revertedWithCustomError(ledger, "LedgerSplitRecipientCount")
        .withArgs(33n, 32n);
      const max = flatSplit(6, 32);
      await ledger.createSplit(max);
      const split = await ledger.predictSplitAddress(max);
      expect((await ledger.getSplit(split)).recipients.length).to.equal(32);
    });

    it("rejects nesting deeper than MAX_DEPTH (4)", async () => {
      const { ledger, create } = await setup();
      expect(await ledger.MAX_DEPTH()).to.equal(4n);
      let inner = await create(splitOf([{ account: addr(7, 0), share: 500_000n }], addr(7, 1)));
      // Depths 2, 3 and 4 are fine.
      for (let depth = 2; depth <= 4; ++depth) {
        inner = await create(splitOf([{ account: inner, share: 500_000n }], addr(7, depth)));
      }
      const tooDeep = splitOf([{ account: inner, share: 500_000n }], addr(7, 99));
      await expect(ledger.createSplit(tooDeep)).to.be.revertedWithCustomError(ledger, "LedgerSplitTooDeep").withArgs(5n, 4n);
      // Also through the remainder recipient.
      await expect(ledger.createSplit(splitOf([{ account: addr(7, 98), share: 1n }], inner)))
        .to.be.revertedWithCustomError(ledger, "LedgerSplitTooDeep")
        .withArgs(5n, 4n);
    });

    it("rejects more than MAX_LEAVES (64) accounts reached through nesting; accepts exactly 64", async () => {
      const { ledger, create } = await setup();
      expect(await ledger.MAX_LEAVES()).to.equal(64n);
      const a = await create(flatSplit(8, 32)); // 33 leaves
      const b = await create(flatSplit(9, 31)); // 32 leaves
      const c = await create(flatSplit(10, 29)); // 30 leaves
      await expect(
        ledger.createSplit(
          splitOf(
            [
              { account: a, share: 400_000n },
              { account: b, share: 400_000n },
            ],
            addr(11, 0),
          ),
        ),
      )
        .to.be.revertedWithCustomError(ledger, "LedgerSplitTooManyLeaves")
        .withArgs(66n, 64n);
      const ok = splitOf(
        [
          { account: a, share: 400_000n },
          { account: c, share: 400_000n },
        ],
        addr(11, 0),
      );
      const split = await create(ok);
      expect(await ledger.isSplit(split)).to.equal(true);
    });
  });

  describe("pay and payMany", () => {
    it("pay credits an account, pulls the USDC and emits Paid", async () => {
      const { ledger, usdc, agent, providerOwner, ledgerAddress, fund, ethers } = await setup();
      await fund(agent, 50n * ONE_USDC);
      const tx = ledger.connect(agent).pay(providerOwner.address, 12n * ONE_USDC);
      await expect(tx).to.emit(ledger, "Paid").withArgs(agent.address, providerOwner.address, 12n * ONE_USDC);
      await expect(tx).to.changeTokenBalances(ethers, usdc, [agent.address, ledgerAddress], [-12n * ONE_USDC, 12n * ONE_USDC]);
      expect(await ledger.balanceOf(providerOwner.address)).to.equal(12n * ONE_USDC);
      expect(await ledger.balanceOf(agent.address)).to.equal(0n);
    });

    it("pay rejects a zero amount, a zero payee and an amount above uint128", async () => {
      const { ledger, agent, fund } = await setup();
      await fund(agent, 10n);
      await expect(ledger.connect(agent).pay(agent.address, 0n)).to.be.revertedWithCustomError(ledger, "LedgerZeroAmount");
      await expect(ledger.connect(agent).pay(ethersZero, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidReceiver")
        .withArgs(ethersZero);
      const huge = 2n ** 128n;
      await fund(agent, huge);
      await expect(ledger.connect(agent).pay(agent.address, huge))
        .to.be.revertedWithCustomError(ledger, "LedgerAmountOverflow")
        .withArgs(huge);
    });

    it("pay into a split credits only its balance; distribute then credits floor(lifetime distributed × share) to each entry", async () => {
      const { ledger, agent, fund, create } = await setup();
      const definition = splitOf(
        [
          { account: addr(12, 0), share: 333_333n },
          { account: addr(12, 1), share: 250_000n },
        ],
        addr(12, 2),
      );
      const split = await create(definition);
      const entries = entriesOf(definition);
      expect(entries[2]!.share).to.equal(416_667n);
      await fund(agent, 10_000n);

      let received = 0n;
      let before = entries.map(() => 0n);
      for (const amount of [1000n, 2n, 1n, 997n, 3n]) {
        await expect(ledger.connect(agent).pay(split, amount)).not.to.emit(ledger, "SplitDistributed");
        expect(await ledger.balanceOf(split)).to.equal(amount);
        for (let k = 0; k < entries.length; ++k) expect(await ledger.balanceOf(entries[k]!.account)).to.equal(before[k]);

        received += amount;
        const expected = entries.map((e) => (received * e.share) / SCALE);
        const credits = expected.map((e, k) => e - before[k]!);
        await expect(ledger.distribute(split)).to.emit(ledger, "SplitDistributed").withArgs(split, amount, credits);
        let credited = 0n;
        for (let k = 0; k < entries.length; ++k) {
          expect(await ledger.balanceOf(entries[k]!.account)).to.equal(expected[k], `${entries[k]!.account} after ${received}`);
          credited += expected[k]!;
        }
        const [totalDistributed, dust] = await ledger.splitTotals(split);
        expect(totalDistributed).to.equal(received);
        expect(dust).to.equal(received - credited);
        expect(dust < BigInt(entries.length)).to.equal(true);
        before = expected;
      }
      // Concrete values after 2003 units: 667, 500, 834 (+2 dust).
      expect(await ledger.balanceOf(addr(12, 0))).to.equal(667n);
      expect(await ledger.balanceOf(addr(12, 1))).to.equal(500n);
      expect(await ledger.balanceOf(addr(12, 2))).to.equal(834n);
      expect((await ledger.splitTotals(split))[1]).to.equal(2n);
      // The split's own balance is paid out: the dust is tracked, not held as a balance.
      expect(await ledger.balanceOf(split)).to.equal(0n);
    });

    it("payMany pulls the total once and credits accounts and splits (a split only in its own balance)", async () => {
      const { ledger, usdc, agent, creator, stranger, fund, create, ledgerAddress } = await setup();
      const definition = splitOf([{ account: addr(13, 0), share: 100_000n }], addr(13, 1));
      const split = await create(definition);
      await fund(agent, 1_000n);
      const tx = ledger.connect(agent).payMany([creator.address, split, stranger.address, creator.address], [100n, 500n, 7n, 3n]);
      await expect(tx).to.emit(usdc, "Transfer").withArgs(agent.address, ledgerAddress, 610n);
      await expect(tx).to.emit(ledger, "Paid").withArgs(agent.address, split, 500n);
      await expect(tx).not.to.emit(ledger, "SplitDistributed");
      const receipt = await (await tx).wait();
      const transfers = receipt!.logs.filter((log) => log.address === (usdc.target as string));
      expect(transfers.length).to.equal(1);
      expect(await ledger.balanceOf(creator.address)).to.equal(103n);
      expect(await ledger.balanceOf(stranger.address)).to.equal(7n);
      expect(await ledger.balanceOf(split)).to.equal(500n);
      expect(await ledger.balanceOf(addr(13, 0))).to.equal(0n);
      await expect(ledger.distribute(split)).to.emit(ledger, "SplitDistributed").withArgs(split, 500n, [50n, 450n]);
      expect(await ledger.balanceOf(addr(13, 0))).to.equal(50n);
      expect(await ledger.balanceOf(addr(13, 1))).to.equal(450n);
      expect(await usdc.balanceOf(ledgerAddress)).to.equal(610n);
      expect(await usdc.balanceOf(agent.address)).to.equal(390n);
    });

    it("payMany rejects mismatched lengths, an empty list and a zero amount", async () => {
      const { ledger, agent, creator, fund } = await setup();
      await fund(agent, 100n);
      await expect(ledger.connect(agent).payMany([creator.address, agent.address], [1n]))
        .to.be.revertedWithCustomError(ledger, "LedgerLengthMismatch")
        .withArgs(2n, 1n);
      await expect(ledger.connect(agent).payMany([], [])).to.be.revertedWithCustomError(ledger, "LedgerZeroAmount");
      await expect(ledger.connect(agent).payMany([creator.address, agent.address], [5n, 0n])).to.be.revertedWithCustomError(
        ledger,
        "LedgerZeroAmount",
      );
      await expect(ledger.connect(agent).payMany([creator.address, ethersZero], [5n, 1n]))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidReceiver")
        .withArgs(ethersZero);
      expect(await ledger.balanceOf(creator.address)).to.equal(0n);
    });

    it("a nested split pays through to its own recipients when distributed", async () => {
      const { ledger, agent, fund, create } = await setup();
      const innerDefinition = splitOf([{ account: addr(14, 0), share: 500_000n }], addr(14, 1));
      const inner = await create(innerDefinition);
      const outerDefinition = splitOf(
        [
          { account: inner, share: 600_000n },
          { account: addr(14, 2), share: 300_000n },
        ],
        addr(14, 3),
      );
      const outer = await create(outerDefinition);
      const read = await ledger.getSplit(outer);
      expect(read.recipients.map((r) => r.account)).to.include(inner);
      const model = new SplitModel();
      model.add(inner, innerDefinition);
      model.add(outer, outerDefinition);

      await fund(agent, 1_001n);
      await ledger.connect(agent).pay(outer, 1_000n);
      const tx = ledger.distribute(outer);
      // The inner split's event first (it is paid out inside the outer one), each with its entries' credits.
      const innerCredits = [300n, 300n];
      const outerCredits = entriesOf(outerDefinition).map((e) => (e.account === inner ? 600n : e.account === addr(14, 2) ? 300n : 100n));
      await expect(tx).to.emit(ledger, "SplitDistributed").withArgs(outer, 1_000n, outerCredits);
      await expect(tx).to.emit(ledger, "SplitDistributed").withArgs(inner, 600n, innerCredits);
      expect(splitDistributions(ledger, await (await tx).wait())).to.deep.equal(model.distribute(outer, 1_000n));
      expect(await ledger.balanceOf(addr(14, 0))).to.equal(300n);
      expect(await ledger.balanceOf(addr(14, 1))).to.equal(300n);
      expect(await ledger.balanceOf(addr(14, 2))).to.equal(300n);
      expect(await ledger.balanceOf(addr(14, 3))).to.equal(100n);
      expect(await ledger.balanceOf(inner)).to.equal(0n);
      expect(await ledger.balanceOf(outer)).to.equal(0n);
      expect((await ledger.splitTotals(inner))[0]).to.equal(600n);

      // One more unit: outer distributed 1001 → inner floor(600.6)=600 (no change), w floor(100.1)=100, b floor(300.3)=300.
      await ledger.connect(agent).pay(outer, 1n);
      await expect(ledger.distribute(outer)).to.emit(ledger, "SplitDistributed").withArgs(outer, 1n, [0n, 0n, 0n]);
      const [outerDistributed, outerDust] = await ledger.splitTotals(outer);
      expect(outerDistributed).to.equal(1_001n);
      expect(outerDust).to.equal(1n);
      expect((await ledger.splitTotals(inner))[0]).to.equal(600n);
    });

    it("SECURITY 17: 200 payments of 7 units, each distributed, never starve a 1% recipient; dust is accounted for", async () => {
      const { ledger, usdc, agent, fund, create, ledgerAddress } = await setup();
      const definition = splitOf(
        [
          { account: addr(15, 0), share: 10_000n }, // 1%
          { account: addr(15, 1), share: 333_333n },
        ],
        addr(15, 2),
      );
      const split = await create(definition);
      const entries = entriesOf(definition);
      await fund(agent, 1_400n);
      let received = 0n;
      for (let i = 0; i < 200; ++i) {
        await (await ledger.connect(agent).pay(split, 7n)).wait();
        await (await ledger.distribute(split)).wait();
        received += 7n;
        if (i % 25 === 24) {
          expect(await ledger.balanceOf(addr(15, 0))).to.equal((received * 10_000n) / SCALE);
        }
      }
      // Paying 7 units at a time, a per-payment floor would have given the 1% recipient nothing.
      expect((7n * 10_000n) / SCALE).to.equal(0n);
      expect(await ledger.balanceOf(addr(15, 0))).to.equal(14n);
      expect(await ledger.balanceOf(addr(15, 1))).to.equal(466n);
      expect(await ledger.balanceOf(addr(15, 2))).to.equal(919n);

      let credited = 0n;
      for (const entry of entries) credited += await ledger.balanceOf(entry.account);
      const [total, dust] = await ledger.splitTotals(split);
      expect(total).to.equal(1_400n);
      expect(dust).to.equal(total - credited);
      expect(dust).to.equal(1n);
      expect(dust < BigInt(entries.length)).to.equal(true);
      // Conservation: the ledger holds every credit plus the dust.
      expect(await usdc.balanceOf(ledgerAddress)).to.equal(credited + dust);
    });
  });

  describe("issue 11 §1: lazy splits", () => {
    it("issue 11 §1: paying, payMany-ing, transferring or spending an allowance into a split credits only the split's balance", async () => {
      const { ledger, agent, creator, stranger, fund, credit, create } = await setup();
      const big = flatSplit(20, 32); // 33 leaves
      const split = await create(big);
      await fund(agent, 100n);
      const payTx = await (await ledger.connect(agent).pay(split, 40n)).wait();
      await fund(agent, 10n);
      const payManyTx = await (await ledger.connect(agent).payMany([split], [10n])).wait();
      await credit(creator.address, 50n);
      const transferTx = await (await ledger.connect(creator).transfer(split, 20n)).wait();
      const transferManyTx = await (await ledger.connect(creator).transferMany([split, split], [5n, 5n])).wait();
      await ledger.connect(creator).approve(stranger.address, 20n);
      const transferFromTx = await (await ledger.connect(stranger).transferFrom(creator.address, split, 20n)).wait();
      for (const receipt of [payTx, payManyTx, transferTx, transferManyTx, transferFromTx]) {
        expect(splitDistributions(ledger, receipt)).to.deep.equal([]);
      }
      expect(await ledger.balanceOf(split)).to.equal(100n);
      for (const entry of entriesOf(big)) expect(await ledger.balanceOf(entry.account)).to.equal(0n);
      expect([...(await ledger.splitTotals(split))]).to.deep.equal([0n, 0n]);
      expect(await ledger.balanceOf(creator.address)).to.equal(0n);
    });

    it("issue 11 §1: a payment into a 64-leaf split costs what a payment into an account costs (one balance write)", async () => {
      const { ledger, agent, fund, create } = await setup();
      const a = await create(flatSplit(21, 31)); // 32 leaves
      const b = await create(flatSplit(22, 31)); // 32 leaves
      const split = await create(splitOf([{ account: a, share: 500_000n }], b));
      expect(split).to.not.equal(ethersZero);
      // Warm what both payments share (the payer's balance and allowance, the ledger's USDC balance).
      await fund(agent, 10n);
      await ledger.connect(agent).pay(addr(23, 1), 1n);
      const intoSplit = (await (await ledger.connect(agent).pay(split, 1n)).wait())!.gasUsed;
      const intoAccount = (await (await ledger.connect(agent).pay(addr(23, 0), 1n)).wait())!.gasUsed;
      // Both write one fresh balance slot; only the calldata bytes of the two addresses differ.
      const difference = intoSplit > intoAccount ? intoSplit - intoAccount : intoAccount - intoSplit;
      expect(difference < 500n, `split ${intoSplit} vs account ${intoAccount}`).to.equal(true);
      expect(await ledger.balanceOf(split)).to.equal(1n);
    });

    it("issue 11 §5: distribute credits every leaf through nested splits to the unit and emits SplitDistributed with each entry's exact credit", async () => {
      const { ledger, agent, fund, create, books } = await setup();
      const model = new SplitModel();
      const make = async (definition: Split) => {
        const split = await create(definition);
        model.add(split, definition);
        return split;
      };
      // Depth 3, odd shares, a leaf reached through two paths, a nested split as a remainder recipient.
      const leafA = await make(splitOf([{ account: addr(30, 0), share: 333_333n }, { account: addr(30, 1), share: 1n }], addr(30, 2)));
      const leafB = await make(splitOf([{ account: addr(31, 0), share: 700_001n }], addr(30, 0)));
      const middle = await make(
        splitOf(
          [
            { account: leafA, share: 123_457n },
            { account: addr(32, 0), share: 9n },
          ],
          leafB,
        ),
      );
      const top = await make(
        splitOf(
          [
            { account: middle, share: 600_000n },
            { account: addr(33, 0), share: 77_777n },
            { account: leafA, share: 22_223n },
          ],
          addr(33, 1),
        ),
      );
      const leaves = [addr(30, 0), addr(30, 1), addr(30, 2), addr(31, 0), addr(32, 0), addr(33, 0), addr(33, 1)];
      const splits = [leafA, leafB, middle, top];

      let paid = 0n;
      for (const amount of [1n, 999_999n, 7n, 123_456_789n, 3n, 2n]) {
        await fund(agent, amount);
        await ledger.connect(agent).pay(top, amount);
        paid += amount;
        const receipt = await (await ledger.connect(agent).distribute(top)).wait();
        expect(splitDistributions(ledger, receipt)).to.deep.equal(model.distribute(top, amount), `distributing ${amount}`);
        for (const leaf of leaves) expect(await ledger.balanceOf(leaf)).to.equal(model.creditOf(leaf), leaf);
        for (const split of splits) {
          const totals = model.totals(split);
          expect([...(await ledger.splitTotals(split))]).to.deep.equal([totals.distributed, totals.dust], split);
          expect(await ledger.balanceOf(split)).to.equal(0n);
          expect(totals.dust < 4n).to.equal(true);
        }
        // Conservation: USDC held == credits + the dust every split holds back.
        const { held, owed } = await books(leaves, splits);
        expect(held).to.equal(paid);
        expect(owed).to.equal(held);
      }
    });

    it("SECURITY 17: dust is held back in splitTotals and paid out once later distributions make it whole", async () => {
      const { ledger, credit, create } = await setup();
      const split = await create(splitOf([{ account: addr(34, 0), share: 500_000n }], addr(34, 1)));
      await credit(split, 1n);
      await expect(ledger.distribute(split)).to.emit(ledger, "SplitDistributed").withArgs(split, 1n, [0n, 0n]);
      expect([...(await ledger.splitTotals(split))]).to.deep.equal([1n, 1n]);
      expect(await ledger.balanceOf(addr(34, 0))).to.equal(0n);
      await credit(split, 1n);
      await expect(ledger.distribute(split)).to.emit(ledger, "SplitDistributed").withArgs(split, 1n, [1n, 1n]);
      expect([...(await ledger.splitTotals(split))]).to.deep.equal([2n, 0n]);
      expect(await ledger.balanceOf(addr(34, 0))).to.equal(1n);
      expect(await ledger.balanceOf(addr(34, 1))).to.equal(1n);
    });

    it("distribute is permissionless and refuses a split with nothing to distribute", async () => {
      const { ledger, stranger, credit, create } = await setup();
      const split = await create(splitOf([{ account: addr(35, 0), share: 250_000n }], addr(35, 1)));
      await expect(ledger.connect(stranger).distribute(split)).to.be.revertedWithCustomError(ledger, "LedgerZeroAmount");
      await credit(split, 8n);
      await expect(ledger.connect(stranger).distribute(split)).to.emit(ledger, "SplitDistributed").withArgs(split, 8n, [2n, 6n]);
      await expect(ledger.connect(stranger).distribute(split)).to.be.revertedWithCustomError(ledger, "LedgerZeroAmount");
      expect(await ledger.balanceOf(addr(35, 0))).to.equal(2n);
    });

    it("pays out a balance credited to a split's address before the split existed", async () => {
      const { ledger, agent, fund, create } = await setup();
      const definition = splitOf([{ account: addr(16, 0), share: 300_000n }], addr(16, 1));
      const predicted = await ledger.predictSplitAddress(definition);
      await fund(agent, 1_000n);
      await ledger.connect(agent).pay(predicted, 1_000n);
      expect(await ledger.balanceOf(predicted)).to.equal(1_000n);
      expect(await ledger.balanceOf(addr(16, 0))).to.equal(0n);
      await expect(ledger.distribute(predicted)).to.be.revertedWithCustomError(ledger, "LedgerNotASplit").withArgs(predicted);

      expect(await create(definition)).to.equal(predicted);
      await expect(ledger.distribute(predicted)).to.emit(ledger, "SplitDistributed").withArgs(predicted, 1_000n, [300n, 700n]);
      expect(await ledger.balanceOf(predicted)).to.equal(0n);
      expect(await ledger.balanceOf(addr(16, 0))).to.equal(300n);
      expect(await ledger.balanceOf(addr(16, 1))).to.equal(700n);
      expect((await ledger.splitTotals(predicted))[0]).to.equal(1_000n);
      await expect(ledger.distribute(predicted)).to.be.revertedWithCustomError(ledger, "LedgerZeroAmount");
    });

    it("pays out what a parent split credited to a child before the child was created", async () => {
      const { ledger, agent, fund, create } = await setup();
      const childDefinition = splitOf([{ account: addr(17, 0), share: 500_000n }], addr(17, 1));
      const child = await ledger.predictSplitAddress(childDefinition);
      const parent = await create(splitOf([{ account: child, share: 400_000n }], addr(17, 2)));
      await fund(agent, 1_000n);
      await ledger.connect(agent).pay(parent, 1_000n);
      await ledger.distribute(parent);
      expect(await ledger.balanceOf(child)).to.equal(400n);
      await create(childDefinition);
      await expect(ledger.distribute(child)).to.emit(ledger, "SplitDistributed").withArgs(child, 400n, [200n, 200n]);
      expect(await ledger.balanceOf(addr(17, 0))).to.equal(200n);
      expect(await ledger.balanceOf(addr(17, 1))).to.equal(200n);
      expect(await ledger.balanceOf(child)).to.equal(0n);
    });

    it("issue 11 §1, SECURITY 18: distributing a 64-leaf, depth-4 split of 57 splits to 64 fresh accounts fits under 2^24 gas", async () => {
      const { ledger, agent, fund, create } = await setup();
      expect(await ledger.MAX_LEAVES()).to.equal(64n);
      expect(await ledger.MAX_DEPTH()).to.equal(4n);
      // The most splits 64 leaves can pass through within 4 levels: below the root, every split has two
      // entries (a complete binary tree of depth 3 holds 8 leaves in 7 splits), so the root has 8 such
      // children: 1 + 8 × 7 = 57 splits, each a cold code read and a storage write, plus 64 fresh balances.
      const leaves: string[] = [];
      const depth3: string[] = [];
      for (let g = 0; g < 8; ++g) {
        const groupLeaves = Array.from({ length: 8 }, (_, i) => addr(40 + g, i));
        leaves.push(...groupLeaves);
        const depth1: string[] = [];
        for (let j = 0; j < 4; ++j) {
          depth1.push(await create(splitOf([{ account: groupLeaves[2 * j]!, share: 500_000n }], groupLeaves[2 * j + 1]!)));
        }
        const depth2: string[] = [];
        for (let k = 0; k < 2; ++k) {
          depth2.push(await create(splitOf([{ account: depth1[2 * k]!, share: 500_000n }], depth1[2 * k + 1]!)));
        }
        depth3.push(await create(splitOf([{ account: depth2[0]!, share: 500_000n }], depth2[1]!)));
      }
      const sorted = [...depth3].sort((x, y) => (BigInt(x) < BigInt(y) ? -1 : 1));
      const root = await create(
        splitOf(
          sorted.slice(0, 7).map((account) => ({ account, share: 125_000n })),
          sorted[7]!,
        ),
      );
      const amount = 64n * ONE_USDC;
      await fund(agent, amount);
      await ledger.connect(agent).pay(root, amount);
      for (const leaf of leaves) expect(await ledger.balanceOf(leaf)).to.equal(0n);

      // Sent with exactly Base's per-transaction cap as its gas limit: it must fit.
      const receipt = await (await ledger.distribute(root, { gasLimit: TX_GAS_CAP })).wait();
      const gasUsed = receipt!.gasUsed;
      expect(gasUsed < TX_GAS_CAP, `distribute used ${gasUsed} gas`).to.equal(true);
      // It really wrote 64 fresh balances (≥ 20,000 gas each): the worst case was measured.
      expect(gasUsed > 64n * 20_000n, `distribute used ${gasUsed} gas`).to.equal(true);
      const events = splitDistributions(ledger, receipt);
      expect(events.length).to.equal(57);
      expect(events.at(-1)).to.deep.equal({ split: root.toLowerCase(), amount, credits: Array(8).fill(8n * ONE_USDC) });
      for (const leaf of leaves) expect(await ledger.balanceOf(leaf)).to.equal(ONE_USDC);
      expect(await ledger.balanceOf(root)).to.equal(0n);
    });
  });

  describe("issue 11: internal transfers", () => {
    it("transfer moves a credit inside the ledger with Transferred(from, to, amount); no USDC moves", async () => {
      const { ledger, usdc, ethers, creator, stranger, ledgerAddress, credit } = await setup();
      await credit(creator.address, 100n);
      const tx = ledger.connect(creator).transfer(stranger.address, 30n);
      await expect(tx).to.emit(ledger, "Transferred").withArgs(creator.address, stranger.address, 30n);
      await expect(tx).not.to.emit(usdc, "Transfer");
      await expect(tx).to.changeTokenBalances(ethers, usdc, [ledgerAddress, creator.address, stranger.address], [0n, 0n, 0n]);
      expect(await ledger.balanceOf(creator.address)).to.equal(70n);
      expect(await ledger.balanceOf(stranger.address)).to.equal(30n);
      // To oneself: the balance stays.
      await expect(ledger.connect(creator).transfer(creator.address, 70n))
        .to.emit(ledger, "Transferred")
        .withArgs(creator.address, creator.address, 70n);
      expect(await ledger.balanceOf(creator.address)).to.equal(70n);
      expect(await usdc.balanceOf(ledgerAddress)).to.equal(100n);
    });

    it("transfer refuses a zero amount, the zero address and more than the balance", async () => {
      const { ledger, creator, stranger, credit } = await setup();
      await credit(creator.address, 10n);
      await expect(ledger.connect(creator).transfer(stranger.address, 0n)).to.be.revertedWithCustomError(ledger, "LedgerZeroAmount");
      await expect(ledger.connect(creator).transfer(ethersZero, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidReceiver")
        .withArgs(ethersZero);
      await expect(ledger.connect(creator).transfer(stranger.address, 11n))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientBalance")
        .withArgs(creator.address, 10n, 11n);
      await expect(ledger.connect(stranger).transfer(creator.address, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientBalance")
        .withArgs(stranger.address, 0n, 1n);
      expect(await ledger.balanceOf(creator.address)).to.equal(10n);
      expect(await ledger.balanceOf(stranger.address)).to.equal(0n);
    });

    it("transferMany debits the total once and credits each payee with its own Transferred", async () => {
      const { ledger, creator, stranger, treasury, credit, create } = await setup();
      const split = await create(splitOf([{ account: addr(50, 0), share: 500_000n }], addr(50, 1)));
      await credit(creator.address, 100n);
      const tx = ledger.connect(creator).transferMany([stranger.address, split, treasury.address, stranger.address], [10n, 20n, 30n, 1n]);
      await expect(tx).to.emit(ledger, "Transferred").withArgs(creator.address, stranger.address, 10n);
      await expect(tx).to.emit(ledger, "Transferred").withArgs(creator.address, split, 20n);
      await expect(tx).to.emit(ledger, "Transferred").withArgs(creator.address, treasury.address, 30n);
      await expect(tx).to.emit(ledger, "Transferred").withArgs(creator.address, stranger.address, 1n);
      expect(await ledger.balanceOf(creator.address)).to.equal(39n);
      expect(await ledger.balanceOf(stranger.address)).to.equal(11n);
      expect(await ledger.balanceOf(split)).to.equal(20n);
      expect(await ledger.balanceOf(treasury.address)).to.equal(30n);
    });

    it("transferMany refuses mismatched lengths, an empty list, a zero amount, a zero payee and a total above the balance", async () => {
      const { ledger, creator, stranger, credit } = await setup();
      await credit(creator.address, 10n);
      const from = ledger.connect(creator);
      await expect(from.transferMany([stranger.address], [1n, 2n]))
        .to.be.revertedWithCustomError(ledger, "LedgerLengthMismatch")
        .withArgs(1n, 2n);
      await expect(from.transferMany([], [])).to.be.revertedWithCustomError(ledger, "LedgerZeroAmount");
      await expect(from.transferMany([stranger.address, stranger.address], [1n, 0n])).to.be.revertedWithCustomError(
        ledger,
        "LedgerZeroAmount",
      );
      await expect(from.transferMany([stranger.address, ethersZero], [1n, 1n]))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidReceiver")
        .withArgs(ethersZero);
      await expect(from.transferMany([stranger.address, stranger.address], [6n, 5n]))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientBalance")
        .withArgs(creator.address, 10n, 11n);
      expect(await ledger.balanceOf(creator.address)).to.equal(10n);
      expect(await ledger.balanceOf(stranger.address)).to.equal(0n);
    });
  });

  describe("allowances", () => {
    it("approve sets and overwrites an allowance with Approved; the zero spender is refused", async () => {
      const { ledger, creator, stranger } = await setup();
      await expect(ledger.connect(creator).approve(stranger.address, 50n))
        .to.emit(ledger, "Approved")
        .withArgs(creator.address, stranger.address, 50n);
      expect(await ledger.allowance(creator.address, stranger.address)).to.equal(50n);
      await ledger.connect(creator).approve(stranger.address, 3n);
      expect(await ledger.allowance(creator.address, stranger.address)).to.equal(3n);
      await expect(ledger.connect(creator).approve(ethersZero, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidReceiver")
        .withArgs(ethersZero);
    });

    it("transferFrom spends exactly the allowance and refuses more; an unlimited allowance is never decreased", async () => {
      const { ledger, creator, stranger, treasury, credit } = await setup();
      await credit(creator.address, 100n);
      await ledger.connect(creator).approve(stranger.address, 40n);
      await expect(ledger.connect(stranger).transferFrom(creator.address, treasury.address, 25n))
        .to.emit(ledger, "Transferred")
        .withArgs(creator.address, treasury.address, 25n);
      expect(await ledger.allowance(creator.address, stranger.address)).to.equal(15n);
      await expect(ledger.connect(stranger).transferFrom(creator.address, treasury.address, 16n))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientAllowance")
        .withArgs(creator.address, stranger.address, 15n, 16n);
      await expect(ledger.connect(treasury).transferFrom(creator.address, treasury.address, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientAllowance")
        .withArgs(creator.address, treasury.address, 0n, 1n);

      await ledger.connect(creator).approve(stranger.address, MAX_UINT);
      await ledger.connect(stranger).transferFrom(creator.address, stranger.address, 75n);
      expect(await ledger.allowance(creator.address, stranger.address)).to.equal(MAX_UINT);
      expect(await ledger.balanceOf(creator.address)).to.equal(0n);
      expect(await ledger.balanceOf(stranger.address)).to.equal(75n);
      expect(await ledger.balanceOf(treasury.address)).to.equal(25n);
      // An allowance is no balance: the spender cannot move more than the account holds.
      await expect(ledger.connect(stranger).transferFrom(creator.address, stranger.address, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientBalance")
        .withArgs(creator.address, 0n, 1n);
    });

    it("withdrawFrom pays USDC from the account's balance to `to`, spending the allowance", async () => {
      const { ledger, usdc, ethers, creator, stranger, treasury, ledgerAddress, credit } = await setup();
      await credit(creator.address, 100n);
      await ledger.connect(creator).approve(stranger.address, 60n);
      const tx = ledger.connect(stranger).withdrawFrom(creator.address, treasury.address, 60n);
      await expect(tx).to.emit(ledger, "Withdrawn").withArgs(creator.address, treasury.address, 60n);
      await expect(tx).to.changeTokenBalances(ethers, usdc, [ledgerAddress, treasury.address, creator.address], [-60n, 60n, 0n]);
      expect(await ledger.allowance(creator.address, stranger.address)).to.equal(0n);
      expect(await ledger.balanceOf(creator.address)).to.equal(40n);
      await expect(ledger.connect(stranger).withdrawFrom(creator.address, treasury.address, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientAllowance")
        .withArgs(creator.address, stranger.address, 0n, 1n);
    });
  });

  describe("withdraw", () => {
    it("withdraws to self and to another address, emitting Withdrawn", async () => {
      const { ledger, usdc, agent, creator, stranger, fund, ethers, ledgerAddress } = await setup();
      await fund(agent, 100n);
      await ledger.connect(agent).pay(creator.address, 100n);

      const toSelf = ledger.connect(creator).withdraw(creator.address, 30n);
      await expect(toSelf).to.emit(ledger, "Withdrawn").withArgs(creator.address, creator.address, 30n);
      await expect(toSelf).to.changeTokenBalances(ethers, usdc, [creator.address, ledgerAddress], [30n, -30n]);
      expect(await ledger.balanceOf(creator.address)).to.equal(70n);

      const toOther = ledger.connect(creator).withdraw(stranger.address, 70n);
      await expect(toOther).to.emit(ledger, "Withdrawn").withArgs(creator.address, stranger.address, 70n);
      await expect(toOther).to.changeTokenBalances(ethers, usdc, [stranger.address, creator.address, ledgerAddress], [70n, 0n, -70n]);
      expect(await ledger.balanceOf(creator.address)).to.equal(0n);
      expect(await ledger.balanceOf(stranger.address)).to.equal(0n);
    });

    it("rejects an insufficient balance, a zero amount and a zero receiver", async () => {
      const { ledger, agent, creator, fund } = await setup();
      await fund(agent, 10n);
      await ledger.connect(agent).pay(creator.address, 10n);
      await expect(ledger.connect(creator).withdraw(creator.address, 11n))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientBalance")
        .withArgs(creator.address, 10n, 11n);
      await expect(ledger.connect(agent).withdraw(agent.address, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientBalance")
        .withArgs(agent.address, 0n, 1n);
      await expect(ledger.connect(creator).withdraw(creator.address, 0n)).to.be.revertedWithCustomError(
        ledger,
        "LedgerZeroAmount",
      );
      await expect(ledger.connect(creator).withdraw(ethersZero, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidReceiver")
        .withArgs(ethersZero);
      expect(await ledger.balanceOf(creator.address)).to.equal(10n);
    });
  });

  describe("withdrawWithSig", () => {
    async function sigSetup() {
      const fx = await setup();
      const holder: PrivateKeyAccount = privateKeyToAccount(generatePrivateKey());
      await fx.fund(fx.agent, 1_000n);
      await fx.ledger.connect(fx.agent).pay(holder.address, 1_000n);
      const domain = ledgerDomain(fx.chainId, fx.ledgerAddress);
      async function sign(
        signer: PrivateKeyAccount,
        message: { account: Address; to: Address; amount: bigint; nonce: bigint; deadline: bigint },
      ): Promise<Hex> {
        const digest = hashTypedData({ domain, types: withdrawalTypes, primaryType: "Withdrawal", message });
        return signer.sign({ hash: digest });
      }
      const now = async () => BigInt(await fx.connection.networkHelpers.time.latest());
      return { ...fx, holder, domain, sign, now };
    }

    it("WITHDRAWAL_TYPEHASH and the EIP-712 domain match the SDK definitions", async () => {
      const { ledger, chainId, ledgerAddress } = await sigSetup();
      expect(await ledger.WITHDRAWAL_TYPEHASH()).to.equal(keccak256(toHex(WITHDRAWAL_TYPE)));
      const d = await ledger.eip712Domain();
      const expected = ledgerDomain(chainId, ledgerAddress);
      expect(d.name).to.equal(expected.name);
      expect(d.version).to.equal(expected.version);
      expect(d.chainId).to.equal(BigInt(chainId));
      expect(d.verifyingContract).to.equal(ledgerAddress);
    });

    it("a relayer withdraws with a signature over viem's digest; the nonce advances", async () => {
      const { ledger, usdc, holder, stranger, creator, sign, now, ethers } = await sigSetup();
      const deadline = (await now()) + 600n;
      const sig = await sign(holder, { account: holder.address, to: creator.address as Address, amount: 400n, nonce: 0n, deadline });
      const tx = ledger.connect(stranger).withdrawWithSig(holder.address, creator.address, 400n, deadline, sig);
      await expect(tx).to.emit(ledger, "Withdrawn").withArgs(holder.address, creator.address, 400n);
      await expect(tx).to.changeTokenBalances(ethers, usdc, [creator.address, stranger.address], [400n, 0n]);
      expect(await ledger.balanceOf(holder.address)).to.equal(600n);
      expect(await ledger.nonces(holder.address)).to.equal(1n);

      // The next signature uses nonce 1.
      const sig2 = await sign(holder, { account: holder.address, to: holder.address, amount: 600n, nonce: 1n, deadline });
      await ledger.withdrawWithSig(holder.address, holder.address, 600n, deadline, sig2);
      expect(await usdc.balanceOf(holder.address)).to.equal(600n);
      expect(await ledger.nonces(holder.address)).to.equal(2n);
    });

    it("a replayed signature fails (its nonce is spent)", async () => {
      const { ledger, holder, creator, sign, now } = await sigSetup();
      const deadline = (await now()) + 600n;
      const sig = await sign(holder, { account: holder.address, to: creator.address as Address, amount: 100n, nonce: 0n, deadline });
      await ledger.withdrawWithSig(holder.address, creator.address, 100n, deadline, sig);
      await expect(ledger.withdrawWithSig(holder.address, creator.address, 100n, deadline, sig))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(holder.address);
      expect(await ledger.balanceOf(holder.address)).to.equal(900n);
    });

    it("rejects an expired deadline; deadline == block.timestamp still works", async () => {
      const { ledger, holder, creator, sign, now, connection } = await sigSetup();
      const past = (await now()) - 1n;
      const sig = await sign(holder, { account: holder.address, to: creator.address as Address, amount: 1n, nonce: 0n, deadline: past });
      await expect(ledger.withdrawWithSig(holder.address, creator.address, 1n, past, sig))
        .to.be.revertedWithCustomError(ledger, "LedgerSignatureExpired")
        .withArgs(past);

      const exact = (await now()) + 50n;
      const sig2 = await sign(holder, { account: holder.address, to: creator.address as Address, amount: 2n, nonce: 0n, deadline: exact });
      await connection.networkHelpers.time.setNextBlockTimestamp(exact + 1n);
      await expect(ledger.withdrawWithSig(holder.address, creator.address, 2n, exact, sig2, { gasLimit: 300_000 }))
        .to.be.revertedWithCustomError(ledger, "LedgerSignatureExpired")
        .withArgs(exact);

      const exact2 = (await now()) + 50n;
      const sig3 = await sign(holder, { account: holder.address, to: creator.address as Address, amount: 3n, nonce: 0n, deadline: exact2 });
      await connection.networkHelpers.time.setNextBlockTimestamp(exact2);
      await ledger.withdrawWithSig(holder.address, creator.address, 3n, exact2, sig3, { gasLimit: 300_000 });
      expect(await ledger.balanceOf(holder.address)).to.equal(997n);
    });

    it("rejects a wrong signer, another chain's domain, and a relayer changing to or amount", async () => {
      const { ledger, holder, creator, stranger, sign, now, domain } = await sigSetup();
      const deadline = (await now()) + 600n;
      const message = { account: holder.address, to: creator.address as Address, amount: 100n, nonce: 0n, deadline };
      const impostor = privateKeyToAccount(generatePrivateKey());
      await expect(ledger.withdrawWithSig(holder.address, creator.address, 100n, deadline, await sign(impostor, message)))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(holder.address);
      const otherChain = await holder.sign({
        hash: hashTypedData({ domain: { ...domain, chainId: 8453 }, types: withdrawalTypes, primaryType: "Withdrawal", message }),
      });
      await expect(ledger.withdrawWithSig(holder.address, creator.address, 100n, deadline, otherChain))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(holder.address);
      const good = await sign(holder, message);
      await expect(ledger.withdrawWithSig(holder.address, stranger.address, 100n, deadline, good)).to.be.revertedWithCustomError(
        ledger,
        "LedgerInvalidSignature",
      );
      await expect(ledger.withdrawWithSig(holder.address, creator.address, 101n, deadline, good)).to.be.revertedWithCustomError(
        ledger,
        "LedgerInvalidSignature",
      );
      expect(await ledger.balanceOf(holder.address)).to.equal(1_000n);
      expect(await ledger.nonces(holder.address)).to.equal(0n);
    });

    it("SECURITY 4: an ERC-1271 wallet authorizes a withdrawal for exactly the digest viem computes", async () => {
      const fx = await setup();
      const { ledger, usdc, stranger, creator, chainId, ledgerAddress, credit, now } = fx;
      const wallet = fx.ethers.getAddress(addr(51, 0));
      await installWallet(fx, wallet);
      await credit(wallet, 500n);
      const deadline = (await now()) + 600n;
      const message = { account: wallet as Address, to: creator.address as Address, amount: 200n, nonce: 0n, deadline };
      await expect(ledger.connect(stranger).withdrawWithSig(wallet, creator.address, 200n, deadline, "0x"))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(wallet);
      await approveDigest(fx, wallet, withdrawalDigest(chainId, ledgerAddress, message));
      // Another amount is another digest, which the wallet does not approve.
      await expect(ledger.connect(stranger).withdrawWithSig(wallet, creator.address, 201n, deadline, "0x"))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(wallet);
      await expect(ledger.connect(stranger).withdrawWithSig(wallet, creator.address, 200n, deadline, "0x"))
        .to.emit(ledger, "Withdrawn")
        .withArgs(wallet, creator.address, 200n);
      expect(await usdc.balanceOf(creator.address)).to.equal(200n);
      expect(await ledger.balanceOf(wallet)).to.equal(300n);
      expect(await ledger.nonces(wallet)).to.equal(1n);
    });
  });

  describe("issue 11 §5: transferWithSig", () => {
    async function sigSetup() {
      const fx = await setup();
      const holder: PrivateKeyAccount = privateKeyToAccount(generatePrivateKey());
      await fx.credit(holder.address, 1_000n);
      const sign = (message: Parameters<typeof signTransferMessage>[3], signer: PrivateKeyAccount = holder) =>
        signTransferMessage(signer, fx.chainId, fx.ledgerAddress, message);
      /** A message from the holder to the creator, submitted by the stranger, at the holder's nonce. */
      const message = async (fields: Partial<Parameters<typeof signTransferMessage>[3]> = {}) => ({
        account: holder.address,
        to: fx.creator.address as Address,
        amount: 100n,
        caller: fx.stranger.address as Address,
        memo: keccak256(toHex("agent 7")),
        nonce: await fx.ledger.nonces(holder.address),
        deadline: (await fx.now()) + 600n,
        ...fields,
      });
      return { ...fx, holder, sign, message };
    }

    it("SECURITY 4: TRANSFER_AUTHORIZATION_TYPEHASH is the exact type string; a signature over viem's digest moves the credit", async () => {
      const { ledger, usdc, holder, creator, stranger, sign, message, ledgerAddress } = await sigSetup();
      expect(await ledger.TRANSFER_AUTHORIZATION_TYPEHASH()).to.equal(keccak256(toHex(TRANSFER_AUTHORIZATION_TYPE)));
      const m = await message({ amount: 400n });
      const tx = ledger.connect(stranger).transferWithSig(holder.address, creator.address, 400n, m.memo, m.deadline, await sign(m));
      await expect(tx).to.emit(ledger, "Transferred").withArgs(holder.address, creator.address, 400n);
      await expect(tx).not.to.emit(usdc, "Transfer");
      expect(await ledger.balanceOf(holder.address)).to.equal(600n);
      expect(await ledger.balanceOf(creator.address)).to.equal(400n);
      expect(await ledger.nonces(holder.address)).to.equal(1n);
      expect(await usdc.balanceOf(ledgerAddress)).to.equal(1_000n);
    });

    it("issue 11 §5, SECURITY 25: a signature made for one caller is refused from any other caller and on withdrawWithSig", async () => {
      const fx = await sigSetup();
      const { ledger, holder, creator, stranger, marketplace, sign, message } = fx;
      const marketplaceAddress = (await marketplace.getAddress()) as Address;
      // Made for the marketplace: the relayer (stranger) cannot use it here first.
      const forMarketplace = await message({ caller: marketplaceAddress, to: marketplaceAddress });
      const sig = await sign(forMarketplace);
      await expect(
        ledger.connect(stranger).transferWithSig(holder.address, marketplaceAddress, 100n, forMarketplace.memo, forMarketplace.deadline, sig),
      )
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(holder.address);
      await expect(
        ledger.connect(creator).transferWithSig(holder.address, marketplaceAddress, 100n, forMarketplace.memo, forMarketplace.deadline, sig),
      )
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(holder.address);
      // Nor as a withdrawal of the same amount to the same address.
      await expect(ledger.connect(stranger).withdrawWithSig(holder.address, marketplaceAddress, 100n, forMarketplace.deadline, sig))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(holder.address);
      expect(await ledger.balanceOf(holder.address)).to.equal(1_000n);
      expect(await ledger.nonces(holder.address)).to.equal(0n);

      // The caller it names can.
      const asMarketplace = await impersonate(fx, marketplaceAddress);
      await expect(
        ledger.connect(asMarketplace).transferWithSig(holder.address, marketplaceAddress, 100n, forMarketplace.memo, forMarketplace.deadline, sig),
      )
        .to.emit(ledger, "Transferred")
        .withArgs(holder.address, marketplaceAddress, 100n);
      expect(await ledger.balanceOf(holder.address)).to.equal(900n);

      // And a withdrawal signature is no transfer authorization.
      const deadline = (await fx.now()) + 600n;
      const withdrawal = await holder.sign({
        hash: withdrawalDigest(fx.chainId, fx.ledgerAddress, { account: holder.address, to: creator.address as Address, amount: 100n, nonce: 1n, deadline }),
      });
      await expect(ledger.connect(stranger).transferWithSig(holder.address, creator.address, 100n, ZERO_MEMO, deadline, withdrawal))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(holder.address);
      expect(await ledger.balanceOf(creator.address)).to.equal(0n);
    });

    it("SECURITY 12: the relayer cannot change to, amount or memo", async () => {
      const { ledger, holder, creator, stranger, treasury, sign, message } = await sigSetup();
      const m = await message();
      const sig = await sign(m);
      const submit = (to: string, amount: bigint, memo: Hex) =>
        ledger.connect(stranger).transferWithSig(holder.address, to, amount, memo, m.deadline, sig);
      for (const attempt of [
        () => submit(treasury.address, m.amount, m.memo),
        () => submit(creator.address, m.amount + 1n, m.memo),
        () => submit(creator.address, m.amount, ZERO_MEMO),
      ]) {
        await expect(attempt()).to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature").withArgs(holder.address);
      }
      await submit(creator.address, m.amount, m.memo);
      expect(await ledger.balanceOf(creator.address)).to.equal(100n);
    });

    it("nonces are shared with withdrawals: a replay fails, and a signature at a spent nonce fails", async () => {
      const { ledger, holder, creator, stranger, sign, message, chainId, ledgerAddress } = await sigSetup();
      const m = await message();
      const sig = await sign(m);
      await ledger.connect(stranger).transferWithSig(holder.address, creator.address, 100n, m.memo, m.deadline, sig);
      await expect(ledger.connect(stranger).transferWithSig(holder.address, creator.address, 100n, m.memo, m.deadline, sig))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(holder.address);
      // Nonce 1 signed for a transfer, but spent first by a withdrawal signed at nonce 1.
      const next = await message({ nonce: 1n });
      const nextSig = await sign(next);
      const withdrawal = { account: holder.address, to: holder.address, amount: 5n, nonce: 1n, deadline: next.deadline };
      await ledger.withdrawWithSig(holder.address, holder.address, 5n, next.deadline, await holder.sign({ hash: withdrawalDigest(chainId, ledgerAddress, withdrawal) }));
      expect(await ledger.nonces(holder.address)).to.equal(2n);
      await expect(ledger.connect(stranger).transferWithSig(holder.address, creator.address, 100n, next.memo, next.deadline, nextSig))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(holder.address);
      expect(await ledger.balanceOf(holder.address)).to.equal(895n);
      expect(await ledger.balanceOf(creator.address)).to.equal(100n);
    });

    it("rejects an expired deadline; deadline == block.timestamp still works", async () => {
      const { ledger, holder, creator, stranger, sign, message, time, now } = await sigSetup();
      const past = (await now()) - 1n;
      const expired = await message({ deadline: past });
      await expect(ledger.connect(stranger).transferWithSig(holder.address, creator.address, 100n, expired.memo, past, await sign(expired)))
        .to.be.revertedWithCustomError(ledger, "LedgerSignatureExpired")
        .withArgs(past);
      const exact = (await now()) + 50n;
      const m = await message({ deadline: exact });
      const sig = await sign(m);
      await time.setNextBlockTimestamp(exact + 1n);
      await expect(
        ledger.connect(stranger).transferWithSig(holder.address, creator.address, 100n, m.memo, exact, sig, { gasLimit: 300_000 }),
      )
        .to.be.revertedWithCustomError(ledger, "LedgerSignatureExpired")
        .withArgs(exact);
      const exact2 = (await now()) + 50n;
      const m2 = await message({ deadline: exact2 });
      await time.setNextBlockTimestamp(exact2);
      await ledger
        .connect(stranger)
        .transferWithSig(holder.address, creator.address, 100n, m2.memo, exact2, await sign(m2), { gasLimit: 300_000 });
      expect(await ledger.balanceOf(creator.address)).to.equal(100n);
    });

    it("SECURITY 3, SECURITY 6: rejects a wrong signer and another chain's or contract's domain", async () => {
      const { ledger, holder, creator, stranger, sign, message, chainId, ledgerAddress } = await sigSetup();
      const m = await message();
      const impostor = privateKeyToAccount(generatePrivateKey());
      const submit = (sig: Hex) => ledger.connect(stranger).transferWithSig(holder.address, creator.address, 100n, m.memo, m.deadline, sig);
      await expect(submit(await sign(m, impostor))).to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature").withArgs(holder.address);
      for (const domain of [
        { ...ledgerDomain(chainId, ledgerAddress), chainId: 8453 },
        ledgerDomain(chainId, creator.address as Address),
      ]) {
        const sig = await holder.sign({
          hash: hashTypedData({ domain, types: transferAuthorizationTypes, primaryType: "TransferAuthorization", message: m }),
        });
        await expect(submit(sig)).to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature").withArgs(holder.address);
      }
      expect(await ledger.balanceOf(holder.address)).to.equal(1_000n);
    });

    it("SECURITY 4: an ERC-1271 wallet authorizes a transfer for exactly the digest viem computes", async () => {
      const fx = await setup();
      const { ledger, stranger, creator, chainId, ledgerAddress, credit, now } = fx;
      const wallet = fx.ethers.getAddress(addr(52, 0));
      await installWallet(fx, wallet);
      await credit(wallet, 500n);
      const message = {
        account: wallet as Address,
        to: creator.address as Address,
        amount: 123n,
        caller: stranger.address as Address,
        memo: ZERO_MEMO,
        nonce: 0n,
        deadline: (await now()) + 600n,
      };
      await approveDigest(fx, wallet, transferAuthorizationDigest(chainId, ledgerAddress, message));
      await expect(ledger.connect(creator).transferWithSig(wallet, creator.address, 123n, ZERO_MEMO, message.deadline, "0x"))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidSignature")
        .withArgs(wallet);
      await expect(ledger.connect(stranger).transferWithSig(wallet, creator.address, 123n, ZERO_MEMO, message.deadline, "0x"))
        .to.emit(ledger, "Transferred")
        .withArgs(wallet, creator.address, 123n);
      expect(await ledger.balanceOf(wallet)).to.equal(377n);
      expect(await ledger.nonces(wallet)).to.equal(1n);
    });
  });

  describe("deposits", () => {
    it("depositWithPermit tops up the caller's balance with Paid(caller, caller, amount) in one transaction", async () => {
      const { ledger, usdc, ethers, creator, ledgerAddress, now } = await setup();
      await usdc.mint(creator.address, 70n);
      const deadline = (await now()) + 600n;
      const { v, r, s } = await signPermit(usdc, creator, ledgerAddress, 70n, deadline);
      const tx = ledger.connect(creator).depositWithPermit(70n, deadline, v, r, s);
      await expect(tx).to.emit(ledger, "Paid").withArgs(creator.address, creator.address, 70n);
      await expect(tx).to.changeTokenBalances(ethers, usdc, [creator.address, ledgerAddress], [-70n, 70n]);
      expect(await ledger.balanceOf(creator.address)).to.equal(70n);
      await expect(ledger.connect(creator).depositWithPermit(0n, deadline, v, r, s)).to.be.revertedWithCustomError(
        ledger,
        "LedgerZeroAmount",
      );
    });

    it("depositWithAuthorization credits the signer (never the submitter) with Paid(from, from, amount)", async () => {
      const { ledger, usdc, ethers, creator, stranger, ledgerAddress, chainId, now } = await setup();
      await usdc.mint(creator.address, 90n);
      const authorization = {
        from: creator.address,
        to: ledgerAddress,
        value: 90n,
        validAfter: 0n,
        validBefore: (await now()) + 600n,
        nonce: keccak256(toHex("deposit 1")),
      };
      const signature = await creator.signTypedData(
        usdcDomain(chainId, (await usdc.getAddress()) as Address),
        ethersTypes(receiveWithAuthorizationTypes),
        authorization,
      );
      const a = authorization;
      const tx = ledger.connect(stranger).depositWithAuthorization(a.from, a.value, a.validAfter, a.validBefore, a.nonce, signature);
      await expect(tx).to.emit(ledger, "Paid").withArgs(creator.address, creator.address, 90n);
      await expect(tx).to.changeTokenBalances(ethers, usdc, [creator.address, ledgerAddress, stranger.address], [-90n, 90n, 0n]);
      expect(await ledger.balanceOf(creator.address)).to.equal(90n);
      expect(await ledger.balanceOf(stranger.address)).to.equal(0n);
      await expect(
        ledger.connect(stranger).depositWithAuthorization(a.from, 0n, a.validAfter, a.validBefore, a.nonce, signature),
      ).to.be.revertedWithCustomError(ledger, "LedgerZeroAmount");
    });
  });

  describe("issue 11: custodians", () => {
    it("the suite names the escrow, registry and marketplace as custodians, once; nobody can name others", async () => {
      const { ledger, escrow, registry, marketplace, admin, stranger, treasury, creator } = await setup();
      for (const custodian of [escrow, registry, marketplace]) {
        expect(await ledger.isCustodian(await custodian.getAddress())).to.equal(true);
      }
      for (const other of [admin, stranger, treasury, creator]) expect(await ledger.isCustodian(other.address)).to.equal(false);
      // The deployer (here also the admin) cannot set them again, nor can anyone else.
      for (const who of [admin, stranger]) {
        await expect(ledger.connect(who).setCustodians([who.address])).to.be.revertedWithCustomError(ledger, "LedgerCustodiansLocked");
        expect(await ledger.isCustodian(who.address)).to.equal(false);
      }
    });

    it("setCustodians: the deployer only (not the admin), once; CustodiansSet; refuses the zero address; lifts an existing freeze", async () => {
      const { ethers, usdc, admin, stranger, creator, treasury, officer, now } = await setup();
      // A ledger deployed by the stranger, administered by the admin.
      const ledger = (await ethers.deployContract("SplitsLedger", [await usdc.getAddress(), 0, admin.address], stranger)) as unknown as SplitsLedger;
      await expect(ledger.connect(admin).setCustodians([creator.address])).to.be.revertedWithCustomError(ledger, "LedgerCustodiansLocked");
      await expect(ledger.connect(stranger).setCustodians([creator.address, ethersZero]))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidReceiver")
        .withArgs(ethersZero);
      await ledger.connect(admin).grantRole(await ledger.COMPLIANCE_ROLE(), officer.address);
      const until = (await now()) + DAY;
      await ledger.connect(officer).freeze(creator.address, until, REASON_SANCTIONS);
      expect(await ledger.canMove(creator.address)).to.equal(false);

      await expect(ledger.connect(stranger).setCustodians([creator.address, treasury.address]))
        .to.emit(ledger, "CustodiansSet")
        .withArgs([creator.address, treasury.address]);
      expect(await ledger.isCustodian(creator.address)).to.equal(true);
      expect(await ledger.isCustodian(treasury.address)).to.equal(true);
      expect(await ledger.frozenUntil(creator.address)).to.equal(0n);
      expect(await ledger.canMove(creator.address)).to.equal(true);
      await expect(ledger.connect(stranger).setCustodians([officer.address])).to.be.revertedWithCustomError(ledger, "LedgerCustodiansLocked");
      expect(await ledger.isCustodian(officer.address)).to.equal(false);
    });

    it("issue 11 §3: custodians can never be frozen, not even by an admin that grants itself the compliance role", async () => {
      const { ledger, escrow, registry, marketplace, admin, now } = await setup();
      await ledger.connect(admin).grantRole(await ledger.COMPLIANCE_ROLE(), admin.address);
      const until = (await now()) + DAY;
      for (const custodian of [escrow, registry, marketplace]) {
        const address = await custodian.getAddress();
        await expect(ledger.connect(admin).freeze(address, until, REASON_SANCTIONS))
          .to.be.revertedWithCustomError(ledger, "LedgerCustodianNotFreezable")
          .withArgs(address);
        expect(await ledger.frozenUntil(address)).to.equal(0n);
        expect(await ledger.canMove(address)).to.equal(true);
      }
    });

    it("issue 11 §4: custodians are exempt from the blacklist check: a USDC-blacklisted custodian still transfers and withdraws", async () => {
      const fx = await setup();
      const { ledger, usdc, admin, escrow, creator, credit } = fx;
      const escrowAddress = await escrow.getAddress();
      await credit(escrowAddress, 100n);
      await usdc.connect(admin).blacklist(escrowAddress);
      expect(await ledger.canMove(escrowAddress)).to.equal(true);
      const asEscrow = await impersonate(fx, escrowAddress);
      await expect(ledger.connect(asEscrow).transfer(creator.address, 30n))
        .to.emit(ledger, "Transferred")
        .withArgs(escrowAddress, creator.address, 30n);
      const fresh = fx.others[8]!.address;
      await expect(ledger.connect(asEscrow).withdraw(fresh, 20n)).to.emit(ledger, "Withdrawn").withArgs(escrowAddress, fresh, 20n);
      expect(await usdc.balanceOf(fresh)).to.equal(20n);
      expect(await ledger.balanceOf(escrowAddress)).to.equal(50n);
    });
  });

  describe("issue 11 §3: compliance freeze", () => {
    it("SECURITY 20: freeze and unfreeze revert for non-holders of COMPLIANCE_ROLE (the admin included); only the admin grants it", async () => {
      const { ledger, stranger, admin, creator, now } = await setup();
      const role = await ledger.COMPLIANCE_ROLE();
      expect(role).to.equal(keccak256(toHex("COMPLIANCE_ROLE")));
      const until = (await now()) + DAY;
      for (const who of [stranger, admin]) {
        await expect(ledger.connect(who).freeze(creator.address, until, REASON_SANCTIONS))
          .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
          .withArgs(who.address, role);
        await expect(ledger.connect(who).unfreeze(creator.address, REASON_REVIEW_DONE))
          .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
          .withArgs(who.address, role);
      }
      // Only the admin can grant the role.
      await expect(ledger.connect(stranger).grantRole(role, stranger.address))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(stranger.address, await ledger.DEFAULT_ADMIN_ROLE());
      expect(await ledger.frozenUntil(creator.address)).to.equal(0n);
      expect(await ledger.canMove(creator.address)).to.equal(true);
    });

    it("issue 11 §3: a freeze needs a reason code and ends in the future, at most 30 days from now", async () => {
      const { ledger, creator, officer, grantCompliance, time, now } = await setup();
      await grantCompliance(officer);
      expect(await ledger.MAX_FREEZE_DURATION()).to.equal(30n * DAY);
      const freezeAt = async (at: bigint, until: bigint, reason: number) => {
        await time.setNextBlockTimestamp(at);
        return ledger.connect(officer).freeze(creator.address, until, reason, { gasLimit: 300_000 });
      };
      let t = (await now()) + 100n;
      await expect(freezeAt(t, t + DAY, 0)).to.be.revertedWithCustomError(ledger, "LedgerInvalidReason");
      t += 10n;
      await expect(freezeAt(t, t, REASON_SANCTIONS))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidFreeze")
        .withArgs(t, t + 30n * DAY);
      t += 10n;
      await expect(freezeAt(t, t - 5n, REASON_SANCTIONS))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidFreeze")
        .withArgs(t - 5n, t + 30n * DAY);
      t += 10n;
      await expect(freezeAt(t, t + 30n * DAY + 1n, REASON_SANCTIONS))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidFreeze")
        .withArgs(t + 30n * DAY + 1n, t + 30n * DAY);
      expect(await ledger.frozenUntil(creator.address)).to.equal(0n);

      t += 10n;
      await expect(freezeAt(t, t + 30n * DAY, 7))
        .to.emit(ledger, "AccountFrozen")
        .withArgs(creator.address, t + 30n * DAY, 7, officer.address);
      expect(await ledger.frozenUntil(creator.address)).to.equal(t + 30n * DAY);
      expect(await ledger.canMove(creator.address)).to.equal(false);
    });

    it("issue 11 §3: a freeze lifts by itself at `until`: refused at until − 1, allowed at until", async () => {
      const { ledger, usdc, creator, credit, freeze, time, now } = await setup();
      await credit(creator.address, 10n);
      const until = (await now()) + 1_000n;
      await freeze(creator.address, until);
      await time.setNextBlockTimestamp(until - 1n);
      await expect(ledger.connect(creator).withdraw(creator.address, 4n, { gasLimit: 300_000 }))
        .to.be.revertedWithCustomError(ledger, "LedgerAccountFrozen")
        .withArgs(creator.address, until);
      expect(await ledger.canMove(creator.address)).to.equal(false);
      await time.setNextBlockTimestamp(until);
      await expect(ledger.connect(creator).withdraw(creator.address, 4n, { gasLimit: 300_000 }))
        .to.emit(ledger, "Withdrawn")
        .withArgs(creator.address, creator.address, 4n);
      expect(BigInt(await time.latest())).to.equal(until);
      expect(await ledger.canMove(creator.address)).to.equal(true);
      expect(await usdc.balanceOf(creator.address)).to.equal(4n);
      // frozenUntil keeps the past end; there is nothing left to unfreeze.
      expect(await ledger.frozenUntil(creator.address)).to.equal(until);
    });

    it("issue 11 §3: unfreeze lifts a freeze early with AccountUnfrozen; it needs a reason and a frozen account", async () => {
      const { ledger, creator, stranger, officer, credit, freeze, time, now } = await setup();
      await credit(creator.address, 10n);
      await expect(ledger.connect(officer).unfreeze(creator.address, REASON_REVIEW_DONE)).to.be.revertedWithCustomError(
        ledger,
        "AccessControlUnauthorizedAccount",
      );
      await freeze(creator.address, (await now()) + 10n * DAY);
      await expect(ledger.connect(officer).unfreeze(creator.address, 0)).to.be.revertedWithCustomError(ledger, "LedgerInvalidReason");
      await expect(ledger.connect(officer).unfreeze(stranger.address, REASON_REVIEW_DONE))
        .to.be.revertedWithCustomError(ledger, "LedgerNotFrozen")
        .withArgs(stranger.address);
      expect(await ledger.canMove(creator.address)).to.equal(false);
      await expect(ledger.connect(officer).unfreeze(creator.address, REASON_REVIEW_DONE))
        .to.emit(ledger, "AccountUnfrozen")
        .withArgs(creator.address, REASON_REVIEW_DONE, officer.address);
      expect(await ledger.frozenUntil(creator.address)).to.equal(0n);
      expect(await ledger.canMove(creator.address)).to.equal(true);
      await ledger.connect(creator).withdraw(creator.address, 10n);
      await expect(ledger.connect(officer).unfreeze(creator.address, REASON_REVIEW_DONE))
        .to.be.revertedWithCustomError(ledger, "LedgerNotFrozen")
        .withArgs(creator.address);
      // A lapsed freeze is not frozen either.
      const until = (await now()) + 100n;
      await freeze(creator.address, until);
      await time.increaseTo(until);
      await expect(ledger.connect(officer).unfreeze(creator.address, REASON_REVIEW_DONE))
        .to.be.revertedWithCustomError(ledger, "LedgerNotFrozen")
        .withArgs(creator.address);
    });

    it("issue 11 §3: a new freeze replaces the current one (shorter or renewed), each with its own event", async () => {
      const { ledger, creator, officer, credit, freeze, time, now } = await setup();
      await credit(creator.address, 10n);
      await freeze(creator.address, (await now()) + 20n * DAY);
      const shorter = (await now()) + DAY;
      await expect(ledger.connect(officer).freeze(creator.address, shorter, 3))
        .to.emit(ledger, "AccountFrozen")
        .withArgs(creator.address, shorter, 3, officer.address);
      expect(await ledger.frozenUntil(creator.address)).to.equal(shorter);
      await time.increaseTo(shorter);
      expect(await ledger.canMove(creator.address)).to.equal(true);
      // Keeping an account frozen past 30 days takes a renewal, which is on the record.
      const renewed = (await now()) + 30n * DAY;
      await expect(ledger.connect(officer).freeze(creator.address, renewed, 4))
        .to.emit(ledger, "AccountFrozen")
        .withArgs(creator.address, renewed, 4, officer.address);
      await expect(ledger.connect(creator).withdraw(creator.address, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerAccountFrozen")
        .withArgs(creator.address, renewed);
    });

    it("a frozen account keeps accruing and may approve, but no path moves its balance until the freeze lifts", async () => {
      const fx = await setup();
      const { ledger, creator, stranger, treasury, officer, credit, create, freeze, now } = fx;
      await credit(creator.address, 100n);
      await ledger.connect(creator).approve(stranger.address, MAX_UINT);
      const until = (await now()) + 10n * DAY;
      await freeze(creator.address, until);

      for (const [path, attempt] of Object.entries(movesOut(fx, creator, 10n))) {
        await expect(attempt(), path).to.be.revertedWithCustomError(ledger, "LedgerAccountFrozen").withArgs(creator.address, until);
      }
      expect(await ledger.balanceOf(creator.address)).to.equal(100n);
      expect(await ledger.nonces(creator.address)).to.equal(0n);

      // Accrues: payments, transfers and split distributions still credit it.
      await credit(creator.address, 5n);
      await credit(treasury.address, 5n);
      await ledger.connect(treasury).transfer(creator.address, 5n);
      const split = await create(splitOf([{ account: creator.address, share: 500_000n }], treasury.address));
      await credit(split, 10n);
      await ledger.connect(stranger).distribute(split);
      expect(await ledger.balanceOf(creator.address)).to.equal(115n);
      await expect(ledger.connect(creator).approve(treasury.address, 1n))
        .to.emit(ledger, "Approved")
        .withArgs(creator.address, treasury.address, 1n);

      await ledger.connect(officer).unfreeze(creator.address, REASON_REVIEW_DONE);
      for (const attempt of Object.values(movesOut(fx, creator, 10n))) await (await attempt()).wait();
      expect(await ledger.balanceOf(creator.address)).to.equal(115n - 70n);
    });

    it("a frozen account keeps accruing but cannot withdraw until unfrozen", async () => {
      const { ledger, usdc, agent, creator, fund, officer, grantCompliance, now } = await setup();
      await grantCompliance(officer);
      const until = (await now()) + 7n * DAY;
      await expect(ledger.connect(officer).freeze(creator.address, until, REASON_SANCTIONS))
        .to.emit(ledger, "AccountFrozen")
        .withArgs(creator.address, until, REASON_SANCTIONS, officer.address);
      expect(await ledger.frozenUntil(creator.address)).to.equal(until);
      expect(await ledger.canMove(creator.address)).to.equal(false);

      await fund(agent, 100n);
      await ledger.connect(agent).pay(creator.address, 100n);
      expect(await ledger.balanceOf(creator.address)).to.equal(100n);
      await expect(ledger.connect(creator).withdraw(creator.address, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerAccountFrozen")
        .withArgs(creator.address, until);

      await expect(ledger.connect(officer).unfreeze(creator.address, REASON_REVIEW_DONE))
        .to.emit(ledger, "AccountUnfrozen")
        .withArgs(creator.address, REASON_REVIEW_DONE, officer.address);
      await ledger.connect(creator).withdraw(creator.address, 100n);
      expect(await usdc.balanceOf(creator.address)).to.equal(100n);
    });

    it("a frozen account cannot withdraw by signature either", async () => {
      const fx = await setup();
      const { ledger, agent, fund, chainId, ledgerAddress, freeze, now } = fx;
      const holder = privateKeyToAccount(generatePrivateKey());
      await fund(agent, 10n);
      await ledger.connect(agent).pay(holder.address, 10n);
      const until = (await now()) + DAY;
      await freeze(holder.address, until);
      const deadline = (await now()) + 600n;
      const digest = hashTypedData({
        domain: ledgerDomain(chainId, ledgerAddress),
        types: withdrawalTypes,
        primaryType: "Withdrawal",
        message: { account: holder.address, to: holder.address, amount: 10n, nonce: 0n, deadline },
      });
      await expect(ledger.withdrawWithSig(holder.address, holder.address, 10n, deadline, await holder.sign({ hash: digest })))
        .to.be.revertedWithCustomError(ledger, "LedgerAccountFrozen")
        .withArgs(holder.address, until);
      expect(await ledger.balanceOf(holder.address)).to.equal(10n);
    });

    it("a frozen split cannot be distributed until the freeze lifts", async () => {
      const { ledger, agent, fund, create, freeze, time, now } = await setup();
      const definition = splitOf([{ account: addr(18, 0), share: 300_000n }], addr(18, 1));
      const predicted = await ledger.predictSplitAddress(definition);
      await fund(agent, 10n);
      await ledger.connect(agent).pay(predicted, 10n);
      await create(definition);
      const until = (await now()) + DAY;
      await freeze(predicted, until);
      await expect(ledger.distribute(predicted))
        .to.be.revertedWithCustomError(ledger, "LedgerAccountFrozen")
        .withArgs(predicted, until);
      expect(await ledger.balanceOf(predicted)).to.equal(10n);
      await time.increaseTo(until);
      await expect(ledger.distribute(predicted)).to.emit(ledger, "SplitDistributed").withArgs(predicted, 10n, [3n, 7n]);
    });

    it("SECURITY 14: a frozen recipient, or a contract that can never withdraw, blocks no other recipient", async () => {
      const { ledger, usdc, agent, creator, stranger, providerOwner, fund, create, freeze, now } = await setup();
      const blackhole = await usdc.getAddress(); // a contract with no way to call withdraw
      const definition = splitOf(
        [
          { account: creator.address, share: 250_000n },
          { account: stranger.address, share: 250_000n },
          { account: blackhole, share: 250_000n },
        ],
        providerOwner.address,
      );
      const split = await create(definition);
      await freeze(creator.address, (await now()) + DAY);

      await fund(agent, 1_004n);
      await ledger.connect(agent).pay(split, 1_000n);
      await ledger.connect(agent).distribute(split);
      expect(await ledger.balanceOf(creator.address)).to.equal(250n);
      expect(await ledger.balanceOf(blackhole)).to.equal(250n);

      await expect(ledger.connect(creator).withdraw(creator.address, 250n)).to.be.revertedWithCustomError(
        ledger,
        "LedgerAccountFrozen",
      );
      await ledger.connect(stranger).withdraw(stranger.address, 250n);
      await ledger.connect(providerOwner).withdraw(providerOwner.address, 250n);
      expect(await usdc.balanceOf(stranger.address)).to.equal(250n);
      expect(await usdc.balanceOf(providerOwner.address)).to.equal(250n);
      expect(await ledger.balanceOf(creator.address)).to.equal(250n);
      // Payments into the split keep working while a recipient is frozen.
      await ledger.connect(agent).pay(split, 4n);
      await ledger.connect(agent).distribute(split);
      expect((await ledger.splitTotals(split))[0]).to.equal(1_004n);
      expect(await ledger.balanceOf(creator.address)).to.equal(251n);
      expect(await ledger.balanceOf(stranger.address)).to.equal(1n);
    });
  });

  describe("issue 11 §4: USDC blacklist policy", () => {
    it("issue 11 §4: a USDC-blacklisted account cannot withdraw (to a fresh address or by signature), transfer, or let a spender move its balance", async () => {
      const fx = await setup();
      const { ledger, usdc, admin, creator, stranger, credit } = fx;
      await credit(creator.address, 100n);
      await ledger.connect(creator).approve(stranger.address, MAX_UINT);
      await usdc.connect(admin).blacklist(creator.address);
      expect(await ledger.canMove(creator.address)).to.equal(false);
      for (const [path, attempt] of Object.entries(movesOut(fx, creator, 10n))) {
        await expect(attempt(), path).to.be.revertedWithCustomError(ledger, "LedgerAccountBlacklisted").withArgs(creator.address);
      }
      expect(await ledger.balanceOf(creator.address)).to.equal(100n);
      expect(await ledger.nonces(creator.address)).to.equal(0n);

      // Once the token lifts the blacklist, every path works again.
      await usdc.connect(admin).unBlacklist(creator.address);
      expect(await ledger.canMove(creator.address)).to.equal(true);
      for (const attempt of Object.values(movesOut(fx, creator, 10n))) await (await attempt()).wait();
      expect(await ledger.balanceOf(creator.address)).to.equal(30n);
    });

    it("issue 11 §4, SECURITY 14: a blacklisted account still accrues and blocks nobody else", async () => {
      const { ledger, usdc, admin, creator, stranger, treasury, providerOwner, credit, create } = await setup();
      const split = await create(
        splitOf(
          [
            { account: creator.address, share: 400_000n },
            { account: stranger.address, share: 400_000n },
          ],
          treasury.address,
        ),
      );
      await usdc.connect(admin).blacklist(creator.address);
      // It accrues from payments, transfers and split distributions.
      await credit(creator.address, 10n);
      await credit(providerOwner.address, 20n);
      await ledger.connect(providerOwner).transfer(creator.address, 5n);
      await credit(split, 100n);
      await expect(ledger.connect(stranger).distribute(split)).to.emit(ledger, "SplitDistributed").withArgs(split, 100n, [40n, 40n, 20n]);
      expect(await ledger.balanceOf(creator.address)).to.equal(55n);
      // Everyone else moves freely, a spender acting for others included.
      await ledger.connect(stranger).withdraw(stranger.address, 40n);
      await ledger.connect(treasury).approve(stranger.address, 20n);
      await ledger.connect(stranger).transferFrom(treasury.address, stranger.address, 20n);
      await ledger.connect(providerOwner).withdraw(providerOwner.address, 15n);
      expect(await usdc.balanceOf(stranger.address)).to.equal(40n);
      expect(await usdc.balanceOf(providerOwner.address)).to.equal(15n);
      expect(await ledger.balanceOf(stranger.address)).to.equal(20n);
      expect(await ledger.balanceOf(creator.address)).to.equal(55n);
    });

    it("issue 11 §4: canMove is false while frozen or blacklisted and true otherwise; custodians can always move", async () => {
      const { ledger, usdc, admin, escrow, creator, stranger, officer, freeze, time, now } = await setup();
      expect(await ledger.canMove(creator.address)).to.equal(true);
      expect(await ledger.canMove(stranger.address)).to.equal(true);
      const until = (await now()) + 100n;
      await freeze(creator.address, until);
      expect(await ledger.canMove(creator.address)).to.equal(false);
      expect(await ledger.canMove(stranger.address)).to.equal(true);
      await time.increaseTo(until);
      expect(await ledger.canMove(creator.address)).to.equal(true);
      await usdc.connect(admin).blacklist(creator.address);
      expect(await ledger.canMove(creator.address)).to.equal(false);
      await freeze(creator.address, (await now()) + 100n);
      await usdc.connect(admin).unBlacklist(creator.address);
      expect(await ledger.canMove(creator.address)).to.equal(false); // still frozen
      await ledger.connect(officer).unfreeze(creator.address, REASON_REVIEW_DONE);
      expect(await ledger.canMove(creator.address)).to.equal(true);
      const escrowAddress = await escrow.getAddress();
      await usdc.connect(admin).blacklist(escrowAddress);
      expect(await ledger.canMove(escrowAddress)).to.equal(true);
    });
  });

  describe("issue 11 §4: a paused or blacklisting token stops only what moves USDC", () => {
    it("issue 11 §4: while USDC is paused, withdrawals wait but transfer, transferMany, transferFrom, transferWithSig and distribute go on", async () => {
      const fx = await setup();
      const { ledger, usdc, admin, creator, stranger, treasury, agent, credit, create, fund, now } = fx;
      const split = await create(splitOf([{ account: addr(53, 0), share: 500_000n }], addr(53, 1)));
      await credit(creator.address, 100n);
      await credit(split, 10n);
      await ledger.connect(creator).approve(stranger.address, MAX_UINT);
      await fund(agent, 1n);
      await usdc.connect(admin).pause();

      await expect(ledger.connect(creator).withdraw(creator.address, 1n)).to.be.revertedWithCustomError(usdc, "TokenPaused");
      await expect(ledger.connect(stranger).withdrawFrom(creator.address, stranger.address, 1n)).to.be.revertedWithCustomError(
        usdc,
        "TokenPaused",
      );
      await expect(ledger.connect(agent).pay(creator.address, 1n)).to.be.revertedWithCustomError(usdc, "TokenPaused");
      expect(await ledger.balanceOf(creator.address)).to.equal(100n);

      await ledger.connect(creator).transfer(treasury.address, 10n);
      await ledger.connect(creator).transferMany([treasury.address, split], [10n, 10n]);
      await ledger.connect(stranger).transferFrom(creator.address, treasury.address, 10n);
      const deadline = (await now()) + 600n;
      const sig = await signTransferBy(ledger, creator, { to: treasury.address, amount: 10n, caller: stranger.address, deadline });
      await ledger.connect(stranger).transferWithSig(creator.address, treasury.address, 10n, ZERO_MEMO, deadline, sig);
      await expect(ledger.distribute(split)).to.emit(ledger, "SplitDistributed").withArgs(split, 20n, [10n, 10n]);
      expect(await ledger.balanceOf(creator.address)).to.equal(50n);
      expect(await ledger.balanceOf(treasury.address)).to.equal(40n);
      expect(await ledger.balanceOf(addr(53, 0))).to.equal(10n);

      await usdc.connect(admin).unpause();
      await ledger.connect(treasury).withdraw(treasury.address, 40n);
      expect(await usdc.balanceOf(treasury.address)).to.equal(40n);
    });

    it("issue 11 §4: USDC blacklisting the ledger itself stops withdrawals and deposits, never internal moves", async () => {
      const { ledger, usdc, admin, creator, treasury, agent, ledgerAddress, credit, fund, create } = await setup();
      const split = await create(splitOf([{ account: addr(54, 0), share: 500_000n }], addr(54, 1)));
      await credit(creator.address, 100n);
      await credit(split, 4n);
      await fund(agent, 1n);
      await usdc.connect(admin).blacklist(ledgerAddress);
      await expect(ledger.connect(creator).withdraw(creator.address, 1n))
        .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
        .withArgs(ledgerAddress);
      await expect(ledger.connect(agent).pay(creator.address, 1n))
        .to.be.revertedWithCustomError(usdc, "AccountBlacklisted")
        .withArgs(ledgerAddress);
      await ledger.connect(creator).transfer(treasury.address, 60n);
      await ledger.distribute(split);
      expect(await ledger.balanceOf(treasury.address)).to.equal(60n);
      expect(await ledger.balanceOf(addr(54, 0))).to.equal(2n);
      expect(await usdc.balanceOf(ledgerAddress)).to.equal(104n);
    });
  });

  describe("issue 11 §3: governance", () => {
    it("issue 11 §3: the admin role is AccessControlDefaultAdminRules: one admin, a 2-day delay, never granted directly", async () => {
      const { ledger, admin, stranger } = await setup();
      const adminRole = await ledger.DEFAULT_ADMIN_ROLE();
      expect(await ledger.defaultAdmin()).to.equal(admin.address);
      expect(await ledger.defaultAdminDelay()).to.equal(2n * DAY);
      expect(await ledger.hasRole(adminRole, admin.address)).to.equal(true);
      await expect(ledger.connect(admin).grantRole(adminRole, stranger.address)).to.be.revertedWithCustomError(
        ledger,
        "AccessControlEnforcedDefaultAdminRules",
      );
      expect(await ledger.hasRole(adminRole, stranger.address)).to.equal(false);
    });

    it("issue 11 §3: the admin role moves in two steps: begun by the admin, accepted by the new admin only after the delay", async () => {
      const { ledger, admin, stranger, creator, time } = await setup();
      const adminRole = await ledger.DEFAULT_ADMIN_ROLE();
      await expect(ledger.connect(stranger).beginDefaultAdminTransfer(stranger.address))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(stranger.address, adminRole);
      const tx = await ledger.connect(admin).beginDefaultAdminTransfer(creator.address);
      const schedule = BigInt((await tx.getBlock())!.timestamp) + 2n * DAY;
      await expect(tx).to.emit(ledger, "DefaultAdminTransferScheduled").withArgs(creator.address, schedule);
      const [pending, pendingSchedule] = await ledger.pendingDefaultAdmin();
      expect([pending, pendingSchedule]).to.deep.equal([creator.address, schedule]);
      await expect(ledger.connect(stranger).acceptDefaultAdminTransfer())
        .to.be.revertedWithCustomError(ledger, "AccessControlInvalidDefaultAdmin")
        .withArgs(stranger.address);
      await time.setNextBlockTimestamp(schedule);
      await expect(ledger.connect(creator).acceptDefaultAdminTransfer({ gasLimit: 300_000 }))
        .to.be.revertedWithCustomError(ledger, "AccessControlEnforcedDefaultAdminDelay")
        .withArgs(schedule);
      expect(await ledger.defaultAdmin()).to.equal(admin.address);

      await time.setNextBlockTimestamp(schedule + 1n);
      await ledger.connect(creator).acceptDefaultAdminTransfer({ gasLimit: 300_000 });
      expect(await ledger.defaultAdmin()).to.equal(creator.address);
      expect(await ledger.hasRole(adminRole, admin.address)).to.equal(false);
      await expect(ledger.connect(admin).grantRole(await ledger.COMPLIANCE_ROLE(), admin.address))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(admin.address, adminRole);
    });

    it("issue 11 §3, SECURITY 23: the admin cannot move anyone's balance, freeze a custodian or freeze for longer than 30 days", async () => {
      const { ledger, admin, creator, escrow, time, credit, now } = await setup();
      await credit(creator.address, 100n);
      const escrowAddress = await escrow.getAddress();
      await credit(escrowAddress, 50n);
      // Holding no allowance and no signature, the admin moves nothing.
      await expect(ledger.connect(admin).transferFrom(creator.address, admin.address, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientAllowance")
        .withArgs(creator.address, admin.address, 0n, 1n);
      await expect(ledger.connect(admin).withdrawFrom(escrowAddress, admin.address, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerInsufficientAllowance")
        .withArgs(escrowAddress, admin.address, 0n, 1n);
      // Granting itself the compliance role, it still cannot freeze a custodian, nor anyone past 30 days.
      await ledger.connect(admin).grantRole(await ledger.COMPLIANCE_ROLE(), admin.address);
      await expect(ledger.connect(admin).freeze(escrowAddress, (await now()) + DAY, REASON_SANCTIONS))
        .to.be.revertedWithCustomError(ledger, "LedgerCustodianNotFreezable")
        .withArgs(escrowAddress);
      const t = (await now()) + 10n;
      await time.setNextBlockTimestamp(t);
      await expect(ledger.connect(admin).freeze(creator.address, t + 31n * DAY, REASON_SANCTIONS, { gasLimit: 300_000 }))
        .to.be.revertedWithCustomError(ledger, "LedgerInvalidFreeze")
        .withArgs(t + 31n * DAY, t + 30n * DAY);
      expect(await ledger.balanceOf(creator.address)).to.equal(100n);
      expect(await ledger.balanceOf(escrowAddress)).to.equal(50n);
      expect(await ledger.balanceOf(admin.address)).to.equal(0n);
    });
  });

  describe("SECURITY 15: token", () => {
    it("pay and payMany revert with TokenDepositMismatch when the token delivers less than sent", async () => {
      const { ethers, admin, agent, creator } = await setup();
      const fot = (await ethers.deployContract("FeeOnTransferToken")) as unknown as FeeOnTransferToken;
      const fotLedger = (await ethers.deployContract("SplitsLedger", [
        await fot.getAddress(),
        0,
        admin.address,
      ])) as unknown as SplitsLedger;
      const fotLedgerAddress = await fotLedger.getAddress();
      await fot.mint(agent.address, 20_000n);
      await fot.connect(agent).approve(fotLedgerAddress, 20_000n);

      await expect(fotLedger.connect(agent).pay(creator.address, 10_000n))
        .to.be.revertedWithCustomError(fotLedger, "TokenDepositMismatch")
        .withArgs(10_000n, 9_900n);
      await expect(fotLedger.connect(agent).payMany([creator.address, agent.address], [5_000n, 5_000n]))
        .to.be.revertedWithCustomError(fotLedger, "TokenDepositMismatch")
        .withArgs(10_000n, 9_900n);
      expect(await fotLedger.balanceOf(creator.address)).to.equal(0n);
      expect(await fot.balanceOf(fotLedgerAddress)).to.equal(0n);
    });

    it("token() is immutable: no state-changing function can set it", async () => {
      const { ledger, usdc, admin } = await setup();
      expect(await ledger.token()).to.equal(await usdc.getAddress());
      const mutating: string[] = [];
      ledger.interface.forEachFunction((fn) => {
        if (fn.stateMutability !== "view" && fn.stateMutability !== "pure") mutating.push(fn.name);
      });
      expect(mutating.sort()).to.deep.equal(
        [
          "acceptDefaultAdminTransfer",
          "approve",
          "beginDefaultAdminTransfer",
          "cancelDefaultAdminTransfer",
          "changeDefaultAdminDelay",
          "createSplit",
          "depositWithAuthorization",
          "depositWithPermit",
          "distribute",
          "freeze",
          "grantRole",
          "pay",
          "payMany",
          "renounceRole",
          "revokeRole",
          "rollbackDefaultAdminDelay",
          "setCustodians",
          "transfer",
          "transferFrom",
          "transferMany",
          "transferWithSig",
          "unfreeze",
          "withdraw",
          "withdrawFrom",
          "withdrawWithSig",
        ].sort(),
      );
      expect(mutating.some((name) => /token/i.test(name))).to.equal(false);
      // Admin actions leave it unchanged.
      await ledger.connect(admin).grantRole(await ledger.COMPLIANCE_ROLE(), admin.address);
      expect(await ledger.token()).to.equal(await usdc.getAddress());
    });
  });

  describe("restricted splits (issue 11 §3, §4)", () => {
    it("issue 11 §3: a frozen split nested in another keeps its part when its parent is distributed", async () => {
      const { ledger, credit, create, freeze, now } = await setup();
      const child = await create(splitOf([{ account: addr(60, 0), share: 500_000n }], addr(60, 1)));
      const parent = await create(splitOf([{ account: child, share: 500_000n }], addr(60, 2)));
      await freeze(child, (await now()) + DAY);
      await credit(parent, 100n);
      // Distributing the parent must pay its other recipient and not block on the frozen child...
      await ledger.distribute(parent);
      expect(await ledger.balanceOf(addr(60, 2))).to.equal(50n);
      // ...but the frozen child's part should wait in the child, as it does when the child is paid directly.
      expect(await ledger.balanceOf(addr(60, 0)), "a recipient of the frozen split was paid").to.equal(0n);
      expect(await ledger.balanceOf(addr(60, 1)), "a recipient of the frozen split was paid").to.equal(0n);
      expect(await ledger.balanceOf(child)).to.equal(50n);
    });

    it("issue 11 §4: a split the token blacklists is not distributed (canMove is false), and keeps its balance", async () => {
      const { ledger, usdc, admin, credit, create } = await setup();
      const split = await create(splitOf([{ account: addr(61, 0), share: 500_000n }], addr(61, 1)));
      await credit(split, 10n);
      await usdc.connect(admin).blacklist(split);
      expect(await ledger.canMove(split)).to.equal(false);
      await expect(ledger.distribute(split)).to.be.revertedWithCustomError(ledger, "LedgerAccountBlacklisted").withArgs(split);
      expect(await ledger.balanceOf(split)).to.equal(10n);
    });
  });
});
