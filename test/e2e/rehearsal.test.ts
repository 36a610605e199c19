/**
 * The public-network rehearsal (issue 13, "Test: the public-network rehearsal, inside `npm test`"):
 * a second JSON-RPC node that stands in for Base Sepolia (chain id 84532, no stack file), USDC's
 * behaviour installed at Base Sepolia's USDC address, and then every role run as a newcomer would
 * run it from the README: `npm run deploy:base-sepolia`, `npm run relayer`, the reference provider,
 * the `agentmesh` command line (keystores, provider, budget, proxy, session, withdraw, agent
 * publish), the official `openai` client through the proxy and `@x402/fetch` paying an agent. Every
 * balance is checked to the unit against what the receipts and the listed prices say; every bad
 * input gets a clear message and changes nothing.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { decodePaymentRequiredHeader, decodePaymentResponseHeader } from "@x402/core/http";
import { toClientEvmSigner } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import OpenAI from "openai";
import {
  createPublicClient,
  createTestClient,
  createWalletClient,
  defineChain,
  domainSeparator,
  encodeAbiParameters,
  http,
  keccak256,
  pad,
  parseSignature,
  toHex,
  zeroAddress,
  type Address,
  type Hex,
  type PublicClient,
} from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import {
  agentMarketplaceAbi,
  callCost,
  computeEscrowAbi,
  findRelayer,
  formatUsdc,
  mockUSDCAbi,
  permitTypes,
  providerRegistryAbi,
  relayerDirectoryAbi,
  splitsLedgerAbi,
  transferWithAuthorizationTypes,
  usdcDomain,
  type Deployment,
} from "../../sdk/src/index.ts";
import { freePort, hardhatCli, waitForRpc } from "../../scripts/lib/local-stack.ts";
import { CLI, json, ROOT, runToEnd } from "./child-runs.ts";

const BASE_SEPOLIA = 84_532;
/** USDC on Base Sepolia: its EIP-712 domain is named "USDC" (on Base, "USD Coin"). */
const USDC_ADDRESS: Address = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
const USDC = 1_000_000n;
const PASSWORD = "rehearsal keystore password";
const DEFAULT_ADMIN_ROLE = `0x${"00".repeat(32)}` as Hex;

/** The environment of a child: ours without any AgentMesh or deployment setting, plus `env`. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const kept = Object.entries(process.env).filter(([name]) => !/^(AGENTMESH_|BASE_RPC_URL$|BASE_SEPOLIA_RPC_URL$|DEPLOYER_PRIVATE_KEY$|LOG_LEVEL$)/.test(name));
  return { ...Object.fromEntries(kept), ...env };
}

/** Runs `command` from the repository's root to its end. */
const run = (command: string, args: readonly string[], env: Record<string, string> = {}) => runToEnd(command, args, childEnv(env));

/** `agentmesh <args>` as the README runs it from a clone. */
const agentmesh = (args: readonly string[], env: Record<string, string> = {}) => run(process.execPath, ["--disable-warning=ExperimentalWarning", CLI, ...args], env);

/**
 * A long-running child (chain node, relayer, provider, proxy) in its own process group, so that
 * `stop()` reaches what `npm run` starts under it too, and waits until all of it is gone.
 */
class Service {
  readonly name: string;
  readonly child: ChildProcess;
  output = "";
  constructor(name: string, command: string, args: readonly string[], env: Record<string, string> = {}) {
    this.name = name;
    this.child = spawn(command, args, { cwd: ROOT, env: childEnv(env), stdio: ["ignore", "pipe", "pipe"], detached: true });
    this.child.stdout!.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.stderr!.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** The first match of `pattern` in the output, waiting at most `timeoutMs`. */
  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.output.match(pattern);
      if (found) return found;
      if (this.exited) throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) before printing ${pattern}:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`${this.name} did not print ${pattern} within ${timeoutMs} ms:\n${this.output}`);
      await sleep(100);
    }
  }

  /** Its exit code once it exits by itself (at most `timeoutMs`). */
  async exitCode(timeoutMs = 30_000): Promise<number | null> {
    if (!this.exited) await Promise.race([once(this.child, "exit"), sleep(timeoutMs).then(() => assert.fail(`${this.name} did not exit:\n${this.output}`))]);
    return this.child.exitCode;
  }

  private groupAlive(): boolean {
    try {
      process.kill(-this.child.pid!, 0);
      return true;
    } catch {
      return false;
    }
  }

  /** SIGTERM to its process group; waits (bounded) until every process of the group is gone. */
  async stop(): Promise<void> {
    if (!this.groupAlive()) return;
    process.kill(-this.child.pid!, "SIGTERM");
    for (let waited = 0; waited < 30_000 && this.groupAlive(); waited += 100) await sleep(100);
    if (this.groupAlive()) process.kill(-this.child.pid!, "SIGKILL");
    if (!this.exited) await once(this.child, "exit");
  }
}

