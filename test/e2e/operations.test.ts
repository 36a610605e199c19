/**
 * Operations (issue 12 §12), on the real local chain: the relayer starts while the RPC is down and
 * reports not ready until it has caught up; the indexer adapts its getLogs range to an RPC that
 * refuses large ones and bounds its parallel reads; shutdown drains calls in flight and settles the
 * signed vouchers; and the index follows a reorg (by block hash) back to the common ancestor.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { DatabaseSync } from "node:sqlite";
import OpenAI from "openai";
import { createPublicClient, createTestClient, createWalletClient, http, toFunctionSelector, type Address, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { AgentSession, computeEscrowAbi, relayerDirectoryAbi } from "../../sdk/src/index.ts";
import { freePort, startLocalStack, type RunningStack } from "../../scripts/lib/local-stack.ts";
import { startRelayer, type Relayer, type RelayerOptions } from "../../relayer/src/server.ts";

const USDC = 1_000_000n;
const GET_SESSION = toFunctionSelector("getSession(bytes32)");

/**
 * A JSON-RPC proxy in front of the chain, as a hosted RPC behaves: it refuses getLogs over more than
 * `maxLogsRange` blocks (EIP-1474 -32005), and counts the getSession reads in flight at once. It
 * listens only once `up()` is called (before, the port refuses connections: the RPC is down).
 */
function rpcProxy(target: string, port: number, maxLogsRange: number) {
  const counts = { refusedGetLogs: 0, sessionReadsInFlight: 0, maxSessionReadsInFlight: 0 };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    const calls = [JSON.parse(body)].flat() as { id: number; method: string; params: unknown[] }[];
    const getLogs = calls.find((call) => call.method === "eth_getLogs");
    if (getLogs !== undefined) {
      const { fromBlock, toBlock } = getLogs.params[0] as { fromBlock: Hex; toBlock: Hex };
      if (Number(toBlock) - Number(fromBlock) + 1 > maxLogsRange) {
        counts.refusedGetLogs++;
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ jsonrpc: "2.0", id: getLogs.id, error: { code: -32005, message: `query exceeds max block range ${maxLogsRange}` } }));
        return;
      }
    }
    const sessionReads = calls.filter((call) => call.method === "eth_call" && String((call.params[0] as { data?: string }).data).startsWith(GET_SESSION)).length;
    counts.sessionReadsInFlight += sessionReads;
    counts.maxSessionReadsInFlight = Math.max(counts.maxSessionReadsInFlight, counts.sessionReadsInFlight);
    try {
      const answer = await fetch(target, { method: "POST", headers: { "content-type": "application/json" }, body });
      res.writeHead(answer.status, { "content-type": "application/json" });
      res.end(await answer.text());
    } finally {
      counts.sessionReadsInFlight -= sessionReads;
    }
  });
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    async up() {
      server.listen(port, "127.0.0.1");
      await once(server, "listening");
    },
    async close() {
      if (!server.listening) return;
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Whether a new TCP connection to `port` on 127.0.0.1 is refused. */
function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"));
  });
}

