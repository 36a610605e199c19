import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigFileError, parseAppConfig } from "./config.ts";

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
});
