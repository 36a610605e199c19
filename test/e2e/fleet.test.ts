/**
 * Issue 14: three relayer instances on one PostgreSQL (a real server), on the local chain, each a
 * process of its own with its own gas key; clients send each call to the next instance in turn (a
 * round-robin front). Shows that balances on-chain equal the receipts' sums to the unit, that one
 * session's concurrent calls sent to different instances are served one at a time (the credit bound)
 * with no sequence ever signed twice, and that `kill -9` of the instance holding the indexer or the
 * settlement lease, or serving a call, loses no voucher and settles nothing twice.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { createPublicClient, http, type Hex } from "viem";
import {
  AgentSession,
  computeEscrowAbi,
  escrowDomainSeparator,
  signDigest,
  voucherDigest,
  type CompactSignature,
  type VoucherState,
} from "../../sdk/src/index.ts";
import { ChildProcesses, liftRateLimits, waitFor } from "../../scripts/lib/bench.ts";
import { startFleet, type Fleet } from "../../scripts/lib/fleet.ts";
import { freePort, startSeededChain, type SeededChain } from "../../scripts/lib/local-stack.ts";
import { startPostgres, type PostgresServer } from "../../relayer/test/postgres-server.ts";

const MODEL = "agentmesh-small";
const INSTANCES = 3;

/** One served call as its client saw it. */
interface Served {
  sequence: number;
  hash: Hex;
  previousHash: Hex;
  state: VoucherState;
}

