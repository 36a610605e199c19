import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import { Contract, type ContractRunner, type TypedDataDomain } from "ethers";
import type { Address, Hex } from "viem";
import {
  escrowDomain,
  sessionIdOf,
  sessionTermsTypes,
  toCompactSignature,
  voucherTypes,
  type CompactSignature,
  type SessionTerms,
  type SignedVoucher,
  type Voucher,
} from "../../../sdk/src/typed-data.ts";
import type {
  ComputeEscrow,
  MockUSDC,
  ProviderRegistry,
} from "../../../types/ethers-contracts/index.ts";
import { ethersTypes } from "../../../scripts/lib/ethers-types.ts";
import type { deployFixture } from "../fixture.ts";

export { sessionIdOf, type CompactSignature, type SessionTerms, type SignedVoucher, type Voucher };
export type Fixture = Awaited<ReturnType<typeof deployFixture>>;

export const USDC = 1_000_000n;
export const ZERO_HASH: Hex = `0x${"00".repeat(32)}`;
/** What an agent opening its own session passes as the (unchecked) signature. */
export const NO_SIGNATURE: CompactSignature = { r: ZERO_HASH, yParityAndS: ZERO_HASH };
export const DAY = 24 * 3600;

const termsTypes = ethersTypes(sessionTermsTypes);
const voucherTypesForEthers = ethersTypes(voucherTypes);

export interface ModelSpec {
  name?: string;
  inputPricePer1K: number;
  outputPricePer1K: number;
  maxContextTokens?: number;
}

export interface ProviderSpec {
  owner: HardhatEthersSigner;
  receiptSigner: string;
  payout: string;
  minChargePerCall?: number;
  models?: ModelSpec[];
  stake?: bigint;
}

/** Mints and approves the stake, registers the provider and returns its id. */
export async function registerProvider(
  usdc: MockUSDC,
  registry: ProviderRegistry,
  spec: ProviderSpec,
): Promise<bigint> {
  const stake = spec.stake ?? (await registry.minStake());
  await (await usdc.mint(spec.owner.address, stake)).wait();
  await (await usdc.connect(spec.owner).approve(await registry.getAddress(), stake)).wait();
  const models = (spec.models ?? [{ inputPricePer1K: 100, outputPricePer1K: 300 }]).map((m, i) => ({
    name: m.name ?? `model-${i}`,
    inputPricePer1K: m.inputPricePer1K,
    outputPricePer1K: m.outputPricePer1K,
    maxContextTokens: m.maxContextTokens ?? 128_000,
  }));
  const config = {
    endpoint: "https://provider.example/v1",
    providerType: 1,
    rateLimitPerMinute: 600,
    minChargePerCall: spec.minChargePerCall ?? 10,
    features: 0n,
    receiptSigner: spec.receiptSigner,
    payout: spec.payout,
  };
  await (await registry.connect(spec.owner).register(config, models, stake)).wait();
  return registry.providerCount();
}

export interface BudgetSpec {
  creator: HardhatEthersSigner;
  amount: bigint;
  perSessionLimit?: bigint;
  /** Absolute expiry; defaults to 30 days from the latest block. */
  expiry?: number;
  agents: string[];
}

/** Mints and approves the deposit, creates the budget and returns its id. */
export async function createBudget(usdc: MockUSDC, escrow: ComputeEscrow, spec: BudgetSpec): Promise<bigint> {
  await (await usdc.mint(spec.creator.address, spec.amount)).wait();
  await (await usdc.connect(spec.creator).approve(await escrow.getAddress(), spec.amount)).wait();
  const expiry = spec.expiry ?? (await latestTime(escrow)) + 30 * DAY;
  await (
    await escrow
      .connect(spec.creator)
      .createBudget(spec.amount, spec.perSessionLimit ?? spec.amount, expiry, spec.agents)
  ).wait();
  return escrow.budgetCount();
}

/** Timestamp of the latest block. */
export async function latestTime(contract: { runner: ContractRunner | null }): Promise<number> {
  const block = await contract.runner!.provider!.getBlock("latest");
  return block!.timestamp;
}

export interface TermsSpec {
  agent: string;
  budgetId: bigint;
  providerId: bigint | number;
  modelId?: number;
  maxSpend: bigint;
  /** Absolute deadline; defaults to 7 days from the latest block. */
  deadline?: number;
  salt?: bigint;
}

let saltCounter = 1n;

/** The protocol fee of the escrow bound to `registry`, which new sessions carry in their terms. */
async function escrowFee(registry: ProviderRegistry): Promise<bigint> {
  const escrow = new Contract(await registry.escrow(), ["function feeBps() view returns (uint256)"], registry.runner);
  return escrow.feeBps();
}

