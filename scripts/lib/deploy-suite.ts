import type { HardhatEthers, HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import type {
  AgentMarketplace,
  ComputeEscrow,
  MockUSDC,
  ProviderRegistry,
  SplitsLedger,
} from "../../types/ethers-contracts/index.ts";

/** USDC on the public networks AgentMesh deploys to; MockUSDC is deployed only on the local chain. */
export const USDC_BY_CHAIN_ID: Readonly<Record<number, `0x${string}`>> = {
  8453: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
  84532: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
};

export const LOCAL_CHAIN_ID = 31337;

export interface SuiteOptions {
  /** Receives the admin roles of every contract. */
  admin: string;
  /** Ledger account credited with protocol fees and slashing proceeds. */
  treasury: string;
  /** Minimum provider stake, atomic USDC. */
  minStake: bigint;
  /** Seconds between an unstake request and its withdrawal. */
  unstakeDelay: number;
  /** Seconds a provider has to answer a consumer close. */
  challengeWindow: number;
  /** Protocol fee in basis points. */
  feeBps: number;
}

export const DEFAULT_SUITE_OPTIONS: Omit<SuiteOptions, "admin" | "treasury"> = {
  minStake: 100_000_000n, // 100 USDC
  unstakeDelay: 7 * 24 * 3600,
  challengeWindow: 24 * 3600,
  feeBps: 250,
};

export interface Suite {
  usdc: MockUSDC;
  ledger: SplitsLedger;
  registry: ProviderRegistry;
  escrow: ComputeEscrow;
  marketplace: AgentMarketplace;
  /** Block of the first deployment transaction: where indexers start. */
  startBlock: number;
}

/**
 * Deploys the ledger, registry, escrow and agent marketplace (and MockUSDC on the local chain), and
 * grants the escrow its settlement and slasher roles on the registry. The marketplace needs no role:
 * it pays the ledger with `payMany`, funds budgets with the escrow's public `topUp`, and moves a
 * payer's ledger balance only with the payer's allowance or signature.
 */
export async function deploySuite(
  ethers: HardhatEthers,
  deployer: HardhatEthersSigner,
  options: SuiteOptions,
): Promise<Suite> {
  const chainId = Number((await ethers.provider.getNetwork()).chainId);
  const startBlock = await ethers.provider.getBlockNumber();
  const knownUsdc = USDC_BY_CHAIN_ID[chainId];
  if (knownUsdc === undefined && chainId !== LOCAL_CHAIN_ID) {
    throw new Error(`No USDC address is known for chain ${chainId}`);
  }
  const usdc = (
    knownUsdc === undefined
      ? await ethers.deployContract("MockUSDC", [], deployer)
      : await ethers.getContractAt("MockUSDC", knownUsdc, deployer)
  ) as unknown as MockUSDC;
  const usdcAddress = await usdc.getAddress();

  const ledger = await ethers.deployContract("SplitsLedger", [usdcAddress, options.admin], deployer);
  const registry = await ethers.deployContract(
    "ProviderRegistry",
    [usdcAddress, options.minStake, options.unstakeDelay, options.admin],
    deployer,
  );
  const escrow = await ethers.deployContract(
    "ComputeEscrow",
    [
      usdcAddress,
      await registry.getAddress(),
      await ledger.getAddress(),
      options.challengeWindow,
      options.admin,
      options.treasury,
      options.feeBps,
    ],
    deployer,
  );
  const marketplace = await ethers.deployContract(
    "AgentMarketplace",
    [usdcAddress, await ledger.getAddress(), await escrow.getAddress(), options.admin, options.treasury],
    deployer,
  );
  await Promise.all([
    ledger.waitForDeployment(),
    registry.waitForDeployment(),
    escrow.waitForDeployment(),
    marketplace.waitForDeployment(),
  ]);

  const admin = await ethers.getSigner(options.admin);
  const escrowAddress = await escrow.getAddress();
  for (const role of [await registry.SETTLEMENT_ROLE(), await registry.SLASHER_ROLE()]) {
    await (await registry.connect(admin).grantRole(role, escrowAddress)).wait();
  }
  return {
    usdc,
    ledger: ledger as unknown as SplitsLedger,
    registry: registry as unknown as ProviderRegistry,
    escrow: escrow as unknown as ComputeEscrow,
    marketplace: marketplace as unknown as AgentMarketplace,
    startBlock,
  };
}
