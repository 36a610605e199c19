import path from "node:path";
import {
  createPublicClient,
  createWalletClient,
  defineChain,
  http,
  type Abi,
  type Address,
  type ContractFunctionArgs,
  type ContractFunctionName,
  type Hex,
  type PrivateKeyAccount,
  type PublicClient,
} from "viem";
import { parseSignature } from "viem";
import { mockUSDCAbi } from "../abi/contracts.ts";
import { describeError } from "../contract-errors.ts";
import { permitTypes, usdcDomain } from "../usdc.ts";
import { DeploymentFileError, loadDeployment, loadLocalStack, type Deployment } from "../deployment.ts";
import { formatUsdc } from "../pricing.ts";
import { loadAccount } from "./keys.ts";
import { DEFAULT_RPC_URLS, NETWORK_CHAIN_IDS, UsageError, type CommonOptions } from "./options.ts";

/** Where `--network` finds public deployments (`<chainId>.json`): AGENTMESH_DEPLOYMENTS_DIR, else the repository's `deployments/`. */
export const DEPLOYMENTS_DIR = path.resolve(process.env.AGENTMESH_DEPLOYMENTS_DIR || path.join(import.meta.dirname, "../../../deployments"));

/** Block explorers of the public networks; the local chain has none. */
const EXPLORERS: Record<number, string> = { 8453: "https://basescan.org", 84532: "https://sepolia.basescan.org" };

/** A transaction's explorer page, or undefined on a chain without one. */
export function explorerTxUrl(chainId: number, hash: Hex): string | undefined {
  const base = EXPLORERS[chainId];
  return base === undefined ? undefined : `${base}/tx/${hash}`;
}

/** "12.500000 USDC". */
export function usdcText(atomic: bigint): string {
  return `${formatUsdc(atomic)} USDC`;
}

/** The deployment and RPC URL that the common options name (the RPC may still be unchecked). */
export async function resolveDeployment(options: CommonOptions, deploymentsDir = DEPLOYMENTS_DIR): Promise<{ deployment: Deployment; rpcUrl: string }> {
  try {
    if (options.network === "local") {
      const stack = await loadLocalStack(options["local-file"]);
      return { deployment: stack, rpcUrl: options.rpc ?? stack.rpcUrl };
    }
    const file = options.deployment ?? path.join(deploymentsDir, `${NETWORK_CHAIN_IDS[options.network!]}.json`);
    const deployment = await loadDeployment(file);
    if (options.network !== undefined && deployment.chainId !== NETWORK_CHAIN_IDS[options.network]) {
      throw new UsageError(`${file} is for chain ${deployment.chainId}, not ${options.network} (${NETWORK_CHAIN_IDS[options.network]})`);
    }
    const rpcUrl = options.rpc ?? DEFAULT_RPC_URLS[deployment.chainId];
    if (rpcUrl === undefined) throw new UsageError(`--rpc is required for chain ${deployment.chainId} (or set AGENTMESH_RPC_URL)`);
    return { deployment, rpcUrl };
  } catch (error) {
    if (error instanceof DeploymentFileError) throw new UsageError(error.message);
    throw error;
  }
}

/** Prints a command's lines, or with `--json` collects them into the one object printed at the end. */
export class Output {
  readonly result: Record<string, unknown> = {};
  readonly transactions: { action: string; hash: Hex; url?: string }[] = [];
  readonly json: boolean;
  constructor(json: boolean) {
    this.json = json;
  }

  /** Records `key: value` for --json, and prints `line` otherwise. */
  set(key: string, value: unknown, line?: string): void {
    this.result[key] = typeof value === "bigint" ? value.toString() : value;
    if (!this.json && line !== undefined) console.log(line);
  }

  /** Prints a human line (nothing with --json). */
  say(line: string): void {
    if (!this.json) console.log(line);
  }

  /** Prints the --json object. */
  finish(): void {
    if (this.json) console.log(JSON.stringify({ ...this.result, transactions: this.transactions }, null, 2));
  }
}

/** A command's connection to the chain: the deployment, a checked RPC, and the signing account on demand. */
export interface Context {
  deployment: Deployment;
  chainId: number;
  client: PublicClient;
  out: Output;
  /** The signing account (read from the environment or keystore at first use). */
  account(): Promise<PrivateKeyAccount>;
  /** Simulates, sends and waits for one transaction; prints its hash and explorer link. */
  send<const abi extends Abi, name extends ContractFunctionName<abi, "nonpayable">>(
    action: string,
    call: { address: Address; abi: abi; functionName: name; args: ContractFunctionArgs<abi, "nonpayable", name> },
  ): Promise<{ hash: Hex; logs: readonly { address: Address; topics: readonly Hex[]; data: Hex }[] }>;
}

