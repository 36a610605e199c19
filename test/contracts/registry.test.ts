import { expect } from "chai";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import type { FunctionFragment } from "ethers";
import { keccak256, toHex } from "viem";
import type { ProviderRegistry } from "../../types/ethers-contracts/index.ts";
import type { IProviderRegistry } from "../../types/ethers-contracts/ProviderRegistry.ts";
import { deployFixture } from "./fixture.ts";
import { impersonate } from "./helpers/ledger.ts";
import { signPermit } from "./helpers/usdc.ts";

type ProviderConfig = IProviderRegistry.ProviderConfigStruct;
type ModelConfig = IProviderRegistry.ModelConfigStruct;

const ONE_USDC = 1_000_000n;
const MIN_STAKE = 100n * ONE_USDC;
const UNSTAKE_DELAY = 7n * 24n * 3600n;
const DAY = 24n * 3600n;
const ZERO = "0x0000000000000000000000000000000000000000";
const UINT96_MAX = 2n ** 96n - 1n;

const ProviderType = { SelfHosted: 0, Cloud: 1, Decentralized: 2 } as const;

const LLAMA: ModelConfig = { name: "llama-3.1-8b", inputPricePer1K: 100, outputPricePer1K: 300, maxContextTokens: 131_072 };
const QWEN: ModelConfig = { name: "qwen-2.5-72b", inputPricePer1K: 900, outputPricePer1K: 2_700, maxContextTokens: 32_768 };

function configTuple(c: ProviderConfig) {
  return [c.endpoint, BigInt(c.providerType), BigInt(c.rateLimitPerMinute), BigInt(c.minChargePerCall), BigInt(c.features), c.receiptSigner, c.payout];
}

/** Whether the registry's ABI has a function named `name`. */
function hasFunction(registry: ProviderRegistry, name: string): boolean {
  return registry.interface.fragments.some((f) => f.type === "function" && (f as FunctionFragment).name === name);
}

function modelTuple(m: ModelConfig) {
  return [m.name, BigInt(m.inputPricePer1K), BigInt(m.outputPricePer1K), BigInt(m.maxContextTokens)];
}

async function setup() {
  const fx = await deployFixture();
  const { usdc, ledger, registry, escrow, admin, others, connection } = fx;
  const registryAddress = await registry.getAddress();
  const ledgerAddress = await ledger.getAddress();
  const escrowAddress = await escrow.getAddress();

  function config(signer: string, payout: string, overrides: Partial<ProviderConfig> = {}): ProviderConfig {
    return {
      endpoint: "https://inference.example.com/v1",
      providerType: ProviderType.Cloud,
      rateLimitPerMinute: 600,
      minChargePerCall: 25,
      features: 0b1011n,
      receiptSigner: signer,
      payout,
      ...overrides,
    };
  }

  async function fund(who: HardhatEthersSigner, amount: bigint) {
    await (await usdc.mint(who.address, amount)).wait();
    await (await usdc.connect(who).approve(registryAddress, amount)).wait();
  }

  /** Registers a provider owned by `owner` with receipt signer `signer`; returns its id. */
  async function register(
    owner: HardhatEthersSigner,
    signer: string,
    stake: bigint = MIN_STAKE,
    models: ModelConfig[] = [LLAMA],
  ): Promise<bigint> {
    await fund(owner, stake);
    const cfg = config(signer, owner.address);
    const id = await registry.connect(owner).register.staticCall(cfg, models, stake);
    await (await registry.connect(owner).register(cfg, models, stake)).wait();
    return id;
  }

  /** Σ(stake + pendingUnstake) over every provider. */
  async function totalStaked(): Promise<bigint> {
    let total = 0n;
    const count = await registry.providerCount();
    for (let id = 1n; id <= count; ++id) {
      const p = await registry.getProvider(id);
      total += p.stake + p.pendingUnstake;
    }
    return total;
  }

  /** Stakes are the registry's ledger balance: it equals Σ(stake + pending) and the registry holds no USDC itself. */
  async function expectConserved() {
    expect(await ledger.balanceOf(registryAddress)).to.equal(await totalStaked());
    expect(await usdc.balanceOf(registryAddress)).to.equal(0n);
  }

  async function grant(role: string, to: HardhatEthersSigner) {
    await (await registry.connect(admin).grantRole(role, to.address)).wait();
  }

  /** The bound escrow, as a signer (hardhat_impersonateAccount): the only caller of slash and recordSettlement. */
  const asEscrow = () => impersonate(fx, escrowAddress);

  const secondOwner = others[2]!;
  const signer2 = others[3]!;
  const signer3 = others[4]!;
  const time = connection.networkHelpers.time;
  return {
    ...fx,
    registryAddress,
    ledgerAddress,
    escrowAddress,
    config,
    fund,
    register,
    totalStaked,
    expectConserved,
    grant,
    asEscrow,
    secondOwner,
    signer2,
    signer3,
    time,
  };
}

/** Role names the old registry used for slashing and settlement, and any other the admin might invent. */
const ROLE_GUESSES = ["SLASHER_ROLE", "SETTLEMENT_ROLE", "ESCROW_ROLE", "COMPLIANCE_ROLE"].map((name) => keccak256(toHex(name)));