/** Polls `read` (bounded) until `done` holds for its value; that value. */
async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!done(value)) {
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(value, (_, item) => (typeof item === "bigint" ? item.toString() : item))} after ${timeoutMs} ms`);
    await sleep(200);
    value = await read();
  }
  return value;
}

describe("the public-network rehearsal on a Base Sepolia stand-in", { timeout: 240_000 }, () => {
  const chain = defineChain({ id: BASE_SEPOLIA, name: "Base Sepolia stand-in", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [] } } });
  const services: Service[] = [];
  const servers: Server[] = [];
  let dir: string;
  let deploymentsDir: string;
  let rpcUrl: string;
  let client: ReturnType<typeof createPublicClient>;
  let testClient: ReturnType<typeof createTestClient>;
  let deployment: Deployment;
  let relayer: Service;
  let relayerUrl: string;
  let signerKeystore: string;
  let signerAddress: Address;
  let providerUrl: string;
  let providerId: bigint;
  let budgetId: bigint;
  /** The provider's earnings once settled, withdrawn by the last step of the inference test. */
  let providerEarnings = 0n;
  let fees = 0n;
  let spent = 0n;

  // Every role's own key: nothing comes from a stack file.
  const keys = {
    deployer: generatePrivateKey(),
    usdcIssuer: generatePrivateKey(),
    gas: generatePrivateKey(),
    providerOwner: generatePrivateKey(),
    creator: generatePrivateKey(),
    agent: generatePrivateKey(),
    payer: generatePrivateKey(),
    seller: generatePrivateKey(),
    holder: generatePrivateKey(),
  };
  type Role = keyof typeof keys;
  const account = (role: Role): PrivateKeyAccount => privateKeyToAccount(keys[role]);
  const addr = (role: Role): Address => account(role).address;
  const admin = privateKeyToAccount(generatePrivateKey()).address;
  const treasury = privateKeyToAccount(generatePrivateKey()).address;
  /** The USDC each account starts with (written into the token's storage). */
  const funded: Partial<Record<Role, bigint>> = { providerOwner: 150n * USDC, creator: 50n * USDC, payer: 1n * USDC, holder: 3n * USDC };
  const totalFunded = Object.values(funded).reduce((sum, amount) => sum + amount, 0n);

  const wallet = (who: Address) => client.readContract({ address: USDC_ADDRESS, abi: mockUSDCAbi, functionName: "balanceOf", args: [who] });
  const ledger = (who: Address) => client.readContract({ address: deployment.contracts.SplitsLedger, abi: splitsLedgerAbi, functionName: "balanceOf", args: [who] });
  const walletClient = (role: Role) => createWalletClient({ chain, transport: http(rpcUrl), account: account(role) });
  const confirm = async (hash: Hex) => assert.equal((await client.waitForTransactionReceipt({ hash })).status, "success");
  /** The chain options of every `agentmesh` run. */
  const onNetwork = () => ["--network", "base-sepolia", "--rpc", rpcUrl];
  const deploymentsEnv = () => ({ AGENTMESH_DEPLOYMENTS_DIR: deploymentsDir });
  const keyEnv = (role: Role) => ({ ...deploymentsEnv(), AGENTMESH_PRIVATE_KEY: keys[role] });
  const directoryEntry = (signer: string) => client.readContract({ address: deployment.contracts.RelayerDirectory!, abi: relayerDirectoryAbi, functionName: "relayerUrl", args: [signer as Address] });
  const relayerInfo = async () => (await fetch(`${relayerUrl}/v1/relayer`)).json() as Promise<{ chainId: number; contracts: Record<string, string>; gasAddress: string; receiptSigners: string[] }>;
  const readiness = async () => {
    const answer = await fetch(`${relayerUrl}/readyz`);
    return { httpStatus: answer.status, ...((await answer.json()) as { status: string; indexedBlock?: number; problems: { check: string; message: string }[] }) };
  };

  /** The storage slot `balanceOf(account)` reads, found with a side-effect-free state override. */
  async function balanceSlot(token: Address, who: Address): Promise<Hex> {
    for (let index = 0n; index < 64n; index++) {
      const slot = keccak256(encodeAbiParameters([{ type: "address" }, { type: "uint256" }], [who, index]));
      const read = await client.readContract({ address: token, abi: mockUSDCAbi, functionName: "balanceOf", args: [who], stateOverride: [{ address: token, stateDiff: [{ slot, value: pad(toHex(123_457n)) }] }] });
      if (read === 123_457n) return slot;
    }
    throw new Error("no balance slot found");
  }

  /** The storage slot `totalSupply()` reads, found the same way. */
  async function supplySlot(token: Address): Promise<Hex> {
    for (let index = 0; index < 64; index++) {
      const slot = toHex(index, { size: 32 });
      const read = await client.readContract({ address: token, abi: mockUSDCAbi, functionName: "totalSupply", stateOverride: [{ address: token, stateDiff: [{ slot, value: pad(toHex(987_653n)) }] }] });
      if (read === 987_653n) return slot;
    }
    throw new Error("no supply slot found");
  }

  /**
   * USDC at Base Sepolia's address: MockUSDC named "USDC" (FiatToken v2.2's behaviour) deployed on
   * the stand-in, its code (immutables included) and its plain storage slots copied to the address;
   * the issuer that deployed it pauses and blacklists. Balances are written into their slots (its
   * mint works only on chain 31337), keeping the blacklist bit clear and the total supply their sum.
   */
  async function installUsdc(): Promise<void> {
    const issuer = walletClient("usdcIssuer");
    const artifact = JSON.parse(await readFile(path.join(ROOT, "artifacts/contracts/mocks/MockUSDC.sol/MockUSDC.json"), "utf8")) as { bytecode: Hex };
    const deployed = await client.waitForTransactionReceipt({ hash: await issuer.deployContract({ abi: mockUSDCAbi, bytecode: artifact.bytecode, args: ["USDC"] }) });
    const instance = deployed.contractAddress!;
    await testClient.setCode({ address: USDC_ADDRESS, bytecode: (await client.getCode({ address: instance }))! });
    // Mappings keep nothing in their own slots: copying the first slots copies every plain variable.
    for (let index = 0; index < 64; index++) {
      const value = await client.getStorageAt({ address: instance, slot: toHex(index, { size: 32 }) });
      if (value !== undefined && BigInt(value) !== 0n) await testClient.setStorageAt({ address: USDC_ADDRESS, index, value });
    }
    for (const [role, amount] of Object.entries(funded) as [Role, bigint][]) {
      await testClient.setStorageAt({ address: USDC_ADDRESS, index: await balanceSlot(USDC_ADDRESS, addr(role)), value: pad(toHex(amount)) });
    }
    await testClient.setStorageAt({ address: USDC_ADDRESS, index: await supplySlot(USDC_ADDRESS), value: pad(toHex(totalFunded)) });
  }

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "agentmesh-rehearsal-"));
    deploymentsDir = path.join(dir, "deployments");
    const port = await freePort();
    rpcUrl = `http://127.0.0.1:${port}`;
    const node = new Service("the Base Sepolia stand-in", process.execPath, [hardhatCli, "node", "--network", "baseSepoliaStandIn", "--hostname", "127.0.0.1", "--port", String(port)]);
    services.push(node);
    await waitForRpc(rpcUrl, node.child, 60_000);
    client = createPublicClient({ chain, transport: http(rpcUrl) });
    testClient = createTestClient({ chain, mode: "hardhat", transport: http(rpcUrl) });
    // "A funded wallet": gas for everyone who sends transactions themselves. The relayer's gas
    // account starts empty (see the relayer test).
    for (const role of ["deployer", "usdcIssuer", "providerOwner", "creator", "seller", "holder"] as const) {
      await testClient.setBalance({ address: addr(role), value: 10n ** 18n });
    }
    await installUsdc();
  });

  after(async () => {
    for (const service of services.reverse()) await service.stop();
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("Base Sepolia's USDC address holds a token with USDC's interface: name USDC, version 2, 6 decimals, permit, EIP-3009, pause, blacklist", async () => {
    const read = <name extends "name" | "symbol" | "version" | "decimals" | "totalSupply" | "DOMAIN_SEPARATOR">(functionName: name) =>
      client.readContract({ address: USDC_ADDRESS, abi: mockUSDCAbi, functionName } as never) as Promise<unknown>;
    assert.deepEqual([await read("name"), await read("symbol"), await read("version"), await read("decimals")], ["USDC", "USDC", "2", 6]);
    const domain = usdcDomain(BASE_SEPOLIA, USDC_ADDRESS, "USDC", "2");
    assert.equal(await read("DOMAIN_SEPARATOR"), domainSeparator({ domain }));
    assert.equal(await read("totalSupply"), totalFunded);
    for (const [role, amount] of Object.entries(funded) as [Role, bigint][]) assert.equal(await wallet(addr(role)), amount, role);

    const holder = account("holder");
    const spender = privateKeyToAccount(generatePrivateKey()).address;
    const issuer = walletClient("usdcIssuer");
    // A permit signed on the "USDC" domain of chain 84532, sent by someone else.
    const deadline = (await client.getBlock()).timestamp + 600n;
    const permit = parseSignature(
      await holder.signTypedData({ domain, types: permitTypes, primaryType: "Permit", message: { owner: holder.address, spender, value: 2n * USDC, nonce: 0n, deadline } }),
    );
    await confirm(
      await issuer.writeContract({
        address: USDC_ADDRESS,
        abi: mockUSDCAbi,
        functionName: "permit",
        args: [holder.address, spender, 2n * USDC, deadline, Number(permit.v), permit.r, permit.s],
      }),
    );
    assert.equal(await client.readContract({ address: USDC_ADDRESS, abi: mockUSDCAbi, functionName: "allowance", args: [holder.address, spender] }), 2n * USDC);
    assert.equal(await client.readContract({ address: USDC_ADDRESS, abi: mockUSDCAbi, functionName: "nonces", args: [holder.address] }), 1n);

    // An EIP-3009 transfer, signed by the holder and sent by the issuer.
    const authorization = async (value: bigint) => {
      const nonce = keccak256(toHex(`rehearsal ${Math.random()}`));
      const message = { from: holder.address, to: spender, value, validAfter: 0n, validBefore: deadline, nonce };
      const signature = parseSignature(await holder.signTypedData({ domain, types: transferWithAuthorizationTypes, primaryType: "TransferWithAuthorization", message }));
      return {
        address: USDC_ADDRESS,
        abi: mockUSDCAbi,
        functionName: "transferWithAuthorization",
        args: [message.from, message.to, message.value, message.validAfter, message.validBefore, message.nonce, Number(signature.v), signature.r, signature.s],
        account: account("usdcIssuer"),
      } as const;
    };
    const first = await authorization(1n * USDC);
    await confirm(await issuer.writeContract(first));
    assert.deepEqual([await wallet(holder.address), await wallet(spender)], [2n * USDC, 1n * USDC]);

    // Paused, and then with the holder blacklisted, no transfer moves; the blacklist bit hides in the
    // balance word, which still reads as the balance.
    await confirm(await issuer.writeContract({ address: USDC_ADDRESS, abi: mockUSDCAbi, functionName: "pause" }));
    await assert.rejects(client.simulateContract(await authorization(1n)), /TokenPaused/);
    await assert.rejects(client.simulateContract({ address: USDC_ADDRESS, abi: mockUSDCAbi, functionName: "transfer", args: [spender, 1n], account: holder }), /TokenPaused/);
    await confirm(await issuer.writeContract({ address: USDC_ADDRESS, abi: mockUSDCAbi, functionName: "unpause" }));
    await confirm(await issuer.writeContract({ address: USDC_ADDRESS, abi: mockUSDCAbi, functionName: "blacklist", args: [holder.address] }));
    assert.equal(await client.readContract({ address: USDC_ADDRESS, abi: mockUSDCAbi, functionName: "isBlacklisted", args: [holder.address] }), true);
    assert.equal(await wallet(holder.address), 2n * USDC);
    await assert.rejects(client.simulateContract(await authorization(1n)), /AccountBlacklisted/);
    await assert.rejects(client.simulateContract({ address: USDC_ADDRESS, abi: mockUSDCAbi, functionName: "transfer", args: [spender, 1n], account: holder }), /AccountBlacklisted/);
    await confirm(await issuer.writeContract({ address: USDC_ADDRESS, abi: mockUSDCAbi, functionName: "unBlacklist", args: [holder.address] }));
    assert.equal(await read("totalSupply"), totalFunded);
    assert.deepEqual([await wallet(holder.address), await wallet(spender)], [2n * USDC, 1n * USDC]);
  });

  it("deploys with `npm run deploy:base-sepolia`, the RPC URL and deployer key from the environment, into AGENTMESH_DEPLOYMENTS_DIR", async () => {
    const repositoryRecord = await readFile(path.join(ROOT, "deployments/84532.json"), "utf8").catch(() => null);
    const deployed = await run("npm", ["run", "deploy:base-sepolia", "--", "--admin", admin, "--treasury", treasury], {
      ...deploymentsEnv(),
      BASE_SEPOLIA_RPC_URL: rpcUrl,
      DEPLOYER_PRIVATE_KEY: keys.deployer,
    });
    assert.equal(deployed.code, 0, `${deployed.stdout}\n${deployed.stderr}`);
    const file = path.join(deploymentsDir, "84532.json");
    assert.match(deployed.stdout, new RegExp(`Deployed to chain 84532; wrote ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.`));
    assert.match(deployed.stdout, new RegExp(`The admin ${admin} holds every contract's admin role; the deployer ${addr("deployer")} holds none\\.`));
    deployment = JSON.parse(await readFile(file, "utf8"));
    assert.equal(deployment.chainId, BASE_SEPOLIA);
    assert.equal(deployment.usdc, USDC_ADDRESS, "Base Sepolia's USDC, no mock deployed");
    assert.deepEqual(Object.keys(deployment.contracts).sort(), ["AgentMarketplace", "ComputeEscrow", "ProviderRegistry", "RelayerDirectory", "SplitsLedger"]);
    // The next steps name the exact BaseScan verification of each contract, constructor arguments included.
    const { contracts } = deployment;
    for (const line of [
      `npx hardhat verify --network baseSepolia ${contracts.SplitsLedger} ${USDC_ADDRESS} 259200 ${admin}`,
      `npx hardhat verify --network baseSepolia ${contracts.AgentMarketplace} ${USDC_ADDRESS} ${contracts.SplitsLedger} ${contracts.ComputeEscrow} 259200 ${admin} ${treasury}`,
      `npx hardhat verify --network baseSepolia ${contracts.RelayerDirectory}`,
    ]) {
      assert.ok(deployed.stdout.split("\n").some((printed) => printed.trim() === line), `${line}\n${deployed.stdout}`);
    }
    for (const [name, address] of Object.entries(deployment.contracts)) assert.ok((await client.getCode({ address: address as Address }))!.length > 2, `${name} has code`);
    for (const [name, address, abi] of [
      ["ComputeEscrow", deployment.contracts.ComputeEscrow, computeEscrowAbi],
      ["ProviderRegistry", deployment.contracts.ProviderRegistry, providerRegistryAbi],
      ["SplitsLedger", deployment.contracts.SplitsLedger, splitsLedgerAbi],
      ["AgentMarketplace", deployment.contracts.AgentMarketplace!, agentMarketplaceAbi],
    ] as const) {
      const hasRole = (who: Address) => client.readContract({ address, abi: abi as typeof computeEscrowAbi, functionName: "hasRole", args: [DEFAULT_ADMIN_ROLE, who] });
      assert.deepEqual([await hasRole(admin), await hasRole(addr("deployer"))], [true, false], name);
    }
    assert.equal(await client.readContract({ address: deployment.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "feeBps" }), 250n);
    assert.equal(await readFile(path.join(ROOT, "deployments/84532.json"), "utf8").catch(() => null), repositoryRecord, "the repository's deployments/ is untouched");
  });

  it("runs a relayer from the deployment file and keystore keys: not ready while its gas account is empty, naming it", async () => {
    signerKeystore = path.join(dir, "relayer-signer.json");
    signerAddress = json(await agentmesh(["keystore", "new", signerKeystore, "--json"], { AGENTMESH_KEYSTORE_PASSWORD: PASSWORD })).address;

    const provider = new Service("the reference provider", process.execPath, ["--disable-warning=ExperimentalWarning", "relayer/src/reference-provider/main.ts", "--port", "0"]);
    services.push(provider);
    providerUrl = (await provider.waitFor(/^(http:\/\/127\.0\.0\.1:\d+\/v1)$/m))[1]!;

    const port = await freePort();
    relayerUrl = `http://127.0.0.1:${port}`;
    relayer = new Service(
      "the relayer",
      "npm",
      // The provider and the agent below listen on 127.0.0.1, which a relayer off the local chain
      // calls only when its operator allows private endpoints.
      ["run", "relayer", "--", "--network", "base-sepolia", "--rpc", rpcUrl, "--port", String(port), "--db", path.join(dir, "relayer.db"), "--public-url", relayerUrl, "--settle-age-ms", "1000", "--signer-keystore", signerKeystore, "--allow-private-endpoints"],
      { ...deploymentsEnv(), AGENTMESH_GAS_KEY: keys.gas, AGENTMESH_KEYSTORE_PASSWORD: PASSWORD },
    );
    services.push(relayer);
    await relayer.waitFor(/relayer listening on/);

    const about = await relayerInfo();
    assert.equal(about.chainId, BASE_SEPOLIA);
    assert.deepEqual(about.contracts, {
      ComputeEscrow: deployment.contracts.ComputeEscrow,
      ProviderRegistry: deployment.contracts.ProviderRegistry,
      AgentMarketplace: deployment.contracts.AgentMarketplace,
      RelayerDirectory: deployment.contracts.RelayerDirectory,
    });
    assert.equal(about.gasAddress, addr("gas"));
    assert.deepEqual(about.receiptSigners, [signerAddress]);

    // Caught up with the chain, it lacks only gas, and so has not announced itself in the directory yet.
    const notReady = await until("the relayer's readiness", readiness, (state) => state.problems.map((problem) => problem.check).join() === "gas,directory");
    assert.deepEqual([notReady.httpStatus, notReady.status], [503, "not_ready"]);
    assert.match(notReady.problems[0]!.message, new RegExp(`^the gas account ${addr("gas")} holds 0 ETH; a settlement needs about`));
    assert.equal(notReady.problems[1]!.message, `the directory does not point receipt signer ${signerAddress} at ${relayerUrl}: waiting for the gas account to be able to pay`);
    assert.equal(await directoryEntry(signerAddress), "", "nothing announced without gas");
    assert.doesNotMatch(relayer.output, new RegExp(keys.gas.slice(2), "i"), "the gas key is never logged");
    // The operator funds it; the relayer reports ready at its next check (awaited before the first call).
    await testClient.setBalance({ address: addr("gas"), value: 10n ** 18n });
  });

  it("registers a provider serving the reference provider, its receipt signer delegated to the relayer's published signer, and stakes", async () => {
    const ownerKeystore = path.join(dir, "provider-owner.json");
    const imported = await agentmesh(["keystore", "import", ownerKeystore], { AGENTMESH_PRIVATE_KEY: keys.providerOwner, AGENTMESH_KEYSTORE_PASSWORD: PASSWORD });
    assert.equal(imported.code, 0, imported.stderr);
    assert.ok(imported.stdout.includes(addr("providerOwner")));

    const registered = json(
      await agentmesh(
        ["provider", "register", "--endpoint", providerUrl, "--model", "agentmesh-small:0.0002:0.0008:8192", "--stake", "100", "--min-charge", "0.00001", "--keystore", ownerKeystore, ...onNetwork(), "--json"],
        { ...deploymentsEnv(), AGENTMESH_KEYSTORE_PASSWORD: PASSWORD },
      ),
    );
    providerId = BigInt(registered.providerId);
    assert.match(registered.transactions[0].url, /^https:\/\/sepolia\.basescan\.org\/tx\/0x[0-9a-f]{64}$/, "Base Sepolia's explorer link");
    const published = (await relayerInfo()).receiptSigners[0]!;
    json(await agentmesh(["provider", "delegate-signer", String(providerId), published, ...onNetwork(), "--json"], keyEnv("providerOwner")));
    json(await agentmesh(["provider", "stake", String(providerId), "5.5", ...onNetwork(), "--json"], keyEnv("providerOwner")));

    const found = await client.readContract({ address: deployment.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName: "getProvider", args: [providerId] });
    assert.deepEqual(
      [found.owner, found.receiptSigner, found.payout, found.endpoint, found.stake, found.minChargePerCall],
      [addr("providerOwner"), signerAddress, addr("providerOwner"), providerUrl, 105_500_000n, 10],
    );
    assert.equal(await wallet(addr("providerOwner")), funded.providerOwner! - 105_500_000n);
    assert.equal(await ledger(deployment.contracts.ProviderRegistry), 105_500_000n, "the stake is the registry's ledger balance");
  });

  it("creates and funds a budget with the CLI, and allows the agent", async () => {
    const created = json(await agentmesh(["budget", "create", "--amount", "20", "--session-limit", "2", "--days", "7", ...onNetwork(), "--json"], keyEnv("creator")));
    budgetId = BigInt(created.budgetId);
    const allowed = json(await agentmesh(["budget", "allow", String(budgetId), addr("agent"), ...onNetwork(), "--json"], keyEnv("creator")));
    assert.equal(allowed.allowed, true);
    const shown = json(await agentmesh(["budget", "show", String(budgetId), "--agent", addr("agent"), ...onNetwork(), "--json"], deploymentsEnv()));
    assert.deepEqual([shown.budget.creator, shown.budget.available, shown.budget.perSessionLimit, shown.agents], [addr("creator"), "20000000", "2000000", { [addr("agent")]: true }]);
    assert.equal(await wallet(addr("creator")), funded.creator! - 20n * USDC);
    assert.equal(await ledger(deployment.contracts.ComputeEscrow), 20n * USDC, "the budget is the escrow's ledger balance");
  });

  it("serves the official openai client through `agentmesh proxy --network base-sepolia`; the relayer settles; the provider withdraws its earnings", async () => {
    // Ready now (the gas account was funded, so the relayer announced itself), and its index holds the provider and the budget.
    const head = Number(await client.getBlockNumber());
    await until("the relayer ready with the chain indexed", readiness, (state) => state.httpStatus === 200 && (state.indexedBlock ?? 0) >= head, 40_000);
    assert.equal(await directoryEntry(signerAddress), relayerUrl, "the relayer's signer names it in the RelayerDirectory");

    const proxyPort = await freePort();
    const token = `proxy-${randomBytes(16).toString("hex")}`;
    const proxy = new Service(
      "agentmesh proxy",
      process.execPath,
      [
        "--disable-warning=ExperimentalWarning",
        CLI,
        "proxy",
        ...onNetwork(),
        "--budget",
        String(budgetId),
        "--port",
        String(proxyPort),
        "--session-max-spend",
        "1",
        "--token-file",
        path.join(dir, "proxy-token"),
      ],
      { ...keyEnv("agent"), AGENTMESH_PROXY_TOKEN: token },
    );
    services.push(proxy);
    await proxy.waitFor(/agent proxy on http:\/\/127\.0\.0\.1:\d+\/v1/);

    const model = await client.readContract({ address: deployment.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName: "getModel", args: [providerId, 0n] });
    const listedProvider = await client.readContract({ address: deployment.contracts.ProviderRegistry, abi: providerRegistryAbi, functionName: "getProvider", args: [providerId] });
    const prices = { inputPricePer1K: model.inputPricePer1K, outputPricePer1K: model.outputPricePer1K, minChargePerCall: listedProvider.minChargePerCall };
    assert.deepEqual([model.name, model.inputPricePer1K, model.outputPricePer1K], ["agentmesh-small", 200, 800]);
    const openai = new OpenAI({ baseURL: `http://127.0.0.1:${proxyPort}/v1`, apiKey: token });
    type Billed = { receipt: { inputTokens: number; outputTokens: number; cost: string | number; sequence: number; sessionId: Hex } };
    const receipts: Billed["receipt"][] = [];
    for (const content of ["Name a colour.", "Name a planet."]) {
      const completion = (await openai.chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content }], max_tokens: 12 })) as unknown as Billed & { choices: { message: { content: string } }[] };
      assert.ok(completion.choices[0]!.message.content.length > 0);
      receipts.push(completion.receipt);
    }
    const stream = await openai.chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: "Count to five." }], max_tokens: 12, stream: true });
    let streamed = "";
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.delta?.content ?? "";
      const billed = chunk as unknown as Partial<Billed>;
      if (billed.receipt) receipts.push(billed.receipt);
    }
    assert.ok(streamed.length > 0);
    assert.deepEqual(receipts.map((receipt) => receipt.sequence), [1, 2, 3], "one session, three calls");
    const sessionId = receipts[0]!.sessionId;
    for (const receipt of receipts) {
      assert.equal(receipt.sessionId, sessionId);
      assert.equal(BigInt(receipt.cost), callCost(prices, receipt.inputTokens, receipt.outputTokens), "each call costs what the listed prices say");
    }
    spent = receipts.reduce((sum, receipt) => sum + BigInt(receipt.cost), 0n);

    // The relayer settles the signed vouchers by age (the last one is sent after the SDK's idle delay).
    const listed = json(await agentmesh(["session", "list", "--budget", String(budgetId), ...onNetwork(), "--json"], deploymentsEnv()));
    assert.deepEqual(listed.sessions.map((session: { sessionId: string }) => session.sessionId.toLowerCase()), [sessionId.toLowerCase()]);
    const session = () => client.readContract({ address: deployment.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getSession", args: [sessionId] });
    await until("the session's settlement", session, (state) => state.settled === spent && state.sequence === 3, 40_000);

    // Stopping the proxy closes its session cooperatively: the unused lock returns to the budget.
    await proxy.stop();
    assert.equal(proxy.child.exitCode, 0, proxy.output);
    const budget = () => client.readContract({ address: deployment.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getBudget", args: [budgetId] });
    await until("the budget's refund of the unused lock", budget, (state) => state.available === 20n * USDC - spent, 40_000);
    assert.equal((await session()).settled, spent);

    // The fee is taken per settled amount, rounded down: read what each settlement paid.
    const settledEvents = await client.getContractEvents({ address: deployment.contracts.ComputeEscrow, abi: computeEscrowAbi, eventName: "VoucherSettled", args: { sessionId }, fromBlock: BigInt(deployment.startBlock) });
    const paid = settledEvents.map((event) => event.args.paid!);
    assert.equal(paid.reduce((sum, amount) => sum + amount, 0n), spent);
    fees = paid.reduce((sum, amount) => sum + (amount * 250n) / 10_000n, 0n);
    providerEarnings = spent - fees;
    assert.ok(providerEarnings > 0n);
    assert.equal(await ledger(addr("providerOwner")), providerEarnings);
    assert.equal(await ledger(treasury), fees);
    assert.equal(await ledger(deployment.contracts.ComputeEscrow), 20n * USDC - spent);

    const shown = json(await agentmesh(["balance", ...onNetwork(), "--json"], keyEnv("providerOwner")));
    assert.deepEqual([shown.ledger, shown.wallet], [providerEarnings.toString(), (funded.providerOwner! - 105_500_000n).toString()]);
    const withdrawn = await agentmesh(["withdraw", formatUsdc(providerEarnings), "--keystore", path.join(dir, "provider-owner.json"), ...onNetwork()], {
      ...deploymentsEnv(),
      AGENTMESH_KEYSTORE_PASSWORD: PASSWORD,
    });
    assert.equal(withdrawn.code, 0, withdrawn.stderr);
    assert.match(withdrawn.stdout, new RegExp(`withdraw ${formatUsdc(providerEarnings).replace(".", "\\.")} USDC to ${addr("providerOwner")}: 0x[0-9a-f]{64} https://sepolia\\.basescan\\.org/tx/0x[0-9a-f]{64}`));
    assert.equal(await ledger(addr("providerOwner")), 0n);
    assert.equal(await wallet(addr("providerOwner")), funded.providerOwner! - 105_500_000n + providerEarnings);
  });

  it("publishes an agent with the CLI and is paid for it with @x402/fetch through the relayer's x402 URL", async () => {
    const agentServer = createServer(async (req, res) => {
      let body = "";
      for await (const chunk of req) body += chunk;
      const { input } = JSON.parse(body) as { input: string };
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ output: `echo: ${input}` }));
    });
    servers.push(agentServer);
    agentServer.listen(0, "127.0.0.1");
    await once(agentServer, "listening");
    const endpoint = `http://127.0.0.1:${(agentServer.address() as { port: number }).port}/`;

    const published = json(await agentmesh(["agent", "publish", "--name", "Echo", "--endpoint", endpoint, "--price", "0.05", ...onNetwork(), "--json"], keyEnv("seller")));
    const agentId = BigInt(published.agentId);
    const paymentAddress = published.paymentAddress as Address;
    // A buyer finds a relayer serving this deployment from the chain alone, and pays the agent there.
    const found = await findRelayer(client as PublicClient, deployment);
    assert.equal(found.url, relayerUrl);
    const url = `${found.url}/agents/${agentId}`;
    await until("the relayer's view of the listing", async () => (await fetch(`${found.url}/v1/agents/${agentId}`)).status, (status) => status === 200);

    const unpaid = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: "hi" }) });
    assert.equal(unpaid.status, 402);
    assert.deepEqual(decodePaymentRequiredHeader(unpaid.headers.get("payment-required")!).accepts, [
      { scheme: "exact", network: `eip155:${BASE_SEPOLIA}`, asset: USDC_ADDRESS, amount: "50000", payTo: paymentAddress, maxTimeoutSeconds: 300, extra: { name: "USDC", version: "2" } },
    ]);

    const payer = account("payer");
    const x402 = x402Client.fromConfig({
      schemes: [{ network: `eip155:${BASE_SEPOLIA}`, client: new ExactEvmScheme(toClientEvmSigner(payer, client)) }],
      spendControls: { allowedAssets: [{ network: `eip155:${BASE_SEPOLIA}`, asset: USDC_ADDRESS }] },
    });
    const marketplace = deployment.contracts.AgentMarketplace!;
    const response = await wrapFetchWithPayment(fetch, x402)(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: "rehearsal" }) });
    assert.equal(response.status, 200, await response.clone().text());
    assert.deepEqual(await response.json(), { output: "echo: rehearsal" });
    const settled = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    assert.deepEqual([settled.success, settled.payer, settled.network], [true, payer.address, `eip155:${BASE_SEPOLIA}`]);
    assert.equal((await client.getTransactionReceipt({ hash: settled.transaction as Hex })).status, "success");
    assert.equal(await wallet(payer.address), funded.payer! - 50_000n);
    assert.equal(await wallet(paymentAddress), 0n);

    // Distribution (anyone may send it; the relayer's payout worker would, on its schedule): the
    // listing's flow gives all of it to the seller.
    if ((await ledger(marketplace)) > 0n) {
      const flow = { fixedAmounts: [], shares: [], payerReferrerShare: 0, payeeReferrerShare: 0, remainder: { kind: 0, account: addr("seller"), budgetId: 0n } };
      await confirm(
        await walletClient("seller").writeContract({ address: marketplace, abi: agentMarketplaceAbi, functionName: "distribute", args: [agentId, flow, [{ payer: payer.address, referrer: zeroAddress, amount: 50_000n }]] }),
      );
    }
    assert.equal(await ledger(addr("seller")), 50_000n);
    assert.equal(await ledger(marketplace), 0n);
  });

  it("ends with every balance accounted for to the unit", async () => {
    const { SplitsLedger, ComputeEscrow, ProviderRegistry, AgentMarketplace } = deployment.contracts;
    assert.deepEqual(
      {
        creator: await wallet(addr("creator")),
        providerOwner: await wallet(addr("providerOwner")),
        payer: await wallet(addr("payer")),
        seller: await wallet(addr("seller")),
        agent: await wallet(addr("agent")),
        ledgerContract: await wallet(SplitsLedger),
      },
      {
        creator: funded.creator! - 20n * USDC,
        providerOwner: funded.providerOwner! - 105_500_000n + providerEarnings,
        payer: funded.payer! - 50_000n,
        seller: 0n,
        agent: 0n,
        ledgerContract: 20n * USDC + 105_500_000n - providerEarnings + 50_000n,
      },
    );
    const ledgers = {
      escrow: await ledger(ComputeEscrow),
      registry: await ledger(ProviderRegistry),
      marketplace: await ledger(AgentMarketplace!),
      providerOwner: await ledger(addr("providerOwner")),
      treasury: await ledger(treasury),
      seller: await ledger(addr("seller")),
    };
    assert.deepEqual(ledgers, { escrow: 20n * USDC - spent, registry: 105_500_000n, marketplace: 0n, providerOwner: 0n, treasury: fees, seller: 50_000n });
    assert.equal(
      Object.values(ledgers).reduce((sum, amount) => sum + amount, 0n),
      await wallet(SplitsLedger),
      "the ledger holds exactly the USDC its balances name",
    );
    const budget = await client.readContract({ address: ComputeEscrow, abi: computeEscrowAbi, functionName: "getBudget", args: [budgetId] });
    assert.equal(budget.available, 20n * USDC - spent);
    assert.equal(await client.readContract({ address: USDC_ADDRESS, abi: mockUSDCAbi, functionName: "totalSupply" }), totalFunded);
  });

  it("refuses bad input with a clear message, and changes nothing", async () => {
    // Deployment folders that lie: Base's record holding this deployment under chain 8453, and a
    // "Base Sepolia" record of another chain.
    const asBase = path.join(dir, "as-base");
    const otherChain = path.join(dir, "other-chain");
    await mkdir(asBase);
    await mkdir(otherChain);
    await writeFile(path.join(asBase, "8453.json"), JSON.stringify({ ...deployment, chainId: 8453 }));
    await writeFile(path.join(otherChain, "84532.json"), JSON.stringify({ ...deployment, chainId: 8453 }));
    const deploymentFile = await readFile(path.join(deploymentsDir, "84532.json"), "utf8");
    const relayerArgs = (extra: string[]) => ["run", "relayer", "--", "--port", "0", "--db", path.join(dir, `refused-${Math.random()}.db`), ...extra];
    const relayerKeys = { AGENTMESH_GAS_KEY: keys.gas, AGENTMESH_SIGNER_KEYS: generatePrivateKey() };
    const admins = ["--admin", admin, "--treasury", treasury];
    const cases: { name: string; command: string; args: string[]; env: Record<string, string>; code: number; message: RegExp }[] = [
      {
        name: "deploy with no --admin",
        command: "npm",
        args: ["run", "deploy:base-sepolia", "--", "--treasury", treasury],
        env: { ...deploymentsEnv(), BASE_SEPOLIA_RPC_URL: rpcUrl, DEPLOYER_PRIVATE_KEY: keys.deployer },
        code: 1,
        message: /--admin must be a non-zero address \(got ""\)/,
      },
      {
        name: "deploy with no deployer key",
        command: "npm",
        args: ["run", "deploy:base-sepolia", "--", ...admins],
        env: { ...deploymentsEnv(), BASE_SEPOLIA_RPC_URL: rpcUrl },
        code: 1,
        message: /Configuration Variable "DEPLOYER_PRIVATE_KEY" not found/,
      },
      {
        name: "deploy to Base through a Base Sepolia RPC",
        command: "npm",
        args: ["run", "deploy:base", "--", ...admins],
        env: { ...deploymentsEnv(), BASE_RPC_URL: rpcUrl, DEPLOYER_PRIVATE_KEY: keys.deployer },
        code: 1,
        message: /Hardhat was set to use chain id "8453", but connected to a chain with id "84532"/,
      },
      {
        name: "a relayer with no RPC URL",
        command: "npm",
        args: relayerArgs(["--network", "base-sepolia"]),
        env: { ...deploymentsEnv(), ...relayerKeys },
        code: 2,
        message: /^--rpc \(or AGENTMESH_RPC_URL\) is required: the RPC URL of chain 84532$/m,
      },
      {
        name: "a relayer whose signer keystore's password is wrong",
        command: "npm",
        args: relayerArgs(["--network", "base-sepolia", "--rpc", rpcUrl, "--signer-keystore", signerKeystore]),
        env: { ...deploymentsEnv(), AGENTMESH_GAS_KEY: keys.gas, AGENTMESH_KEYSTORE_PASSWORD: "not the password" },
        code: 2,
        message: /^--signer-keystore .*relayer-signer\.json could not be decrypted: wrong password or damaged file$/m,
      },
      {
        name: "a relayer for Base pointed at the Base Sepolia RPC",
        command: "npm",
        args: relayerArgs(["--network", "base", "--rpc", rpcUrl]),
        env: { AGENTMESH_DEPLOYMENTS_DIR: asBase, ...relayerKeys },
        code: 2,
        message: /^the RPC serves chain 84532, not the configured chain 8453$/m,
      },
      {
        name: "a relayer whose Base Sepolia deployment file is for another chain",
        command: "npm",
        args: relayerArgs(["--network", "base-sepolia", "--rpc", rpcUrl]),
        env: { AGENTMESH_DEPLOYMENTS_DIR: otherChain, ...relayerKeys },
        code: 2,
        message: /other-chain\/84532\.json is a deployment on chain 8453, not base-sepolia \(84532\)$/m,
      },
      {
        name: "a budget on Base through the Base Sepolia RPC",
        command: process.execPath,
        args: [CLI, "budget", "create", "--amount", "1", "--session-limit", "1", "--network", "base", "--rpc", rpcUrl],
        env: { AGENTMESH_DEPLOYMENTS_DIR: asBase, AGENTMESH_PRIVATE_KEY: keys.creator },
        code: 2,
        message: new RegExp(`--rpc ${rpcUrl.replace(/[.]/g, "\\.")} serves chain 84532, but the deployment is for chain 8453`),
      },
      {
        name: "a command whose Base Sepolia deployment file is for another chain",
        command: process.execPath,
        args: [CLI, "withdraw", "1", ...onNetwork()],
        env: { AGENTMESH_DEPLOYMENTS_DIR: otherChain, AGENTMESH_PRIVATE_KEY: keys.providerOwner },
        code: 2,
        message: /other-chain\/84532\.json is for chain 8453, not base-sepolia \(84532\)/,
      },
      {
        name: "a proxy with no budget",
        command: process.execPath,
        args: [CLI, "proxy", ...onNetwork(), "--port", "0"],
        env: keyEnv("agent"),
        code: 2,
        message: /^agentmesh proxy: --budget is required$/m,
      },
      {
        name: "a proxy whose agent keystore's password is wrong",
        command: process.execPath,
        args: [CLI, "proxy", ...onNetwork(), "--budget", String(budgetId), "--keystore", path.join(dir, "provider-owner.json"), "--port", "0"],
        env: { ...deploymentsEnv(), AGENTMESH_KEYSTORE_PASSWORD: "not the password" },
        code: 2,
        message: /provider-owner\.json could not be decrypted: wrong password/,
      },
    ];
    const watched = (["deployer", "gas", "providerOwner", "creator", "agent", "payer", "seller"] as const).map(addr);
    const snapshot = async () => ({
      nonces: await Promise.all(watched.map((who) => client.getTransactionCount({ address: who }))),
      wallets: await Promise.all(watched.map(wallet)),
      ledgers: await Promise.all([...watched, treasury, deployment.contracts.ComputeEscrow].map(ledger)),
      budget: await client.readContract({ address: deployment.contracts.ComputeEscrow, abi: computeEscrowAbi, functionName: "getBudget", args: [budgetId] }),
    });
    const before = await snapshot();
    // None of them sends anything, so they run four at a time (a pool: the slow Hardhat runs do not
    // hold the quick ones back).
    const queue = [...cases];
    const worker = async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        const { name, command, args, env, code, message } = next;
        const result = await run(command, command === process.execPath ? ["--disable-warning=ExperimentalWarning", ...args] : args, env);
        assert.equal(result.code, code, `${name}: exit ${result.code}\n${result.stdout}\n${result.stderr}`);
        assert.match(result.stderr, message, `${name}:\n${result.stderr}`);
        assert.doesNotMatch(`${result.stdout}${result.stderr}`, new RegExp(`${keys.gas.slice(2)}|${keys.deployer.slice(2)}|${PASSWORD}`, "i"), `${name}: a secret printed`);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    assert.deepEqual(await snapshot(), before, "nothing changed on-chain");
    assert.equal(await readFile(path.join(deploymentsDir, "84532.json"), "utf8"), deploymentFile, "the deployment file is untouched");
    assert.equal(await readFile(path.join(asBase, "8453.json"), "utf8"), JSON.stringify({ ...deployment, chainId: 8453 }));
  });
});
