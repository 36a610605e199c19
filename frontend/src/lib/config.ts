import { getAddress, isAddress, isHex, type Address, type Hex } from "viem";

/** The local chain's id (Hardhat). */
export const LOCAL_CHAIN_ID = 31337;

/** Where the AgentMesh contracts live on one chain, and the relayer that serves it (if known). */
export interface ChainDeployment {
  chainId: number;
  /** Block before the first deployment transaction: where event scans start. */
  startBlock: bigint;
  usdc: Address;
  /**
   * `AgentMarketplace` is absent from deployments made before the agent marketplace, and
   * `RelayerDirectory` (where relayers are found, see `discovery.ts`) from those made before it.
   */
  contracts: { SplitsLedger: Address; ProviderRegistry: Address; ComputeEscrow: Address; AgentMarketplace?: Address; RelayerDirectory?: Address };
  /** The relayer to use, skipping discovery: the local stack file names its own (an override). */
  relayerUrl?: string;
}

/** A demo account of the local stack, with its dev-only key. */
export interface DevAccount {
  role: string;
  address: Address;
  privateKey: Hex;
}

/** The local stack, as the UI needs it from `.agentmesh/local.json`. */
export interface LocalStackConfig {
  rpcUrl: string;
  deployment: ChainDeployment;
  accounts: DevAccount[];
}

export interface AppConfig {
  /** Present when the dev server serves a local stack file. */
  local?: LocalStackConfig;
  /** Deployments by chain id (the local one included). */
  deployments: Record<number, ChainDeployment>;
}

/** Thrown when a deployment or stack file is malformed. */
export class ConfigFileError extends Error {
  constructor(source: string, reason: string) {
    super(`${source} is malformed: ${reason}`);
    this.name = "ConfigFileError";
  }
}

function field<T>(source: string, record: Record<string, unknown>, name: string, check: (value: unknown) => value is T): T {
  const value = record[name];
  if (!check(value)) throw new ConfigFileError(source, `bad or missing "${name}"`);
  return value;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null;
const isAddressString = (value: unknown): value is Address => typeof value === "string" && isAddress(value, { strict: false });
const isCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0;
const isUrl = (value: unknown): value is string => typeof value === "string" && URL.canParse(value);

/**
 * A deployment record (`deployments/<chainId>.json`, or the same fields inside the local stack file,
 * as the SDK's `deploymentSchema` defines them), plus an optional `relayerUrl`.
 */
export function parseDeployment(value: unknown, source = "deployment"): ChainDeployment {
  if (!isRecord(value)) throw new ConfigFileError(source, "not an object");
  const contracts = field(source, value, "contracts", isRecord);
  const address = (name: string) => getAddress(field(source, contracts, name, isAddressString));
  const optional = (name: "AgentMarketplace" | "RelayerDirectory") => (contracts[name] === undefined ? {} : { [name]: address(name) });
  const relayerUrl = value.relayerUrl === undefined ? undefined : field(source, value, "relayerUrl", isUrl);
  return {
    chainId: field(source, value, "chainId", isCount),
    startBlock: BigInt(field(source, value, "startBlock", isCount)),
    usdc: getAddress(field(source, value, "usdc", isAddressString)),
    contracts: {
      SplitsLedger: address("SplitsLedger"),
      ProviderRegistry: address("ProviderRegistry"),
      ComputeEscrow: address("ComputeEscrow"),
      ...optional("AgentMarketplace"),
      ...optional("RelayerDirectory"),
    },
    ...(relayerUrl === undefined ? {} : { relayerUrl }),
  };
}

/** The local stack file that `npm start` writes (the SDK's `localStackSchema`), as the UI needs it. */
export function parseLocalStack(value: unknown, source = "local.json"): LocalStackConfig {
  const deployment = parseDeployment(value, source);
  if (deployment.chainId !== LOCAL_CHAIN_ID) throw new ConfigFileError(source, `chain id ${deployment.chainId} is not the local chain's`);
  const record = value as Record<string, unknown>;
  const accounts = Object.entries(field(source, record, "accounts", isRecord)).map(([role, account]) => {
    if (!isRecord(account)) throw new ConfigFileError(source, `account "${role}" is not an object`);
    const privateKey = field(source, account, "privateKey", (key): key is Hex => isHex(key) && key.length === 66);
    return { role, address: getAddress(field(source, account, "address", isAddressString)), privateKey };
  });
  return { rpcUrl: field(source, record, "rpcUrl", isUrl), deployment, accounts };
}

/**
 * The run-time configuration served as `/agentmesh.json`: `{ local, deployments }`, where `local` is
 * the local stack file (or null) and `deployments` the public deployment records by chain id.
 */
export function parseAppConfig(value: unknown): AppConfig {
  if (!isRecord(value)) throw new ConfigFileError("agentmesh.json", "not an object");
  const deployments: Record<number, ChainDeployment> = {};
  for (const [chainId, json] of Object.entries(isRecord(value.deployments) ? value.deployments : {})) {
    const deployment = parseDeployment(json, `deployments/${chainId}.json`);
    if (String(deployment.chainId) !== chainId) throw new ConfigFileError(`deployments/${chainId}.json`, `it is for chain ${deployment.chainId}`);
    deployments[deployment.chainId] = deployment;
  }
  const local = value.local === null || value.local === undefined ? undefined : parseLocalStack(value.local);
  if (local) deployments[LOCAL_CHAIN_ID] = local.deployment;
  return { local, deployments };
}

/** A deployment as a public record in JSON (`deployments/<chainId>.json`, without anything else). */
export interface DeploymentRecord {
  chainId: number;
  startBlock: number;
  usdc: Address;
  contracts: ChainDeployment["contracts"];
}

/**
 * What a build of the dApp publishes of the deployment files (`deployments/<chainId>.json`, by file
 * name without `.json`): each validated and reduced to its public fields, so nothing else a file
 * holds (a key, a local relayer's URL) is served; the local chain's is left out (a build does not
 * offer that chain).
 *
 * @throws {ConfigFileError} a file is malformed, or named for another chain than its own.
 */
export function publicDeployments(files: Record<string, unknown>): Record<string, DeploymentRecord> {
  const records: Record<string, DeploymentRecord> = {};
  for (const [name, json] of Object.entries(files)) {
    const source = `deployments/${name}.json`;
    const { chainId, startBlock, usdc, contracts } = parseDeployment(json, source);
    if (String(chainId) !== name) throw new ConfigFileError(source, `it is for chain ${chainId}`);
    if (chainId !== LOCAL_CHAIN_ID) records[name] = { chainId, startBlock: Number(startBlock), usdc, contracts };
  }
  return records;
}

/**
 * A public chain's RPC URL set at build time (`VITE_BASE_RPC_URL`, `VITE_BASE_SEPOLIA_RPC_URL`):
 * undefined when unset or empty (viem's public endpoint serves), else the http(s) URL given.
 *
 * @throws {ConfigFileError} it is set to something else than an http(s) URL.
 */
export function buildRpcUrl(name: string, value: string | undefined): string | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const url = value.trim();
  if (!URL.canParse(url) || !["http:", "https:"].includes(new URL(url).protocol)) throw new ConfigFileError(name, `"${url}" is not an http(s) URL`);
  return url;
}
