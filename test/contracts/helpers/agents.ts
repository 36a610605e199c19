import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import { ZeroAddress, type TypedDataDomain } from "ethers";
import type { Address } from "viem";
import { receiveWithAuthorizationTypes, transferWithAuthorizationTypes, usdcDomain } from "../../../sdk/src/usdc.ts";
import { ledgerDomain, withdrawalTypes } from "../../../sdk/src/typed-data.ts";
import type { AgentMarketplace, MockUSDC, SplitsLedger } from "../../../types/ethers-contracts/index.ts";
import { ethersTypes } from "../../../scripts/lib/ethers-types.ts";
import { deployFixture } from "../fixture.ts";

export const SCALE = 1_000_000n;
export const ZERO_BYTES32 = `0x${"00".repeat(32)}`;
export const COUNT_MASK = 0xffffffffn;

/** IAgentMarketplace.AgentStatus */
export const Status = { None: 0n, Active: 1n, Paused: 2n, Retired: 3n } as const;
/** IAgentMarketplace.RecipientKind */
export const Kind = { Account: 0, Split: 1, Budget: 2 } as const;

export interface Recipient {
  kind: number;
  account: string;
  budgetId: bigint;
}
export interface Flow {
  fixedAmounts: { recipient: Recipient; amount: bigint }[];
  shares: { recipient: Recipient; share: bigint }[];
  payerReferrerShare: bigint;
  payeeReferrerShare: bigint;
  remainder: Recipient;
}
export interface Metadata {
  name: string;
  metadataURI: string;
  endpoint: string;
}
export interface Payment {
  payer: string;
  referrer: string;
  amount: bigint;
}

export const account = (address: string): Recipient => ({ kind: Kind.Account, account: address, budgetId: 0n });
export const splitRecipient = (address: string): Recipient => ({ kind: Kind.Split, account: address, budgetId: 0n });
export const budget = (budgetId: bigint): Recipient => ({ kind: Kind.Budget, account: ZeroAddress, budgetId });
/** The remainder recipient that means "the platform treasury". */
export const TREASURY = account(ZeroAddress);

export function flowOf(fields: Partial<Flow> = {}): Flow {
  return { fixedAmounts: [], shares: [], payerReferrerShare: 0n, payeeReferrerShare: 0n, remainder: TREASURY, ...fields };
}

export function metadataOf(name = "AutoDev"): Metadata {
  return { name, metadataURI: `ipfs://bafy/${name}.json`, endpoint: `https://agents.example/${name.toLowerCase()}` };
}

/** The flow as a tuple, the shape ethers reports struct arguments in (for `withArgs`). */
export function flowTuple(flow: Flow) {
  const r = (x: Recipient) => [BigInt(x.kind), x.account, x.budgetId];
  return [
    flow.fixedAmounts.map((f) => [r(f.recipient), f.amount]),
    flow.shares.map((s) => [r(s.recipient), s.share]),
    flow.payerReferrerShare,
    flow.payeeReferrerShare,
    r(flow.remainder),
  ];
}

/*//////////////////////////////////////////////////////////////
           A MODEL OF THE SPLIT (mirrors FlowOfFundsLib)
//////////////////////////////////////////////////////////////*/

export interface Parts {
  outputs: bigint[];
  payerReward: bigint;
  payeeReward: bigint;
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);

/** One call's split of `amount`: fixed amounts (capped), referral rewards of the amount, shares of the rest. */
export function splitCall(flow: Flow, amount: bigint): Parts {
  let left = amount;
  const outputs: bigint[] = [];
  for (const f of flow.fixedAmounts) {
    const part = min(f.amount, left);
    outputs.push(part);
    left -= part;
  }
  const payerReward = min((amount * flow.payerReferrerShare) / SCALE, left);
  left -= payerReward;
  const payeeReward = min((amount * flow.payeeReferrerShare) / SCALE, left);
  left -= payeeReward;
  const base = left;
  for (const s of flow.shares) {
    const part = (base * s.share) / SCALE;
    outputs.push(part);
    left -= part;
  }
  outputs.push(left);
  return { outputs, payerReward, payeeReward };
}

/** A payment's split: ⌊amount / price⌋ full calls plus one partial call of the rest. */
export function splitPayment(flow: Flow, price: bigint, amount: bigint): Parts {
  const calls = amount / price;
  const full = splitCall(flow, price);
  const rest = splitCall(flow, amount % price);
  return {
    outputs: full.outputs.map((o, k) => o * calls + rest.outputs[k]),
    payerReward: full.payerReward * calls + rest.payerReward,
    payeeReward: full.payeeReward * calls + rest.payeeReward,
  };
}

export interface ExpectedCredits {
  /** Ledger credits per (lower-cased) account. */
  accounts: Map<string, bigint>;
  /** Top-ups per budget id. */
  budgets: Map<bigint, bigint>;
}

