/**
 * Settlement against a faulty RPC (issue 12 item 3 and its fault-injection test): a real Hardhat
 * node, seeded, behind `rpc-fault-proxy` (dropped broadcasts, lost replies, transactions not found
 * after broadcast, delayed receipts) and with reorgs made by `evm_snapshot`/`evm_revert`. The named
 * tests each reproduce one flaw of the old settlement path; the last kills the relayer process at
 * random points of settlement (kill -9, ≥ 20 times) and then checks the store against the escrow.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, beforeEach, describe, it } from "node:test";
import OpenAI from "openai";
import { createPublicClient, createTestClient, http, parseEventLogs, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import {
  AgentSession,
  computeEscrowAbi,
  escrowDomain,
  sessionIdOf,
  sessionTermsTypes,
  signDigest,
  toCompactSignature,
  voucherDigest,
  escrowDomainSeparator,
  INITIAL_STATE,
  type LocalStack,
  type SessionTerms,
} from "../../sdk/src/index.ts";
import { freePort, startSeededChain, type SeededChain } from "../../scripts/lib/local-stack.ts";
import { NO_FAULTS, startRpcFaultProxy, type RpcFaultProxy } from "../../scripts/lib/rpc-fault-proxy.ts";
import { startReferenceProvider, type ReferenceProvider } from "../../relayer/src/reference-provider/server.ts";
import { startRelayer, type Relayer, type RelayerOptions } from "../../relayer/src/server.ts";
import type { SqliteDatabase } from "../../relayer/src/store/sqlite.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const USDC = 1_000_000n;

describe("settlement under RPC faults", { timeout: 600_000 }, () => {
  let dir: string;
  let chain: SeededChain;
  let stack: LocalStack;
  let providers: ReferenceProvider[];
  let proxy: RpcFaultProxy;
  let client: ReturnType<typeof createPublicClient>;
  let testClient: ReturnType<typeof createTestClient>;
  const relayers: Relayer[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "agentmesh-faults-"));
    const providerPorts = [await freePort(), await freePort()];
    chain = await startSeededChain({ chainPort: await freePort(), providerPorts, demoAgentPort: await freePort(), localFile: path.join(dir, "local.json") });
    stack = chain.stack;
    providers = await Promise.all(providerPorts.map((port) => startReferenceProvider({ port })));
    proxy = await startRpcFaultProxy(chain.rpcUrl);
    client = createPublicClient({ chain: hardhat, transport: http(chain.rpcUrl) });
    testClient = createTestClient({ chain: hardhat, mode: "hardhat", transport: http(chain.rpcUrl) });
  });

  after(async () => {
    for (const relayer of relayers) await relayer.close().catch(() => undefined);
    await Promise.all((providers ?? []).map((provider) => provider.close()));
    await proxy?.close();
    await chain?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    Object.assign(proxy.faults, NO_FAULTS);
    await testClient.setAutomine(true);
  });

  /** A relayer in this process, on its own store, reaching the chain through the fault proxy. Settles only when a test asks. */
  async function launch(name: string, extra: Partial<RelayerOptions> = {}): Promise<Relayer> {
    const relayer = await startRelayer({
      port: 0,
      databasePath: path.join(dir, `${name}.db`),
      chain: {
        rpcUrl: proxy.url,
        chainId: stack.chainId,
        escrow: stack.contracts.ComputeEscrow,
        registry: stack.contracts.ProviderRegistry,
        relayerPrivateKey: stack.accounts.relayer.privateKey,
      },
      receiptSignerKeys: [stack.accounts.receiptSignerA.privateKey, stack.accounts.receiptSignerB.privateKey],
      settlement: { maxAgeMs: 3_600_000, pollMs: 3_600_000, retryBaseMs: 10 },
      healthProbeIntervalMs: 3_600_000,
      indexer: { startBlock: stack.startBlock, pollMs: 3_600_000 },
      ...extra,
    });
    relayers.push(relayer);
    await relayer.ready; // startRelayer returns at once; it serves once the chain answered and the index caught up
    return relayer;
  }

  const openSession = (relayer: Relayer, providerId = 1) =>
    AgentSession.open({
      relayerUrl: relayer.url,
      privateKey: stack.accounts.agent.privateKey,
      chainId: stack.chainId,
      escrow: stack.contracts.ComputeEscrow,
      budgetId: BigInt(stack.budgetId),
      providerId,
      model: "agentmesh-small",
      maxSpend: USDC / 10n,
      voucherFlushMs: 10 * 60_000,
    });
  /** One call, its receipt checked and its voucher signed and delivered. */
  async function ask(session: AgentSession) {
    await new OpenAI(session.openAIOptions()).chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: "Hi." }], max_tokens: 8 });
    await session.flushVoucher();
    return session.state();
  }
  const onChain = (id: Hex) => client.readContract({ address: stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getSession", args: [id] });
  const relayerNonce = (blockTag: "latest" | "pending" = "latest") => client.getTransactionCount({ address: stack.accounts.relayer.address as Address, blockTag });
  /** Settlement rows of `relayer` for session `id`: [status, error] per attempt. */
  const attempts = (relayer: Relayer, id: Hex) =>
    (
      (relayer.context.repo.database as SqliteDatabase).db
        .prepare("SELECT t.status, t.error FROM settlements t, json_each(t.items) i WHERE json_extract(i.value, '$.sessionId') = ? ORDER BY t.id")
        .all(id.toLowerCase()) as { status: string; error: string | null }[]
    ).map(({ status, error }) => [status, error]);
  /** Runs settlement passes (bounded) until `done`. */
  async function settleUntil(relayer: Relayer, done: () => boolean | Promise<boolean>, passes = 40) {
    for (let pass = 0; pass < passes && !(await done()); pass++) {
      await relayer.settlement.settleDue(true).catch(() => undefined);
      await sleep(100);
    }
    assert.ok(await done(), "settled within the passes allowed");
  }

  it("a broadcast whose follow-up lookup fails is recorded as sent, not failed, and settles once", async () => {
    const relayer = await launch("lookup-fails");
    const session = await openSession(relayer);
    const state = await ask(session);
    const nonce = await relayerNonce();
    proxy.faults.hideAfterBroadcastMs = 1_500; // a node behind the balancer that has not seen it yet
    await relayer.settlement.settleDue(true).catch(() => undefined);
    assert.ok(proxy.stats.hidden > 0, "the lookup after the broadcast found nothing");
    await settleUntil(relayer, async () => (await relayer.context.repo.getSession(session.sessionId))!.settledSequence === state.sequence);
    assert.deepEqual(attempts(relayer, session.sessionId), [["confirmed", null]], "one settlement, never recorded as failed");
    assert.equal(await relayerNonce(), nonce + 1, "one transaction");
    assert.equal((await onChain(session.sessionId)).settled, state.cumulativeCost);
  });

  it("never re-sends the vouchers of a batch that is still pending (the batch fallback)", async () => {
    const relayer = await launch("batch-pending");
    const sessions = [await openSession(relayer, 1), await openSession(relayer, 2)];
    const states = [await ask(sessions[0]), await ask(sessions[1])];
    const nonce = await relayerNonce();
    await testClient.setAutomine(false);
    proxy.faults.hideAfterBroadcastMs = 60_000; // the batch is in the pool, but lookups do not find it
    await relayer.settlement.settleDue(true).catch(() => undefined);
    await relayer.settlement.settleDue(true).catch(() => undefined);
    assert.equal(await relayerNonce("pending"), nonce + 1, "one transaction in the pool: the batch, not its vouchers again");
    proxy.faults.hideAfterBroadcastMs = 0;
    await testClient.mine({ blocks: 1 });
    await testClient.setAutomine(true);
    await settleUntil(relayer, async () => (await Promise.all(sessions.map((session) => relayer.context.repo.getSession(session.sessionId)))).every((record) => record!.settledSequence === 1));
    assert.equal(await relayerNonce(), nonce + 1);
    for (const [index, session] of sessions.entries()) assert.equal((await onChain(session.sessionId)).settled, states[index].cumulativeCost);
  });

  it("one dropped transaction blocks no later one: it is sent again and every settlement confirms", async () => {
    const relayer = await launch("dropped");
    const first = await openSession(relayer, 1);
    const second = await openSession(relayer, 2);
    const firstState = await ask(first);
    const nonce = await relayerNonce();
    proxy.faults.dropBroadcasts = 1; // the node never gets the first settlement
    await relayer.settlement.settleDue(true).catch(() => undefined);
    const secondState = await ask(second);
    await relayer.settlement.settleDue(true).catch(() => undefined);
    await settleUntil(relayer, async () => (await onChain(first.sessionId)).settled === firstState.cumulativeCost && (await onChain(second.sessionId)).settled === secondState.cumulativeCost);
    await settleUntil(relayer, async () => (await Promise.all([first, second].map((session) => relayer.context.repo.getSession(session.sessionId)))).every((record) => record!.settledSequence === 1));
    assert.equal(await relayerNonce(), nonce + 2, "two settlements, no nonce skipped or wasted");
  });

  it("counts a settlement confirmed only at the confirmation depth, and settles again one a reorg dropped", async () => {
    const relayer = await launch("reorg", { transactions: { confirmations: 2 } });
    // The open waits for its second block: blocks come while it does, as on a live chain.
    let opening = true;
    const mining = (async () => {
      while (opening) {
        await sleep(200);
        await testClient.mine({ blocks: 1 });
      }
    })();
    const session = await openSession(relayer).finally(() => (opening = false));
    await mining;
    const state = await ask(session);
    const snapshot = await testClient.snapshot();
    await relayer.settlement.settleDue(true);
    assert.equal((await onChain(session.sessionId)).settled, state.cumulativeCost, "mined, one block deep");
    assert.equal((await relayer.context.repo.getSession(session.sessionId))!.settledSequence, 0, "not yet counted as settled");
    await testClient.revert({ id: snapshot }); // the block that held it is gone
    assert.equal((await onChain(session.sessionId)).settled, 0n);
    await settleUntil(relayer, async () => (await onChain(session.sessionId)).settled === state.cumulativeCost);
    await testClient.mine({ blocks: 1 });
    await settleUntil(relayer, async () => (await relayer.context.repo.getSession(session.sessionId))!.settledSequence === 1);
    assert.deepEqual(attempts(relayer, session.sessionId), [["confirmed", null]]);
  });

  it("issue 12 §12: an open that mined while the relayer was down is known after restart, and its lock can be released", async () => {
    const relayer = await launch("open-crash");
    const agent = privateKeyToAccount(stack.accounts.agent.privateKey);
    const provider = (await (await fetch(`${relayer.url}/v1/providers/1`)).json()) as {
      receiptSigner: Address;
      minChargePerCall: number;
      feeBps: number;
      models: { id: number; name: string; inputPricePer1K: number; outputPricePer1K: number }[];
    };
    const model = provider.models.find(({ name }) => name === "agentmesh-small")!;
    const terms: SessionTerms = {
      agent: agent.address,
      budgetId: BigInt(stack.budgetId),
      providerId: 1,
      modelId: model.id,
      receiptSigner: provider.receiptSigner,
      inputPricePer1K: model.inputPricePer1K,
      outputPricePer1K: model.outputPricePer1K,
      minChargePerCall: provider.minChargePerCall,
      feeBps: provider.feeBps,
      maxSpend: USDC / 10n,
      deadline: Math.floor(Date.now() / 1000) + 86_400,
      salt: 4242n,
    };
    const signature = await agent.signTypedData({ domain: escrowDomain(stack.chainId, stack.contracts.ComputeEscrow), types: sessionTermsTypes, primaryType: "SessionTerms", message: terms });
    const budget = () => client.readContract({ address: stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getBudget", args: [BigInt(stack.budgetId)] });
    const availableBefore = (await budget()).available;

    await testClient.setAutomine(false);
    const nonce = await relayerNonce("pending");
    const opening = fetch(`${relayer.url}/v1/sessions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ terms, signature: toCompactSignature(signature) }, (_key, value) => (typeof value === "bigint" ? value.toString() : value)),
    }).catch((error: unknown) => error);
    while ((await relayerNonce("pending")) === nonce) await sleep(20); // the open is in the pool
    await relayer.close(); // the relayer stops before it sees it mined…
    await opening;
    await testClient.mine({ blocks: 1 }); // …and it mines while it is down
    await testClient.setAutomine(true);
    const sessionId = sessionIdOf(terms);
    assert.equal((await budget()).available, availableBefore - USDC / 10n, "the lock is taken");

    const restarted = await launch("open-crash");
    await settleUntil(restarted, async () => (await restarted.context.repo.getSession(sessionId)) !== undefined);
    // Known again: the agent closes it cooperatively (by signature, no API key) and the lock returns.
    const final = { ...INITIAL_STATE, sequence: 1, isFinal: true };
    const domainSeparator = escrowDomainSeparator(stack.chainId, stack.contracts.ComputeEscrow);
    const closeSignature = signDigest(stack.accounts.agent.privateKey, voucherDigest(domainSeparator, sessionId, final));
    const closed = await fetch(`${restarted.url}/v1/sessions/${sessionId}/close`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ signature: closeSignature }),
    });
    assert.equal(closed.status, 200, await closed.clone().text());
    assert.equal((await budget()).available, availableBefore, "the lock is back in the budget");
    assert.equal((await onChain(sessionId)).claimEnd, 1, "finalized");
  });

  it("kill -9 at random points of settlement (≥ 20 times): no signed voucher lost, none settled twice, every settlement confirmed", async () => {
    const localFile = path.join(dir, "faulty-local.json");
    const port = await freePort();
    const stackFile = JSON.parse(await readFile(path.join(dir, "local.json"), "utf8")) as LocalStack;
    await writeFile(localFile, JSON.stringify({ ...stackFile, rpcUrl: proxy.url }));
    const database = path.join(dir, "killed.db");
    let child: ChildProcess | undefined;
    const startChild = async () => {
      child = spawn(
        process.execPath,
        ["--disable-warning=ExperimentalWarning", "relayer/src/main.ts", "--local-file", localFile, "--port", String(port), "--db", database, "--settle-age-ms", "0"],
        { cwd: ROOT, stdio: ["ignore", "pipe", "ignore"] },
      );
      // It listens at once and prints "relayer ready" once it serves (the chain answered, the index caught up).
      const started = child;
      let output = "";
      const ready = new Promise<boolean>((resolve) => {
        started.stdout!.on("data", (chunk: Buffer) => {
          output += chunk.toString();
          if (output.includes("relayer ready")) resolve(true);
        });
        started.once("exit", () => resolve(false));
      });
      assert.ok(await ready, `the relayer started (${output})`);
    };
    const kill = async () => {
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await once(child, "exit");
    };
    const relayerUrl = `http://127.0.0.1:${port}`;
    const faults = [
      { dropBroadcasts: 1 },
      { failBroadcastReplies: 1 },
      { hideAfterBroadcastMs: 800 },
      { delayReceiptsMs: 1_500 },
      {},
    ];
    /** What the agent holds: its latest voucher the relayer acknowledged, per session. */
    const acknowledged = new Map<Hex, { sequence: number; cumulativeCost: bigint }>();
    const sessions: AgentSession[] = [];
    let kills = 0;
    let random = 12345;
    const next = () => (random = (random * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    try {
      await startChild();
      for (const providerId of [1, 2]) {
        sessions.push(
          await AgentSession.open({
            relayerUrl,
            privateKey: stack.accounts.agent.privateKey,
            chainId: stack.chainId,
            escrow: stack.contracts.ComputeEscrow,
            budgetId: BigInt(stack.budgetId),
            providerId,
            model: "agentmesh-small",
            maxSpend: USDC / 2n,
            voucherFlushMs: 10 * 60_000,
          }),
        );
      }
      while (kills < 20) {
        Object.assign(proxy.faults, NO_FAULTS, faults[kills % faults.length]);
        for (const session of sessions) {
          try {
            const state = await ask(session);
            acknowledged.set(session.sessionId, { sequence: state.sequence, cumulativeCost: state.cumulativeCost });
          } catch {
            // the relayer died under it: the SDK carries the voucher with its next call
          }
        }
        await sleep(Math.floor(next() * 1_000)); // into the settlement pass (every second, vouchers due at once)
        await kill();
        kills++;
        if (kills % 4 === 0 && kills < 20) {
          // Also during start-up, while it reconciles what the last run left in flight.
          const spawned = startChild().catch(() => undefined);
          await sleep(300 + Math.floor(next() * 1_200));
          await kill();
          await spawned;
          kills++;
        }
        await startChild();
      }
      Object.assign(proxy.faults, NO_FAULTS);
      // Each session's last voucher goes with one more call; then everything must settle.
      for (const session of sessions) {
        const state = await ask(session);
        acknowledged.set(session.sessionId, { sequence: state.sequence, cumulativeCost: state.cumulativeCost });
      }
      const deadline = Date.now() + 30_000;
      for (;;) {
        const settled = await Promise.all(sessions.map(async (session) => (await onChain(session.sessionId)).sequence));
        if (sessions.every((session, index) => settled[index] >= acknowledged.get(session.sessionId)!.sequence)) break;
        assert.ok(Date.now() < deadline, `every settlement confirmed (on-chain ${settled}, signed ${[...acknowledged.values()].map((a) => a.sequence)})`);
        await sleep(250);
      }
      await sleep(1_500); // a pass to record the last confirmations
    } finally {
      await kill();
    }
    assert.ok(kills >= 20);

    const db = new DatabaseSync(database, { readOnly: true });
    try {
      for (const session of sessions) {
        const row = db.prepare("SELECT sequence, signed_sequence, settled_sequence FROM sessions WHERE id = ?").get(session.sessionId.toLowerCase()) as Record<string, number>;
        const held = acknowledged.get(session.sessionId)!;
        const chainState = await onChain(session.sessionId);
        assert.ok(row.signed_sequence >= held.sequence, "no acknowledged voucher lost from the store");
        assert.equal(chainState.sequence, row.signed_sequence, "the escrow settled the latest signed voucher");
        assert.equal(chainState.settled, held.cumulativeCost, "and exactly what it says: nothing twice");
        assert.ok(row.sequence - row.signed_sequence <= 1, "at most one served call unsigned");
        assert.equal(row.settled_sequence, row.signed_sequence, "the store counts it settled");
      }
      const pending = db.prepare("SELECT COUNT(*) AS n FROM settlements WHERE status = 'pending'").get() as { n: number };
      assert.equal(pending.n, 0, "no settlement left pending");
    } finally {
      db.close();
    }
    // Each (session, sequence) was paid once: the escrow's settlement events.
    const logs = parseEventLogs({
      abi: computeEscrowAbi,
      eventName: "VoucherSettled",
      logs: await client.getLogs({ address: stack.contracts.ComputeEscrow, fromBlock: BigInt(stack.startBlock) }),
    });
    const paid = new Set<string>();
    for (const log of logs.filter(({ args }) => sessions.some((session) => session.sessionId === args.sessionId))) {
      const key = `${log.args.sessionId}:${log.args.sequence}`;
      assert.ok(!paid.has(key), `settled twice: ${key}`);
      paid.add(key);
    }
    assert.ok(paid.size >= 2);
  });
});
