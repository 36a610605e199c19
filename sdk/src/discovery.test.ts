import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { checkedRelayers, RelayerDiscoveryError, type RelayerCandidate } from "./discovery.ts";
import type { Deployment } from "./deployment.ts";

const deployment: Pick<Deployment, "chainId" | "contracts"> = {
  chainId: 84532,
  contracts: {
    SplitsLedger: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    ProviderRegistry: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    ComputeEscrow: "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
    RelayerDirectory: "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9",
  },
};
const SIGNER_A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const SIGNER_B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

/** A real HTTP server on 127.0.0.1 answering `GET /v1/relayer` as a relayer serving `escrow` with `signers`. */
async function relayerServer(escrow: string, signers: string[]): Promise<Server> {
  const about = {
    version: "0.1.0",
    chainId: deployment.chainId,
    contracts: { ComputeEscrow: escrow, ProviderRegistry: deployment.contracts.ProviderRegistry },
    gasAddress: SIGNER_A,
    receiptSigners: signers,
    settlement: { maxBatch: 100, maxAgeMs: 30_000, confirmations: 3, maxFeePerGasGwei: 50 },
  };
  const server = createServer((req, res) => {
    if (req.url === "/v1/relayer") res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(about));
    else res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: `no route ${req.url}`, type: "invalid_request_error", code: "not_found" } }));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}
const urlOf = (server: Server) => `http://127.0.0.1:${(server.address() as { port: number }).port}`;
const candidate = (url: string, signers: `0x${string}`[], providerIds: number[]): RelayerCandidate => ({ url, signers, providerIds });

describe("relayers found on-chain, checked with the relayers themselves", () => {
  let good: Server;
  let otherEscrow: Server;
  let dead: string;

  before(async () => {
    good = await relayerServer(deployment.contracts.ComputeEscrow, [SIGNER_A, SIGNER_B]);
    otherEscrow = await relayerServer("0x5FbDB2315678afecb367f032d93F642f64180aa3", [SIGNER_A]);
    const closed = await relayerServer(deployment.contracts.ComputeEscrow, []);
    dead = urlOf(closed);
    closed.close();
    await once(closed, "close");
  });

  after(async () => {
    for (const server of [good, otherEscrow]) {
      server.close();
      await once(server, "close");
    }
  });

  it("keeps, in their order, only the relayers that serve this deployment and sign for the signers that announced them", async () => {
    const candidates = [
      candidate(urlOf(otherEscrow), [SIGNER_A], [1, 2, 3]),
      candidate(dead, [SIGNER_A], [4, 5]),
      candidate(urlOf(good), [SIGNER_A], [6]),
      candidate(urlOf(good).replace("127.0.0.1", "localhost"), [SIGNER_B], [7]),
    ];
    const found = await checkedRelayers(candidates, deployment);
    assert.deepEqual(
      found.map((relayer) => [relayer.url, relayer.providerIds, relayer.about.receiptSigners]),
      [
        [urlOf(good), [6], [SIGNER_A, SIGNER_B]],
        [urlOf(good).replace("127.0.0.1", "localhost"), [7], [SIGNER_A, SIGNER_B]],
      ],
    );
  });

  it("says why each relayer was refused when none serves the deployment", async () => {
    const refused = checkedRelayers([candidate(urlOf(otherEscrow), [SIGNER_A], [1]), candidate(urlOf(good), ["0x90F79bf6EB2c4f870365E785982E1f101E93b906"], [2])], deployment);
    await assert.rejects(refused, (error: Error) => {
      assert.ok(error instanceof RelayerDiscoveryError);
      assert.equal(
        error.message,
        `no relayer announced for any active provider serves this deployment: ${urlOf(otherEscrow)} serves the escrow 0x5FbDB2315678afecb367f032d93F642f64180aa3 on chain 84532, not this deployment's ${deployment.contracts.ComputeEscrow} on chain 84532; ${urlOf(good)} does not sign for 0x90F79bf6EB2c4f870365E785982E1f101E93b906, which announced it`,
      );
      return true;
    });
    await assert.rejects(checkedRelayers([candidate(dead, [SIGNER_A], [1])], deployment), new RegExp(`^RelayerDiscoveryError: .*${dead} does not answer GET /v1/relayer as a relayer`));
  });

  it("says so when no relayer is announced at all", async () => {
    await assert.rejects(checkedRelayers([], deployment), { name: "RelayerDiscoveryError", message: "no relayer is announced in the RelayerDirectory for any active provider's receipt signer" });
  });
});