/**
 * What a distribution credits: each payment split with its payer's referrer, `unattributed` split
 * without one; referral rewards without a referrer go to the remainder; the zero Account is `treasury`.
 */
export function expectedCredits(
  flow: Flow,
  price: bigint,
  payments: { referrer: string; amount: bigint }[],
  unattributed: bigint,
  payeeReferrer: string,
  treasury: string,
): ExpectedCredits {
  const accounts = new Map<string, bigint>();
  const budgets = new Map<bigint, bigint>();
  const credit = (who: string, amount: bigint) => {
    if (amount === 0n) return;
    const key = who.toLowerCase();
    accounts.set(key, (accounts.get(key) ?? 0n) + amount);
  };
  const recipients = [...flow.fixedAmounts.map((f) => f.recipient), ...flow.shares.map((s) => s.recipient), flow.remainder];
  const creditOutput = (k: number, amount: bigint) => {
    const r = recipients[k];
    if (r.kind === Kind.Budget) {
      if (amount !== 0n) budgets.set(r.budgetId, (budgets.get(r.budgetId) ?? 0n) + amount);
    } else credit(r.account === ZeroAddress ? treasury : r.account, amount);
  };
  const remainder = recipients.length - 1;
  for (const { referrer, amount } of [...payments, { referrer: ZeroAddress, amount: unattributed }]) {
    const parts = splitPayment(flow, price, amount);
    parts.outputs.forEach((amountOut, k) => creditOutput(k, amountOut));
    if (referrer === ZeroAddress) creditOutput(remainder, parts.payerReward);
    else credit(referrer, parts.payerReward);
    if (payeeReferrer === ZeroAddress) creditOutput(remainder, parts.payeeReward);
    else credit(payeeReferrer, parts.payeeReward);
  }
  return { accounts, budgets };
}

/** The chain state after appending a payment (PaymentChainLib.link). */
export function link(ethers: Fixture["ethers"], state: string, payment: Payment): string {
  const hash = BigInt(
    ethers.keccak256(
      ethers.AbiCoder.defaultAbiCoder().encode(
        ["bytes32", "address", "address", "uint256"],
        [state, payment.payer, payment.referrer, payment.amount],
      ),
    ),
  );
  const next = (hash & ~COUNT_MASK) | ((BigInt(state) + 1n) & COUNT_MASK);
  return ethers.toBeHex(next, 32);
}

/*//////////////////////////////////////////////////////////////
                            SIGNATURES
//////////////////////////////////////////////////////////////*/

export const referralTypes = {
  Referral: [
    { name: "account", type: "address" },
    { name: "referrer", type: "address" },
  ],
} as const;

export async function marketplaceDomain(marketplace: AgentMarketplace): Promise<TypedDataDomain> {
  const { chainId } = await marketplace.runner!.provider!.getNetwork();
  return { name: "AgentMesh Marketplace", version: "1", chainId, verifyingContract: await marketplace.getAddress() };
}

/** `signer`'s signature naming `referrer` as `account`'s referrer (a forgery unless signer is account). */
export async function signReferral(
  marketplace: AgentMarketplace,
  signer: HardhatEthersSigner,
  referrer: string,
  accountAddress: string = signer.address,
): Promise<string> {
  return signer.signTypedData(await marketplaceDomain(marketplace), ethersTypes(referralTypes), {
    account: accountAddress,
    referrer,
  });
}

export interface Authorization {
  from: string;
  to: string;
  value: bigint;
  validAfter: bigint;
  validBefore: bigint;
  nonce: string;
}

let nonceCounter = 1n;

/** An EIP-3009 authorization of `value` from `signer` to `to` (Transfer or Receive), valid for an hour. */
export async function signAuthorization(
  usdc: MockUSDC,
  signer: HardhatEthersSigner,
  to: string,
  value: bigint,
  options: { kind?: "transfer" | "receive"; validBefore?: bigint; validAfter?: bigint; from?: string } = {},
): Promise<{ authorization: Authorization; signature: string }> {
  const provider = usdc.runner!.provider!;
  const { chainId } = await provider.getNetwork();
  const now = BigInt((await provider.getBlock("latest"))!.timestamp);
  const authorization: Authorization = {
    from: options.from ?? signer.address,
    to,
    value,
    validAfter: options.validAfter ?? 0n,
    validBefore: options.validBefore ?? now + 3600n,
    nonce: `0x${(nonceCounter++).toString(16).padStart(64, "0")}`,
  };
  const types = options.kind === "receive" ? receiveWithAuthorizationTypes : transferWithAuthorizationTypes;
  const domain = usdcDomain(Number(chainId), (await usdc.getAddress()) as Address);
  return { authorization, signature: await signer.signTypedData(domain, ethersTypes(types), authorization) };
}

