/**
 * Deploys the AgentMesh contracts to the network given with `--network` (Base Sepolia, Base, or a
 * local node) with the network's USDC, and writes `deployments/<chainId>.json`.
 *
 *   npx hardhat run scripts/deploy.ts --network baseSepolia
 *
 * The deployer (DEPLOYER_PRIVATE_KEY, from the Hardhat keystore or the environment) becomes admin
 * and treasury; hand both over afterwards with grantRole / setTreasury.
 */
import path from "node:path";
import { network } from "hardhat";
import { DEFAULT_SUITE_OPTIONS, LOCAL_CHAIN_ID, deploySuite } from "./lib/deploy-suite.ts";
import { describeDeployment, writeJson } from "./lib/deployment-file.ts";

const { ethers } = await network.create();
const [deployer] = await ethers.getSigners();
const chainId = Number((await ethers.provider.getNetwork()).chainId);
const suite = await deploySuite(ethers, deployer, {
  ...DEFAULT_SUITE_OPTIONS,
  admin: deployer.address,
  treasury: deployer.address,
});
const deployment = await describeDeployment(chainId, suite, chainId === LOCAL_CHAIN_ID);
const outputPath = path.join("deployments", `${chainId}.json`);
await writeJson(outputPath, deployment);
console.log(`Deployed to chain ${chainId}; wrote ${outputPath}`);
console.log(JSON.stringify(deployment, null, 2));