/** Session terms priced from the registry's current quote, with the escrow's current fee. */
export async function buildTerms(registry: ProviderRegistry, spec: TermsSpec): Promise<SessionTerms> {
  const modelId = spec.modelId ?? 0;
  const quote = await registry.quote(spec.providerId, modelId);
  const deadline = spec.deadline ?? (await latestTime(registry)) + 7 * DAY;
  return {
    agent: spec.agent as Address,
    budgetId: spec.budgetId,
    providerId: Number(spec.providerId),
    modelId,
    receiptSigner: quote.receiptSigner as Address,
    inputPricePer1K: Number(quote.inputPricePer1K),
    outputPricePer1K: Number(quote.outputPricePer1K),
    minChargePerCall: Number(quote.minChargePerCall),
    feeBps: Number(await escrowFee(registry)),
    maxSpend: spec.maxSpend,
    deadline,
    salt: spec.salt ?? saltCounter++,
  };
}

/** The escrow's EIP-712 domain, read from the chain. */
export async function domainOf(escrow: ComputeEscrow): Promise<TypedDataDomain> {
  const { chainId } = await escrow.runner!.provider!.getNetwork();
  return escrowDomain(Number(chainId), (await escrow.getAddress()) as Address) as TypedDataDomain;
}

/** The agent's signature over the session terms (gasless open). */
export async function signOpen(
  signer: HardhatEthersSigner,
  domain: TypedDataDomain,
  terms: SessionTerms,
): Promise<CompactSignature> {
  return toCompactSignature((await signer.signTypedData(domain, termsTypes, terms)) as Hex);
}

/** A signature over a voucher (agent or receipt signer). */
export async function signVoucher(
  signer: Pick<HardhatEthersSigner, "signTypedData">,
  domain: TypedDataDomain,
  v: Voucher,
): Promise<CompactSignature> {
  return toCompactSignature((await signer.signTypedData(domain, voucherTypesForEthers, v)) as Hex);
}

/** A voucher of `terms`' session; counters default to a cost-proportional usage. */
export function voucher(terms: SessionTerms, fields: Partial<Voucher> & { sequence: number; cumulativeCost: bigint }): Voucher {
  const n = fields.sequence;
  return {
    terms,
    requestCount: n,
    inputTokens: n * 1000,
    outputTokens: n * 500,
    latencyMs: n * 120,
    receiptHead: `0x${n.toString(16).padStart(64, "0")}`,
    isFinal: false,
    ...fields,
  };
}

/** Signs `v` by the agent and the provider's receipt signer. */
export async function signBoth(
  domain: TypedDataDomain,
  v: Voucher,
  agent: HardhatEthersSigner,
  receiptSigner: HardhatEthersSigner,
): Promise<SignedVoucher> {
  const [agentSignature, providerSignature] = await Promise.all([
    signVoucher(agent, domain, v),
    signVoucher(receiptSigner, domain, v),
  ]);
  return { voucher: v, agentSignature, providerSignature };
}

/** Opens a session called by the agent itself and returns its id. */
export async function openByAgent(escrow: ComputeEscrow, agent: HardhatEthersSigner, terms: SessionTerms): Promise<Hex> {
  await (await escrow.connect(agent).openSession(terms, NO_SIGNATURE)).wait();
  return sessionIdOf(terms);
}

/** Protocol fee of `amount` at `feeBps`. */
export function feeOf(amount: bigint, feeBps: bigint = 250n): bigint {
  return (amount * feeBps) / 10_000n;
}

/** The fixture plus one registered provider (payout: its owner) and one funded budget for `agent`. */
export async function setupMarket(options: { budget?: bigint; perSessionLimit?: bigint } = {}) {
  const { deployFixture } = await import("../fixture.ts");
  const f = await deployFixture();
  const providerId = await registerProvider(f.usdc, f.registry, {
    owner: f.providerOwner,
    receiptSigner: f.receiptSigner.address,
    payout: f.providerOwner.address,
  });
  const budgetId = await createBudget(f.usdc, f.escrow, {
    creator: f.creator,
    amount: options.budget ?? 100n * USDC,
    perSessionLimit: options.perSessionLimit ?? 20n * USDC,
    agents: [f.agent.address],
  });
  const domain = await domainOf(f.escrow);
  const chainId = Number((await f.ethers.provider.getNetwork()).chainId);
  const window = Number(await f.escrow.challengeWindow());
  const time = f.connection.networkHelpers.time;
  /** Terms of a new session of `agent` with provider 1 on the budget. */
  const terms = (spec: Partial<TermsSpec> = {}) =>
    buildTerms(f.registry, { agent: f.agent.address, budgetId, providerId, maxSpend: 10n * USDC, ...spec });
  /** A voucher signed by the agent and the receipt signer. */
  const sign = (v: Voucher) => signBoth(domain, v, f.agent, f.receiptSigner);
  return { ...f, providerId, budgetId, domain, chainId, window, time, terms, sign };
}
export type Market = Awaited<ReturnType<typeof setupMarket>>;