/**
 * Resolves the deployment, connects to the RPC and checks that it serves the deployment's chain
 * (a mismatch is a {@link UsageError}: nothing is sent).
 */
export async function connect(options: CommonOptions, env: NodeJS.ProcessEnv = process.env): Promise<Context> {
  const { deployment, rpcUrl } = await resolveDeployment(options);
  const chain = defineChain({
    id: deployment.chainId,
    name: `chain ${deployment.chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  const client = createPublicClient({ chain, transport: http(rpcUrl, { retryCount: 1 }) }) as PublicClient;
  // Only the origin is ever printed: a provider's RPC URL often carries an API key in its path.
  const rpcOrigin = new URL(rpcUrl).origin;
  let rpcChainId: number;
  try {
    rpcChainId = await client.getChainId();
  } catch (error) {
    throw new UsageError(`--rpc ${rpcOrigin} does not answer: ${describeError(error)}`);
  }
  if (rpcChainId !== deployment.chainId) {
    throw new UsageError(`--rpc ${rpcOrigin} serves chain ${rpcChainId}, but the deployment is for chain ${deployment.chainId}`);
  }
  const out = new Output(options.json);
  let account: Promise<PrivateKeyAccount> | undefined;
  const getAccount = () => (account ??= loadAccount(options.keystore, env));
  return {
    deployment,
    chainId: rpcChainId,
    client,
    out,
    account: getAccount,
    async send(action, call) {
      const signer = await getAccount();
      const { request } = await client.simulateContract({ ...call, account: signer } as never);
      const wallet = createWalletClient({ account: signer, chain, transport: http(rpcUrl) });
      const hash = await wallet.writeContract(request);
      const receipt = await client.waitForTransactionReceipt({ hash });
      if (receipt.status !== "success") throw new Error(`${action}: transaction ${hash} reverted`);
      const url = explorerTxUrl(rpcChainId, hash);
      out.transactions.push({ action, hash, ...(url ? { url } : {}) });
      out.say(`${action}: ${hash}${url ? ` ${url}` : ""}`);
      return { hash, logs: receipt.logs };
    },
  };
}

/** An EIP-2612 permit letting `spender` take `value` of the signer's USDC for an hour of chain time. */
export async function signPermit(ctx: Context, spender: Address, value: bigint): Promise<{ deadline: bigint; v: number; r: Hex; s: Hex }> {
  const signer = await ctx.account();
  const token = ctx.deployment.usdc;
  // The token's name and version differ between USDC deployments: read them.
  const [name, version, nonce, block] = await Promise.all([
    ctx.client.readContract({ address: token, abi: mockUSDCAbi, functionName: "name" }),
    ctx.client.readContract({ address: token, abi: mockUSDCAbi, functionName: "version" }),
    ctx.client.readContract({ address: token, abi: mockUSDCAbi, functionName: "nonces", args: [signer.address] }),
    ctx.client.getBlock(),
  ]);
  const deadline = block.timestamp + 3_600n;
  const signature = await signer.signTypedData({
    domain: usdcDomain(ctx.chainId, token, name, version),
    types: permitTypes,
    primaryType: "Permit",
    message: { owner: signer.address, spender, value, nonce, deadline },
  });
  const { r, s, v, yParity } = parseSignature(signature);
  return { deadline, v: Number(v ?? BigInt(yParity + 27)), r, s };
}

/**
 * Before a transaction that pulls `amount` of the signer's USDC into `spender`: refuses when the
 * wallet holds too little (nothing sent), and approves only when the allowance is short.
 */
export async function approveIfNeeded(ctx: Context, spender: Address, amount: bigint): Promise<void> {
  const signer = await ctx.account();
  const token = ctx.deployment.usdc;
  const [held, allowance] = await Promise.all([
    ctx.client.readContract({ address: token, abi: mockUSDCAbi, functionName: "balanceOf", args: [signer.address] }),
    ctx.client.readContract({ address: token, abi: mockUSDCAbi, functionName: "allowance", args: [signer.address, spender] }),
  ]);
  if (held < amount) throw new UsageError(`${signer.address} holds ${usdcText(held)}, less than the ${usdcText(amount)} needed`);
  if (allowance < amount) await ctx.send(`approve ${spender} for ${usdcText(amount)}`, { address: token, abi: mockUSDCAbi, functionName: "approve", args: [spender, amount] });
}
