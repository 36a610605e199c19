/**
 * The `deploy` task: deploys the AgentMesh contracts to the network given with `--network` (Base
 * Sepolia, Base, or a local node) with the network's USDC, hands every admin role to `--admin` (a
 * multisig), names `--treasury` for fees and slashing proceeds, and writes `deployments/<chainId>.json`
 * (in AGENTMESH_DEPLOYMENTS_DIR instead of `deployments/` when that variable is set).
 *
 *   npm run deploy:base-sepolia -- --admin 0xMultisig --treasury 0xTreasury [--admin-delay 259200]
 *
 * The deployer (DEPLOYER_PRIVATE_KEY, from the Hardhat keystore or the environment) pays gas and makes
 * the one-time bindings (the registry's escrow, the ledger's custodians); it keeps no role.
 */
import path from "node:path";
import { getAddress, isAddress, ZeroAddress } from "ethers";
import { HardhatPluginError } from "hardhat/plugins";
import type { HardhatRuntimeEnvironment } from "hardhat/types/hre";
import { DEFAULT_SUITE_OPTIONS, LOCAL_CHAIN_ID, deploySuite } from "./lib/deploy-suite.ts";
import { describeDeployment, writeJson } from "./lib/deployment-file.ts";

/** The Hardhat network (hardhat.config.ts) of each public chain, for the verify commands printed. */
const HARDHAT_NETWORKS: Record<number, string> = { 84532: "baseSepolia", 8453: "base" };

/** The task's options, as Hardhat parses them. */
export interface DeployArguments {
  admin: string;
  treasury: string;
  adminDelay: string;
}

/** `value` as a checksummed, non-zero address, or an error naming the option. */
function addressOption(name: string, value: string): string {
  if (!isAddress(value) || getAddress(value) === ZeroAddress) {
    throw new HardhatPluginError("agentmesh", `--${name} must be a non-zero address (got "${value}")`);
  }
  return getAddress(value);
}

/** `value` as whole seconds, or an error naming the option. */
function secondsOption(name: string, value: string): number {
  const seconds = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(seconds) || seconds >= 2 ** 48) {
    throw new HardhatPluginError("agentmesh", `--${name} must be a whole number of seconds (got "${value}")`);
  }
  return seconds;
}

export default async function deploy(args: DeployArguments, hre: HardhatRuntimeEnvironment): Promise<void> {
  const admin = addressOption("admin", args.admin);
  const treasury = addressOption("treasury", args.treasury);
  const adminDelay = secondsOption("admin-delay", args.adminDelay);
  const { ethers } = await hre.network.create();
  const [deployer] = await ethers.getSigners();
  const chainId = Number((await ethers.provider.getNetwork()).chainId);
  const suite = await deploySuite(ethers, deployer, { ...DEFAULT_SUITE_OPTIONS, admin, treasury, adminDelay });
  const deployment = await describeDeployment(chainId, suite, chainId === LOCAL_CHAIN_ID);
  const outputPath = path.join(process.env.AGENTMESH_DEPLOYMENTS_DIR || "deployments", `${chainId}.json`);
  await writeJson(outputPath, deployment);
  console.log(JSON.stringify(deployment, null, 2));
  const network = HARDHAT_NETWORKS[chainId];
  const verify = suite.deployed.map(({ address, args }) => `  npx hardhat verify --network ${network ?? "<network>"} ${address} ${args.map(String).join(" ")}`.trimEnd());
  console.log(`Deployed to chain ${chainId}; wrote ${outputPath}.
The admin ${admin} holds every contract's admin role; the deployer ${deployer.address} holds none.
Next steps:
- Verify the contracts on BaseScan (ETHERSCAN_API_KEY from the Hardhat keystore or the environment):
${verify.join("\n")}
- From the admin, grant the ledger's COMPLIANCE_ROLE only if you run compliance freezes.
- Run a relayer from ${outputPath} with --public-url (it announces itself in the RelayerDirectory), and
  commit ${outputPath}: every role, the CLI and the dApp build read it.`);
}
