/**
 * The relayer's configuration, read from its flags and the environment through one zod schema, in
 * one place. A bad or missing value is a {@link ConfigError} naming the flag (and its variable);
 * `main.ts` prints it and exits with status 2.
 *
 * Where the contracts are: `--network base-sepolia|base` (`deployments/<chainId>.json`, or in
 * AGENTMESH_DEPLOYMENTS_DIR),
 * `--deployment <file>`, or the dev stack file (`--network local`, `--local-file`, the default),
 * whose dev accounts also provide the keys. Off the dev stack the keys come from the environment
 * (`AGENTMESH_GAS_KEY`, `AGENTMESH_SIGNER_KEYS`) or from encrypted keystores (`--gas-keystore`,
 * `--signer-keystore`, their password from `AGENTMESH_KEYSTORE_PASSWORD` or a prompt); never from a
 * plain key in a file.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import type { Hex } from "viem";
import { z } from "zod";
import { DeploymentFileError, loadDeployment, loadLocalStack, type Deployment, type LocalStack } from "@agentmesh/sdk";
import { isPostgresUrl } from "./store/open.ts";
import { KeystoreError, decryptKeystoreFile, keystorePassword } from "@agentmesh/sdk/keystore";
import type { RelayerOptions } from "./server.ts";

/** A value the relayer cannot start with; the message names the flag or variable to fix. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Public networks by `--network` name: their chain id names their deployment file. */
const NETWORKS = { "base-sepolia": 84_532, base: 8_453 } as const;

/** Flags, with the variable each falls back to (secrets have only a variable). */
const FLAGS = {
  network: { type: "string" },
  deployment: { type: "string" },
  "local-file": { type: "string" },
  rpc: { type: "string", env: "AGENTMESH_RPC_URL" },
  host: { type: "string", env: "AGENTMESH_HOST" },
  port: { type: "string", env: "AGENTMESH_PORT" },
  db: { type: "string", env: "AGENTMESH_DB" },
  "db-pool-size": { type: "string", env: "AGENTMESH_DB_POOL_SIZE" },
  "public-url": { type: "string", env: "AGENTMESH_PUBLIC_URL" },
  "cors-origin": { type: "string", multiple: true, env: "AGENTMESH_CORS_ORIGINS" },
  "settle-batch": { type: "string" },
  "settle-age-ms": { type: "string" },
  confirmations: { type: "string" },
  "max-fee-gwei": { type: "string" },
  "gas-keystore": { type: "string" },
  "signer-keystore": { type: "string", multiple: true },
  "allow-private-endpoints": { type: "boolean" },
} as const;

/** Secrets: environment only, so that they never sit in a shell history or a process list. */
const GAS_KEY_VARIABLE = "AGENTMESH_GAS_KEY";
const SIGNER_KEYS_VARIABLE = "AGENTMESH_SIGNER_KEYS";

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `must be an integer from ${min} to ${max}`)
    .transform(Number)
    .refine((value) => value >= min && value <= max, `must be an integer from ${min} to ${max}`);
const privateKey = z
  .string()
  .regex(/^0x[0-9a-fA-F]{64}$/, "must be a 0x-prefixed 32-byte hex private key")
  .transform((key) => key as Hex);

