import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { encryptKeystoreJson } from "ethers";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import type { Deployment, LocalStack } from "@agentmesh/sdk";
import { ConfigError, readRelayerConfig } from "../src/config.ts";

const RELAYER_ROOT = path.resolve(import.meta.dirname, "..");
const address = (key: `0x${string}`) => privateKeyToAccount(key).address;
const GAS_KEY = generatePrivateKey();
const SIGNER_KEYS = [generatePrivateKey(), generatePrivateKey()];
const DEV_RELAYER_KEY = generatePrivateKey();
const DEV_SIGNER_KEY = generatePrivateKey();
const PASSWORD = "correct horse battery staple";

const deployment: Deployment = {
  chainId: 84_532,
  startBlock: 123,
  usdc: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
  contracts: {
    SplitsLedger: "0x1000000000000000000000000000000000000001",
    ProviderRegistry: "0x1000000000000000000000000000000000000002",
    ComputeEscrow: "0x1000000000000000000000000000000000000003",
    AgentMarketplace: "0x1000000000000000000000000000000000000004",
    RelayerDirectory: "0x1000000000000000000000000000000000000005",
  },
};

const stack: LocalStack = {
  ...deployment,
  chainId: 31_337,
  rpcUrl: "http://127.0.0.1:8545",
  accounts: { relayer: { address: address(DEV_RELAYER_KEY), privateKey: DEV_RELAYER_KEY }, signerA: { address: address(DEV_SIGNER_KEY), privateKey: DEV_SIGNER_KEY } },
  budgetId: 1,
  providers: [{ id: 1, name: "a", endpoint: "http://127.0.0.1:9001/v1", owner: address(DEV_SIGNER_KEY), receiptSigner: address(DEV_SIGNER_KEY) }],
  demoAgent: { id: 1, endpoint: "http://127.0.0.1:9100", paymentAddress: address(DEV_SIGNER_KEY), pricePerCall: "1000" },
};

