import { expect } from "chai";
import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import type { IProviderRegistry } from "../../types/ethers-contracts/ProviderRegistry.ts";
import { deployFixture } from "./fixture.ts";
import { signPermit } from "./helpers/usdc.ts";

type ProviderConfig = IProviderRegistry.ProviderConfigStruct;
type ModelConfig = IProviderRegistry.ModelConfigStruct;

const ONE_USDC = 1_000_000n;
const MIN_STAKE = 100n * ONE_USDC;
const UNSTAKE_DELAY = 7n * 24n * 3600n;
const ZERO = "0x0000000000000000000000000000000000000000";
const UINT96_MAX = 2n ** 96n - 1n;

const ProviderType = { SelfHosted: 0, Cloud: 1, Decentralized: 2 } as const;

const LLAMA: ModelConfig = { name: "llama-3.1-8b", inputPricePer1K: 100, outputPricePer1K: 300, maxContextTokens: 131_072 };
const QWEN: ModelConfig = { name: "qwen-2.5-72b", inputPricePer1K: 900, outputPricePer1K: 2_700, maxContextTokens: 32_768 };

function configTuple(c: ProviderConfig) {
  return [c.endpoint, BigInt(c.providerType), BigInt(c.rateLimitPerMinute), BigInt(c.minChargePerCall), BigInt(c.features), c.receiptSigner, c.payout];
}

function modelTuple(m: ModelConfig) {
  return [m.name, BigInt(m.inputPricePer1K), BigInt(m.outputPricePer1K), BigInt(m.maxContextTokens)];
}

async function setup() {
  const fx = await deployFixture();
  const { usdc, registry, admin, others, connection } = fx;
  const registryAddress = await registry.getAddress();

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

  async function expectConserved() {
    expect(await usdc.balanceOf(registryAddress)).to.equal(await totalStaked());
  }

  async function grant(role: string, to: HardhatEthersSigner) {
    await (await registry.connect(admin).grantRole(role, to.address)).wait();
  }

  const slasher = others[0]!;
  const settler = others[1]!;
  const secondOwner = others[2]!;
  const signer2 = others[3]!;
  const signer3 = others[4]!;
  const time = connection.networkHelpers.time;
  return {
    ...fx,
    registryAddress,
    config,
    fund,
    register,
    totalStaked,
    expectConserved,
    grant,
    slasher,
    settler,
    secondOwner,
    signer2,
    signer3,
    time,
  };
}

