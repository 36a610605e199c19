/**
 * The RelayerDirectory announcer (issue 13): it announces each receipt signer's URL once, never
 * queues a second announcement behind one still in flight, and sends nothing while the gas account
 * cannot pay. The chain here is a stand-in for the few calls the announcer makes; the real
 * contract and transaction manager are exercised end to end in test/e2e.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeFunctionData, recoverTypedDataAddress, type Address, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { announcementTypes, directoryDomain, relayerDirectoryAbi } from "@agentmesh/sdk";
import { DirectoryAnnouncer, type DirectoryAnnouncerDeps } from "../src/directory-announcer.ts";
import { TxPendingError, type TxOutcome, type TxRequest } from "../src/tx-manager.ts";
import type { ReadinessProblem } from "../src/readiness.ts";

const DIRECTORY: Address = "0x00000000000000000000000000000000000000d1";
const URL = "https://relayer.example";

/** A directory and transaction manager that record what is sent; `mine` decides each wait's outcome. */
function fakeChain() {
  const entries = new Map<Address, string>();
  const nonces = new Map<Address, bigint>();
  const sent: TxRequest[] = [];
  const outcomes = new Map<number, TxOutcome>();
  let mine: "confirm" | "hold" = "confirm";
  const chain = {
    chainId: 84_532,
    publicClient: {
      readContract: async ({ functionName, args }: { functionName: "relayerUrl" | "nonces"; args: [Address] }) =>
        functionName === "relayerUrl" ? (entries.get(args[0]) ?? "") : (nonces.get(args[0]) ?? 0n),
      getBlock: async () => ({ timestamp: 1_000n }),
    },
    transactions: {
      send: async (_purpose: string, request: TxRequest) => {
        sent.push(request);
        return { id: sent.length, nonce: sent.length - 1, hash: `0x${String(sent.length).padStart(64, "0")}` as Hex };
      },
      wait: async (id: number) => {
        if (mine === "hold") throw new TxPendingError(id, "0x01", "still in flight");
        const { args } = decodeFunctionData({ abi: relayerDirectoryAbi, data: sent[id - 1].data });
        const [signer, url] = args as unknown as [Address, string];
        entries.set(signer, url);
        nonces.set(signer, (nonces.get(signer) ?? 0n) + 1n);
        const outcome: TxOutcome = { status: "confirmed", hash: "0x02", blockNumber: 1 };
        outcomes.set(id, outcome);
        return outcome;
      },
      outcomeOf: (id: number) => outcomes.get(id),
      get: (id: number) => ({ hashes: [`0x${String(id).padStart(64, "0")}`] }),
    },
  };
  return { chain, entries, sent, setMining: (mode: "confirm" | "hold") => (mine = mode) };
}

function readiness(gasProblem = false) {
  const state = { directory: undefined as string | undefined, gasProblem };
  return {
    state,
    directoryChecked: (problem: string | undefined) => void (state.directory = problem),
    problems: (): ReadinessProblem[] => (state.gasProblem ? [{ check: "gas", message: "no ETH" }] : []),
  };
}

function announcer(chain: ReturnType<typeof fakeChain>["chain"], ready: ReturnType<typeof readiness>, keys: Hex[]) {
  return new DirectoryAnnouncer({ chain: chain as unknown as DirectoryAnnouncerDeps["chain"], directory: DIRECTORY, signerKeys: keys, url: URL, readiness: ready });
}

describe("directory announcer", () => {
  it("announces each signer's URL with the signer's own signature, once", async () => {
    const fake = fakeChain();
    const ready = readiness();
    const keys = [generatePrivateKey(), generatePrivateKey()];
    const signers = keys.map((key) => privateKeyToAccount(key).address);
    const subject = announcer(fake.chain, ready, keys);
    await subject.announce();
    assert.equal(fake.sent.length, 2);
    for (const [index, request] of fake.sent.entries()) {
      assert.equal(request.to, DIRECTORY);
      const { functionName, args } = decodeFunctionData({ abi: relayerDirectoryAbi, data: request.data });
      const [signer, url, deadline, signature] = args as unknown as [Address, string, bigint, Hex];
      assert.deepEqual([functionName, signer, url, deadline], ["announceWithSignature", signers[index], URL, 4_600n]);
      const recovered = await recoverTypedDataAddress({
        domain: directoryDomain(84_532, DIRECTORY),
        types: announcementTypes,
        primaryType: "Announcement",
        message: { signer, url, nonce: 0n, deadline },
        signature,
      });
      assert.equal(recovered, signers[index]);
    }
    assert.deepEqual(signers.map((signer) => fake.entries.get(signer)), [URL, URL]);
    assert.equal(ready.state.directory, undefined);
    // The entries point here now: a later pass only reads.
    await subject.announce();
    assert.equal(fake.sent.length, 2);
  });

  it("never sends a second announcement while the first is in flight, and says so", async () => {
    const fake = fakeChain();
    const ready = readiness();
    const key = generatePrivateKey();
    const subject = announcer(fake.chain, ready, [key]);
    fake.setMining("hold");
    await subject.announce();
    await subject.announce();
    assert.equal(fake.sent.length, 1, "one announcement, however many passes");
    assert.match(ready.state.directory ?? "", new RegExp(`^the directory does not point receipt signer ${privateKeyToAccount(key).address} at ${URL}: its announcement \\(transaction 0x0+1\\) is not mined yet$`));
  });

  it("sends nothing while the gas account cannot pay, and announces once it can", async () => {
    const fake = fakeChain();
    const ready = readiness(true);
    const subject = announcer(fake.chain, ready, [generatePrivateKey()]);
    await subject.announce();
    assert.equal(fake.sent.length, 0);
    assert.match(ready.state.directory ?? "", /: waiting for the gas account to be able to pay$/);
    ready.state.gasProblem = false;
    await subject.announce();
    assert.equal(fake.sent.length, 1);
    assert.equal(ready.state.directory, undefined);
  });
});