/** What the flags and variables say, checked field by field (the keys are the flags' names). */
const configSchema = z.object({
  network: z.enum(["local", ...Object.keys(NETWORKS)] as [string, ...string[]], { error: "must be local, base-sepolia or base" }).optional(),
  deployment: z.string().min(1).optional(),
  "local-file": z.string().min(1).optional(),
  rpc: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
  host: z.string().min(1).default("127.0.0.1"),
  port: integer(0, 65_535).default(8787),
  /**
   * The store: a SQLite file (one instance), or a `postgres://` URL that several instances share
   * (also from DATABASE_URL).
   */
  db: z.string().min(1).default(".agentmesh/relayer.db"),
  /** Connections to PostgreSQL per instance (the server's max_connections must cover every instance's). */
  "db-pool-size": integer(1, 1_000).default(10),
  /** The relayer's URL as clients reach it (x402 resource URLs, agents' paid URLs): scheme and host only. */
  "public-url": z
    .string()
    .regex(/^https?:\/\/[^/?#\s]+$/, "must be the relayer's public origin, such as https://relayer.example.com")
    .optional(),
  /** Origins whose pages may call the API (a variable holds a comma-separated list); default any. */
  "cors-origin": z
    .union([z.string().transform((list) => list.split(",").map((origin) => origin.trim())), z.array(z.string())])
    .pipe(z.array(z.string().regex(/^https?:\/\/[^/?#\s]+$/, "must be origins such as https://app.example.com")).min(1))
    .optional(),
  /** Checked against the escrow's MAX_BATCH once the chain answers (see `settlementOptions`). */
  "settle-batch": integer(1, 1_000_000).default(100),
  "settle-age-ms": integer(0, 86_400_000).default(30_000),
  /** Blocks a transaction must be under before it counts (default: 1 on the local chain, else 3). */
  confirmations: integer(1, 1_000).optional(),
  /** The most the relayer pays per gas, in gwei. */
  "max-fee-gwei": integer(1, 100_000).default(50),
  "gas-keystore": z.string().min(1).optional(),
  "signer-keystore": z.array(z.string().min(1)).optional(),
  /** Call endpoints on private and loopback addresses off the local chain (see outbound.ts). */
  "allow-private-endpoints": z.boolean().default(false),
  [GAS_KEY_VARIABLE]: privateKey.optional(),
  [SIGNER_KEYS_VARIABLE]: z
    .string()
    .transform((list) => list.split(",").map((key) => key.trim()))
    .pipe(z.array(privateKey).min(1))
    .optional(),
});

type ParsedConfig = z.infer<typeof configSchema>;

/** How a field is named in an error: its flag, and the variable it may come from. */
function fieldName(field: string): string {
  if (field === GAS_KEY_VARIABLE || field === SIGNER_KEYS_VARIABLE) return field;
  const env = (FLAGS as Record<string, { env?: string }>)[field]?.env;
  return env === undefined ? `--${field}` : `--${field} (or ${env})`;
}

/**
 * The relayer's options from `argv` (the flags after the script) and `env`.
 *
 * @throws {ConfigError} naming the flag or variable of the first bad or missing value, or the
 * deployment or keystore that cannot be read.
 */
export async function readRelayerConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<RelayerOptions> {
  let flags: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values: flags } = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  const raw: Record<string, unknown> = { ...flags };
  for (const [name, flag] of Object.entries(FLAGS)) {
    const fromEnv = "env" in flag ? env[flag.env] : undefined;
    if (raw[name] === undefined && fromEnv !== undefined && fromEnv !== "") raw[name] = fromEnv;
  }
  for (const variable of [GAS_KEY_VARIABLE, SIGNER_KEYS_VARIABLE]) if (env[variable]) raw[variable] = env[variable];
  if (raw.db === undefined && env.DATABASE_URL) raw.db = env.DATABASE_URL;
  if (typeof flags.db === "string" && isPostgresUrl(flags.db) && URL.canParse(flags.db) && new URL(flags.db).password !== "") {
    throw new ConfigError("--db: a PostgreSQL password goes in DATABASE_URL or AGENTMESH_DB (the environment), never on the command line");
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = String(issue.path[0] ?? "");
    // Never echo a secret's value: name the variable only.
    throw new ConfigError(`${fieldName(field)} ${issue.message}`);
  }
  const config = parsed.data;
  const source = await contractsSource(config, env.AGENTMESH_DEPLOYMENTS_DIR || "deployments");
  const keys = await relayerKeys(config, source, env);
  const rpcUrl = config.rpc ?? (source.kind === "local" ? source.stack.rpcUrl : undefined);
  if (rpcUrl === undefined) throw new ConfigError(`${fieldName("rpc")} is required: the RPC URL of chain ${source.deployment.chainId}`);
  const { deployment } = source;
  return {
    host: config.host,
    port: config.port,
    publicUrl: config["public-url"],
    corsOrigins: config["cors-origin"],
    allowPrivateEndpoints: config["allow-private-endpoints"],
    databasePath: config.db,
    databasePoolSize: config["db-pool-size"],
    chain: {
      rpcUrl,
      chainId: deployment.chainId,
      escrow: deployment.contracts.ComputeEscrow,
      registry: deployment.contracts.ProviderRegistry,
      marketplace: deployment.contracts.AgentMarketplace,
      directory: deployment.contracts.RelayerDirectory,
      relayerPrivateKey: keys.gas,
    },
    receiptSignerKeys: keys.signers,
    indexer: { startBlock: deployment.startBlock },
    settlement: { maxBatch: config["settle-batch"], maxAgeMs: config["settle-age-ms"] },
    transactions: {
      ...(config.confirmations !== undefined && { confirmations: config.confirmations }),
      maxFeePerGas: BigInt(config["max-fee-gwei"]) * 1_000_000_000n,
    },
  };
}

type ContractsSource = { kind: "local"; deployment: LocalStack; stack: LocalStack; file: string } | { kind: "deployment"; deployment: Deployment; file: string };

/**
 * The deployment the flags name: one of --network (`<deploymentsDir>/<chainId>.json`), --deployment
 * and --local-file (default: the dev stack file).
 */
async function contractsSource(config: ParsedConfig, deploymentsDir: string): Promise<ContractsSource> {
  const given = (["network", "deployment", "local-file"] as const).filter((name) => config[name] !== undefined);
  if (given.length > 1) throw new ConfigError(`give one of --network, --deployment and --local-file, not ${given.map((name) => `--${name}`).join(" and ")}`);
  try {
    if (config.network !== undefined && config.network !== "local") {
      const chainId = NETWORKS[config.network as keyof typeof NETWORKS];
      const file = path.join(deploymentsDir, `${chainId}.json`);
      const deployment = await loadDeployment(file);
      if (deployment.chainId !== chainId) throw new ConfigError(`${file} is a deployment on chain ${deployment.chainId}, not ${config.network} (${chainId})`);
      return { kind: "deployment", deployment, file };
    }
    if (config.deployment !== undefined) return { kind: "deployment", deployment: await loadDeployment(config.deployment), file: config.deployment };
    const file = config["local-file"] ?? ".agentmesh/local.json";
    const stack = await loadLocalStack(file);
    return { kind: "local", deployment: stack, stack, file };
  } catch (error) {
    if (error instanceof DeploymentFileError) throw new ConfigError(error.message);
    throw error;
  }
}

/**
 * The gas key and the receipt-signer keys: from keystores or the environment; on the dev stack,
 * by default its dev accounts' (the `relayer` account, and every seeded provider's signer).
 */
async function relayerKeys(config: ParsedConfig, source: ContractsSource, env: NodeJS.ProcessEnv): Promise<{ gas: Hex; signers: Hex[] }> {
  const decrypt = async (file: string, flag: "--gas-keystore" | "--signer-keystore") => {
    try {
      return await decryptKeystoreFile(file, await keystorePassword(env), flag);
    } catch (error) {
      if (error instanceof KeystoreError) throw new ConfigError(error.message);
      throw error;
    }
  };
  if (config["gas-keystore"] !== undefined && config[GAS_KEY_VARIABLE] !== undefined) {
    throw new ConfigError(`give the gas key once: --gas-keystore or ${GAS_KEY_VARIABLE}, not both`);
  }
  if (config["signer-keystore"] !== undefined && config[SIGNER_KEYS_VARIABLE] !== undefined) {
    throw new ConfigError(`give the receipt-signer keys once: --signer-keystore or ${SIGNER_KEYS_VARIABLE}, not both`);
  }
  let gas = config["gas-keystore"] === undefined ? config[GAS_KEY_VARIABLE] : await decrypt(config["gas-keystore"], "--gas-keystore");
  let signers = config["signer-keystore"] === undefined ? config[SIGNER_KEYS_VARIABLE] : await Promise.all(config["signer-keystore"].map((file) => decrypt(file, "--signer-keystore")));
  if (source.kind === "local") {
    const { stack, file } = source;
    gas ??= stack.accounts.relayer?.privateKey;
    signers ??= stack.providers.map((provider) => {
      const account = Object.values(stack.accounts).find((candidate) => candidate.address === provider.receiptSigner);
      if (account === undefined) throw new ConfigError(`${file} has no key for provider ${provider.id}'s receipt signer`);
      return account.privateKey;
    });
  }
  if (gas === undefined) throw new ConfigError(`the gas key is required: set ${GAS_KEY_VARIABLE} or give --gas-keystore`);
  if (signers === undefined || signers.length === 0) {
    throw new ConfigError(`at least one receipt-signer key is required: set ${SIGNER_KEYS_VARIABLE} (comma-separated) or give --signer-keystore`);
  }
  return { gas, signers };
}
