/**
 * The transaction manager against a real Hardhat node (no contracts: plain transfers), behind the
 * fault-injecting RPC proxy: nonces, re-broadcast of dropped transactions, fee-bumped replacement,
 * confirmation depth, reorgs, nonces taken by another transaction, and restarts.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createRequire } from "node:module";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, beforeEach, describe, it } from "node:test";
import { createPublicClient, createTestClient, createWalletClient, http, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { openSqlite } from "../src/store/sqlite.ts";
import { Repository } from "../src/store/repository.ts";
import { TxManager, TxPendingError, txManagerOptions, type TxManagerOptions } from "../src/tx-manager.ts";
import { freePort } from "../../scripts/lib/local-stack.ts";
import { NO_FAULTS, startRpcFaultProxy, type RpcFaultProxy } from "../../scripts/lib/rpc-fault-proxy.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const hardhatCli = path.join(path.dirname(createRequire(import.meta.url).resolve("hardhat/package.json")), "dist/src/cli.js");
/** Hardhat's first development account: funds the test accounts. */
const FUNDER = privateKeyToAccount("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
const SINK = "0x000000000000000000000000000000000000dEaD";

describe("transaction manager", { timeout: 120_000 }, () => {
  let node: ChildProcess;
  let nodeUrl: string;
  let proxy: RpcFaultProxy;
  let direct: PublicClient;
  let testClient: ReturnType<typeof createTestClient>;
  const started: TxManager[] = [];

  before(async () => {
    const port = await freePort();
    nodeUrl = `http://127.0.0.1:${port}`;
    node = spawn(process.execPath, [hardhatCli, "node", "--hostname", "127.0.0.1", "--port", String(port)], { cwd: ROOT, stdio: "ignore" });
    direct = createPublicClient({ chain: hardhat, transport: http(nodeUrl) });
    for (let attempt = 0; ; attempt++) {
      try {
        await direct.getChainId();
        break;
      } catch (error) {
        if (attempt > 300) throw error;
        await sleep(100);
      }
    }
    testClient = createTestClient({ chain: hardhat, mode: "hardhat", transport: http(nodeUrl) });
    proxy = await startRpcFaultProxy(nodeUrl);
  });

  after(async () => {
    for (const manager of started) await manager.stop();
    await proxy?.close();
    node?.kill("SIGTERM");
    if (node && node.exitCode === null) await once(node, "exit");
  });

  beforeEach(async () => {
    Object.assign(proxy.faults, NO_FAULTS);
    await testClient.setAutomine(true);
  });

  /** A funded fresh account and a manager for it on a fresh store (`file`: a store to reuse). */
  async function manager(options: Partial<TxManagerOptions> = {}, key: Hex = generatePrivateKey(), repo = new Repository(openSqlite(":memory:"))) {
    const account = privateKeyToAccount(key);
    if ((await direct.getBalance({ address: account.address })) === 0n) {
      const funder = createWalletClient({ chain: hardhat, transport: http(nodeUrl), account: FUNDER });
      await direct.waitForTransactionReceipt({ hash: await funder.sendTransaction({ to: account.address, value: 10n ** 20n }) });
    }
    const publicClient = createPublicClient({ chain: hardhat, transport: http(proxy.url, { retryCount: 0 }) }) as PublicClient;
    const txManager = new TxManager(repo, { chainId: hardhat.id, publicClient, account }, txManagerOptions({ pollMs: 3_600_000, ...options }, hardhat.id));
    await txManager.start();
    started.push(txManager);
    return { txManager, account, key, repo };
  }
  const transfer = (value = 1n) => ({ to: SINK as Hex, data: "0x" as Hex, value });
  const nonceOf = (address: Hex) => direct.getTransactionCount({ address });

  it("counts a broadcast whose reply was lost, or that a lagging node cannot find yet, as sent: it confirms, never fails", async () => {
    const { txManager, account } = await manager();
    proxy.faults.failBroadcastReplies = 1;
    proxy.faults.hideAfterBroadcastMs = 1_500;
    const sent = await txManager.send("test", transfer());
    assert.equal((await txManager.get(sent.id))?.status, "pending");
    await txManager.poll();
    assert.equal((await txManager.get(sent.id))?.status, "pending", "not found yet is not failed");
    await sleep(1_600);
    await txManager.poll();
    assert.deepEqual(await txManager.wait(sent.id, 1), { status: "confirmed", hash: sent.hash, blockNumber: Number((await direct.getTransactionReceipt({ hash: sent.hash })).blockNumber) });
    assert.equal(await nonceOf(account.address), 1);
  });

  it("re-broadcasts a dropped transaction, so it confirms and the nonces after it are not blocked", async () => {
    const { txManager, account } = await manager();
    proxy.faults.dropBroadcasts = 1;
    const first = await txManager.send("test", transfer());
    const second = await txManager.send("test", transfer(2n));
    assert.deepEqual([first.nonce, second.nonce], [0, 1]);
    assert.equal(proxy.stats.dropped >= 1, true);
    assert.equal(await nonceOf(account.address), 0, "the dropped one holds up the next at the node");
    await txManager.poll(); // re-broadcasts the first; the node then mines both
    await txManager.poll();
    assert.equal((await txManager.wait(first.id, 1)).status, "confirmed");
    assert.equal((await txManager.wait(second.id, 1)).status, "confirmed");
    assert.equal(await nonceOf(account.address), 2);
  });

  it("replaces a stuck transaction at the same nonce with fees bumped by at least the node's minimum, never above the cap", async () => {
    const { txManager, account } = await manager({ stuckAfterMs: 1, bumpPercent: 15, maxFeePerGas: 60_000_000_000n });
    await testClient.setAutomine(false);
    const sent = await txManager.send("test", transfer());
    const first = await direct.getTransaction({ hash: sent.hash });
    await sleep(5);
    await txManager.poll(); // stuck: replaced
    const record = (await txManager.get(sent.id))!;
    assert.equal(record.hashes.length, 2);
    const replacement = await direct.getTransaction({ hash: record.hashes[1] });
    assert.equal(replacement.nonce, first.nonce);
    assert.ok(replacement.maxFeePerGas! * 100n >= first.maxFeePerGas! * 115n, `${replacement.maxFeePerGas} ≥ 1.15 × ${first.maxFeePerGas}`);
    assert.ok(replacement.maxPriorityFeePerGas! * 100n >= first.maxPriorityFeePerGas! * 115n);
    // Bumped until the cap leaves no room for another valid replacement: then it only re-broadcasts.
    for (let pass = 0; pass < 40; pass++) {
      await sleep(2);
      await txManager.poll();
    }
    const hashes = (await txManager.get(sent.id))!.hashes;
    const last = await direct.getTransaction({ hash: hashes.at(-1)! });
    assert.ok(last.maxFeePerGas! <= 60_000_000_000n, `capped: ${last.maxFeePerGas}`);
    assert.ok(hashes.length < 40, "stops bumping at the cap");
    await testClient.mine({ blocks: 1 });
    await txManager.poll();
    const outcome = await txManager.wait(sent.id, 1);
    assert.equal(outcome.status, "confirmed");
    assert.equal(outcome.hash, hashes.at(-1), "the replacement mined");
    assert.equal(await nonceOf(account.address), 1);
  });

  it("counts a transaction confirmed only at the confirmation depth, and sends again one a reorg dropped", async () => {
    const { txManager } = await manager({ confirmations: 3 });
    await testClient.setAutomine(false);
    const snapshot = await testClient.snapshot();
    const sent = await txManager.send("test", transfer());
    await testClient.mine({ blocks: 1 });
    await txManager.poll();
    assert.equal((await txManager.get(sent.id))?.status, "mined", "one block deep: not yet");
    await assert.rejects(txManager.wait(sent.id, 10), TxPendingError);
    // A reorg: the chain goes back before the block that held it.
    await testClient.revert({ id: snapshot });
    await txManager.poll();
    assert.equal((await txManager.get(sent.id))?.status, "pending", "its receipt is gone: pending again");
    assert.equal((await direct.getTransaction({ hash: sent.hash })).blockNumber, null, "sent again, waiting in the pool");
    await testClient.mine({ blocks: 1 });
    await txManager.poll();
    assert.equal((await txManager.get(sent.id))?.status, "mined");
    await testClient.mine({ blocks: 2 });
    await txManager.poll();
    assert.equal((await txManager.wait(sent.id, 1)).status, "confirmed");
  });

  it("reports a transaction whose nonce another transaction took as replaced (its outcome is for the caller to read from the chain)", async () => {
    const { txManager, account, key } = await manager({ replacedAfterPasses: 2 });
    proxy.faults.dropBroadcasts = 1;
    const sent = await txManager.send("test", transfer());
    // The same key sends another transaction at that nonce, behind the manager's back.
    const other = createWalletClient({ chain: hardhat, transport: http(nodeUrl), account: privateKeyToAccount(key) });
    await direct.waitForTransactionReceipt({ hash: await other.sendTransaction({ to: SINK, value: 5n, nonce: sent.nonce }) });
    await txManager.poll();
    assert.equal((await txManager.get(sent.id))?.status, "pending", "a lagging node may still show ours");
    await txManager.poll();
    assert.deepEqual(await txManager.wait(sent.id, 1), { status: "replaced", hash: null, blockNumber: null });
    assert.equal(await nonceOf(account.address), 1);
  });

  it("never calls its own mined transaction replaced while the node hides its receipt: the block that used the nonce holds it", async () => {
    const { txManager } = await manager({ replacedAfterPasses: 2 });
    proxy.faults.hideAfterBroadcastMs = 2_000; // mined at once (automine), its receipt not found for a while
    const sent = await txManager.send("test", transfer());
    for (let pass = 0; pass < 4; pass++) await txManager.poll();
    assert.equal((await txManager.get(sent.id))?.status, "pending", "the nonce is used, by our own transaction");
    proxy.faults.hideAfterBroadcastMs = 0;
    assert.deepEqual(await txManager.wait(sent.id, 5_000), { status: "confirmed", hash: sent.hash, blockNumber: Number((await direct.getTransactionReceipt({ hash: sent.hash })).blockNumber) });
  });

  it("takes the next nonce after one another sender used since its start (a second process on the key): its send is not replaced", async () => {
    const { txManager, account, key } = await manager();
    const other = createWalletClient({ chain: hardhat, transport: http(nodeUrl), account: privateKeyToAccount(key) });
    await direct.waitForTransactionReceipt({ hash: await other.sendTransaction({ to: SINK, value: 5n }) });
    const sent = await txManager.send("test", transfer());
    assert.equal(sent.nonce, 1);
    assert.equal((await txManager.wait(sent.id, 5_000)).status, "confirmed");
    assert.equal(await nonceOf(account.address), 2);
  });

  it("resumes its nonces after a restart from its store and the chain, and re-sends what it had not broadcast", async () => {
    const repo = new Repository(openSqlite(":memory:"));
    const { txManager, account, key } = await manager({}, generatePrivateKey(), repo);
    await testClient.setAutomine(false);
    proxy.faults.dropBroadcasts = 2; // as if it died before either broadcast reached the node
    const first = await txManager.send("test", transfer());
    const second = await txManager.send("test", transfer());
    await txManager.stop();
    assert.equal(await direct.getTransactionCount({ address: account.address, blockTag: "pending" }), 0, "the node has neither");

    const restarted = await manager({}, key, repo); // start() re-broadcasts both
    const third = await restarted.txManager.send("test", transfer());
    assert.deepEqual([first.nonce, second.nonce, third.nonce], [0, 1, 2], "no nonce reused or skipped");
    await testClient.mine({ blocks: 1 });
    await restarted.txManager.poll();
    for (const { id } of [first, second, third]) assert.equal((await restarted.txManager.wait(id, 1)).status, "confirmed");

    // Nonces used outside the manager (another process with the key) move its next one on.
    const outside = createWalletClient({ chain: hardhat, transport: http(nodeUrl), account: privateKeyToAccount(key) });
    await testClient.setAutomine(true);
    await outside.sendTransaction({ to: SINK, value: 1n, nonce: 3 });
    const again = await manager({}, key, repo);
    assert.equal((await again.txManager.send("test", transfer())).nonce, 4);
  });
});