/** `signer`'s ledger withdrawal of `amount` to `to` at its current nonce. */
export async function signWithdrawal(
  ledger: SplitsLedger,
  signer: HardhatEthersSigner,
  to: string,
  amount: bigint,
  deadline: bigint,
): Promise<string> {
  const { chainId } = await ledger.runner!.provider!.getNetwork();
  const domain = ledgerDomain(Number(chainId), (await ledger.getAddress()) as Address) as TypedDataDomain;
  const message = { account: signer.address, to, amount, nonce: await ledger.nonces(signer.address), deadline };
  return signer.signTypedData(domain, ethersTypes(withdrawalTypes), message);
}

/*//////////////////////////////////////////////////////////////
                              SETUP
//////////////////////////////////////////////////////////////*/

export type Fixture = Awaited<ReturnType<typeof deployFixture>>;

/** The OpenAgents example: AutoDev's flow (price 12,000) with Alice's skill, Carol's compute, … */
export function autoDevFlow(people: { alice: string; carol: string; dave: string; grace: string; heidi: string }): Flow {
  return flowOf({
    fixedAmounts: [
      { recipient: account(people.alice), amount: 2_000n }, // the skill she assembled
      { recipient: account(people.carol), amount: 1_000n }, // compute: embeddings and open-model calls
      { recipient: account(people.dave), amount: 500n }, // his API key served the GPT-4 call
      { recipient: account(people.grace), amount: 300n }, // her fine-tuned model
      { recipient: account(people.heidi), amount: 300n }, // her dataset
    ],
    payerReferrerShare: 10_000n, // 1% to the payer's referrer
    payeeReferrerShare: 10_000n, // 1% to the agent owner's referrer
    remainder: TREASURY, // the platform keeps the rest
  });
}

export const AUTODEV_PRICE = 12_000n;

/** The suite with named people (the OpenAgents cast) and helpers for listing and paying agents. */
export async function setupAgents() {
  const f = await deployFixture();
  const [alice, bob, carol, dave, eve, frank, grace, heidi, ivan, judy, ...rest] = f.others;
  const { usdc, ledger, marketplace } = f;
  const marketplaceAddress = await marketplace.getAddress();
  const ledgerAddress = await ledger.getAddress();

  /** Lists an agent owned by `owner` and returns its id and payment address. */
  async function list(
    owner: HardhatEthersSigner,
    flow: Flow,
    price: bigint,
    options: { referrer?: string; name?: string } = {},
  ): Promise<{ agentId: bigint; paymentAddress: string }> {
    await (
      await marketplace.connect(owner).list(metadataOf(options.name), price, flow, options.referrer ?? ZeroAddress)
    ).wait();
    const agentId = await marketplace.agentCount();
    return { agentId, paymentAddress: await marketplace.paymentAddressOf(agentId) };
  }

  /** Mints `amount` to `who`, deposits it into the ledger and approves the marketplace to spend it. */
  async function fundLedger(who: HardhatEthersSigner, amount: bigint) {
    await (await usdc.mint(who.address, amount)).wait();
    await (await usdc.connect(who).approve(ledgerAddress, amount)).wait();
    await (await ledger.connect(who).pay(who.address, amount)).wait();
    await (await ledger.connect(who).approve(marketplaceAddress, ethersMaxUint)).wait();
  }

  /** Pays agent `agentId` from `payer`'s ledger balance (funding it first) and returns the payment. */
  async function payFromBalance(agentId: bigint, payer: HardhatEthersSigner, amount: bigint, referrer = ZeroAddress): Promise<Payment> {
    await fundLedger(payer, amount);
    await (await marketplace.connect(payer).payFromBalance(agentId, amount, referrer)).wait();
    return { payer: payer.address, referrer: await marketplace.referrerOf(payer.address), amount };
  }

  /** Pays agent `agentId` with `payer`'s EIP-3009 authorization, submitted by `relayer` (the stranger). */
  async function payWithAuthorization(agentId: bigint, payer: HardhatEthersSigner, amount: bigint): Promise<Payment> {
    await (await usdc.mint(payer.address, amount)).wait();
    const to = await marketplace.paymentAddressOf(agentId);
    const { authorization: a, signature } = await signAuthorization(usdc, payer, to, amount);
    await (
      await marketplace.connect(f.stranger).payWithAuthorization(agentId, a.from, a.value, a.validAfter, a.validBefore, a.nonce, signature)
    ).wait();
    return { payer: payer.address, referrer: await marketplace.referrerOf(payer.address), amount };
  }

  /** Ledger balances of `who`. */
  async function balances(who: string[]): Promise<bigint[]> {
    return Promise.all(who.map((a) => ledger.balanceOf(a)));
  }

  return {
    ...f,
    alice, bob, carol, dave, eve, frank, grace, heidi, ivan, judy, rest,
    marketplaceAddress, ledgerAddress, list, fundLedger, payFromBalance, payWithAuthorization, balances,
  };
}
export type Agents = Awaited<ReturnType<typeof setupAgents>>;

export const ethersMaxUint = 2n ** 256n - 1n;
