/**
 * `agentmesh <command>` (issue 13, "The other roles from a terminal"): the real bin run as a child
 * process against a real, seeded Hardhat node. Every command's effect is checked on-chain to the
 * unit; every bad input gets a clear message, a non-zero exit status, and changes nothing on-chain.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createPublicClient, createTestClient, createWalletClient, http, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { agentMarketplaceAbi, computeEscrowAbi, mockUSDCAbi, providerRegistryAbi, splitsLedgerAbi, type LocalStack } from "../../sdk/src/index.ts";
import { freePort, startSeededChain, type SeededChain } from "../../scripts/lib/local-stack.ts";
import { CLI, json, ROOT, runToEnd, type Run } from "./child-runs.ts";

const USDC = 1_000_000n;
const PASSWORD = "correct horse battery staple";

/** Runs the bin with only the AGENTMESH_* variables given (none inherited). */
function cli(args: readonly string[], env: Record<string, string> = {}, cwd = ROOT): Promise<Run> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("AGENTMESH_")));
  return runToEnd(process.execPath, ["--disable-warning=ExperimentalWarning", CLI, ...args], { ...inherited, ...env }, cwd);
}

describe("agentmesh command line", { timeout: 240_000 }, () => {
  let dir: string;
  let chain: SeededChain;
  let stack: LocalStack;
  let client: ReturnType<typeof createPublicClient>;
  let testClient: ReturnType<typeof createTestClient>;
  let at: string[];
  /** The budget the CLI creates (7 days long; the provider test later moves time past its expiry). */
  let createdBudget: bigint;
  const key = (role: string) => ({ AGENTMESH_PRIVATE_KEY: stack.accounts[role]!.privateKey });
  const addr = (role: string) => stack.accounts[role]!.address as Address;

  const wallet = (account: Address) => client.readContract({ address: stack.usdc, abi: mockUSDCAbi, functionName: "balanceOf", args: [account] });
  const ledger = (account: Address) => client.readContract({ address: stack.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "balanceOf", args: [account] });
  const budgetOf = (id: bigint) => client.readContract({ address: stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getBudget", args: [id] });
  const providerOf = (id: bigint) => client.readContract({ address: stack.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName: "getProvider", args: [id] });

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "agentmesh-cli-"));
    const localFile = path.join(dir, "local.json");
    chain = await startSeededChain({ chainPort: await freePort(), providerPorts: [await freePort(), await freePort()], demoAgentPort: await freePort(), localFile });
    stack = chain.stack;
    at = ["--deployment", localFile, "--rpc", chain.rpcUrl];
    client = createPublicClient({ chain: hardhat, transport: http(chain.rpcUrl) });
    testClient = createTestClient({ chain: hardhat, mode: "hardhat", transport: http(chain.rpcUrl) });
    // The agent earns 10 USDC in the ledger, to withdraw later.
    const payer = createWalletClient({ chain: hardhat, transport: http(chain.rpcUrl), account: privateKeyToAccount(stack.accounts.agent!.privateKey) });
    const approve = await payer.writeContract({ address: stack.usdc, abi: mockUSDCAbi, functionName: "approve", args: [stack.contracts.SplitsLedger, 10n * USDC] });
    await client.waitForTransactionReceipt({ hash: approve });
    const pay = await payer.writeContract({ address: stack.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "pay", args: [addr("agent"), 10n * USDC] });
    await client.waitForTransactionReceipt({ hash: pay });
  });

  after(async () => {
    await chain?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("makes, reads and imports encrypted keystores without printing secrets", async () => {
    const made = path.join(dir, "new.json");
    const run = await cli(["keystore", "new", made, "--json"], { AGENTMESH_KEYSTORE_PASSWORD: PASSWORD });
    const { address } = json(run);
    assert.match(address, /^0x[0-9a-fA-F]{40}$/);
    assert.equal((await stat(made)).mode & 0o777, 0o600);
    assert.equal(JSON.parse(await readFile(made, "utf8")).address.toLowerCase(), address.slice(2).toLowerCase());
    // address needs no password; a second `new` does not overwrite the key.
    assert.equal(json(await cli(["keystore", "address", made, "--json"])).address, address);
    const again = await cli(["keystore", "new", made], { AGENTMESH_KEYSTORE_PASSWORD: PASSWORD });
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists; pass --force/);

    const imported = path.join(dir, "creator.json");
    const importRun = await cli(["keystore", "import", imported], { ...key("creator"), AGENTMESH_KEYSTORE_PASSWORD: PASSWORD });
    assert.equal(importRun.code, 0, importRun.stderr);
    assert.ok(importRun.stdout.includes(addr("creator")));
    const secret = stack.accounts.creator!.privateKey.slice(2).toLowerCase();
    assert.ok(!(await readFile(imported, "utf8")).toLowerCase().includes(secret), "the keystore holds no plain key");
    assert.ok(!`${importRun.stdout}${importRun.stderr}`.toLowerCase().includes(secret), "the key is never printed");
    assert.ok(!`${importRun.stdout}${importRun.stderr}`.includes(PASSWORD), "the password is never printed");

    // With no password in the environment and no terminal, it refuses rather than waits.
    const noPassword = await cli(["keystore", "new", path.join(dir, "never.json")]);
    assert.equal(noPassword.code, 2);
    assert.match(noPassword.stderr, /AGENTMESH_KEYSTORE_PASSWORD is not set and there is no terminal/);
  });

  it("creates, tops up, whitelists, refunds and shows a budget, signing with a keystore", async () => {
    const keystore = ["--keystore", path.join(dir, "creator.json")];
    const env = { AGENTMESH_KEYSTORE_PASSWORD: PASSWORD };
    // The keystore signs the creation; the rest use the environment's key (each decryption runs scrypt).
    const creatorKey = key("creator");
    const creator = addr("creator");
    const start = await wallet(creator);

    const created = json(await cli(["budget", "create", "--amount", "25.5", "--session-limit", "2", "--days", "7", "--agent", addr("agent"), ...keystore, ...at, "--json"], env));
    const budgetId = BigInt(created.budgetId);
    createdBudget = budgetId;
    assert.equal(created.transactions.length, 1, "one transaction: the permit rides along");
    assert.match(created.transactions[0].hash, /^0x[0-9a-f]{64}$/);
    assert.equal(created.transactions[0].url, undefined, "the local chain has no explorer");
    let budget = await budgetOf(budgetId);
    assert.equal(budget.creator, creator);
    assert.equal(budget.available, 25_500_000n);
    assert.equal(budget.perSessionLimit, 2n * USDC);
    assert.equal(await wallet(creator), start - 25_500_000n);
    assert.equal(await client.readContract({ address: stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "isAgentAllowed", args: [budgetId, addr("agent")] }), true);

    const topUp = await cli(["budget", "top-up", String(budgetId), "1.000001", ...at], creatorKey);
    assert.equal(topUp.code, 0, topUp.stderr);
    assert.match(topUp.stdout, /approve .* for 1\.000001 USDC: 0x[0-9a-f]{64}/);
    assert.match(topUp.stdout, /unallocated\s+26\.500001 USDC/);
    assert.equal((await budgetOf(budgetId)).available, 26_500_001n);
    assert.equal(await wallet(creator), start - 26_500_001n);

    const denied = json(await cli(["budget", "deny", String(budgetId), addr("agent"), ...at, "--json"], creatorKey));
    assert.equal(denied.allowed, false);
    assert.equal(await client.readContract({ address: stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "isAgentAllowed", args: [budgetId, addr("agent")] }), false);
    json(await cli(["budget", "allow", String(budgetId), addr("agent"), ...at, "--json"], creatorKey));

    const refunded = json(await cli(["budget", "refund", String(budgetId), "6.5", ...at, "--json"], creatorKey));
    assert.equal(refunded.budget.available, "20000001");
    assert.equal((await budgetOf(budgetId)).available, 20_000_001n);
    assert.equal(await wallet(creator), start - 20_000_001n);

    const shown = json(await cli(["budget", "show", String(budgetId), "--agent", addr("agent"), "--agent", addr("providerA"), ...at, "--json"]));
    assert.deepEqual(shown.agents, { [addr("agent")]: true, [addr("providerA")]: false });
    assert.equal(shown.budget.perSessionLimit, "2000000");
    budget = await budgetOf(budgetId);
    assert.equal(budget.available, 20_000_001n);
  });

  it("shows ledger balances and withdraws to the signer or another wallet", async () => {
    const agent = addr("agent");
    const other = addr("treasury");
    const [ledgerBefore, walletBefore, otherBefore] = [await ledger(agent), await wallet(agent), await wallet(other)];
    assert.equal(ledgerBefore, 10n * USDC);

    const shown = json(await cli(["balance", ...at, "--json"], key("agent")));
    assert.deepEqual([shown.address, shown.ledger, shown.wallet], [agent, "10000000", walletBefore.toString()]);
    const text = await cli(["balance", "--address", agent, ...at]);
    assert.match(text.stdout, /ledger balance\s+10\.000000 USDC/);

    const out = await cli(["withdraw", "2.5", ...at], key("agent"));
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /withdraw 2\.500000 USDC to 0x[0-9a-fA-F]{40}: 0x[0-9a-f]{64}\n/);
    assert.equal(await ledger(agent), 7_500_000n);
    assert.equal(await wallet(agent), walletBefore + 2_500_000n);

    json(await cli(["withdraw", "0.000001", "--to", other, ...at, "--json"], key("agent")));
    assert.equal(await ledger(agent), 7_499_999n);
    assert.equal(await wallet(other), otherBefore + 1n);
  });

  it("registers a provider, manages its models and stake, delegates its signer, and withdraws its unstake", async () => {
    const owner = addr("agentAuthor");
    const start = await wallet(owner);
    const registered = json(
      await cli(
        ["provider", "register", "--endpoint", "http://127.0.0.1:9999", "--model", "tiny:0.00015:0.0006:8192", "--stake", "150", "--min-charge", "0.00001", "--type", "cloud", ...at, "--json"],
        key("agentAuthor"),
      ),
    );
    const providerId = BigInt(registered.providerId);
    let found = await providerOf(providerId);
    assert.deepEqual(
      [found.owner, found.stake, found.minChargePerCall, found.providerType, found.receiptSigner, found.payout, found.endpoint],
      [owner, 150n * USDC, 10, 1, owner, owner, "http://127.0.0.1:9999"],
    );
    assert.equal(await wallet(owner), start - 150n * USDC);
    assert.deepEqual(registered.provider.models, [{ id: 0, name: "tiny", inputPricePer1K: 150, outputPricePer1K: 600, maxContextTokens: 8192, active: true }]);

    const models = json(await cli(["provider", "models", String(providerId), "--add", "big:0.001:0.002:32000", "--reprice", "0:0.0002:0.0007", "--retire", "0", ...at, "--json"], key("agentAuthor")));
    assert.equal(models.transactions.length, 3);
    const model0 = await client.readContract({ address: stack.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName: "getModel", args: [providerId, 0n] });
    const model1 = await client.readContract({ address: stack.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName: "getModel", args: [providerId, 1n] });
    assert.deepEqual([model0.inputPricePer1K, model0.outputPricePer1K, model0.active], [200, 700, false]);
    assert.deepEqual([model1.name, model1.inputPricePer1K, model1.outputPricePer1K, model1.maxContextTokens, model1.active], ["big", 1000, 2000, 32000, true]);

    json(await cli(["provider", "update", String(providerId), "--rate-limit", "120", "--payout", addr("treasury"), ...at, "--json"], key("agentAuthor")));
    json(await cli(["provider", "delegate-signer", String(providerId), addr("receiptSignerA"), ...at, "--json"], key("agentAuthor")));
    found = await providerOf(providerId);
    assert.deepEqual([found.rateLimitPerMinute, found.payout, found.receiptSigner, found.endpoint, found.minChargePerCall], [120, addr("treasury"), addr("receiptSignerA"), "http://127.0.0.1:9999", 10]);

    json(await cli(["provider", "stake", String(providerId), "5.25", ...at, "--json"], key("agentAuthor")));
    assert.equal((await providerOf(providerId)).stake, 155_250_000n);
    assert.equal(await wallet(owner), start - 155_250_000n);

    json(await cli(["provider", "unstake", String(providerId), "55.25", ...at, "--json"], key("agentAuthor")));
    found = await providerOf(providerId);
    assert.deepEqual([found.stake, found.pendingUnstake], [100n * USDC, 55_250_000n]);
    const early = await cli(["provider", "withdraw", String(providerId), ...at], key("agentAuthor"));
    assert.equal(early.code, 1);
    assert.match(early.stderr, new RegExp(`The pending unstake of provider #${providerId} can be withdrawn from \\d{4}-\\d\\d-\\d\\d`));
    assert.equal(await wallet(owner), start - 155_250_000n);

    await testClient.increaseTime({ seconds: 7 * 24 * 3600 + 1 });
    await testClient.mine({ blocks: 1 });
    json(await cli(["provider", "withdraw", String(providerId), ...at, "--json"], key("agentAuthor")));
    assert.equal((await providerOf(providerId)).pendingUnstake, 0n);
    assert.equal(await wallet(owner), start - 100n * USDC);
  });

  it("reads --network local from the stack file in the working directory; publishes and lists agents", async () => {
    const work = path.join(dir, "work");
    await rm(work, { recursive: true, force: true });
    const { mkdir } = await import("node:fs/promises");
    await mkdir(path.join(work, ".agentmesh"), { recursive: true });
    await writeFile(path.join(work, ".agentmesh/local.json"), await readFile(path.join(dir, "local.json")));
    const shown = json(await cli(["balance", "--network", "local", "--address", addr("agent"), "--json"], {}, work));
    assert.equal(shown.ledger, (await ledger(addr("agent"))).toString());

    const listed = json(await cli(["agent", "list", "--network", "local", "--json"], {}, work));
    assert.deepEqual(
      listed.agents.map((listing: Record<string, unknown>) => [listing.id, listing.status, listing.pricePerCall, listing.paymentAddress]),
      [[stack.demoAgent.id, "active", stack.demoAgent.pricePerCall, stack.demoAgent.paymentAddress]],
    );
    const byOther = json(await cli(["agent", "list", "--owner", addr("treasury"), "--network", "local", "--json"], {}, work));
    assert.deepEqual(byOther.agents, []);

    const published = json(
      await cli(["agent", "publish", "--name", "Summarizer", "--endpoint", "http://127.0.0.1:9998/run", "--price", "0.07", "--payout", addr("treasury"), "--network", "local", "--json"], key("agentAuthor"), work),
    );
    const listing = await client.readContract({ address: stack.contracts.AgentMarketplace!, abi: agentMarketplaceAbi, functionName: "getAgent", args: [BigInt(published.agentId)] });
    assert.deepEqual(
      [listing.owner, listing.status, listing.pricePerCall, listing.paymentAddress, listing.metadata.name, listing.metadata.endpoint],
      [addr("agentAuthor"), 1, 70_000n, published.paymentAddress, "Summarizer", "http://127.0.0.1:9998/run"],
    );
    // The listing's flow sends all of a payment to --payout: its remainder, and nothing else.
    const allToPayout = { fixedAmounts: [], shares: [], payerReferrerShare: 0, payeeReferrerShare: 0, remainder: { kind: 0, account: addr("treasury"), budgetId: 0n } };
    assert.equal(listing.flowHash, await client.readContract({ address: stack.contracts.AgentMarketplace!, abi: agentMarketplaceAbi, functionName: "hashFlow", args: [allToPayout] }));

    // Several payees: a fixed amount first, then shares of what is left, then the rest to --payout.
    const shared = json(
      await cli(
        ["agent", "publish", "--name", "Team agent", "--endpoint", "http://127.0.0.1:9998/team", "--price", "0.1", "--fixed", `${addr("creator")}:0.01`, "--share", `${addr("providerA")}:12.5`, "--share", `${addr("providerB")}:0.0001`, "--payout", addr("treasury"), "--network", "local", "--json"],
        key("agentAuthor"),
        work,
      ),
    );
    const team = await client.readContract({ address: stack.contracts.AgentMarketplace!, abi: agentMarketplaceAbi, functionName: "getAgent", args: [BigInt(shared.agentId)] });
    const account = (name: string) => ({ kind: 0, account: addr(name), budgetId: 0n });
    const teamFlow = {
      fixedAmounts: [{ recipient: account("creator"), amount: 10_000n }],
      shares: [
        { recipient: account("providerA"), share: 125_000 },
        { recipient: account("providerB"), share: 1 },
      ],
      payerReferrerShare: 0,
      payeeReferrerShare: 0,
      remainder: account("treasury"),
    };
    assert.equal(team.flowHash, await client.readContract({ address: stack.contracts.AgentMarketplace!, abi: agentMarketplaceAbi, functionName: "hashFlow", args: [teamFlow] }));
    // Shares above 100% are the marketplace's refusal, as a sentence; nothing is listed.
    const countBefore = await client.readContract({ address: stack.contracts.AgentMarketplace!, abi: agentMarketplaceAbi, functionName: "agentCount" });
    const over = await cli(["agent", "publish", "--name", "Greedy", "--endpoint", "http://127.0.0.1:9998/x", "--price", "1", "--share", `${addr("creator")}:60`, "--share", `${addr("treasury")}:50`, "--network", "local"], key("agentAuthor"), work);
    assert.equal(over.code, 1, over.stderr);
    assert.match(over.stderr, /shares/i);
    assert.equal(await client.readContract({ address: stack.contracts.AgentMarketplace!, abi: agentMarketplaceAbi, functionName: "agentCount" }), countBefore);
    const byAuthor = json(await cli(["agent", "list", "--owner", addr("agentAuthor"), "--network", "local", "--json"], {}, work));
    // The seeded demo agent is agentAuthor's too.
    assert.deepEqual(
      byAuthor.agents.map((entry: { id: number; pricePerCall: string }) => [entry.id, entry.pricePerCall]),
      [
        [stack.demoAgent.id, stack.demoAgent.pricePerCall],
        [Number(published.agentId), "70000"],
        [Number(shared.agentId), "100000"],
      ],
    );
  });

  it("lists a budget's sessions, and closes one as its agent and then as its provider", async () => {
    const budgetId = BigInt(stack.budgetId);
    const [provider] = stack.providers;
    const quote = await client.readContract({ address: stack.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName: "quote", args: [BigInt(provider!.id), 0n] });
    const feeBps = await client.readContract({ address: stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "feeBps" });
    const now = (await client.getBlock()).timestamp;
    const terms = {
      agent: addr("agent"),
      budgetId,
      providerId: provider!.id,
      modelId: 0,
      receiptSigner: quote.receiptSigner,
      inputPricePer1K: quote.inputPricePer1K,
      outputPricePer1K: quote.outputPricePer1K,
      minChargePerCall: quote.minChargePerCall,
      feeBps: Number(feeBps),
      maxSpend: USDC,
      deadline: Number(now) + 3_600,
      salt: 7n,
    };
    const availableBefore = (await budgetOf(budgetId)).available;
    const agentWallet = createWalletClient({ chain: hardhat, transport: http(chain.rpcUrl), account: privateKeyToAccount(stack.accounts.agent!.privateKey) });
    const zero = `0x${"00".repeat(32)}` as Hex;
    // The agent opens it itself (the escrow skips the signature for its own agent).
    await client.waitForTransactionReceipt({
      hash: await agentWallet.writeContract({ address: stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "openSession", args: [terms, { r: zero, yParityAndS: zero }] }),
    });
    const sessionId = await client.readContract({ address: stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "sessionIdOf", args: [terms] });
    assert.equal((await budgetOf(budgetId)).available, availableBefore - USDC);

    const listed = json(await cli(["session", "list", "--budget", String(budgetId), "--agent", addr("agent"), ...at, "--json"]));
    const mine = listed.sessions.find((entry: { sessionId: string }) => entry.sessionId === sessionId);
    assert.deepEqual([mine.status, mine.maxSpend, mine.settled, mine.providerId], ["open", "1000000", "0", provider!.id]);

    const requested = json(await cli(["session", "close", sessionId, ...at, "--json"], key("agent")));
    assert.match(requested.transactions[0].action, /^request to close session/);
    const claimEnd = (await client.readContract({ address: stack.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getSession", args: [sessionId] })).claimEnd;
    assert.equal(requested.claimEnd, claimEnd);
    assert.ok(BigInt(claimEnd) <= (await client.getBlock()).timestamp + 86_400n, "the claim window now ends a challenge window from now");

    const stranger = await cli(["session", "close", sessionId, ...at], key("treasury"));
    assert.equal(stranger.code, 1);
    assert.match(stranger.stderr, /0x[0-9a-fA-F]{4}…[0-9a-fA-F]{4} may not close session 0x[0-9a-f]{4}…[0-9a-f]{4} this way\./);

    const byProvider = json(await cli(["session", "close", sessionId, ...at, "--json"], key("providerA")));
    assert.match(byProvider.transactions[0].action, /as its provider$/);
    assert.equal(byProvider.claimEnd, 1, "finalized");
    assert.equal((await budgetOf(budgetId)).available, availableBefore, "the unused lock is back in the budget");

    const again = await cli(["session", "close", sessionId, ...at], key("agent"));
    assert.equal(again.code, 1);
    assert.match(again.stderr, /is not open: it is unknown or already closed\./);
  });

  it("refuses bad input with a clear message and changes nothing on-chain", async () => {
    const otherChain = path.join(dir, "84532.json");
    await writeFile(otherChain, JSON.stringify({ ...stack, chainId: 84532 }));
    const wrongPassword = { AGENTMESH_KEYSTORE_PASSWORD: "not the password" };
    const creatorKeystore = ["--keystore", path.join(dir, "creator.json")];
    const agentKey = key("agent");
    const cases: { name: string; args: string[]; env?: Record<string, string>; code: number; message: RegExp; secret?: string }[] = [
      { name: "no command", args: [], code: 2, message: /usage: agentmesh <command>/ },
      { name: "an unknown command", args: ["pay-everyone"], code: 2, message: /unknown command "pay-everyone"/ },
      { name: "neither --network nor --deployment", args: ["withdraw", "1"], env: agentKey, code: 2, message: /--network give exactly one of --network base-sepolia\|base\|local and --deployment/ },
      { name: "an unknown network", args: ["withdraw", "1", "--network", "mars"], env: agentKey, code: 2, message: /--network must be base-sepolia, base or local/ },
      { name: "an RPC that is not a URL", args: ["withdraw", "1", "--deployment", path.join(dir, "local.json"), "--rpc", "localhost"], env: agentKey, code: 2, message: /--rpc must be an http\(s\) URL/ },
      { name: "an unknown option", args: ["withdraw", "1", "--amount", "2", ...at], env: agentKey, code: 2, message: /Unknown option '--amount'/ },
      { name: "a network with no deployment file", args: ["withdraw", "1", "--network", "base"], env: agentKey, code: 2, message: /8453\.json: cannot be read/ },
      {
        name: "an RPC that does not answer, its API key kept out of the message",
        args: ["withdraw", "1", "--deployment", path.join(dir, "local.json"), "--rpc", "http://127.0.0.1:1/v2/SECRETAPIKEY"],
        env: agentKey,
        code: 2,
        message: /--rpc http:\/\/127\.0\.0\.1:1 does not answer/,
        secret: "SECRETAPIKEY",
      },
      { name: "a deployment for another chain", args: ["withdraw", "1", "--deployment", otherChain, "--rpc", chain.rpcUrl], env: agentKey, code: 2, message: /serves chain 31337, but the deployment is for chain 84532/ },
      { name: "no key", args: ["withdraw", "1", ...at], code: 2, message: /a key is needed: set AGENTMESH_PRIVATE_KEY or give --keystore/ },
      { name: "a malformed key", args: ["withdraw", "1", ...at], env: { AGENTMESH_PRIVATE_KEY: "0x1234" }, code: 2, message: /AGENTMESH_PRIVATE_KEY must be a 0x-prefixed 32-byte hex private key/ },
      { name: "a keystore with the wrong password", args: ["budget", "refund", "1", "1", ...creatorKeystore, ...at], env: wrongPassword, code: 2, message: /could not be decrypted: wrong password/ },
      { name: "a plain key in a file as keystore", args: ["withdraw", "1", "--keystore", otherChain, ...at], env: wrongPassword, code: 2, message: /is not an encrypted JSON keystore/ },
      { name: "an amount with 7 decimals", args: ["withdraw", "1.0000001", ...at], env: agentKey, code: 2, message: /amount has 7 decimals, but USDC has 6/ },
      { name: "a negative amount", args: ["withdraw", "-1", ...at], env: agentKey, code: 2, message: /Unknown option '-1'|amount must be a USDC amount/ },
      { name: "a zero amount", args: ["withdraw", "0", ...at], env: agentKey, code: 2, message: /amount must be above 0/ },
      { name: "a bad --to", args: ["withdraw", "1", "--to", "0x12", ...at], env: agentKey, code: 2, message: /--to must be a 0x-prefixed 20-byte hex address/ },
      { name: "withdrawing more than the balance", args: ["withdraw", "1000", ...at], env: agentKey, code: 1, message: /0x[0-9a-fA-F]{4}…[0-9a-fA-F]{4} holds 7\.499999 USDC in the ledger, so 1,000\.000000 USDC cannot be moved\./ },
      { name: "refunding another's budget", args: ["budget", "refund", String(stack.budgetId), "1", ...at], env: agentKey, code: 1, message: new RegExp(`Only the creator of budget #${stack.budgetId} can do this`) },
      { name: "topping up an unknown budget", args: ["budget", "top-up", "999", "1", ...at], env: agentKey, code: 1, message: /Budget #999 does not exist\./ },
      {
        name: "topping up an expired budget (refused before the approval is sent)",
        args: ["budget", "top-up", String(createdBudget), "1", ...at],
        env: key("creator"),
        code: 1,
        message: new RegExp(`Budget #${createdBudget} expired on \\d{4}-\\d\\d-\\d\\d`),
      },
      { name: "topping up with more than the wallet holds", args: ["budget", "top-up", String(stack.budgetId), "999999", ...at], env: agentKey, code: 2, message: /holds .* less than the 999999\.000000 USDC needed/ },
      { name: "a budget whose session limit is missing", args: ["budget", "create", "--amount", "1", ...at], env: agentKey, code: 2, message: /--session-limit must be a USDC amount/ },
      { name: "a stake below the minimum", args: ["provider", "register", "--endpoint", "http://127.0.0.1:1", "--model", "m:0:0:1", "--stake", "1", ...at], env: agentKey, code: 1, message: /A stake of 1\.000000 USDC is below the minimum of 100\.000000 USDC\./ },
      { name: "a malformed model", args: ["provider", "register", "--endpoint", "http://127.0.0.1:1", "--model", "m:0.0000001:0:1", "--stake", "100", ...at], env: agentKey, code: 2, message: /--model m input price has 7 decimals/ },
      { name: "a provider type that does not exist", args: ["provider", "register", "--endpoint", "http://127.0.0.1:1", "--model", "m:0:0:1", "--stake", "100", "--type", "quantum", ...at], env: agentKey, code: 2, message: /--type must be one of self-hosted, cloud, decentralized/ },
      { name: "an agent price with 7 decimals", args: ["agent", "publish", "--name", "x", "--endpoint", "http://127.0.0.1:1", "--price", "0.0000001", ...at], env: agentKey, code: 2, message: /--price has 7 decimals/ },
      { name: "a share that is not address:percent", args: ["agent", "publish", "--name", "x", "--endpoint", "http://127.0.0.1:1", "--price", "1", "--share", "12.5", ...at], env: agentKey, code: 2, message: /--share must be <address>:<percent>/ },
      { name: "a fixed amount with 7 decimals", args: ["agent", "publish", "--name", "x", "--endpoint", "http://127.0.0.1:1", "--price", "1", "--fixed", "0x0000000000000000000000000000000000000001:0.0000001", ...at], env: agentKey, code: 2, message: /--fixed has 7 decimals/ },
      { name: "an agent with no name", args: ["agent", "publish", "--endpoint", "http://127.0.0.1:1", "--price", "1", ...at], env: agentKey, code: 2, message: /--name is required/ },
      { name: "another owner's provider", args: ["provider", "delegate-signer", "1", addr("agent"), ...at], env: agentKey, code: 1, message: /Only the owner of provider #1 can do this/ },
    ];
    const watched = [addr("agent"), addr("creator"), addr("treasury")];
    const snapshot = async () => ({
      block: await client.getBlockNumber(),
      nonces: await Promise.all(watched.map((account) => client.getTransactionCount({ address: account }))),
      wallets: await Promise.all(watched.map(wallet)),
      ledgers: await Promise.all(watched.map(ledger)),
      budget: await budgetOf(BigInt(stack.budgetId)),
      provider: await providerOf(1n),
    });
    const before = await snapshot();
    // None of them sends anything, so they run four at a time.
    for (let index = 0; index < cases.length; index += 4) {
      await Promise.all(
        cases.slice(index, index + 4).map(async ({ name, args, env, code, message, secret }) => {
          const run = await cli(args, env);
          assert.equal(run.code, code, `${name}: exit ${run.code}, ${run.stderr}`);
          assert.match(run.stderr, message, name);
          if (secret !== undefined) assert.ok(!`${run.stdout}${run.stderr}`.includes(secret), `${name}: the secret is printed`);
          assert.doesNotMatch(run.stderr, /at .*\.ts:\d+/, `${name}: no stack trace`);
        }),
      );
    }
    assert.deepEqual(await snapshot(), before, "nothing changed on-chain");

    const asJson = await cli(["withdraw", "1000", ...at, "--json"], agentKey);
    assert.equal(asJson.code, 1);
    assert.match(JSON.parse(asJson.stdout).error, /cannot be moved\.$/);
  });
});
