import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { DeploymentFileError, loadDeployment, parseDeployment } from "./deployment.ts";

const valid = {
  chainId: 84532,
  startBlock: 12,
  usdc: "0x036cbd53842c5426634e7929541ec2318f3dcf7e",
  contracts: {
    SplitsLedger: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    ProviderRegistry: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    ComputeEscrow: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
  },
};

describe("deployment files", () => {
  it("checksums addresses of a valid deployment", () => {
    const deployment = parseDeployment(valid);
    assert.equal(deployment.usdc, "0x036CbD53842c5426634e7929541eC2318f3dCF7e");
    assert.equal(deployment.contracts.MockUSDC, undefined);
  });

  it("names every bad field", () => {
    assert.throws(
      () => parseDeployment({ ...valid, chainId: -1, contracts: { ...valid.contracts, ComputeEscrow: "0x12" } }),
      (error: unknown) =>
        error instanceof DeploymentFileError &&
        error.message.includes("chainId") &&
        error.message.includes("contracts.ComputeEscrow"),
    );
  });

  it("reads a file and reports unreadable or non-JSON files", async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), "agentmesh-deployment-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const good = path.join(dir, "good.json");
    const bad = path.join(dir, "bad.json");
    await writeFile(good, JSON.stringify(valid));
    await writeFile(bad, "{not json");
    assert.equal((await loadDeployment(good)).startBlock, 12);
    await assert.rejects(loadDeployment(bad), /is not JSON/);
    await assert.rejects(loadDeployment(path.join(dir, "missing.json")), /cannot be read/);
  });
});
