import { expect } from "chai";
import { type Address, type Hex, hashTypedData, keccak256, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import type { FeeOnTransferToken, SplitsLedger } from "../../types/ethers-contracts/index.ts";
import type { ISplitsLedger } from "../../types/ethers-contracts/SplitsLedger.ts";
import { ledgerDomain, withdrawalTypes } from "../../sdk/src/typed-data.ts";
import { deployFixture } from "./fixture.ts";

type Split = ISplitsLedger.SplitStruct;
type Recipient = { account: string; share: bigint };

const SCALE = 1_000_000n;
const ONE_USDC = 1_000_000n;
const ethersZero = "0x0000000000000000000000000000000000000000";
const WITHDRAWAL_TYPE = "Withdrawal(address account,address to,uint256 amount,uint256 nonce,uint256 deadline)";

/** A deterministic, distinct, non-zero address per (pool, index). */
function addr(pool: number, index: number): string {
  const hex = (BigInt(pool) << 64n) | BigInt(index + 1);
  return `0x${hex.toString(16).padStart(40, "0")}`;
}

function sortRecipients(recipients: Recipient[]): Recipient[] {
  return [...recipients].sort((a, b) => (BigInt(a.account) < BigInt(b.account) ? -1 : 1));
}

function splitOf(recipients: Recipient[], remainderRecipient: string): Split {
  return { recipients: sortRecipients(recipients), remainderRecipient };
}

/** Each entry of a split (the remainder recipient last, with the share the others leave over). */
function entriesOf(split: Split): Recipient[] {
  const listed = split.recipients.map((r) => ({ account: String(r.account), share: BigInt(r.share) }));
  const used = listed.reduce((sum, r) => sum + r.share, 0n);
  return [...listed, { account: String(split.remainderRecipient), share: SCALE - used }];
}

/** A split of `count` plain accounts from `pool`, equal small shares, remainder an account of the pool. */
function flatSplit(pool: number, count: number): Split {
  const recipients = Array.from({ length: count }, (_, i) => ({ account: addr(pool, i), share: 1000n }));
  return splitOf(recipients, addr(pool, 1000));
}

async function setup() {
  const fx = await deployFixture();
  const { ethers, usdc, ledger } = fx;
  const ledgerAddress = (await ledger.getAddress()) as Address;
  const chainId = Number((await ethers.provider.getNetwork()).chainId);

  /** Mints `amount` to `payer` and approves the ledger for it. */
  async function fund(payer: { address: string }, amount: bigint) {
    await (await usdc.mint(payer.address, amount)).wait();
    const signer = await ethers.getSigner(payer.address);
    await (await usdc.connect(signer).approve(ledgerAddress, amount)).wait();
  }

  async function create(definition: Split): Promise<string> {
    const split = await ledger.createSplit.staticCall(definition);
    await (await ledger.createSplit(definition)).wait();
    return split;
  }

  async function grantCompliance(to: { address: string }) {
    await (await ledger.connect(fx.admin).grantRole(await ledger.COMPLIANCE_ROLE(), to.address)).wait();
  }

  return { ...fx, ledgerAddress, chainId, fund, create, grantCompliance };
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

    it("pay into a split credits floor(lifetime received × share) to each entry, across payments", async () => {
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
      for (const amount of [1000n, 2n, 1n, 997n, 3n]) {
        await expect(ledger.connect(agent).pay(split, amount)).to.emit(ledger, "SplitDistributed").withArgs(split, amount);
        received += amount;
        let credited = 0n;
        for (const entry of entries) {
          const expected = (received * entry.share) / SCALE;
          expect(await ledger.balanceOf(entry.account)).to.equal(expected, `${entry.account} after ${received}`);
          credited += expected;
        }
        const [totalReceived, dust] = await ledger.splitTotals(split);
        expect(totalReceived).to.equal(received);
        expect(dust).to.equal(received - credited);
        expect(dust < BigInt(entries.length)).to.equal(true);
      }
      // Concrete values after 2003 units: 667, 500, 834 (+2 dust).
      expect(await ledger.balanceOf(addr(12, 0))).to.equal(667n);
      expect(await ledger.balanceOf(addr(12, 1))).to.equal(500n);
      expect(await ledger.balanceOf(addr(12, 2))).to.equal(834n);
      expect((await ledger.splitTotals(split))[1]).to.equal(2n);
      // The split itself holds no account balance: the dust is tracked, not credited.
      expect(await ledger.balanceOf(split)).to.equal(0n);
    });

    it("payMany pulls the total once and credits accounts and splits", async () => {
      const { ledger, usdc, agent, creator, stranger, fund, create, ledgerAddress } = await setup();
      const definition = splitOf([{ account: addr(13, 0), share: 100_000n }], addr(13, 1));
      const split = await create(definition);
      await fund(agent, 1_000n);
      const tx = ledger.connect(agent).payMany([creator.address, split, stranger.address, creator.address], [100n, 500n, 7n, 3n]);
      await expect(tx).to.emit(usdc, "Transfer").withArgs(agent.address, ledgerAddress, 610n);
      await expect(tx).to.emit(ledger, "Paid").withArgs(agent.address, split, 500n);
      await expect(tx).to.emit(ledger, "SplitDistributed").withArgs(split, 500n);
      const receipt = await (await tx).wait();
      const transfers = receipt!.logs.filter((log) => log.address === (usdc.target as string));
      expect(transfers.length).to.equal(1);
      expect(await ledger.balanceOf(creator.address)).to.equal(103n);
      expect(await ledger.balanceOf(stranger.address)).to.equal(7n);
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

    it("a nested split pays through to its own recipients", async () => {
      const { ledger, agent, fund, create } = await setup();
      const inner = await create(splitOf([{ account: addr(14, 0), share: 500_000n }], addr(14, 1)));
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

      await fund(agent, 1_001n);
      const tx = ledger.connect(agent).pay(outer, 1_000n);
      await expect(tx).to.emit(ledger, "SplitDistributed").withArgs(outer, 1_000n);
      await expect(tx).to.emit(ledger, "SplitDistributed").withArgs(inner, 600n);
      expect(await ledger.balanceOf(addr(14, 0))).to.equal(300n);
      expect(await ledger.balanceOf(addr(14, 1))).to.equal(300n);
      expect(await ledger.balanceOf(addr(14, 2))).to.equal(300n);
      expect(await ledger.balanceOf(addr(14, 3))).to.equal(100n);
      expect(await ledger.balanceOf(inner)).to.equal(0n);
      expect((await ledger.splitTotals(inner))[0]).to.equal(600n);

      // One more unit: outer received 1001 → inner floor(600.6)=600 (no change), w floor(100.1)=100, b floor(300.3)=300.
      await ledger.connect(agent).pay(outer, 1n);
      const [outerReceived, outerDust] = await ledger.splitTotals(outer);
      expect(outerReceived).to.equal(1_001n);
      expect(outerDust).to.equal(1n);
      expect((await ledger.splitTotals(inner))[0]).to.equal(600n);
    });

    it("SECURITY 17: 200 payments of 7 units never starve a 1% recipient; dust is accounted for", async () => {
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
  });

  describe("distribute", () => {
    it("pays out a balance credited to a split's address before the split existed", async () => {
      const { ledger, agent, fund, create } = await setup();
      const definition = splitOf([{ account: addr(16, 0), share: 300_000n }], addr(16, 1));
      const predicted = await ledger.predictSplitAddress(definition);
      await fund(agent, 1_000n);
      await ledger.connect(agent).pay(predicted, 1_000n);
      expect(await ledger.balanceOf(predicted)).to.equal(1_000n);
      expect(await ledger.balanceOf(addr(16, 0))).to.equal(0n);

      expect(await create(definition)).to.equal(predicted);
      await expect(ledger.distribute(predicted)).to.emit(ledger, "SplitDistributed").withArgs(predicted, 1_000n);
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
      expect(await ledger.balanceOf(child)).to.equal(400n);
      await create(childDefinition);
      await ledger.distribute(child);
      expect(await ledger.balanceOf(addr(17, 0))).to.equal(200n);
      expect(await ledger.balanceOf(addr(17, 1))).to.equal(200n);
      expect(await ledger.balanceOf(child)).to.equal(0n);
    });

    it("a frozen split cannot be distributed", async () => {
      const { ledger, agent, fund, create, grantCompliance, others } = await setup();
      const officer = others[0]!;
      await grantCompliance(officer);
      const definition = splitOf([{ account: addr(18, 0), share: 300_000n }], addr(18, 1));
      const predicted = await ledger.predictSplitAddress(definition);
      await fund(agent, 10n);
      await ledger.connect(agent).pay(predicted, 10n);
      await create(definition);
      await ledger.connect(officer).setFrozen(predicted, true);
      await expect(ledger.distribute(predicted))
        .to.be.revertedWithCustomError(ledger, "LedgerAccountFrozen")
        .withArgs(predicted);
      expect(await ledger.balanceOf(predicted)).to.equal(10n);
    });
  });

  describe("compliance freeze", () => {
    it("SECURITY 20: setFrozen reverts for non-holders of COMPLIANCE_ROLE (including the admin)", async () => {
      const { ledger, stranger, admin, creator } = await setup();
      const role = await ledger.COMPLIANCE_ROLE();
      expect(role).to.equal(keccak256(toHex("COMPLIANCE_ROLE")));
      await expect(ledger.connect(stranger).setFrozen(creator.address, true))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(stranger.address, role);
      await expect(ledger.connect(admin).setFrozen(creator.address, true))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(admin.address, role);
      // Only the admin can grant the role.
      await expect(ledger.connect(stranger).grantRole(role, stranger.address))
        .to.be.revertedWithCustomError(ledger, "AccessControlUnauthorizedAccount")
        .withArgs(stranger.address, await ledger.DEFAULT_ADMIN_ROLE());
      expect(await ledger.isFrozen(creator.address)).to.equal(false);
    });

    it("a frozen account keeps accruing but cannot withdraw until unfrozen", async () => {
      const { ledger, usdc, agent, creator, fund, grantCompliance, others } = await setup();
      const officer = others[0]!;
      await grantCompliance(officer);
      await expect(ledger.connect(officer).setFrozen(creator.address, true))
        .to.emit(ledger, "FrozenSet")
        .withArgs(creator.address, true);
      expect(await ledger.isFrozen(creator.address)).to.equal(true);

      await fund(agent, 100n);
      await ledger.connect(agent).pay(creator.address, 100n);
      expect(await ledger.balanceOf(creator.address)).to.equal(100n);
      await expect(ledger.connect(creator).withdraw(creator.address, 1n))
        .to.be.revertedWithCustomError(ledger, "LedgerAccountFrozen")
        .withArgs(creator.address);

      await expect(ledger.connect(officer).setFrozen(creator.address, false))
        .to.emit(ledger, "FrozenSet")
        .withArgs(creator.address, false);
      await ledger.connect(creator).withdraw(creator.address, 100n);
      expect(await usdc.balanceOf(creator.address)).to.equal(100n);
    });

    it("a frozen account cannot withdraw by signature either", async () => {
      const fx = await setup();
      const { ledger, agent, fund, grantCompliance, others, chainId, ledgerAddress, connection } = fx;
      const officer = others[0]!;
      await grantCompliance(officer);
      const holder = privateKeyToAccount(generatePrivateKey());
      await fund(agent, 10n);
      await ledger.connect(agent).pay(holder.address, 10n);
      await ledger.connect(officer).setFrozen(holder.address, true);
      const deadline = BigInt(await connection.networkHelpers.time.latest()) + 600n;
      const digest = hashTypedData({
        domain: ledgerDomain(chainId, ledgerAddress),
        types: withdrawalTypes,
        primaryType: "Withdrawal",
        message: { account: holder.address, to: holder.address, amount: 10n, nonce: 0n, deadline },
      });
      await expect(ledger.withdrawWithSig(holder.address, holder.address, 10n, deadline, await holder.sign({ hash: digest })))
        .to.be.revertedWithCustomError(ledger, "LedgerAccountFrozen")
        .withArgs(holder.address);
      expect(await ledger.balanceOf(holder.address)).to.equal(10n);
    });

    it("SECURITY 14: a frozen recipient, or a contract that can never withdraw, blocks no other recipient", async () => {
      const { ledger, usdc, registry, agent, creator, stranger, providerOwner, fund, create, grantCompliance, others } =
        await setup();
      const officer = others[0]!;
      await grantCompliance(officer);
      const blackhole = await registry.getAddress(); // a contract with no way to call withdraw
      const definition = splitOf(
        [
          { account: creator.address, share: 250_000n },
          { account: stranger.address, share: 250_000n },
          { account: blackhole, share: 250_000n },
        ],
        providerOwner.address,
      );
      const split = await create(definition);
      await ledger.connect(officer).setFrozen(creator.address, true);

      await fund(agent, 1_004n);
      await ledger.connect(agent).pay(split, 1_000n);
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
      expect((await ledger.splitTotals(split))[0]).to.equal(1_004n);
      expect(await ledger.balanceOf(creator.address)).to.equal(251n);
      expect(await ledger.balanceOf(stranger.address)).to.equal(1n);
    });
  });

  describe("SECURITY 15: token", () => {
    it("pay and payMany revert with TokenDepositMismatch when the token delivers less than sent", async () => {
      const { ethers, admin, agent, creator } = await setup();
      const fot = (await ethers.deployContract("FeeOnTransferToken")) as unknown as FeeOnTransferToken;
      const fotLedger = (await ethers.deployContract("SplitsLedger", [
        await fot.getAddress(),
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
          "approve",
          "createSplit",
          "depositWithAuthorization",
          "depositWithPermit",
          "distribute",
          "grantRole",
          "pay",
          "payMany",
          "renounceRole",
          "revokeRole",
          "setFrozen",
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
});