describe("operations: start-up, shutdown, reorgs", { timeout: 300_000 }, () => {
  let running: RunningStack;
  let dir: string;
  let client: ReturnType<typeof createPublicClient>;
  let testClient: ReturnType<typeof createTestClient>;
  const extra: { close(): Promise<void> }[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "agentmesh-ops-"));
    running = await startLocalStack({
      localFile: path.join(dir, "local.json"),
      // Settlement only at shutdown or when a test asks; no probes or payouts in between.
      settlement: { maxAgeMs: 3_600_000, pollMs: 3_600_000 },
      healthProbeIntervalMs: 3_600_000,
      payoutIntervalMs: 3_600_000,
      providerOptions: { tokensPerSecond: 50 },
    });
    client = createPublicClient({ chain: hardhat, transport: http(running.stack.rpcUrl) });
    testClient = createTestClient({ chain: hardhat, mode: "hardhat", transport: http(running.stack.rpcUrl) });
  });

  after(async () => {
    for (const service of extra.reverse()) await service.close();
    await running?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Options of another relayer on the stack's chain, with its own store. */
  function relayerOptions(name: string, rpcUrl = running.stack.rpcUrl, overrides: Partial<RelayerOptions> = {}): RelayerOptions {
    const { stack } = running;
    return {
      port: 0,
      databasePath: path.join(dir, `${name}.db`),
      chain: {
        rpcUrl,
        chainId: stack.chainId,
        escrow: stack.contracts.ComputeEscrow,
        registry: stack.contracts.ProviderRegistry,
        relayerPrivateKey: stack.accounts.relayer.privateKey,
      },
      receiptSignerKeys: [stack.accounts.receiptSignerA.privateKey, stack.accounts.receiptSignerB.privateKey],
      settlement: { maxAgeMs: 3_600_000, pollMs: 3_600_000 },
      healthProbeIntervalMs: 3_600_000,
      indexer: { startBlock: stack.startBlock },
      ...overrides,
    };
  }

  const confirm = async (hash: Hex) => assert.equal((await client.waitForTransactionReceipt({ hash })).status, "success");
  const creator = () => createWalletClient({ chain: hardhat, transport: http(running.stack.rpcUrl), account: privateKeyToAccount(running.stack.accounts.creator.privateKey) });

  /** A new agent key, whitelisted on the seeded budget. */
  async function freshAgent(): Promise<Hex> {
    const key = generatePrivateKey();
    const { stack } = running;
    await confirm(
      await creator().writeContract({
        address: stack.contracts.ComputeEscrow,
        abi: computeEscrowAbi,
        functionName: "setAgentsAllowed",
        args: [BigInt(stack.budgetId), [privateKeyToAccount(key).address], true],
      }),
    );
    return key;
  }

  function openSession(relayerUrl: string, agentKey: Hex, maxSpend = 1n * USDC) {
    const { stack } = running;
    return AgentSession.open({
      relayerUrl,
      privateKey: agentKey,
      chainId: stack.chainId,
      escrow: stack.contracts.ComputeEscrow,
      budgetId: BigInt(stack.budgetId),
      providerId: 1,
      model: "agentmesh-small",
      maxSpend,
      voucherFlushMs: 10 * 60_000,
    });
  }

  async function ask(session: AgentSession) {
    const completion = await new OpenAI(session.openAIOptions()).chat.completions.create({
      model: "agentmesh-small",
      messages: [{ role: "user", content: "Say something." }],
      max_tokens: 8,
    });
    await session.flushVoucher();
    return completion as typeof completion & { receipt: { sequence: number; cost: string } };
  }

  const onChainSession = (id: Hex) =>
    client.readContract({ address: running.stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getSession", args: [id] });

  it("issue 12 §12: shutdown drains a streaming call in flight (it completes with its receipt) and settles the signed vouchers", async () => {
    const relayer = await startRelayer(relayerOptions("drain"));
    await relayer.ready;
    const session = await openSession(relayer.url, await freshAgent());
    const first = await ask(session);
    assert.equal(first.receipt.sequence, 1);
    assert.equal((await onChainSession(session.sessionId)).sequence, 0, "nothing settled before the shutdown");

    const stream = await new OpenAI(session.openAIOptions()).chat.completions.create({
      model: "agentmesh-small",
      messages: [{ role: "user", content: "Tell a long story." }],
      max_tokens: 60,
      stream: true,
    });
    const chunks = stream[Symbol.asyncIterator]();
    const firstChunk = await chunks.next();
    assert.equal(firstChunk.done, false);
    // Shutdown begins mid-stream.
    const closing = relayer.close();
    let text = firstChunk.value?.choices[0]?.delta?.content ?? "";
    let refusedMidStream: boolean | undefined;
    for (let chunk = await chunks.next(); !chunk.done; chunk = await chunks.next()) {
      text += chunk.value.choices[0]?.delta?.content ?? "";
      refusedMidStream ??= await refusesConnections(relayer.port);
    }
    assert.equal(refusedMidStream, true, "new connections are refused while the call drains");
    assert.ok(text.length > 0);
    // The stream ended with its receipt, which the SDK checked and signed.
    const state = await session.state();
    assert.equal(state.sequence, 2);
    await closing;
    // The agent's voucher for call 2 cannot reach the closed relayer (it would go with its next call).
    await assert.rejects(session.flushVoucher());
    // The voucher the agent had sent (call 1) was settled on the way out.
    const onChain = await onChainSession(session.sessionId);
    assert.equal(onChain.sequence, 1);
    assert.equal(onChain.settled, BigInt(first.receipt.cost));
    const store = new DatabaseSync(path.join(dir, "drain.db"), { readOnly: true });
    try {
      const row = store.prepare("SELECT settled_sequence, signed_sequence FROM sessions WHERE id = ?").get(session.sessionId.toLowerCase()) as Record<string, number>;
      assert.deepEqual({ ...row }, { settled_sequence: 1, signed_sequence: 1 });
      const receipts = store.prepare("SELECT COUNT(*) AS n FROM receipts WHERE session_id = ?").get(session.sessionId.toLowerCase()) as { n: number };
      assert.equal(receipts.n, 2, "the drained call was recorded with its receipt");
    } finally {
      store.close();
    }
  });

  it("issue 13: a relayer whose gas account cannot pay for a settlement reports not ready, naming the account, and announces nothing", async () => {
    const { stack } = running;
    const emptyGasKey = generatePrivateKey(); // no ETH
    const base = relayerOptions("empty-gas");
    const directory = stack.contracts.RelayerDirectory!;
    const entryOf = (signer: Address) => client.readContract({ address: directory, abi: relayerDirectoryAbi, functionName: "relayerUrl", args: [signer] });
    const relayer: Relayer = await startRelayer({
      ...base,
      chain: { ...base.chain, relayerPrivateKey: emptyGasKey, directory },
      publicUrl: "https://moved.example",
    });
    extra.push(relayer);
    await relayer.ready;
    const answer = await fetch(`${relayer.url}/readyz`);
    assert.equal(answer.status, 503);
    const { problems } = (await answer.json()) as { problems: { check: string; message: string }[] };
    assert.deepEqual(problems.map((problem) => problem.check), ["gas", "directory"]);
    assert.match(problems[0].message, new RegExp(`^the gas account ${privateKeyToAccount(emptyGasKey).address} holds 0 ETH; a settlement needs about [0-9.]+ ETH \\(110000 gas at [0-9.]+ gwei\\)$`));
    assert.equal(
      problems[1].message,
      [stack.accounts.receiptSignerA.address, stack.accounts.receiptSignerB.address]
        .map((signer) => `the directory does not point receipt signer ${signer} at https://moved.example: waiting for the gas account to be able to pay`)
        .join("; "),
    );
    // Nothing was sent: the entries still name the stack's relayer, and the empty account has no nonce used.
    assert.equal(await entryOf(stack.accounts.receiptSignerA.address), running.relayer.url);
    assert.equal(await client.getTransactionCount({ address: privateKeyToAccount(emptyGasKey).address }), 0);
  });

  it("issue 12 §12: the relayer process reports ready, and on SIGTERM drains and exits 0", async () => {
    const port = await freePort();
    const child = spawn(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", "relayer/src/main.ts", "--local-file", running.localFile, "--port", String(port), "--db", path.join(dir, "process.db")],
      { cwd: path.resolve(import.meta.dirname, "../.."), stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, "exit") as Promise<[number | null, string | null]>;
    try {
      // Bounded wait for readiness (the process prints it).
      for (let attempt = 0; attempt < 600 && !output.includes("relayer ready"); attempt++) await new Promise((resolve) => setTimeout(resolve, 100));
      assert.match(output, /relayer ready/);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.equal(ready.status, 200);
      assert.equal(((await ready.json()) as { status: string }).status, "ready");
    } finally {
      child.kill("SIGTERM");
    }
    assert.deepEqual(await exited, [0, null], output);
  });

  it("issue 12 §12: start-up with the RPC down listens and reports not ready; once the RPC is up it catches up (adaptive getLogs range, bounded reads) and serves", async () => {
    // Sessions opened in consecutive blocks: one indexed range names several of them.
    const agentKey = await freshAgent();
    const opened = [];
    for (let index = 0; index < 6; index++) opened.push(await openSession(running.relayer.url, agentKey, USDC / 10n));

    const proxy = rpcProxy(running.stack.rpcUrl, await freePort(), 8);
    extra.push(proxy);
    // Before the fix, startRelayer rejected here: it read the chain id and caught up before listening.
    const relayer: Relayer = await startRelayer(relayerOptions("startup", proxy.url, { indexer: { startBlock: running.stack.startBlock, maxRange: 1_000, readConcurrency: 2 } }));
    extra.push(relayer);
    const health = await fetch(`${relayer.url}/healthz`);
    assert.equal(health.status, 200, "liveness stays 200");
    const notReady = await fetch(`${relayer.url}/readyz`);
    assert.equal(notReady.status, 503);
    const problems = ((await notReady.json()) as { problems: { check: string; message: string; behindBlocks?: number | null }[] }).problems;
    assert.deepEqual(problems.map((problem) => problem.check).sort(), ["indexer", "rpc"]);
    assert.match(problems.find((problem) => problem.check === "rpc")!.message, /the chain's RPC (failed|has not answered)/);
    assert.equal(problems.find((problem) => problem.check === "indexer")!.behindBlocks, null);
    for (const [route, body] of [
      ["/v1/chat/completions", { model: "agentmesh-small", messages: [{ role: "user", content: "hi" }] }],
      ["/v1/sessions", {}],
    ] as const) {
      const refused = await fetch(`${relayer.url}${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      assert.equal(refused.status, 503, route);
      assert.equal(refused.headers.get("retry-after"), "5");
      assert.equal(((await refused.json()) as { error: { code: string } }).error.code, "relayer_not_ready");
    }

    await proxy.up();
    await relayer.ready;
    const ready = await fetch(`${relayer.url}/readyz`);
    assert.equal(ready.status, 200);
    const head = Number(await client.getBlockNumber());
    assert.deepEqual(await ready.json(), { status: "ready", chainId: running.stack.chainId, indexedBlock: head, problems: [] });
    // The index matches the stack relayer's, built with whole ranges.
    await running.relayer.indexer.catchUp();
    for (const session of opened) {
      assert.deepEqual(await relayer.context.chainIndex.session(session.sessionId), await running.relayer.context.chainIndex.session(session.sessionId));
    }
    assert.deepEqual(await relayer.context.chainIndex.providers(), await running.relayer.context.chainIndex.providers());
    assert.ok(proxy.counts.refusedGetLogs > 0, "the RPC refused the first ranges");
    assert.ok(proxy.counts.maxSessionReadsInFlight >= 1);
    assert.ok(proxy.counts.maxSessionReadsInFlight <= 2, `at most readConcurrency session reads at once, saw ${proxy.counts.maxSessionReadsInFlight}`);
    // And it serves: a session opens and a call is answered.
    const session = await openSession(relayer.url, agentKey, USDC / 10n);
    assert.equal((await ask(session)).receipt.sequence, 1);
  });

  it("issue 12 §12: a reorg that takes a close request off the chain is followed by block hash: the session is open again and serves", async () => {
    const relayer = running.relayer;
    const agentKey = await freshAgent();
    const session = await openSession(relayer.url, agentKey);
    await ask(session);
    await relayer.indexer.catchUp();
    const before = (await relayer.context.chainIndex.session(session.sessionId))!;
    assert.equal(before.closeRequestedBy, null);

    const snapshot = await testClient.snapshot();
    const creatorAddress = running.stack.accounts.creator.address as Address;
    await confirm(
      await creator().writeContract({ address: running.stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "requestClose", args: [session.terms] }),
    );
    await relayer.indexer.catchUp();
    const closing = (await relayer.context.chainIndex.session(session.sessionId))!;
    assert.equal(closing.closeRequestedBy, creatorAddress);
    assert.ok(closing.claimEnd < before.claimEnd);
    assert.equal((await relayer.context.repo.getSession(session.sessionId))!.status, "closing");
    const orphaned = (await relayer.context.chainIndex.lastBlock())!;

    // The chain goes back before the close request and grows past it without it.
    await testClient.revert({ id: snapshot });
    await testClient.increaseTime({ seconds: 7 });
    await testClient.mine({ blocks: 3 });
    const head = await client.getBlock({ blockTag: "latest" });
    assert.ok(Number(head.number) > orphaned);
    await relayer.indexer.catchUp();

    assert.deepEqual(await relayer.context.chainIndex.session(session.sessionId), before, "the index is as before the close request");
    assert.equal(await relayer.context.chainIndex.lastBlock(), Number(head.number));
    assert.deepEqual(await relayer.context.chainIndex.blockHashes(1), [{ number: Number(head.number), hash: head.hash }]);
    assert.equal((await relayer.context.repo.getSession(session.sessionId))!.status, "open");
    assert.equal((await ask(session)).receipt.sequence, 2, "the session serves again");
  });
});