describe("ProviderRegistry", () => {
  describe("register", () => {
    it("stores every field, pulls the stake and emits registration, stake and model events", async () => {
      const { registry, usdc, ethers, providerOwner, receiptSigner, treasury, registryAddress, config, fund } =
        await setup();
      expect(await registry.minStake()).to.equal(MIN_STAKE);
      expect(await registry.unstakeDelay()).to.equal(UNSTAKE_DELAY);
      expect(await registry.token()).to.equal(await usdc.getAddress());
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
      await expect(tx).to.changeTokenBalances(ethers, usdc, [providerOwner.address, registryAddress], [-stake, stake]);

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

      expect(await registry.providerOfSigner(receiptSigner.address)).to.equal(1n);
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
      expect(await usdc.balanceOf(registryAddress)).to.equal(stake);
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
      const { registry, usdc, providerOwner, receiptSigner, registryAddress, config, ethers, time } = await setup();
      await usdc.mint(providerOwner.address, MIN_STAKE);
      const deadline = BigInt(await time.latest()) + 3600n;
      const { v, r, s } = await signPermit(usdc, providerOwner, registryAddress, MIN_STAKE, deadline);
      expect(await usdc.allowance(providerOwner.address, registryAddress)).to.equal(0n);
      const cfg = config(receiptSigner.address, providerOwner.address);
      const tx = registry.connect(providerOwner).registerWithPermit(cfg, [LLAMA], MIN_STAKE, deadline, v, r, s);
      await expect(tx).to.emit(registry, "ProviderRegistered").withArgs(1n, providerOwner.address, configTuple(cfg));
      await expect(tx).to.changeTokenBalances(ethers, usdc, [providerOwner.address, registryAddress], [-MIN_STAKE, MIN_STAKE]);
      expect((await registry.getProvider(1n)).stake).to.equal(MIN_STAKE);
      expect(await usdc.nonces(providerOwner.address)).to.equal(1n);
      expect(await usdc.allowance(providerOwner.address, registryAddress)).to.equal(0n);
    });

    it("registerWithPermit survives a front-run permit and fails cleanly on a bad one", async () => {
      const { registry, usdc, providerOwner, receiptSigner, stranger, registryAddress, config, time } = await setup();
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
      expect(await usdc.balanceOf(registryAddress)).to.equal(MIN_STAKE);
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

    it("a receipt signer cannot be reused by another provider and stays bound after rotation", async () => {
      const { registry, providerOwner, receiptSigner, secondOwner, signer2, signer3, config, register, fund } = await setup();
      await register(providerOwner, receiptSigner.address);
      await fund(secondOwner, MIN_STAKE);
      await expect(
        registry.connect(secondOwner).register(config(receiptSigner.address, secondOwner.address), [LLAMA], MIN_STAKE),
      )
        .to.be.revertedWithCustomError(registry, "RegistrySignerTaken")
        .withArgs(receiptSigner.address, 1n);

      // Provider 1 rotates to signer2; the old signer still belongs to provider 1.
      await registry.connect(providerOwner).updateProvider(1n, config(signer2.address, providerOwner.address));
      expect((await registry.getProvider(1n)).receiptSigner).to.equal(signer2.address);
      expect(await registry.providerOfSigner(receiptSigner.address)).to.equal(1n);
      expect(await registry.providerOfSigner(signer2.address)).to.equal(1n);
      for (const taken of [receiptSigner.address, signer2.address]) {
        await expect(registry.connect(secondOwner).register(config(taken, secondOwner.address), [LLAMA], MIN_STAKE))
          .to.be.revertedWithCustomError(registry, "RegistrySignerTaken")
          .withArgs(taken, 1n);
      }
      // A fresh signer works for provider 2, which cannot then rotate to provider 1's old signer.
      await registry.connect(secondOwner).register(config(signer3.address, secondOwner.address), [LLAMA], MIN_STAKE);
      expect(await registry.providerOfSigner(signer3.address)).to.equal(2n);
      await expect(registry.connect(secondOwner).updateProvider(2n, config(receiptSigner.address, secondOwner.address)))
        .to.be.revertedWithCustomError(registry, "RegistrySignerTaken")
        .withArgs(receiptSigner.address, 1n);
      // Provider 1 may rotate back to its own old signer.
      await registry.connect(providerOwner).updateProvider(1n, config(receiptSigner.address, providerOwner.address));
      expect((await registry.getProvider(1n)).receiptSigner).to.equal(receiptSigner.address);
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
    it("addStake: anyone may add, the stake grows and the USDC is pulled", async () => {
      const { registry, usdc, ethers, providerOwner, receiptSigner, stranger, registryAddress, register, fund } =
        await setup();
      await register(providerOwner, receiptSigner.address);
      await fund(stranger, 50n);
      const tx = registry.connect(stranger).addStake(1n, 50n);
      await expect(tx).to.emit(registry, "StakeAdded").withArgs(1n, stranger.address, 50n, MIN_STAKE + 50n);
      await expect(tx).to.changeTokenBalances(ethers, usdc, [stranger.address, registryAddress], [-50n, 50n]);
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

    it("withdrawUnstaked reverts before availableAt, succeeds exactly at it and pays the owner", async () => {
      const { registry, usdc, ethers, providerOwner, receiptSigner, registryAddress, register, time } = await setup();
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
      await expect(tx).to.changeTokenBalances(ethers, usdc, [providerOwner.address, registryAddress], [40n, -40n]);
      expect(BigInt(await time.latest())).to.equal(availableAt);
      const p = await registry.getProvider(1n);
      expect([p.stake, p.pendingUnstake, p.unstakeAvailableAt]).to.deep.equal([MIN_STAKE, 0n, 0n]);
      await expect(owner.withdrawUnstaked(1n)).to.be.revertedWithCustomError(registry, "RegistryUnstakeNotReady").withArgs(1n, 0n);
    });
  });

  describe("SECURITY 11: slashing", () => {
    it("only SLASHER_ROLE may slash (non-holders, including the admin, revert)", async () => {
      const { registry, escrow, admin, stranger, providerOwner, receiptSigner, register } = await setup();
      await register(providerOwner, receiptSigner.address);
      const role = await registry.SLASHER_ROLE();
      expect(await registry.hasRole(role, await escrow.getAddress())).to.equal(true);
      for (const who of [stranger, admin, providerOwner]) {
        await expect(registry.connect(who).slash(1n))
          .to.be.revertedWithCustomError(registry, "AccessControlUnauthorizedAccount")
          .withArgs(who.address, role);
      }
      expect((await registry.getProvider(1n)).slashed).to.equal(false);
    });

    it("takes stake plus pending unstake (never more), pays the slasher and shuts the provider out", async () => {
      const fx = await setup();
      const { registry, usdc, ethers, providerOwner, receiptSigner, secondOwner, signer2, slasher, registryAddress } = fx;
      await fx.grant(await registry.SLASHER_ROLE(), slasher);
      await fx.register(providerOwner, receiptSigner.address, MIN_STAKE + 500n);
      await fx.register(secondOwner, signer2.address, MIN_STAKE + 7n);
      const owner = registry.connect(providerOwner);
      await owner.requestUnstake(1n, 200n);

      const expected = MIN_STAKE + 500n;
      expect(await registry.connect(slasher).slash.staticCall(1n)).to.equal(expected);
      const tx = registry.connect(slasher).slash(1n);
      await expect(tx).to.emit(registry, "ProviderSlashed").withArgs(1n, expected, slasher.address);
      await expect(tx).to.emit(registry, "ProviderActiveSet").withArgs(1n, false);
      await expect(tx).to.changeTokenBalances(ethers, usdc, [slasher.address, registryAddress], [expected, -expected]);

      const p = await registry.getProvider(1n);
      expect([p.stake, p.pendingUnstake, p.unstakeAvailableAt, p.slashed, p.active]).to.deep.equal([0n, 0n, 0n, true, false]);
      // The other provider's stake is untouched.
      expect((await registry.getProvider(2n)).stake).to.equal(MIN_STAKE + 7n);
      expect(await usdc.balanceOf(registryAddress)).to.equal(MIN_STAKE + 7n);
      await fx.expectConserved();

      // The pending unstake is gone, even after its delay.
      await fx.time.increase(UNSTAKE_DELAY + 1n);
      await expect(owner.withdrawUnstaked(1n)).to.be.revertedWithCustomError(registry, "RegistryUnstakeNotReady").withArgs(1n, 0n);
      await expect(owner.reactivate(1n)).to.be.revertedWithCustomError(registry, "RegistryProviderSlashed").withArgs(1n);
      await fx.fund(providerOwner, MIN_STAKE);
      await expect(owner.addStake(1n, MIN_STAKE)).to.be.revertedWithCustomError(registry, "RegistryProviderSlashed").withArgs(1n);
      await expect(registry.quote(1n, 0n)).to.be.revertedWithCustomError(registry, "RegistryProviderInactive").withArgs(1n);

      // Slashing again takes nothing and transfers nothing.
      const again = registry.connect(slasher).slash(1n);
      await expect(again).to.emit(registry, "ProviderSlashed").withArgs(1n, 0n, slasher.address);
      await expect(again).not.to.emit(usdc, "Transfer");
      expect(await usdc.balanceOf(registryAddress)).to.equal(MIN_STAKE + 7n);
    });

    it("a pending unstake stays slashable until withdrawn, even past its delay", async () => {
      const fx = await setup();
      const { registry, usdc, providerOwner, receiptSigner, slasher } = fx;
      await fx.grant(await registry.SLASHER_ROLE(), slasher);
      await fx.register(providerOwner, receiptSigner.address, MIN_STAKE);
      await registry.connect(providerOwner).requestUnstake(1n, MIN_STAKE);
      await fx.time.increase(UNSTAKE_DELAY + 10n);
      await registry.connect(slasher).slash(1n);
      expect(await usdc.balanceOf(slasher.address)).to.equal(MIN_STAKE);
      await expect(registry.connect(providerOwner).withdrawUnstaked(1n)).to.be.revertedWithCustomError(
        registry,
        "RegistryUnstakeNotReady",
      );
      expect(await usdc.balanceOf(providerOwner.address)).to.equal(0n);
    });
  });

  describe("settlement metrics and admin", () => {
    it("recordSettlement only by SETTLEMENT_ROLE, accumulating metrics", async () => {
      const fx = await setup();
      const { registry, escrow, stranger, admin, settler, providerOwner, receiptSigner } = fx;
      await fx.register(providerOwner, receiptSigner.address);
      const role = await registry.SETTLEMENT_ROLE();
      expect(await registry.hasRole(role, await escrow.getAddress())).to.equal(true);
      const delta = { requests: 3n, inputTokens: 1_000n, outputTokens: 500n, latencyMs: 900n, earnings: 12_345n };
      for (const who of [stranger, admin]) {
        await expect(registry.connect(who).recordSettlement(1n, delta))
          .to.be.revertedWithCustomError(registry, "AccessControlUnauthorizedAccount")
          .withArgs(who.address, role);
      }
      await fx.grant(role, settler);
      await expect(registry.connect(settler).recordSettlement(2n, delta))
        .to.be.revertedWithCustomError(registry, "RegistryUnknownProvider")
        .withArgs(2n);
      await expect(registry.connect(settler).recordSettlement(1n, delta))
        .to.emit(registry, "SettlementRecorded")
        .withArgs(1n, 3n, 1_000n, 500n, 900n, 12_345n);
      await registry.connect(settler).recordSettlement(1n, { requests: 1n, inputTokens: 2n, outputTokens: 3n, latencyMs: 4n, earnings: 5n });
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
      const { registry, admin, stranger, slasher, grant } = await setup();
      await grant(await registry.SLASHER_ROLE(), slasher);
      const adminRole = await registry.DEFAULT_ADMIN_ROLE();
      for (const who of [stranger, slasher]) {
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
      await expect(registry.connect(stranger).grantRole(await registry.SLASHER_ROLE(), stranger.address))
        .to.be.revertedWithCustomError(registry, "AccessControlUnauthorizedAccount")
        .withArgs(stranger.address, adminRole);
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

  it("conservation: the registry's USDC balance equals Σ(stake + pendingUnstake) through a sequence", async () => {
    const fx = await setup();
    const { registry, usdc, providerOwner, receiptSigner, secondOwner, signer2, signer3, stranger, slasher, registryAddress } = fx;
    await fx.grant(await registry.SLASHER_ROLE(), slasher);
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
    await registry.connect(slasher).slash(2n);
    await fx.expectConserved();
    await registry.connect(third).requestUnstake(3n, 77n);
    await fx.expectConserved();
    const expected = MIN_STAKE + 400n + (MIN_STAKE + 777n);
    expect(await fx.totalStaked()).to.equal(expected);
    expect(await usdc.balanceOf(registryAddress)).to.equal(expected);
    expect(await usdc.balanceOf(slasher.address)).to.equal(MIN_STAKE * 2n);
    expect(await usdc.balanceOf(providerOwner.address)).to.equal(600n);
  });
});
