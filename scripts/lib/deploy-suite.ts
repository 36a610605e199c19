import type { HardhatEthers, HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import type {
  AgentMarketplace,
  ComputeEscrow,
  MockUSDC,
  ProviderRegistry,
  RelayerDirectory,
  SplitsLedger,
} from "../../types/ethers-contracts/index.ts";

/** USDC on the public networks AgentMesh deploys to; MockUSDC is deployed only on the local chain. */
export const USDC_BY_CHAIN_ID: Readonly<Record<number, `0x${string}`>> = {
  8453: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
  84532: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
};

export const LOCAL_CHAIN_ID = 31337;

export interface SuiteOptions {
  /** Receives the admin role of every contract (a multisig on public networks); the deployer keeps none. */
  admin: string;
  /** Seconds a new admin must wait before accepting the role (two-step transfer). */
  adminDelay: number;
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
  adminDelay: 2 * 24 * 3600,
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
  /** Receipt signer -> relayer URL: how agents find the relayer serving a provider. */
  directory: RelayerDirectory;
  /** Every contract deployed, with its constructor arguments (what explorer verification needs). */
  deployed: DeployedContract[];
  /** Block of the first deployment transaction: where indexers start. */
  startBlock: number;
}

/** A contract the suite deployed, as `hardhat verify` needs it. */
export interface DeployedContract {
  contract: "SplitsLedger" | "ProviderRegistry" | "ComputeEscrow" | "AgentMarketplace" | "RelayerDirectory";
  address: string;
  args: (string | number | bigint)[];
}

/**
 * Deploys the ledger, registry, escrow, agent marketplace and relayer directory (and MockUSDC on the local chain), then,
 * as the deployer, makes the one-time bindings: the registry's escrow (the only contract that slashes and
 * records settlements) and the ledger's custodians (escrow, registry, marketplace: the contracts whose
 * ledger balances hold other people's funds). The admin role goes straight to `options.admin`.
 * `token` replaces USDC on the local chain (tests with misbehaving tokens).
 */
export async function deploySuite(
  ethers: HardhatEthers,
  deployer: HardhatEthersSigner,
  options: SuiteOptions,
  token?: string,
): Promise<Suite> {
  const chainId = Number((await ethers.provider.getNetwork()).chainId);
  const startBlock = await ethers.provider.getBlockNumber();
  const knownUsdc = USDC_BY_CHAIN_ID[chainId];
  if (knownUsdc === undefined && chainId !== LOCAL_CHAIN_ID) {
    throw new Error(`No USDC address is known for chain ${chainId}`);
  }
  if (token !== undefined && chainId !== LOCAL_CHAIN_ID) throw new Error("Only the local chain takes another token");
  const usdc = (
    knownUsdc === undefined && token === undefined
      ? await ethers.deployContract("MockUSDC", ["USD Coin"], deployer)
      : await ethers.getContractAt("MockUSDC", token ?? knownUsdc!, deployer)
  ) as unknown as MockUSDC;
  const usdcAddress = await usdc.getAddress();

  const { admin, adminDelay } = options;
  const deployed: DeployedContract[] = [];
  /** Deploys `contract` with `args`, recording both for verification. */
  const deploy = async (contract: DeployedContract["contract"], args: DeployedContract["args"]) => {
    const instance = await ethers.deployContract(contract, args, deployer);
    deployed.push({ contract, address: await instance.getAddress(), args });
    return instance;
  };
  const ledger = await deploy("SplitsLedger", [usdcAddress, adminDelay, admin]);
  const ledgerAddress = await ledger.getAddress();
  const registry = await deploy("ProviderRegistry", [usdcAddress, ledgerAddress, options.minStake, options.unstakeDelay, adminDelay, admin]);
  const escrow = await deploy("ComputeEscrow", [
    usdcAddress,
    await registry.getAddress(),
    ledgerAddress,
    options.challengeWindow,
    adminDelay,
    admin,
    options.treasury,
    options.feeBps,
  ]);
  const marketplace = await deploy("AgentMarketplace", [usdcAddress, ledgerAddress, await escrow.getAddress(), adminDelay, admin, options.treasury]);
  const directory = await deploy("RelayerDirectory", []);
  await Promise.all([
    ledger.waitForDeployment(),
    registry.waitForDeployment(),
    escrow.waitForDeployment(),
    marketplace.waitForDeployment(),
    directory.waitForDeployment(),
  ]);

  const escrowAddress = await escrow.getAddress();
  await (await registry.bindEscrow(escrowAddress)).wait();
  await (
    await ledger.setCustodians([escrowAddress, await registry.getAddress(), await marketplace.getAddress()])
  ).wait();
  return {
    usdc,
    ledger: ledger as unknown as SplitsLedger,
    registry: registry as unknown as ProviderRegistry,
    escrow: escrow as unknown as ComputeEscrow,
    marketplace: marketplace as unknown as AgentMarketplace,
    directory: directory as unknown as RelayerDirectory,
    deployed,
    startBlock,
  };
}
