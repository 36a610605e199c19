import { createRequire } from "node:module";
import hardhatToolboxMochaEthers from "@nomicfoundation/hardhat-toolbox-mocha-ethers";
import { configVariable, defineConfig, task } from "hardhat/config";
import { ArgumentType } from "hardhat/types/arguments";

const require = createRequire(import.meta.url);

/** The compiler comes from the pinned npm `solc` package: its version is the compiler version. */
const SOLC_VERSION: string = require("solc/package.json").version;

const ESCROW_OPTIMIZER_RUNS = 2_000;

/** The pinned solc, optimizing for `runs` calls per deployed byte (viaIR, Cancun like Base). */
function compiler(runs: number) {
  return {
    version: SOLC_VERSION,
    path: require.resolve("solc/soljson.js"),
    settings: { optimizer: { enabled: true, runs }, evmVersion: "cancun", viaIR: true },
  };
}

/** Base caps one transaction at 2^24 gas (EIP-7825); every bounded loop is sized for it. */
const BASE_TRANSACTION_GAS_CAP = 16_777_216;

/** `hardhat deploy --network <name> --admin <address> --treasury <address>`: see scripts/deploy.ts. */
const deployTask = task("deploy", "Deploy AgentMesh, hand its admin roles over and write deployments/<chainId>.json")
  .addOption({ name: "admin", description: "Receives every admin role (e.g. a multisig)", type: ArgumentType.STRING, defaultValue: "" })
  .addOption({ name: "treasury", description: "Ledger account credited with fees and slashing proceeds", type: ArgumentType.STRING, defaultValue: "" })
  .addOption({
    name: "adminDelay",
    description: "Seconds a new admin waits before accepting the role",
    type: ArgumentType.STRING,
    defaultValue: String(3 * 24 * 3600),
  })
  .setAction(async () => import("./scripts/deploy.ts"))
  .build();

export default defineConfig({
  plugins: [hardhatToolboxMochaEthers],
  tasks: [deployTask],
  solidity: {
    compilers: [compiler(10_000)],
    overrides: {
      // Fewer optimizer runs keep the escrow under the 24,576-byte code size limit (EIP-170).
      "contracts/ComputeEscrow.sol": compiler(ESCROW_OPTIMIZER_RUNS),
    },
  },
  paths: {
    tests: { mocha: "test/contracts", solidity: "test/solidity" },
  },
  test: {
    solidity: { blockGasLimit: BASE_TRANSACTION_GAS_CAP },
  },
  // `npx hardhat verify --network baseSepolia|base <address> <constructor args…>` (see README, "Run it
  // for real"): BaseScan through Etherscan's multichain API; Hardhat knows both chains' explorers.
  verify: { etherscan: { apiKey: configVariable("ETHERSCAN_API_KEY") } },
  networks: {
    // The in-process chain of the contract tests. Its blocks hold no more gas than
    // Base lets one transaction use, so no test, benchmark or demo passes with a transaction Base refuses.
    default: { type: "edr-simulated", chainType: "op", blockGasLimit: BASE_TRANSACTION_GAS_CAP },
    // The chain node of `npm start`, the end-to-end tests and the benchmarks (`hardhat node --network
    // localNode`). It mines a block per transaction; were each block one second after the last (the
    // default), a few transactions a second would run its clock ahead of the wall clock (an hour in a
    // 7-minute soak), and sessions whose deadlines agents set by the wall clock would expire early.
    // Like Base, where one block carries many transactions, blocks may share a second.
    localNode: {
      type: "edr-simulated",
      chainType: "op",
      blockGasLimit: BASE_TRANSACTION_GAS_CAP,
      allowBlocksWithSameTimestamp: true,
    },
    // A stand-in for Base Sepolia (chain id 84532) on which test/e2e/rehearsal.test.ts runs the public-network
    // path (`hardhat node --network baseSepoliaStandIn`): no stack file, USDC installed at Base Sepolia's
    // address. Like Base it mines blocks on a clock, so that a relayer, which reads the chain a few
    // blocks behind its head off the local chain, sees what was sent without anyone mining for it.
    baseSepoliaStandIn: {
      type: "edr-simulated",
      chainType: "op",
      chainId: 84532,
      blockGasLimit: BASE_TRANSACTION_GAS_CAP,
      allowBlocksWithSameTimestamp: true,
      mining: { auto: true, interval: 500 },
    },
    localhost: { type: "http", chainType: "op", url: process.env.AGENTMESH_RPC_URL ?? "http://127.0.0.1:8545" },
    baseSepolia: {
      type: "http",
      chainType: "op",
      chainId: 84532,
      url: configVariable("BASE_SEPOLIA_RPC_URL"),
      accounts: [configVariable("DEPLOYER_PRIVATE_KEY")],
    },
    base: {
      type: "http",
      chainType: "op",
      chainId: 8453,
      url: configVariable("BASE_RPC_URL"),
      accounts: [configVariable("DEPLOYER_PRIVATE_KEY")],
    },
  },
});
