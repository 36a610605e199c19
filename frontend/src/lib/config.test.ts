import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildRpcUrl, ConfigFileError, parseAppConfig, publicDeployments } from "./config.ts";

const contracts = {
  MockUSDC: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
  SplitsLedger: "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512",
  ProviderRegistry: "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0",
  ComputeEscrow: "0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9",
};
const local = {
  chainId: 31337,
  startBlock: 0,
  usdc: contracts.MockUSDC,
  contracts,
  rpcUrl: "http://127.0.0.1:8545",
  accounts: { creator: { address: "0x976ea74026e726554db657fa54763abd0c3a0aa9", privateKey: `0x${"ab".repeat(32)}` } },
  budgetId: 1,
  providers: [],
  relayerUrl: "http://127.0.0.1:8787",
};

describe("run-time configuration", () => {
  it("reads the local stack and public deployments, checksumming addresses", () => {
    const config = parseAppConfig({ local, deployments: { 84532: { ...local, chainId: 84532, startBlock: 5, relayerUrl: undefined } } });
    assert.equal(config.local?.rpcUrl, "http://127.0.0.1:8545");
    assert.deepEqual(config.local?.accounts.map((account) => [account.role, account.address]), [["creator", "0x976EA74026E726554dB657fA54763abd0C3a0aa9"]]);
    assert.equal(config.deployments[31337].contracts.ComputeEscrow, "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9");
    assert.equal(config.deployments[31337].relayerUrl, "http://127.0.0.1:8787");
    assert.equal(config.deployments[84532].startBlock, 5n);
    assert.equal(config.deployments[8453], undefined);
  });

  it("works with no local stack, and refuses malformed files", () => {
    assert.deepEqual(parseAppConfig({ local: null, deployments: {} }), { local: undefined, deployments: {} });
    assert.throws(() => parseAppConfig({ local: { ...local, contracts: { ...contracts, ComputeEscrow: "0x12" } } }), ConfigFileError);
    assert.throws(() => parseAppConfig({ local: { ...local, chainId: 8453 } }), /not the local chain's/);
    assert.throws(() => parseAppConfig({ deployments: { 8453: { ...local, chainId: 84532 } } }), /it is for chain 84532/);
  });

  it("reads the RelayerDirectory when a deployment has one, and refuses a malformed one", () => {
    const directory = "0xdc64a140aa3e981100a9beca4e685f962f0cf6c9";
    const config = parseAppConfig({ local: { ...local, contracts: { ...contracts, RelayerDirectory: directory } }, deployments: { 84532: { ...local, chainId: 84532, relayerUrl: undefined } } });
    assert.equal(config.deployments[31337].contracts.RelayerDirectory, "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9");
    assert.equal("RelayerDirectory" in config.deployments[84532].contracts, false); // older deployments lack it
    assert.throws(() => parseAppConfig({ local: { ...local, contracts: { ...contracts, RelayerDirectory: "0x12" } } }), /bad or missing "RelayerDirectory"/);
  });
});

describe("what a build publishes of the deployment files", () => {
  const record = { chainId: 84532, startBlock: 7, usdc: contracts.MockUSDC, contracts: { ...contracts, RelayerDirectory: "0xdc64a140aa3e981100a9beca4e685f962f0cf6c9" } };

  it("keeps each public deployment's public fields only: no keys, no relayer URL, not the local chain", () => {
    const published = publicDeployments({
      84532: { ...record, accounts: local.accounts, privateKey: `0x${"cd".repeat(32)}`, relayerUrl: "http://127.0.0.1:8787" },
      31337: { ...record, chainId: 31337 },
    });
    assert.deepEqual(Object.keys(published), ["84532"]);
    assert.deepEqual(published[84532], {
      chainId: 84532,
      startBlock: 7,
      usdc: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
      contracts: {
        SplitsLedger: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
        ProviderRegistry: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
        ComputeEscrow: "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
        RelayerDirectory: "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9",
      },
    });
    assert.doesNotMatch(JSON.stringify(published), /privateKey|accounts|relayerUrl|cdcd/);
    // What the app then reads back is the same deployment.
    assert.equal(parseAppConfig({ local: null, deployments: published }).deployments[84532].startBlock, 7n);
  });

  it("refuses a malformed file or one named for another chain, naming it", () => {
    assert.throws(() => publicDeployments({ 8453: record }), /deployments\/8453\.json is malformed: it is for chain 84532/);
    assert.throws(() => publicDeployments({ 84532: { ...record, usdc: "USDC" } }), /deployments\/84532\.json is malformed: bad or missing "usdc"/);
  });
});

describe("build-time RPC URLs", () => {
  it("uses the URL given, or none (viem's public endpoint) when unset or empty", () => {
    assert.equal(buildRpcUrl("VITE_BASE_RPC_URL", "https://base.example.com/v2/key "), "https://base.example.com/v2/key");
    assert.equal(buildRpcUrl("VITE_BASE_RPC_URL", undefined), undefined);
    assert.equal(buildRpcUrl("VITE_BASE_RPC_URL", ""), undefined);
  });

  it("refuses anything but an http(s) URL, naming the variable", () => {
    assert.throws(() => buildRpcUrl("VITE_BASE_SEPOLIA_RPC_URL", "wss://base.example.com"), /VITE_BASE_SEPOLIA_RPC_URL is malformed: "wss:\/\/base.example.com" is not an http\(s\) URL/);
    assert.throws(() => buildRpcUrl("VITE_BASE_RPC_URL", "base.example.com"), /VITE_BASE_RPC_URL is malformed/);
  });
});