describe("ProviderRegistry", () => {
  describe("register", () => {
    it("stores every field, keeps the stake as its ledger balance and emits registration, stake and model events", async () => {
      const { registry, usdc, ledger, ethers, providerOwner, receiptSigner, treasury, registryAddress, ledgerAddress, escrowAddress, config, fund } =
        await setup();
      expect(await registry.minStake()).to.equal(MIN_STAKE);
      expect(await registry.unstakeDelay()).to.equal(UNSTAKE_DELAY);
      expect(await registry.token()).to.equal(await usdc.getAddress());
      expect(await registry.ledger()).to.equal(ledgerAddress);
      expect(await registry.escrow()).to.equal(escrowAddress);
      const stake = MIN_STAKE + 5n;
      await fund(providerOwner, stake);
      const cfg = config(receiptSigner.address, treasury.address, {
        providerType: ProviderType.Decentralized,
        rateLimitPerMinute: 1234,
        minChargePerCall: 77,
        features: 0xdeadbeefn,
      });
      const tx = registry.connect(providerOwner).register(cfg, [LLAMA, QWEN], stake);
      await expect(tx).to.emit(registry, "ProviderRegistered").withArgs(1n, providerOwner.address, configTuple(cfg));
      await expect(tx).to.emit(registry, "StakeAdded").withArgs(1n, providerOwner.address, stake, stake);
      await expect(tx).to.emit(registry, "ModelAdded").withArgs(1n, 0n, modelTuple(LLAMA));
      await expect(tx).to.emit(registry, "ModelAdded").withArgs(1n, 1n, modelTuple(QWEN));
      await expect(tx).to.emit(ledger, "Paid").withArgs(registryAddress, registryAddress, stake);
      await expect(tx).to.changeTokenBalances(
        ethers,
        usdc,
        [providerOwner.address, registryAddress, ledgerAddress],
        [-stake, 0n, stake],
      );

      expect(await registry.providerCount()).to.equal(1n);
      const p = await registry.getProvider(1n);
      expect(p.owner).to.equal(providerOwner.address);
      expect(p.active).to.equal(true);
      expect(p.slashed).to.equal(false);
      expect(p.providerType).to.equal(BigInt(ProviderType.Decentralized));
      expect(p.rateLimitPerMinute).to.equal(1234n);
      expect(p.minChargePerCall).to.equal(77n);
      expect(p.receiptSigner).to.equal(receiptSigner.address);
      expect(p.features).to.equal(0xdeadbeefn);
      expect(p.modelCount).to.equal(2n);
      expect(p.payout).to.equal(treasury.address);
      expect(p.stake).to.equal(stake);
      expect(p.pendingUnstake).to.equal(0n);
      expect(p.unstakeAvailableAt).to.equal(0n);
      expect(p.endpoint).to.equal(cfg.endpoint);

      const m1 = await registry.getModel(1n, 1n);
      expect(m1.name).to.equal(QWEN.name);
      expect(m1.inputPricePer1K).to.equal(900n);
      expect(m1.outputPricePer1K).to.equal(2_700n);
      expect(m1.maxContextTokens).to.equal(32_768n);
      expect(m1.active).to.equal(true);
      expect((await registry.getModel(1n, 0n)).name).to.equal(LLAMA.name);

      const parties = await registry.settlementParties(1n);
      expect([parties.owner, parties.receiptSigner, parties.payout]).to.deep.equal([
        providerOwner.address,
        receiptSigner.address,
        treasury.address,
      ]);
      const q = await registry.quote(1n, 0n);
      expect([q.inputPricePer1K, q.outputPricePer1K, q.minChargePerCall, q.receiptSigner]).to.deep.equal([
        100n,
        300n,
        77n,
        receiptSigner.address,
      ]);
      const metrics = await registry.getMetrics(1n);
      expect([metrics.requests, metrics.inputTokens, metrics.outputTokens, metrics.latencyMs, metrics.earnings]).to.deep.equal([
        0n,
        0n,
        0n,
        0n,
        0n,
      ]);
      expect(await ledger.balanceOf(registryAddress)).to.equal(stake);
      expect(await usdc.balanceOf(registryAddress)).to.equal(0n);
    });

    it("ids run from 1; unknown providers and models revert", async () => {
      const { registry, providerOwner, receiptSigner, register } = await setup();
      await expect(registry.getProvider(1n)).to.be.revertedWithCustomError(registry, "RegistryUnknownProvider").withArgs(1n);
      expect(await register(providerOwner, receiptSigner.address)).to.equal(1n);
      await expect(registry.getProvider(2n)).to.be.revertedWithCustomError(registry, "RegistryUnknownProvider").withArgs(2n);
      await expect(registry.getProvider(0n)).to.be.revertedWithCustomError(registry, "RegistryUnknownProvider").withArgs(0n);
      await expect(registry.getMetrics(2n)).to.be.revertedWithCustomError(registry, "RegistryUnknownProvider").withArgs(2n);
      await expect(registry.getModel(1n, 1n)).to.be.revertedWithCustomError(registry, "RegistryUnknownModel").withArgs(1n, 1n);
      await expect(registry.quote(1n, 5n)).to.be.revertedWithCustomError(registry, "RegistryUnknownModel").withArgs(1n, 5n);
      await expect(registry.quote(3n, 0n)).to.be.revertedWithCustomError(registry, "RegistryUnknownProvider").withArgs(3n);
    });

    it("registerWithPermit approves the stake with a signed USDC permit in the same transaction", async () => {
      const { registry, usdc, ledger, providerOwner, receiptSigner, registryAddress, ledgerAddress, config, ethers, time } = await setup();
      await usdc.mint(providerOwner.address, MIN_STAKE);
      const deadline = BigInt(await time.latest()) + 3600n;
      const { v, r, s } = await signPermit(usdc, providerOwner, registryAddress, MIN_STAKE, deadline);
      expect(await usdc.allowance(providerOwner.address, registryAddress)).to.equal(0n);
      const cfg = config(receiptSigner.address, providerOwner.address);
      const tx = registry.connect(providerOwner).registerWithPermit(cfg, [LLAMA], MIN_STAKE, deadline, v, r, s);
      await expect(tx).to.emit(registry, "ProviderRegistered").withArgs(1n, providerOwner.address, configTuple(cfg));
      await expect(tx).to.changeTokenBalances(ethers, usdc, [providerOwner.address, ledgerAddress], [-MIN_STAKE, MIN_STAKE]);
      expect(await ledger.balanceOf(registryAddress)).to.equal(MIN_STAKE);
      expect((await registry.getProvider(1n)).stake).to.equal(MIN_STAKE);
      expect(await usdc.nonces(providerOwner.address)).to.equal(1n);
      expect(await usdc.allowance(providerOwner.address, registryAddress)).to.equal(0n);
    });

    it("registerWithPermit survives a front-run permit and fails cleanly on a bad one", async () => {
      const { registry, usdc, ledger, providerOwner, receiptSigner, stranger, registryAddress, config, time } = await setup();
      await usdc.mint(providerOwner.address, MIN_STAKE);
      const deadline = BigInt(await time.latest()) + 3600n;
      // A permit signed by someone else: ignored, and the pull then fails for lack of allowance.
      const forged = await signPermit(usdc, stranger, registryAddress, MIN_STAKE, deadline, providerOwner.address);
      const cfg = config(receiptSigner.address, providerOwner.address);
      await expect(
        registry.connect(providerOwner).registerWithPermit(cfg, [LLAMA], MIN_STAKE, deadline, forged.v, forged.r, forged.s),
      ).to.be.revertedWithCustomError(usdc, "ERC20InsufficientAllowance");
      expect(await registry.providerCount()).to.equal(0n);

      // A genuine permit that a front-runner already submitted still lets registration through.
      const good = await signPermit(usdc, providerOwner, registryAddress, MIN_STAKE, deadline);
      await usdc
        .connect(stranger)
        ["permit(address,address,uint256,uint256,uint8,bytes32,bytes32)"](
          providerOwner.address,
          registryAddress,
          MIN_STAKE,
          deadline,
          good.v,
          good.r,
          good.s,
        );
      await registry.connect(providerOwner).registerWithPermit(cfg, [LLAMA], MIN_STAKE, deadline, good.v, good.r, good.s);
      expect((await registry.getProvider(1n)).stake).to.equal(MIN_STAKE);
      expect(await ledger.balanceOf(registryAddress)).to.equal(MIN_STAKE);
    });

    it("rejects a stake below the minimum or above uint96", async () => {
      const { registry, providerOwner, receiptSigner, config, fund } = await setup();
      await fund(providerOwner, MIN_STAKE);
      const cfg = config(receiptSigner.address, providerOwner.address);
      await expect(registry.connect(providerOwner).register(cfg, [LLAMA], MIN_STAKE - 1n))
        .to.be.revertedWithCustomError(registry, "RegistryStakeTooLow")
        .withArgs(MIN_STAKE - 1n, MIN_STAKE);
      await expect(registry.connect(providerOwner).register(cfg, [LLAMA], 0n))
        .to.be.revertedWithCustomError(registry, "RegistryStakeTooLow")
        .withArgs(0n, MIN_STAKE);
      await expect(registry.connect(providerOwner).register(cfg, [LLAMA], UINT96_MAX + 1n))
        .to.be.revertedWithCustomError(registry, "RegistryInvalidAmount")
        .withArgs(UINT96_MAX + 1n);
      expect(await registry.providerCount()).to.equal(0n);
    });

    it("rejects bad endpoint and model-name lengths, zero rate limit or context, zero payout or signer", async () => {
      const { registry, providerOwner, receiptSigner, config, fund } = await setup();
      await fund(providerOwner, MIN_STAKE);
      const owner = registry.connect(providerOwner);
      const base = config(receiptSigner.address, providerOwner.address);
      const cases: Array<[ProviderConfig, ModelConfig[], string, unknown[]]> = [
        [{ ...base, endpoint: "" }, [LLAMA], "RegistryInvalidString", [0n, 512n]],
        [{ ...base, endpoint: "h".repeat(513) }, [LLAMA], "RegistryInvalidString", [513n, 512n]],
        [base, [{ ...LLAMA, name: "" }], "RegistryInvalidString", [0n, 128n]],
        [base, [LLAMA, { ...QWEN, name: "m".repeat(129) }], "RegistryInvalidString", [129n, 128n]],
        [{ ...base, rateLimitPerMinute: 0 }, [LLAMA], "RegistryInvalidLimit", []],
        [base, [{ ...LLAMA, maxContextTokens: 0 }], "RegistryInvalidLimit", []],
        [{ ...base, payout: ZERO }, [LLAMA], "RegistryZeroAddress", []],
        [{ ...base, receiptSigner: ZERO }, [LLAMA], "RegistryZeroAddress", []],
      ];
      for (const [cfg, models, error, args] of cases) {
        await expect(owner.register(cfg, models, MIN_STAKE))
          .to.be.revertedWithCustomError(registry, error)
          .withArgs(...args);
      }
      expect(await registry.providerCount()).to.equal(0n);
      // The maximum lengths are accepted.
      await owner.register({ ...base, endpoint: "h".repeat(512) }, [{ ...LLAMA, name: "m".repeat(128) }], MIN_STAKE);
      expect((await registry.getProvider(1n)).endpoint.length).to.equal(512);
      expect((await registry.getModel(1n, 0n)).name.length).to.equal(128);
    });

    it("issue 11 §2: a receipt signer may be shared by several providers; rotating it changes only that provider's quote", async () => {
      const { registry, providerOwner, receiptSigner, secondOwner, signer2, config, register, fund } = await setup();
      expect(hasFunction(registry, "providerOfSigner")).to.equal(false);
      await register(providerOwner, receiptSigner.address);
      // A second provider delegates to the same signer (a shared relayer key).
      await fund(secondOwner, MIN_STAKE);
      await expect(registry.connect(secondOwner).register(config(receiptSigner.address, secondOwner.address), [LLAMA], MIN_STAKE))
        .to.emit(registry, "ProviderRegistered")
        .withArgs(2n, secondOwner.address, configTuple(config(receiptSigner.address, secondOwner.address)));
      expect((await registry.quote(1n, 0n)).receiptSigner).to.equal(receiptSigner.address);
      expect((await registry.quote(2n, 0n)).receiptSigner).to.equal(receiptSigner.address);

      // Provider 1 rotates to signer2: provider 2 keeps the shared key, and provider 1 may rotate back.
      await registry.connect(providerOwner).updateProvider(1n, config(signer2.address, providerOwner.address));
      expect((await registry.quote(1n, 0n)).receiptSigner).to.equal(signer2.address);
      expect((await registry.settlementParties(1n)).receiptSigner).to.equal(signer2.address);
      expect((await registry.quote(2n, 0n)).receiptSigner).to.equal(receiptSigner.address);
      await registry.connect(secondOwner).updateProvider(2n, config(signer2.address, secondOwner.address));
      expect((await registry.quote(2n, 0n)).receiptSigner).to.equal(signer2.address);
      await registry.connect(providerOwner).updateProvider(1n, config(receiptSigner.address, providerOwner.address));
      expect((await registry.getProvider(1n)).receiptSigner).to.equal(receiptSigner.address);
      expect((await registry.getProvider(2n)).receiptSigner).to.equal(signer2.address);
    });
  });

  describe("terms and models", () => {
    it("updateProvider replaces the terms and emits ProviderUpdated; it validates like register", async () => {
      const { registry, providerOwner, receiptSigner, treasury, config, register } = await setup();
      await register(providerOwner, receiptSigner.address);
      const next = config(receiptSigner.address, treasury.address, {
        endpoint: "https://new.example.org",
        providerType: ProviderType.SelfHosted,
        rateLimitPerMinute: 60,
        minChargePerCall: 1,
        features: 0n,
      });
      await expect(registry.connect(providerOwner).updateProvider(1n, next))
        .to.emit(registry, "ProviderUpdated")
        .withArgs(1n, configTuple(next));
      const p = await registry.getProvider(1n);
      expect([p.endpoint, p.providerType, p.rateLimitPerMinute, p.minChargePerCall, p.features, p.payout]).to.deep.equal([
        "https://new.example.org",
        0n,
        60n,
        1n,
        0n,
        treasury.address,
      ]);
      expect(p.stake).to.equal(MIN_STAKE);
      expect((await registry.quote(1n, 0n)).minChargePerCall).to.equal(1n);
      await expect(registry.connect(providerOwner).updateProvider(1n, { ...next, payout: ZERO })).to.be.revertedWithCustomError(
        registry,
        "RegistryZeroAddress",
      );
      await expect(registry.connect(providerOwner).updateProvider(1n, { ...next, endpoint: "" }))
        .to.be.revertedWithCustomError(registry, "RegistryInvalidString")
        .withArgs(0n, 512n);
      await expect(registry.connect(providerOwner).updateProvider(2n, next))
        .to.be.revertedWithCustomError(registry, "RegistryUnknownProvider")
        .withArgs(2n);
    });

    it("addModel, repriceModel and retireModel; retired models cannot be quoted or repriced", async () => {
      const { registry, providerOwner, receiptSigner, register } = await setup();
      await register(providerOwner, receiptSigner.address);
      const owner = registry.connect(providerOwner);
      expect(await owner.addModel.staticCall(1n, QWEN)).to.equal(1n);
      await expect(owner.addModel(1n, QWEN)).to.emit(registry, "ModelAdded").withArgs(1n, 1n, modelTuple(QWEN));
      expect((await registry.getProvider(1n)).modelCount).to.equal(2n);
      expect((await registry.quote(1n, 1n)).outputPricePer1K).to.equal(2_700n);
      await expect(owner.addModel(1n, { ...QWEN, maxContextTokens: 0 })).to.be.revertedWithCustomError(
        registry,
        "RegistryInvalidLimit",
      );

      await expect(owner.repriceModel(1n, 1n, 11, 22)).to.emit(registry, "ModelRepriced").withArgs(1n, 1n, 11n, 22n);
      const q = await registry.quote(1n, 1n);
      expect([q.inputPricePer1K, q.outputPricePer1K]).to.deep.equal([11n, 22n]);
      const m = await registry.getModel(1n, 1n);
      expect([m.inputPricePer1K, m.outputPricePer1K, m.maxContextTokens, m.name]).to.deep.equal([11n, 22n, 32_768n, QWEN.name]);
      await expect(owner.repriceModel(1n, 2n, 1, 1)).to.be.revertedWithCustomError(registry, "RegistryUnknownModel").withArgs(1n, 2n);

      await expect(owner.retireModel(1n, 1n)).to.emit(registry, "ModelRetired").withArgs(1n, 1n);
      expect((await registry.getModel(1n, 1n)).active).to.equal(false);
      await expect(registry.quote(1n, 1n)).to.be.revertedWithCustomError(registry, "RegistryModelRetired").withArgs(1n, 1n);
      await expect(owner.retireModel(1n, 1n)).to.be.revertedWithCustomError(registry, "RegistryModelRetired").withArgs(1n, 1n);
      await expect(owner.repriceModel(1n, 1n, 5, 5)).to.be.revertedWithCustomError(registry, "RegistryModelRetired").withArgs(1n, 1n);
      // The other model is untouched.
      expect((await registry.quote(1n, 0n)).inputPricePer1K).to.equal(100n);
    });

    it("deactivate and reactivate; quote reverts for an inactive provider", async () => {
      const { registry, admin, providerOwner, receiptSigner, register } = await setup();
      await register(providerOwner, receiptSigner.address);
      const owner = registry.connect(providerOwner);
      await expect(owner.deactivate(1n)).to.emit(registry, "ProviderActiveSet").withArgs(1n, false);
      expect((await registry.getProvider(1n)).active).to.equal(false);
      await expect(registry.quote(1n, 0n)).to.be.revertedWithCustomError(registry, "RegistryProviderInactive").withArgs(1n);
      await expect(owner.deactivate(1n)).to.be.revertedWithCustomError(registry, "RegistryProviderInactive").withArgs(1n);

      await expect(owner.reactivate(1n)).to.emit(registry, "ProviderActiveSet").withArgs(1n, true);
      expect((await registry.getProvider(1n)).active).to.equal(true);
      expect((await registry.quote(1n, 0n)).inputPricePer1K).to.equal(100n);

      // With the minimum raised above its stake it cannot come back.
      await owner.deactivate(1n);
      await registry.connect(admin).setMinStake(MIN_STAKE + 1n);
      await expect(owner.reactivate(1n))
        .to.be.revertedWithCustomError(registry, "RegistryStakeTooLow")
        .withArgs(MIN_STAKE, MIN_STAKE + 1n);
      expect((await registry.getProvider(1n)).active).to.equal(false);
    });
  });

  describe("staking", () => {
    it("addStake: anyone may add, the stake grows and the USDC goes into the registry's ledger balance", async () => {
      const { registry, usdc, ledger, ethers, providerOwner, receiptSigner, stranger, registryAddress, ledgerAddress, register, fund, expectConserved } =
        await setup();
      await register(providerOwner, receiptSigner.address);
      await fund(stranger, 50n);
      const tx = registry.connect(stranger).addStake(1n, 50n);
      await expect(tx).to.emit(registry, "StakeAdded").withArgs(1n, stranger.address, 50n, MIN_STAKE + 50n);
      await expect(tx).to.changeTokenBalances(ethers, usdc, [stranger.address, registryAddress, ledgerAddress], [-50n, 0n, 50n]);
      expect(await ledger.balanceOf(registryAddress)).to.equal(MIN_STAKE + 50n);
      await expectConserved();
      expect((await registry.getProvider(1n)).stake).to.equal(MIN_STAKE + 50n);
      await expect(registry.connect(stranger).addStake(1n, 0n)).to.be.revertedWithCustomError(registry, "RegistryInvalidAmount").withArgs(0n);
      await expect(registry.connect(stranger).addStake(9n, 1n)).to.be.revertedWithCustomError(registry, "RegistryUnknownProvider").withArgs(9n);
      await expect(registry.connect(stranger).addStake(1n, UINT96_MAX))
        .to.be.revertedWithCustomError(registry, "RegistryInvalidAmount")
        .withArgs(UINT96_MAX);
    });

    it("requestUnstake moves stake to pending and deactivates a provider left below the minimum", async () => {
      const { registry, ethers, providerOwner, receiptSigner, register, expectConserved } = await setup();
      await register(providerOwner, receiptSigner.address, MIN_STAKE + 30n);
      const owner = registry.connect(providerOwner);

      const first = await owner.requestUnstake(1n, 30n);
      const firstAt = BigInt((await ethers.provider.getBlock((await first.wait())!.blockNumber))!.timestamp) + UNSTAKE_DELAY;
      await expect(first).to.emit(registry, "UnstakeRequested").withArgs(1n, 30n, firstAt);
      await expect(first).not.to.emit(registry, "ProviderActiveSet");
      let p = await registry.getProvider(1n);
      expect([p.stake, p.pendingUnstake, p.unstakeAvailableAt, p.active]).to.deep.equal([MIN_STAKE, 30n, firstAt, true]);
      await expectConserved();

      const second = await owner.requestUnstake(1n, 1n);
      const secondAt = BigInt((await ethers.provider.getBlock((await second.wait())!.blockNumber))!.timestamp) + UNSTAKE_DELAY;
      await expect(second).to.emit(registry, "ProviderActiveSet").withArgs(1n, false);
      p = await registry.getProvider(1n);
      // The whole pending amount waits for the latest request's delay.
      expect([p.stake, p.pendingUnstake, p.unstakeAvailableAt, p.active]).to.deep.equal([MIN_STAKE - 1n, 31n, secondAt, false]);
      await expect(registry.quote(1n, 0n)).to.be.revertedWithCustomError(registry, "RegistryProviderInactive");
      await expect(owner.reactivate(1n))
        .to.be.revertedWithCustomError(registry, "RegistryStakeTooLow")
        .withArgs(MIN_STAKE - 1n, MIN_STAKE);

      await expect(owner.requestUnstake(1n, MIN_STAKE))
        .to.be.revertedWithCustomError(registry, "RegistryInsufficientStake")
        .withArgs(1n, MIN_STAKE - 1n, MIN_STAKE);
      await expect(owner.requestUnstake(1n, 0n)).to.be.revertedWithCustomError(registry, "RegistryInvalidAmount").withArgs(0n);
      await expectConserved();
    });

    it("withdrawUnstaked reverts before availableAt, succeeds exactly at it and pays the owner's wallet from the ledger", async () => {
      const { registry, usdc, ledger, ethers, providerOwner, receiptSigner, registryAddress, ledgerAddress, register, time, expectConserved } =
        await setup();
      await register(providerOwner, receiptSigner.address, MIN_STAKE + 40n);
      const owner = registry.connect(providerOwner);
      await expect(owner.withdrawUnstaked(1n)).to.be.revertedWithCustomError(registry, "RegistryUnstakeNotReady").withArgs(1n, 0n);
      await owner.requestUnstake(1n, 40n);
      const availableAt = (await registry.getProvider(1n)).unstakeAvailableAt;

      await expect(owner.withdrawUnstaked(1n))
        .to.be.revertedWithCustomError(registry, "RegistryUnstakeNotReady")
        .withArgs(1n, availableAt);
      // One second early, really mined at that timestamp (an explicit gas limit skips estimation).
      await time.setNextBlockTimestamp(availableAt - 1n);
      await expect(owner.withdrawUnstaked(1n, { gasLimit: 300_000 }))
        .to.be.revertedWithCustomError(registry, "RegistryUnstakeNotReady")
        .withArgs(1n, availableAt);
      expect(BigInt(await time.latest())).to.equal(availableAt - 1n);

      await time.setNextBlockTimestamp(availableAt);
      const tx = owner.withdrawUnstaked(1n, { gasLimit: 300_000 });
      await expect(tx).to.emit(registry, "UnstakeWithdrawn").withArgs(1n, providerOwner.address, 40n);
      await expect(tx).to.emit(ledger, "Withdrawn").withArgs(registryAddress, providerOwner.address, 40n);
      await expect(tx).to.changeTokenBalances(ethers, usdc, [providerOwner.address, ledgerAddress], [40n, -40n]);
      expect(await ledger.balanceOf(registryAddress)).to.equal(MIN_STAKE);
      expect(await ledger.balanceOf(providerOwner.address)).to.equal(0n);
      expect(BigInt(await time.latest())).to.equal(availableAt);
      const p = await registry.getProvider(1n);
      expect([p.stake, p.pendingUnstake, p.unstakeAvailableAt]).to.deep.equal([MIN_STAKE, 0n, 0n]);
      await expect(owner.withdrawUnstaked(1n)).to.be.revertedWithCustomError(registry, "RegistryUnstakeNotReady").withArgs(1n, 0n);
      await expectConserved();
    });
  });


  describe("issue 11 §2, §3: the bound escrow", () => {
    it("bindEscrow: the deployer only (not the admin), once, never to zero; EscrowBound and escrow()", async () => {
      const { ethers, usdc, ledger, admin, stranger, creator, escrowAddress, registry: suiteRegistry } = await setup();
      // The suite's registry is bound to the suite's escrow; binding again is refused, to anyone.
      expect(await suiteRegistry.escrow()).to.equal(escrowAddress);
      for (const who of [admin, stranger]) {
        await expect(suiteRegistry.connect(who).bindEscrow(who.address)).to.be.revertedWithCustomError(suiteRegistry, "RegistryEscrowLocked");
      }
      // A registry deployed by the stranger, administered by the admin.
      const registry = (await ethers.deployContract(
        "ProviderRegistry",
        [await usdc.getAddress(), await ledger.getAddress(), MIN_STAKE, UNSTAKE_DELAY, 0, admin.address],
        stranger,
      )) as unknown as ProviderRegistry;
      expect(await registry.escrow()).to.equal(ZERO);
      await expect(registry.connect(admin).bindEscrow(creator.address)).to.be.revertedWithCustomError(registry, "RegistryEscrowLocked");
      await expect(registry.connect(stranger).bindEscrow(ZERO)).to.be.revertedWithCustomError(registry, "RegistryZeroAddress");
      // Unbound, nobody slashes or records settlements.
      await expect(registry.connect(stranger).slash(1n)).to.be.revertedWithCustomError(registry, "RegistryNotEscrow").withArgs(stranger.address);
      await expect(registry.connect(stranger).bindEscrow(creator.address)).to.emit(registry, "EscrowBound").withArgs(creator.address);
      expect(await registry.escrow()).to.equal(creator.address);
      await expect(registry.connect(stranger).bindEscrow(stranger.address)).to.be.revertedWithCustomError(registry, "RegistryEscrowLocked");
      expect(await registry.escrow()).to.equal(creator.address);
    });

    it("issue 11 §3, SECURITY 20: only the bound escrow slashes or records settlements; no role the admin can grant does", async () => {
      const fx = await setup();
      const { registry, admin, stranger, providerOwner, receiptSigner, register, escrowAddress } = fx;
      await register(providerOwner, receiptSigner.address);
      // The old SLASHER_ROLE and SETTLEMENT_ROLE are gone.
      expect(hasFunction(registry, "SLASHER_ROLE")).to.equal(false);
      expect(hasFunction(registry, "SETTLEMENT_ROLE")).to.equal(false);
      expect(hasFunction(registry, "slash")).to.equal(true);
      // The admin grants itself (and the stranger) every role it might think of: no power to slash comes with any.
      for (const role of ROLE_GUESSES) {
        await registry.connect(admin).grantRole(role, admin.address);
        await registry.connect(admin).grantRole(role, stranger.address);
        expect(await registry.hasRole(role, admin.address)).to.equal(true);
      }
      const delta = { requests: 1n, inputTokens: 1n, outputTokens: 1n, latencyMs: 1n, earnings: 1n };
      for (const who of [admin, stranger, providerOwner]) {
        await expect(registry.connect(who).slash(1n)).to.be.revertedWithCustomError(registry, "RegistryNotEscrow").withArgs(who.address);
        await expect(registry.connect(who).recordSettlement(1n, delta))
          .to.be.revertedWithCustomError(registry, "RegistryNotEscrow")
          .withArgs(who.address);
      }
      const p = await registry.getProvider(1n);
      expect([p.stake, p.slashed, p.active]).to.deep.equal([MIN_STAKE, false, true]);
      expect((await registry.getMetrics(1n)).requests).to.equal(0n);
      await fx.expectConserved();
      // The escrow itself can.
      const escrow = await fx.asEscrow();
      expect(escrow.address).to.equal(escrowAddress);
      await expect(registry.connect(escrow).recordSettlement(1n, delta)).to.emit(registry, "SettlementRecorded");
    });
  });

  describe("SECURITY 11: slashing", () => {
    it("SECURITY 11: takes stake plus pending unstake (never more) into the escrow's ledger balance and shuts the provider out", async () => {
      const fx = await setup();
      const { registry, usdc, ledger, providerOwner, receiptSigner, secondOwner, signer2, registryAddress, escrowAddress } = fx;
      const escrow = await fx.asEscrow();
      await fx.register(providerOwner, receiptSigner.address, MIN_STAKE + 500n);
      await fx.register(secondOwner, signer2.address, MIN_STAKE + 7n);
      const owner = registry.connect(providerOwner);
      await owner.requestUnstake(1n, 200n);
      const escrowBefore = await ledger.balanceOf(escrowAddress);
      const ledgerUsdc = await usdc.balanceOf(await ledger.getAddress());

      const expected = MIN_STAKE + 500n;
      expect(await registry.connect(escrow).slash.staticCall(1n)).to.equal(expected);
      const tx = registry.connect(escrow).slash(1n);
      await expect(tx).to.emit(registry, "ProviderSlashed").withArgs(1n, expected);
      await expect(tx).to.emit(registry, "ProviderActiveSet").withArgs(1n, false);
      await expect(tx).to.emit(ledger, "Transferred").withArgs(registryAddress, escrowAddress, expected);
      // A credit inside the ledger: no USDC moves.
      await expect(tx).not.to.emit(usdc, "Transfer");
      expect(await ledger.balanceOf(escrowAddress)).to.equal(escrowBefore + expected);
      expect(await usdc.balanceOf(await ledger.getAddress())).to.equal(ledgerUsdc);

      const p = await registry.getProvider(1n);
      expect([p.stake, p.pendingUnstake, p.unstakeAvailableAt, p.slashed, p.active]).to.deep.equal([0n, 0n, 0n, true, false]);
      // The other provider's stake is untouched.
      expect((await registry.getProvider(2n)).stake).to.equal(MIN_STAKE + 7n);
      expect(await ledger.balanceOf(registryAddress)).to.equal(MIN_STAKE + 7n);
      await fx.expectConserved();

      // The pending unstake is gone, even after its delay.
      await fx.time.increase(UNSTAKE_DELAY + 1n);
      await expect(owner.withdrawUnstaked(1n)).to.be.revertedWithCustomError(registry, "RegistryUnstakeNotReady").withArgs(1n, 0n);
      await expect(owner.reactivate(1n)).to.be.revertedWithCustomError(registry, "RegistryProviderSlashed").withArgs(1n);
      await fx.fund(providerOwner, MIN_STAKE);
      await expect(owner.addStake(1n, MIN_STAKE)).to.be.revertedWithCustomError(registry, "RegistryProviderSlashed").withArgs(1n);
      await expect(registry.quote(1n, 0n)).to.be.revertedWithCustomError(registry, "RegistryProviderInactive").withArgs(1n);

      // Slashing again takes nothing and moves nothing.
      const again = registry.connect(escrow).slash(1n);
      await expect(again).to.emit(registry, "ProviderSlashed").withArgs(1n, 0n);
      await expect(again).not.to.emit(ledger, "Transferred");
      await expect(again).not.to.emit(usdc, "Transfer");
      expect(await ledger.balanceOf(registryAddress)).to.equal(MIN_STAKE + 7n);
      expect(await ledger.balanceOf(escrowAddress)).to.equal(escrowBefore + expected);
    });

    it("SECURITY 11: a pending unstake stays slashable until withdrawn, even past its delay", async () => {
      const fx = await setup();
      const { registry, usdc, ledger, providerOwner, receiptSigner, escrowAddress } = fx;
      const escrow = await fx.asEscrow();
      await fx.register(providerOwner, receiptSigner.address, MIN_STAKE);
      await registry.connect(providerOwner).requestUnstake(1n, MIN_STAKE);
      await fx.time.increase(UNSTAKE_DELAY + 10n);
      await registry.connect(escrow).slash(1n);
      expect(await ledger.balanceOf(escrowAddress)).to.equal(MIN_STAKE);
      await expect(registry.connect(providerOwner).withdrawUnstaked(1n)).to.be.revertedWithCustomError(
        registry,
        "RegistryUnstakeNotReady",
      );
      expect(await usdc.balanceOf(providerOwner.address)).to.equal(0n);
      await fx.expectConserved();
    });

    it("issue 11 §2, SECURITY 22: a slash always deactivates and marks slashed, for a 1-unit stake and with nothing left to take", async () => {
      const fx = await setup();
      const { registry, ledger, admin, providerOwner, receiptSigner, secondOwner, signer2, escrowAddress } = fx;
      const escrow = await fx.asEscrow();
      // A tiny stake (the admin lowered the minimum to one unit).
      await registry.connect(admin).setMinStake(1n);
      await fx.register(providerOwner, receiptSigner.address, 1n);
      expect((await registry.getProvider(1n)).active).to.equal(true);
      const tiny = registry.connect(escrow).slash(1n);
      await expect(tiny).to.emit(registry, "ProviderSlashed").withArgs(1n, 1n);
      await expect(tiny).to.emit(registry, "ProviderActiveSet").withArgs(1n, false);
      await expect(tiny).to.emit(ledger, "Transferred").withArgs(fx.registryAddress, escrowAddress, 1n);
      let p = await registry.getProvider(1n);
      expect([p.stake, p.slashed, p.active]).to.deep.equal([0n, true, false]);

      // Nothing left at all: the whole stake unstaked and withdrawn.
      await fx.register(secondOwner, signer2.address, 5n);
      await registry.connect(secondOwner).requestUnstake(2n, 5n);
      await fx.time.increase(UNSTAKE_DELAY);
      await registry.connect(secondOwner).withdrawUnstaked(2n);
      p = await registry.getProvider(2n);
      expect([p.stake, p.pendingUnstake, p.active, p.slashed]).to.deep.equal([0n, 0n, false, false]);
      const empty = registry.connect(escrow).slash(2n);
      await expect(empty).to.emit(registry, "ProviderSlashed").withArgs(2n, 0n);
      await expect(empty).not.to.emit(ledger, "Transferred");
      p = await registry.getProvider(2n);
      expect(p.slashed).to.equal(true);
      // A slashed provider stays out for good.
      await fx.fund(secondOwner, 10n);
      await expect(registry.connect(secondOwner).addStake(2n, 10n)).to.be.revertedWithCustomError(registry, "RegistryProviderSlashed").withArgs(2n);
      await expect(registry.connect(secondOwner).reactivate(2n)).to.be.revertedWithCustomError(registry, "RegistryProviderSlashed").withArgs(2n);
      await expect(registry.connect(escrow).slash(3n)).to.be.revertedWithCustomError(registry, "RegistryUnknownProvider").withArgs(3n);
      await fx.expectConserved();
    });

    it("issue 11 §4: while USDC is paused a provider cannot withdraw its unstake, and slashing still takes it", async () => {
      const fx = await setup();
      const { registry, usdc, ledger, admin, providerOwner, receiptSigner, escrowAddress } = fx;
      const escrow = await fx.asEscrow();
      await fx.register(providerOwner, receiptSigner.address, MIN_STAKE + 300n);
      await registry.connect(providerOwner).requestUnstake(1n, 300n);
      await fx.time.increase(UNSTAKE_DELAY);
      await usdc.connect(admin).pause();

      await expect(registry.connect(providerOwner).withdrawUnstaked(1n)).to.be.revertedWithCustomError(usdc, "TokenPaused");
      let p = await registry.getProvider(1n);
      expect([p.stake, p.pendingUnstake]).to.deep.equal([MIN_STAKE, 300n]);

      // The double-sign proof arrives while the token is still paused: it takes stake and pending unstake.
      await expect(registry.connect(escrow).slash(1n)).to.emit(registry, "ProviderSlashed").withArgs(1n, MIN_STAKE + 300n);
      expect(await ledger.balanceOf(escrowAddress)).to.equal(MIN_STAKE + 300n);
      p = await registry.getProvider(1n);
      expect([p.stake, p.pendingUnstake, p.slashed]).to.deep.equal([0n, 0n, true]);

      await usdc.connect(admin).unpause();
      await expect(registry.connect(providerOwner).withdrawUnstaked(1n))
        .to.be.revertedWithCustomError(registry, "RegistryUnstakeNotReady")
        .withArgs(1n, 0n);
      expect(await usdc.balanceOf(providerOwner.address)).to.equal(0n);
      await fx.expectConserved();
    });

    it("issue 11 §4: a provider owner USDC blacklists cannot withdraw its unstake; it stays slashable and blocks no other provider", async () => {
      const fx = await setup();
      const { registry, usdc, ledger, admin, providerOwner, receiptSigner, secondOwner, signer2, escrowAddress } = fx;
      const escrow = await fx.asEscrow();
      await fx.register(providerOwner, receiptSigner.address, MIN_STAKE + 10n);
      await fx.register(secondOwner, signer2.address, MIN_STAKE + 20n);
      await registry.connect(providerOwner).requestUnstake(1n, 10n);
      await registry.connect(secondOwner).requestUnstake(2n, 20n);
      await fx.time.increase(UNSTAKE_DELAY);
      await usdc.connect(admin).blacklist(providerOwner.address);
      await expect(registry.connect(providerOwner).withdrawUnstaked(1n))
        .to.be.revertedWithCustomError(registry, "RegistryOwnerRestricted")
        .withArgs(1n, providerOwner.address);
      expect((await registry.getProvider(1n)).pendingUnstake).to.equal(10n);
      expect(await usdc.balanceOf(providerOwner.address)).to.equal(0n);
      await registry.connect(secondOwner).withdrawUnstaked(2n);
      expect(await usdc.balanceOf(secondOwner.address)).to.equal(20n);
      await registry.connect(escrow).slash(1n);
      expect(await ledger.balanceOf(escrowAddress)).to.equal(MIN_STAKE + 10n);
      await fx.expectConserved();
    });
  });

  describe("settlement metrics and admin", () => {
    it("recordSettlement only by the bound escrow, accumulating metrics", async () => {
      const fx = await setup();
      const { registry, stranger, admin, providerOwner, receiptSigner } = fx;
      await fx.register(providerOwner, receiptSigner.address);
      const delta = { requests: 3n, inputTokens: 1_000n, outputTokens: 500n, latencyMs: 900n, earnings: 12_345n };
      for (const who of [stranger, admin]) {
        await expect(registry.connect(who).recordSettlement(1n, delta))
          .to.be.revertedWithCustomError(registry, "RegistryNotEscrow")
          .withArgs(who.address);
      }
      const escrow = await fx.asEscrow();
      await expect(registry.connect(escrow).recordSettlement(2n, delta))
        .to.be.revertedWithCustomError(registry, "RegistryUnknownProvider")
        .withArgs(2n);
      await expect(registry.connect(escrow).recordSettlement(1n, delta))
        .to.emit(registry, "SettlementRecorded")
        .withArgs(1n, 3n, 1_000n, 500n, 900n, 12_345n);
      await registry.connect(escrow).recordSettlement(1n, { requests: 1n, inputTokens: 2n, outputTokens: 3n, latencyMs: 4n, earnings: 5n });
      const m = await registry.getMetrics(1n);
      expect([m.requests, m.inputTokens, m.outputTokens, m.latencyMs, m.earnings]).to.deep.equal([
        4n,
        1_002n,
        503n,
        904n,
        12_350n,
      ]);
    });

    it("setMinStake only by the admin; rejects zero and above uint96", async () => {
      const fx = await setup();
      const { registry, admin, stranger, grant } = fx;
      const holder = fx.others[5]!;
      // Holding some other role does not help.
      await grant(ROLE_GUESSES[0]!, holder);
      const adminRole = await registry.DEFAULT_ADMIN_ROLE();
      const escrow = await fx.asEscrow();
      for (const who of [stranger, holder, escrow]) {
        await expect(registry.connect(who).setMinStake(1n))
          .to.be.revertedWithCustomError(registry, "AccessControlUnauthorizedAccount")
          .withArgs(who.address, adminRole);
      }
      await expect(registry.connect(admin).setMinStake(5n * ONE_USDC)).to.emit(registry, "MinStakeSet").withArgs(5n * ONE_USDC);
      expect(await registry.minStake()).to.equal(5n * ONE_USDC);
      await expect(registry.connect(admin).setMinStake(0n)).to.be.revertedWithCustomError(registry, "RegistryInvalidAmount").withArgs(0n);
      await expect(registry.connect(admin).setMinStake(UINT96_MAX + 1n))
        .to.be.revertedWithCustomError(registry, "RegistryInvalidAmount")
        .withArgs(UINT96_MAX + 1n);
      expect(await registry.minStake()).to.equal(5n * ONE_USDC);
      // Roles are granted only by the admin.
      await expect(registry.connect(stranger).grantRole(ROLE_GUESSES[0]!, stranger.address))
        .to.be.revertedWithCustomError(registry, "AccessControlUnauthorizedAccount")
        .withArgs(stranger.address, adminRole);
    });

    it("issue 11 §3: the admin role is AccessControlDefaultAdminRules: never granted directly, moved in two steps after the delay", async () => {
      const { registry, admin, stranger, creator, time } = await setup();
      const adminRole = await registry.DEFAULT_ADMIN_ROLE();
      expect(await registry.defaultAdmin()).to.equal(admin.address);
      expect(await registry.defaultAdminDelay()).to.equal(2n * DAY);
      await expect(registry.connect(admin).grantRole(adminRole, stranger.address)).to.be.revertedWithCustomError(
        registry,
        "AccessControlEnforcedDefaultAdminRules",
      );
      const tx = await registry.connect(admin).beginDefaultAdminTransfer(creator.address);
      const schedule = BigInt((await tx.getBlock())!.timestamp) + 2n * DAY;
      await expect(tx).to.emit(registry, "DefaultAdminTransferScheduled").withArgs(creator.address, schedule);
      await time.setNextBlockTimestamp(schedule);
      await expect(registry.connect(creator).acceptDefaultAdminTransfer({ gasLimit: 300_000 }))
        .to.be.revertedWithCustomError(registry, "AccessControlEnforcedDefaultAdminDelay")
        .withArgs(schedule);
      await time.setNextBlockTimestamp(schedule + 1n);
      await registry.connect(creator).acceptDefaultAdminTransfer({ gasLimit: 300_000 });
      expect(await registry.defaultAdmin()).to.equal(creator.address);
      await expect(registry.connect(admin).setMinStake(1n))
        .to.be.revertedWithCustomError(registry, "AccessControlUnauthorizedAccount")
        .withArgs(admin.address, adminRole);
    });

    it("issue 11 §3, SECURITY 23: the admin's only power over stakes is the minimum for new ones; it cannot take or move any", async () => {
      const fx = await setup();
      const { registry, ledger, admin, providerOwner, receiptSigner, registryAddress } = fx;
      await fx.register(providerOwner, receiptSigner.address, MIN_STAKE + 5n);
      // Every state-changing function, and who may call it.
      const mutating: string[] = [];
      registry.interface.forEachFunction((fn) => {
        if (fn.stateMutability !== "view" && fn.stateMutability !== "pure") mutating.push(fn.name);
      });
      expect(mutating.sort()).to.deep.equal(
        [
          // the admin role's own management (AccessControlDefaultAdminRules)
          "acceptDefaultAdminTransfer",
          "beginDefaultAdminTransfer",
          "cancelDefaultAdminTransfer",
          "changeDefaultAdminDelay",
          "grantRole",
          "renounceRole",
          "revokeRole",
          "rollbackDefaultAdminDelay",
          // the admin's one setting
          "setMinStake",
          // the deployer, once
          "bindEscrow",
          // the escrow
          "recordSettlement",
          "slash",
          // providers and anyone
          "addModel",
          "addStake",
          "deactivate",
          "reactivate",
          "register",
          "registerWithPermit",
          "repriceModel",
          "requestUnstake",
          "retireModel",
          "updateProvider",
          "withdrawUnstaked",
        ].sort(),
      );
      // Raising the minimum takes nothing from a provider already staked.
      await registry.connect(admin).setMinStake(MIN_STAKE * 10n);
      const p = await registry.getProvider(1n);
      expect([p.stake, p.active]).to.deep.equal([MIN_STAKE + 5n, true]);
      expect(await ledger.balanceOf(registryAddress)).to.equal(MIN_STAKE + 5n);
      expect(await ledger.balanceOf(admin.address)).to.equal(0n);
    });

    it("SECURITY 20: every owner-only function reverts for a non-owner", async () => {
      const { registry, stranger, secondOwner, signer2, providerOwner, receiptSigner, config, register } = await setup();
      await register(providerOwner, receiptSigner.address);
      await register(secondOwner, signer2.address); // owns provider 2, not provider 1
      for (const who of [stranger, secondOwner]) {
        const r = registry.connect(who);
        const calls = [
          () => r.updateProvider(1n, config(receiptSigner.address, who.address)),
          () => r.addModel(1n, QWEN),
          () => r.repriceModel(1n, 0n, 1, 1),
          () => r.retireModel(1n, 0n),
          () => r.deactivate(1n),
          () => r.reactivate(1n),
          () => r.requestUnstake(1n, 1n),
          () => r.withdrawUnstaked(1n),
        ];
        for (const call of calls) {
          await expect(call()).to.be.revertedWithCustomError(registry, "RegistryNotProviderOwner").withArgs(1n, who.address);
        }
      }
      const p = await registry.getProvider(1n);
      expect([p.owner, p.payout, p.modelCount, p.active, p.stake]).to.deep.equal([
        providerOwner.address,
        providerOwner.address,
        1n,
        true,
        MIN_STAKE,
      ]);
    });
  });


  it("conservation: the registry's ledger balance equals Σ(stake + pendingUnstake) through a sequence, and it holds no USDC", async () => {
    const fx = await setup();
    const { registry, usdc, ledger, providerOwner, receiptSigner, secondOwner, signer2, signer3, stranger, registryAddress, escrowAddress } = fx;
    const escrow = await fx.asEscrow();
    const third = fx.others[5]!;
    await fx.register(providerOwner, receiptSigner.address, MIN_STAKE + 1_000n);
    await fx.expectConserved();
    await fx.register(secondOwner, signer2.address, MIN_STAKE * 2n);
    await fx.register(third, signer3.address, MIN_STAKE);
    await fx.expectConserved();
    await fx.fund(stranger, 777n);
    await registry.connect(stranger).addStake(3n, 777n);
    await fx.expectConserved();
    await registry.connect(providerOwner).requestUnstake(1n, 600n);
    await registry.connect(secondOwner).requestUnstake(2n, MIN_STAKE);
    await fx.expectConserved();
    await fx.time.increase(UNSTAKE_DELAY);
    await registry.connect(providerOwner).withdrawUnstaked(1n);
    await fx.expectConserved();
    await registry.connect(escrow).slash(2n);
    await fx.expectConserved();
    await registry.connect(third).requestUnstake(3n, 77n);
    await fx.expectConserved();
    const expected = MIN_STAKE + 400n + (MIN_STAKE + 777n);
    expect(await fx.totalStaked()).to.equal(expected);
    expect(await ledger.balanceOf(registryAddress)).to.equal(expected);
    expect(await ledger.balanceOf(escrowAddress)).to.equal(MIN_STAKE * 2n);
    expect(await usdc.balanceOf(providerOwner.address)).to.equal(600n);
    // The ledger holds every unit: stakes, the slashed stake (now the escrow's) and nothing else.
    expect(await usdc.balanceOf(await ledger.getAddress())).to.equal(expected + MIN_STAKE * 2n);
  });

  describe("restricted owners (issue 11 §3, §4)", () => {
    it("issue 11 §4: a provider owner the ledger has frozen cannot take its unstake out in USDC; it stays slashable", async () => {
      const fx = await setup();
      const { registry, ledger, usdc, admin, providerOwner, receiptSigner } = fx;
      const officer = fx.others[6]!;
      await ledger.connect(admin).grantRole(await ledger.COMPLIANCE_ROLE(), officer.address);
      await fx.register(providerOwner, receiptSigner.address, MIN_STAKE + 50n);
      await registry.connect(providerOwner).requestUnstake(1n, 50n);
      await fx.time.increase(UNSTAKE_DELAY);
      const until = BigInt(await fx.time.latest()) + 10n * DAY;
      await ledger.connect(officer).freeze(providerOwner.address, until, 1);
      expect(await ledger.canMove(providerOwner.address)).to.equal(false);
      // Refused while the owner cannot move funds, as ComputeEscrow.refund refuses a restricted creator.
      await expect(registry.connect(providerOwner).withdrawUnstaked(1n))
        .to.be.revertedWithCustomError(registry, "RegistryOwnerRestricted")
        .withArgs(1n, providerOwner.address);
      expect(await usdc.balanceOf(providerOwner.address), "a frozen owner took its unstake out in USDC").to.equal(0n);
      expect((await registry.getProvider(1n)).pendingUnstake).to.equal(50n);
      // Lifted, the unstake is the owner's again.
      await ledger.connect(officer).unfreeze(providerOwner.address, 1);
      await registry.connect(providerOwner).withdrawUnstaked(1n);
      expect(await usdc.balanceOf(providerOwner.address)).to.equal(50n);
    });
  });
});