describe("issue 14: three relayer instances on one PostgreSQL", () => {
  let dir: string;
  let chain: SeededChain;
  let postgres: PostgresServer;
  let databaseUrl: string;
  let fleet: Fleet;
  const children = new ChildProcesses();
  let separator: Hex;
  let agentKey: Hex;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "agentmesh-fleet-"));
    const localFile = path.join(dir, "local.json");
    const providerPort = await freePort();
    chain = await startSeededChain({ chainPort: await freePort(), providerPorts: [providerPort, await freePort()], demoAgentPort: await freePort(), localFile });
    await liftRateLimits(chain);
    children.spawnNode("relayer/src/reference-provider/main.ts", ["--port", String(providerPort)]);
    await waitFor(`http://127.0.0.1:${providerPort}/healthz`);
    postgres = await startPostgres();
    databaseUrl = await postgres.createDatabase();
    // All three start at once on the empty database: one migrates, the others wait for it.
    fleet = await startFleet({ count: INSTANCES, localFile, database: { kind: "postgres", url: databaseUrl }, extraArgs: ["--settle-age-ms", "2000", "--settle-batch", "20"] });
    separator = escrowDomainSeparator(chain.stack.chainId, chain.stack.contracts.ComputeEscrow);
    agentKey = chain.stack.accounts.agent.privateKey;
  });

  after(async () => {
    await fleet?.stop();
    await children.stopAll();
    await postgres?.stop();
    await chain?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs `text` on the fleet's database (as the test's own client). */
  async function query<T>(text: string, values: unknown[] = []): Promise<T[]> {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      return (await client.query(text, values)).rows as T[];
    } finally {
      await client.end();
    }
  }

  const escrow = () => createPublicClient({ transport: http(chain.rpcUrl) });
  const onChain = (sessionId: Hex) =>
    escrow().readContract({ address: chain.stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getSession", args: [sessionId] }) as Promise<{
      settled: bigint;
      sequence: number;
    }>;

  /** A session of the agent's, opened through instance `via`. */
  function openSession(via: number, maxSpend = 2_000_000n): Promise<AgentSession> {
    const { stack } = chain;
    return AgentSession.open({
      relayerUrl: fleet.urls[via % INSTANCES],
      privateKey: agentKey,
      chainId: stack.chainId,
      escrow: stack.contracts.ComputeEscrow,
      budgetId: BigInt(stack.budgetId),
      providerId: stack.providers[0].id,
      model: MODEL,
      maxSpend,
      durationSeconds: 3600,
    });
  }

  /**
   * A client of `session` that signs each call's voucher and sends it with the next call, sending
   * every request where `instance()` says. Keeps every receipt it was given.
   */
  function client(session: AgentSession, instance: () => string) {
    const served: Served[] = [];
    let voucher: { sequence: number; signature: CompactSignature } | undefined;
    const sign = (state: VoucherState) => ({ sequence: state.sequence, signature: signDigest(agentKey, voucherDigest(separator, session.sessionId, state)) });
    return {
      served,
      /** One call: the receipt when served, else the refusal's status and code. */
      async call(): Promise<{ status: number; code?: string }> {
        const response = await fetch(`${instance()}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${session.apiKey}` },
          body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hello" }], max_tokens: 16, ...(voucher && { voucher }) }),
          signal: AbortSignal.timeout(30_000),
        });
        const body = (await response.json()) as { receipt?: { hash: Hex; sequence: number; previousHash: Hex; state: VoucherState & { cumulativeCost: string } }; error?: { code: string } };
        if (response.status !== 200) return { status: response.status, code: body.error?.code };
        const { receipt } = body;
        const state = { ...receipt!.state, cumulativeCost: BigInt(receipt!.state.cumulativeCost) };
        served.push({ sequence: receipt!.sequence, hash: receipt!.hash, previousHash: receipt!.previousHash, state });
        voucher = sign(state);
        return { status: 200 };
      },
      /** Stores the voucher of the last call served (at `instance()`). */
      async flush(): Promise<void> {
        if (voucher === undefined) return;
        const response = await fetch(`${instance()}/v1/sessions/${session.sessionId}/vouchers`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${session.apiKey}` },
          body: JSON.stringify(voucher),
        });
        assert.ok(response.status === 200 || response.status === 409, `voucher stored (${response.status})`);
      },
      /** The cumulative cost the agent signed last (what must settle). */
      signedTotal: () => served.at(-1)?.state.cumulativeCost ?? 0n,
    };
  }

  /** Every call served on one session: sequences 1..n, each once, each receipt chained to the one before. */
  function assertOneChain(served: Served[], sessionId: Hex): void {
    const sorted = served.toSorted((a, b) => a.sequence - b.sequence);
    assert.deepEqual(
      sorted.map((call) => call.sequence),
      sorted.map((_, index) => index + 1),
      `session ${sessionId}: no sequence signed twice, none skipped`,
    );
    for (let index = 1; index < sorted.length; index++) assert.equal(sorted[index].previousHash, sorted[index - 1].hash, `session ${sessionId}: receipt ${index + 1} chains to ${index}`);
  }

  /** Waits until `sessionId`'s settled total on-chain is `total` (the settlement leader's sweep runs every second). */
  async function settledOnChain(sessionId: Hex, total: bigint, timeoutMs = 120_000): Promise<bigint> {
    const deadline = Date.now() + timeoutMs;
    let settled = -1n;
    while (Date.now() < deadline) {
      settled = (await onChain(sessionId)).settled;
      if (settled >= total) return settled;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    return settled;
  }

  it("migrated the empty database once for three instances started at once", async () => {
    assert.deepEqual(await query("SELECT version FROM schema_version"), [{ version: 1 }]);
    const holders = await query<{ name: string }>("SELECT name FROM leases WHERE name LIKE 'gas:%' ORDER BY name");
    assert.equal(holders.length, INSTANCES, "each instance holds its own gas account");
  });

  it("serves many agents' calls across every instance; on-chain totals equal the receipts' sums to the unit", async () => {
    let turn = 0;
    const roundRobin = () => fleet.urls[turn++ % INSTANCES];
    const sessions = await Promise.all([0, 1, 2, 3, 4, 5].map((via) => openSession(via)));
    const clients = sessions.map((session) => client(session, roundRobin));
    for (let round = 0; round < 6; round++) {
      const answers = await Promise.all(clients.map((each) => each.call()));
      assert.deepEqual(answers, clients.map(() => ({ status: 200 })), `round ${round}: every call served`);
    }
    for (const [index, each] of clients.entries()) {
      assertOneChain(each.served, sessions[index].sessionId);
      await each.flush();
    }
    for (const [index, each] of clients.entries()) {
      const settled = await settledOnChain(sessions[index].sessionId, each.signedTotal());
      assert.equal(settled, each.signedTotal(), `session ${index}: settled on-chain = the sum of its receipts`);
      assert.equal(settled, each.served.reduce((sum, call, at) => sum + (call.state.cumulativeCost - (at === 0 ? 0n : each.served[at - 1].state.cumulativeCost)), 0n));
    }
  });

  it("serves one session's concurrent calls sent to different instances one at a time, never signing one sequence twice", async () => {
    const session = await openSession(0);
    let turn = 0;
    const each = client(session, () => fleet.urls[turn++ % INSTANCES]);
    const refusals = new Map<string, number>();
    for (let round = 0; round < 10; round++) {
      // One call per instance at the same moment, all on the same session.
      const answers = await Promise.all([0, 1, 2].map(() => each.call()));
      const served = answers.filter((answer) => answer.status === 200).length;
      assert.ok(served <= 1, `round ${round}: at most one call served at a time (${JSON.stringify(answers)})`);
      for (const answer of answers.filter((refused) => refused.status !== 200)) {
        assert.ok(answer.code === "session_busy" || answer.code === "voucher_required", `refused for the credit bound, not ${JSON.stringify(answer)}`);
        refusals.set(answer.code!, (refusals.get(answer.code!) ?? 0) + 1);
      }
      if (served === 0) await each.call(); // all three collided: the next one alone is served
    }
    assert.ok((refusals.get("session_busy") ?? 0) > 0, "some calls met another in flight on another instance");
    assertOneChain(each.served, session.sessionId);
    const rows = await query<{ sequence: number }>("SELECT sequence FROM receipts WHERE session_id = $1 ORDER BY sequence", [session.sessionId.toLowerCase()]);
    assert.deepEqual(rows.map((row) => Number(row.sequence)), each.served.map((call) => call.sequence).toSorted((a, b) => a - b), "the store holds exactly the receipts given out");
    await each.flush();
    assert.equal(await settledOnChain(session.sessionId, each.signedTotal()), each.signedTotal());
  });

  it("loses no voucher and settles nothing twice across ten kill -9 of lease holders and serving instances", async () => {
    const sessions = await Promise.all([0, 1, 2, 3].map((via) => openSession(via)));
    let turn = 0;
    /** The next instance in turn that is running (a front skips an instance that does not answer). */
    const nextLive = () => {
      for (let tries = 0; tries < INSTANCES; tries++) {
        const instance = fleet.instances[turn++ % INSTANCES];
        if (instance.running) return instance.url;
      }
      return fleet.urls[0];
    };
    const clients = sessions.map((session) => client(session, nextLive));
    let loading = true;
    const outcomes = new Map<string, number>();
    const load = Promise.all(
      clients.map(async (each) => {
        while (loading) {
          const answer = await each.call().catch((error: Error) => ({ status: 0, code: error.name }));
          const key = `${answer.status} ${answer.code ?? ""}`.trim();
          outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
          if (answer.status !== 200) await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }),
    );
    const victims: string[] = [];
    /** The lease's holder now (`host/pid/uuid`), if anyone holds it. */
    const holderOf = async (lease: string) =>
      (await query<{ owner: string }>("SELECT owner FROM leases WHERE name = $1 AND expires_at > $2", [lease, Date.now()]))[0]?.owner;
    const takenOver: string[] = [];
    try {
      for (let kill = 0; kill < 10; kill++) {
        // In turn: the indexer's holder, the settlement sweep's holder, and any instance (serving calls).
        const lease = ["indexer", "settlement", undefined][kill % 3];
        let victim = fleet.instances[Math.floor(Math.random() * INSTANCES)];
        const holder = lease === undefined ? undefined : await holderOf(lease);
        if (holder !== undefined) victim = fleet.instances.find((instance) => holder.split("/")[1] === String(instance.pid)) ?? victim;
        await new Promise((resolve) => setTimeout(resolve, 200 + Math.floor(Math.random() * 1_500)));
        victims.push(`${lease ?? "serving"}:${victim.port}`);
        await victim.kill("SIGKILL");
        await victim.restart();
        if (lease !== undefined && holder !== undefined) {
          // The dead holder's lease expired and another process holds it now.
          const deadline = Date.now() + 30_000;
          let now = await holderOf(lease);
          while ((now === undefined || now === holder) && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 250));
            now = await holderOf(lease);
          }
          assert.ok(now !== undefined && now !== holder, `lease ${lease} taken over after its holder was killed (still ${now})`);
          takenOver.push(lease);
        }
      }
    } finally {
      loading = false;
      await load;
    }
    assert.ok((outcomes.get("200") ?? 0) >= 20, `calls were served throughout: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    assert.deepEqual([...new Set(takenOver)].toSorted(), ["indexer", "settlement"], "both leases changed hands");
    for (const [index, each] of clients.entries()) {
      assertOneChain(each.served, sessions[index].sessionId);
      await each.flush();
    }
    // Every voucher signed settles, exactly once: the escrow's total is each session's last signed
    // total (a double settlement would exceed it), and nothing is left pending.
    for (const [index, each] of clients.entries()) {
      assert.equal(await settledOnChain(sessions[index].sessionId, each.signedTotal(), 180_000), each.signedTotal(), `session ${index} after kills ${victims.join(", ")}`);
    }
    const deadline = Date.now() + 60_000;
    let pending: unknown[] = [];
    while (Date.now() < deadline && (pending = await query("SELECT id FROM settlements WHERE status = 'pending'")).length > 0) await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(pending, [], "every settlement resolved");
    const confirmed = await query<{ items: string }>("SELECT items FROM settlements WHERE status = 'confirmed'");
    const covered = new Map<string, number>();
    for (const { items } of confirmed) {
      for (const { sessionId, sequence } of JSON.parse(items) as { sessionId: string; sequence: number }[]) covered.set(`${sessionId}@${sequence}`, (covered.get(`${sessionId}@${sequence}`) ?? 0) + 1);
    }
    assert.deepEqual([...covered].filter(([, count]) => count > 1), [], "no voucher in two confirmed settlements");
  });

  it("refuses to start on an unreachable database or with wrong credentials, saying why, and changes nothing", async () => {
    const tables = async () => (await query<{ count: string }>("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"))[0].count;
    const before = await tables();
    const start = async (url: string) => {
      const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "relayer/src/main.ts", "--local-file", path.join(dir, "local.json"), "--port", String(await freePort())], {
        env: { ...process.env, AGENTMESH_DB: url },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stdout!.on("data", (chunk) => (output += chunk));
      child.stderr!.on("data", (chunk) => (output += chunk));
      const [code] = (await once(child, "exit")) as [number | null];
      return { code, output };
    };
    const unreachable = new URL(databaseUrl);
    unreachable.port = String(await freePort());
    const down = await start(unreachable.toString());
    assert.notEqual(down.code, 0);
    assert.match(down.output, /cannot reach PostgreSQL at 127\.0\.0\.1/);
    const wrong = new URL(databaseUrl);
    wrong.password = "not-the-password";
    const refused = await start(wrong.toString());
    assert.notEqual(refused.code, 0);
    assert.match(refused.output, /refused the credentials/);
    assert.doesNotMatch(refused.output, /not-the-password/, "the password is never printed");
    assert.equal(await tables(), before);
  });
});
