import { readFile } from "node:fs/promises";
import { getAddress, type Address } from "viem";
import { z } from "zod";

const address = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/, "must be a 0x-prefixed 20-byte hex address")
  .transform((value) => getAddress(value));

/** Where a deployment of the AgentMesh contracts lives; written by `scripts/deploy.ts`. */
export const deploymentSchema = z.object({
  chainId: z.number().int().positive(),
  /** Block before the first deployment transaction: where indexers start. */
  startBlock: z.number().int().nonnegative(),
  /** The USDC token (real USDC on Base networks, MockUSDC locally). */
  usdc: address,
  contracts: z.object({
    MockUSDC: address.optional(),
    SplitsLedger: address,
    ProviderRegistry: address,
    ComputeEscrow: address,
    /** Agent listings and their payment splits; absent from deployments made before it existed. */
    AgentMarketplace: address.optional(),
    /** Receipt signer -> relayer URL; absent from deployments made before it existed (no discovery there). */
    RelayerDirectory: address.optional(),
  }),
});

export type Deployment = z.infer<typeof deploymentSchema>;

const privateKey = z.string().regex(/^0x[0-9a-fA-F]{64}$/, "must be a 0x-prefixed 32-byte hex key") as z.ZodType<`0x${string}`>;

/**
 * The local stack file (`.agentmesh/local.json`) that `npm start` writes: the deployment plus the
 * demo accounts with their dev-only keys, the seeded budget and providers, and the service URLs.
 */
export const localStackSchema = deploymentSchema.extend({
  rpcUrl: z.string().url(),
  accounts: z.record(z.string(), z.object({ address, privateKey })),
  budgetId: z.number().int().positive(),
  providers: z.array(
    z.object({ id: z.number().int().positive(), name: z.string(), endpoint: z.string().url(), owner: address, receiptSigner: address }),
  ),
  /** The seeded agent listing; `url` is its paid (x402) URL on the relayer, once that is up. */
  demoAgent: z.object({
    id: z.number().int().positive(),
    endpoint: z.string().url(),
    paymentAddress: address,
    pricePerCall: z.string().regex(/^\d+$/, "must be atomic USDC"),
    url: z.string().url().optional(),
  }),
  relayerUrl: z.string().url().optional(),
  agentProxyUrl: z.string().url().optional(),
});

export type LocalStack = z.infer<typeof localStackSchema>;

/** Thrown when a deployment file is missing or malformed. */
export class DeploymentFileError extends Error {
  constructor(filePath: string, reason: string, options?: ErrorOptions) {
    super(`Invalid deployment file ${filePath}: ${reason}`, options);
    this.name = "DeploymentFileError";
  }
}

/**
 * Parses and validates a deployment object (addresses are checksummed).
 *
 * @example
 * const deployment = parseDeployment(JSON.parse(text));
 */
export function parseDeployment(value: unknown, source = "deployment"): Deployment {
  return parseWith(deploymentSchema, value, source);
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, source: string): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    const fields = result.error.issues.map((issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`);
    throw new DeploymentFileError(source, fields.join("; "));
  }
  return result.data;
}

/**
 * Reads and validates the deployment file at `filePath` (e.g. `deployments/84532.json` or the local
 * stack's `.agentmesh/local.json`, which embeds the same fields).
 *
 * @example
 * const { contracts } = await loadDeployment(".agentmesh/local.json");
 */
export async function loadDeployment(filePath: string): Promise<Deployment> {
  return parseWith(deploymentSchema, await readJsonFile(filePath), filePath);
}

/** Reads and validates the local stack file that `npm start` writes. */
export async function loadLocalStack(filePath = ".agentmesh/local.json"): Promise<LocalStack> {
  return parseWith(localStackSchema, await readJsonFile(filePath), filePath);
}

async function readJsonFile(filePath: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(filePath, "utf8");
  } catch (cause) {
    throw new DeploymentFileError(filePath, "cannot be read", { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new DeploymentFileError(filePath, "is not JSON", { cause });
  }
  return json;
}

export type { Address };