describe("relayer configuration (flags and environment, one schema)", () => {
  let dir: string;
  let deploymentFile: string;
  let stackFile: string;
  let gasKeystore: string;
  const cwd = process.cwd();

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "agentmesh-config-"));
    deploymentFile = path.join(dir, "deployment.json");
    stackFile = path.join(dir, "local.json");
    gasKeystore = path.join(dir, "gas.json");
    await writeFile(deploymentFile, JSON.stringify(deployment));
    await writeFile(stackFile, JSON.stringify(stack));
    // A cheap scrypt cost keeps the test fast; `encryptKeystore` uses ethers' defaults.
    await writeFile(gasKeystore, await encryptKeystoreJson({ address: address(GAS_KEY), privateKey: GAS_KEY }, PASSWORD, { scrypt: { N: 1024 } }));
    await mkdir(path.join(dir, "deployments"));
    await writeFile(path.join(dir, "deployments", "84532.json"), JSON.stringify(deployment));
    await writeFile(path.join(dir, "deployments", "8453.json"), JSON.stringify(deployment)); // a Base Sepolia record under Base's name
    process.chdir(dir);
  });

  after(async () => {
    process.chdir(cwd);
    await rm(dir, { recursive: true, force: true });
  });

  const secrets = { AGENTMESH_GAS_KEY: GAS_KEY, AGENTMESH_SIGNER_KEYS: SIGNER_KEYS.join(",") };

  it("runs from a deployment file with the RPC URL and keys from the environment", async () => {
    const options = await readRelayerConfig(["--deployment", deploymentFile, "--port", "9000", "--confirmations", "5"], { ...secrets, AGENTMESH_RPC_URL: "https://sepolia.base.org" });
    assert.equal(options.chain.rpcUrl, "https://sepolia.base.org");
    assert.equal(options.chain.chainId, 84_532);
    assert.equal(options.chain.escrow, deployment.contracts.ComputeEscrow);
    assert.equal(options.chain.registry, deployment.contracts.ProviderRegistry);
    assert.equal(options.chain.marketplace, deployment.contracts.AgentMarketplace);
    assert.equal(options.chain.directory, deployment.contracts.RelayerDirectory);
    assert.equal(options.chain.relayerPrivateKey, GAS_KEY);
    assert.deepEqual(options.receiptSignerKeys, SIGNER_KEYS);
    assert.equal(options.indexer.startBlock, 123);
    assert.equal(options.port, 9000);
    assert.equal(options.host, "127.0.0.1");
    assert.deepEqual(options.transactions, { confirmations: 5, maxFeePerGas: 50_000_000_000n });
    assert.deepEqual(options.settlement, { maxBatch: 100, maxAgeMs: 30_000 });
  });

  it("issue 14: takes the store from --db, AGENTMESH_DB or DATABASE_URL, in that order, with its pool size", async () => {
    const base = ["--deployment", deploymentFile, "--rpc", "https://rpc.example"];
    const shared = "postgres://relayer:pw@db.example:5432/agentmesh";
    assert.equal((await readRelayerConfig(base, secrets)).databasePath, ".agentmesh/relayer.db");
    assert.equal((await readRelayerConfig(base, { ...secrets, DATABASE_URL: shared })).databasePath, shared);
    assert.equal((await readRelayerConfig(base, { ...secrets, DATABASE_URL: shared, AGENTMESH_DB: "other.db" })).databasePath, "other.db");
    const flagged = await readRelayerConfig([...base, "--db", "postgres://db.example/agentmesh", "--db-pool-size", "25"], { ...secrets, DATABASE_URL: shared });
    assert.deepEqual([flagged.databasePath, flagged.databasePoolSize], ["postgres://db.example/agentmesh", 25]);
  });

  it("takes the public URL and the allowed CORS origins from flags or a comma-separated variable", async () => {
    const base = ["--deployment", deploymentFile, "--rpc", "https://rpc.example"];
    const byFlags = await readRelayerConfig([...base, "--public-url", "https://relayer.example", "--cors-origin", "https://a.example", "--cors-origin", "http://localhost:5173"], secrets);
    assert.deepEqual([byFlags.publicUrl, byFlags.corsOrigins], ["https://relayer.example", ["https://a.example", "http://localhost:5173"]]);
    const byEnv = await readRelayerConfig(base, { ...secrets, AGENTMESH_PUBLIC_URL: "https://r.example", AGENTMESH_CORS_ORIGINS: "https://a.example, https://b.example" });
    assert.deepEqual([byEnv.publicUrl, byEnv.corsOrigins], ["https://r.example", ["https://a.example", "https://b.example"]]);
    const byDefault = await readRelayerConfig(base, secrets);
    assert.deepEqual([byDefault.publicUrl, byDefault.corsOrigins], [undefined, undefined]);
  });

  it("finds a public network's deployment by name, and a flag wins over its variable", async () => {
    const options = await readRelayerConfig(["--network", "base-sepolia", "--rpc", "https://flag.example"], { ...secrets, AGENTMESH_RPC_URL: "https://env.example" });
    assert.equal(options.chain.chainId, 84_532);
    assert.equal(options.chain.rpcUrl, "https://flag.example");
  });

  it("reads --network's deployment from AGENTMESH_DEPLOYMENTS_DIR when it is set", async () => {
    const elsewhere = path.join(dir, "elsewhere");
    await mkdir(elsewhere);
    await writeFile(path.join(elsewhere, "84532.json"), JSON.stringify({ ...deployment, startBlock: 456 }));
    const options = await readRelayerConfig(["--network", "base-sepolia", "--rpc", "https://rpc.example"], { ...secrets, AGENTMESH_DEPLOYMENTS_DIR: elsewhere });
    assert.equal(options.indexer.startBlock, 456);
    await assert.rejects(readRelayerConfig(["--network", "base", "--rpc", "https://rpc.example"], { ...secrets, AGENTMESH_DEPLOYMENTS_DIR: elsewhere }), /elsewhere\/8453\.json/);
  });

  it("calls private endpoints off the local chain only with --allow-private-endpoints", async () => {
    const base = ["--deployment", deploymentFile, "--rpc", "https://rpc.example"];
    assert.equal((await readRelayerConfig(base, secrets)).allowPrivateEndpoints, false);
    assert.equal((await readRelayerConfig([...base, "--allow-private-endpoints"], secrets)).allowPrivateEndpoints, true);
  });

  it("takes the gas key from an encrypted keystore, its password from the environment", async () => {
    const options = await readRelayerConfig(["--deployment", deploymentFile, "--rpc", "https://rpc.example", "--gas-keystore", gasKeystore], {
      AGENTMESH_SIGNER_KEYS: SIGNER_KEYS[0],
      AGENTMESH_KEYSTORE_PASSWORD: PASSWORD,
    });
    assert.equal(options.chain.relayerPrivateKey, GAS_KEY);
    assert.deepEqual(options.receiptSignerKeys, [SIGNER_KEYS[0]]);
  });

  it("on the dev stack, takes the RPC URL and the dev keys from the stack file", async () => {
    const options = await readRelayerConfig(["--local-file", stackFile], {});
    assert.equal(options.chain.rpcUrl, stack.rpcUrl);
    assert.equal(options.chain.chainId, 31_337);
    assert.equal(options.chain.relayerPrivateKey, DEV_RELAYER_KEY);
    assert.deepEqual(options.receiptSignerKeys, [DEV_SIGNER_KEY]);
  });

  const refusals: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
    ["an unknown flag", ["--deployment", "x", "--prot", "1"], {}, /Unknown option '--prot'/],
    ["a port out of range", ["--port", "70000"], {}, /^--port \(or AGENTMESH_PORT\) must be an integer from 0 to 65535$/],
    ["a port that is no number", [], { AGENTMESH_PORT: "80a" }, /^--port \(or AGENTMESH_PORT\) must be an integer/],
    ["an unknown network", ["--network", "mars"], {}, /^--network must be local, base-sepolia or base$/],
    ["an RPC URL that is not http(s)", ["--deployment", "deployment.json", "--rpc", "ftp://rpc.example"], secrets, /^--rpc \(or AGENTMESH_RPC_URL\) must be an http\(s\) URL$/],
    ["two deployments", ["--network", "base", "--deployment", "deployment.json"], secrets, /^give one of --network, --deployment and --local-file, not --network and --deployment$/],
    ["a missing deployment file", ["--deployment", "missing.json"], secrets, /missing\.json/],
    ["a deployment file of another chain", ["--network", "base", "--rpc", "https://rpc.example"], secrets, /deployments\/8453\.json is a deployment on chain 84532, not base \(8453\)/],
    ["no RPC URL off the dev stack", ["--deployment", "deployment.json"], secrets, /^--rpc \(or AGENTMESH_RPC_URL\) is required: the RPC URL of chain 84532$/],
    ["no gas key off the dev stack", ["--deployment", "deployment.json", "--rpc", "https://rpc.example"], { AGENTMESH_SIGNER_KEYS: SIGNER_KEYS[0] }, /^the gas key is required/],
    ["no receipt-signer key off the dev stack", ["--deployment", "deployment.json", "--rpc", "https://rpc.example"], { AGENTMESH_GAS_KEY: GAS_KEY }, /^at least one receipt-signer key is required/],
    ["a malformed gas key", ["--deployment", "deployment.json"], { AGENTMESH_GAS_KEY: "0x1234" }, /^AGENTMESH_GAS_KEY must be a 0x-prefixed 32-byte hex private key$/],
    ["one malformed signer key in the list", ["--deployment", "deployment.json"], { AGENTMESH_SIGNER_KEYS: `${SIGNER_KEYS[0]},nope` }, /^AGENTMESH_SIGNER_KEYS must be a 0x-prefixed 32-byte hex private key$/],
    ["a keystore with the wrong password", ["--deployment", "deployment.json", "--rpc", "https://rpc.example", "--gas-keystore", "gas.json"], { AGENTMESH_SIGNER_KEYS: SIGNER_KEYS[0], AGENTMESH_KEYSTORE_PASSWORD: "wrong" }, /^--gas-keystore gas\.json could not be decrypted: wrong password or damaged file$/],
    ["a keystore that is not one", ["--deployment", "deployment.json", "--rpc", "https://rpc.example", "--gas-keystore", "deployment.json"], { AGENTMESH_SIGNER_KEYS: SIGNER_KEYS[0], AGENTMESH_KEYSTORE_PASSWORD: PASSWORD }, /^--gas-keystore deployment\.json is not an encrypted JSON keystore$/],
    ["a gas key given twice", ["--deployment", "deployment.json", "--rpc", "https://rpc.example", "--gas-keystore", "gas.json"], secrets, /^give the gas key once/],
    ["a public URL with a path", ["--public-url", "https://relayer.example/v1"], {}, /^--public-url \(or AGENTMESH_PUBLIC_URL\) must be the relayer's public origin/],
    ["a CORS origin with a path", [], { AGENTMESH_CORS_ORIGINS: "https://a.example,https://b.example/app" }, /^--cors-origin \(or AGENTMESH_CORS_ORIGINS\) must be origins such as/],
    ["a confirmation depth of 0", ["--confirmations", "0"], {}, /^--confirmations must be an integer from 1 to 1000$/],
    ["a PostgreSQL password on the command line", ["--db", "postgres://relayer:s3cret@db.example/agentmesh"], secrets, /^--db: a PostgreSQL password goes in DATABASE_URL or AGENTMESH_DB/],
    ["a database pool of 0", ["--db-pool-size", "0"], {}, /^--db-pool-size \(or AGENTMESH_DB_POOL_SIZE\) must be an integer from 1 to 1000$/],
  ];
  for (const [what, argv, env, message] of refusals) {
    it(`refuses ${what}, naming it`, async () => {
      await assert.rejects(readRelayerConfig(argv, env), (error: Error) => {
        assert.ok(error instanceof ConfigError, `${error.name}: ${error.message}`);
        assert.match(error.message, message);
        for (const secret of [GAS_KEY, ...SIGNER_KEYS, PASSWORD, "s3cret"]) assert.equal(error.message.includes(secret), false, "a secret in the message");
        return true;
      });
    });
  }

  it("the process exits with status 2 and the message alone, before listening", () => {
    const run = spawnSync(process.execPath, ["--disable-warning=ExperimentalWarning", "src/main.ts", "--port", "70000"], { cwd: RELAYER_ROOT, encoding: "utf8", env: { PATH: process.env.PATH } });
    assert.equal(run.status, 2);
    assert.equal(run.stderr.trim(), "--port (or AGENTMESH_PORT) must be an integer from 0 to 65535");
    assert.equal(run.stdout, "");
  });
});
