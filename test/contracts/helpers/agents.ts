import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import { expect } from "chai";
import {
  AbiCoder,
  Wallet,
  ZeroAddress,
  getAddress,
  getCreate2Address,
  keccak256,
  toBeHex,
  toUtf8Bytes,
  zeroPadValue,
  type Log,
  type TypedDataDomain,
  type TypedDataField,
} from "ethers";
import type { Address } from "viem";
import { receiveWithAuthorizationTypes, transferWithAuthorizationTypes, usdcDomain } from "../../../sdk/src/usdc.ts";
import { ledgerDomain, transferAuthorizationTypes, withdrawalTypes } from "../../../sdk/src/typed-data.ts";
import type { AgentMarketplace, MockUSDC, SplitsLedger } from "../../../types/ethers-contracts/index.ts";
import { ethersTypes } from "../../../scripts/lib/ethers-types.ts";
import { deployFixture } from "../fixture.ts";
import { createBudget } from "./escrow.ts";

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
export function link(state: string, payment: Payment): string {
  const hash = BigInt(
    keccak256(
      AbiCoder.defaultAbiCoder().encode(
        ["bytes32", "address", "address", "uint256"],
        [state, payment.payer, payment.referrer, payment.amount],
      ),
    ),
  );
  const next = (hash & ~COUNT_MASK) | ((BigInt(state) + 1n) & COUNT_MASK);
  return toBeHex(next, 32);
}

/** A chain head with its pending count zeroed: the head (and base) after a distribution. */
export function settled(head: string): string {
  return toBeHex((BigInt(head) >> 32n) << 32n, 32);
}

/*//////////////////////////////////////////////////////////////
                            SIGNATURES
//////////////////////////////////////////////////////////////*/

/** Anything that signs EIP-712 messages: a Hardhat signer or an offline ethers `Wallet`. */
export interface TypedDataSigner {
  address: string;
  signTypedData(domain: TypedDataDomain, types: Record<string, TypedDataField[]>, value: Record<string, unknown>): Promise<string>;
}

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
  signer: TypedDataSigner,
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
  signer: TypedDataSigner,
  to: string,
  value: bigint,
  options: { kind?: "transfer" | "receive"; validBefore?: bigint; validAfter?: bigint; from?: string } = {},
): Promise<{ authorization: Authorization; signature: string }> {
  const provider = usdc.runner!.provider!;
  const { chainId } = await provider.getNetwork();
  const validBefore = options.validBefore ?? BigInt((await provider.getBlock("latest"))!.timestamp) + 3600n;
  const authorization: Authorization = {
    from: options.from ?? signer.address,
    to,
    value,
    validAfter: options.validAfter ?? 0n,
    validBefore,
    nonce: `0x${(nonceCounter++).toString(16).padStart(64, "0")}`,
  };
  const types = options.kind === "receive" ? receiveWithAuthorizationTypes : transferWithAuthorizationTypes;
  const domain = usdcDomain(Number(chainId), (await usdc.getAddress()) as Address);
  return { authorization, signature: await signer.signTypedData(domain, ethersTypes(types), { ...authorization }) };
}

async function ledgerTypedDomain(ledger: SplitsLedger): Promise<TypedDataDomain> {
  const { chainId } = await ledger.runner!.provider!.getNetwork();
  return ledgerDomain(Number(chainId), (await ledger.getAddress()) as Address) as TypedDataDomain;
}

/** `signer`'s ledger withdrawal of `amount` to `to` at its current nonce. */
export async function signWithdrawal(
  ledger: SplitsLedger,
  signer: TypedDataSigner,
  to: string,
  amount: bigint,
  deadline: bigint,
): Promise<string> {
  const message = { account: signer.address, to, amount, nonce: await ledger.nonces(signer.address), deadline };
  return signer.signTypedData(await ledgerTypedDomain(ledger), ethersTypes(withdrawalTypes), message);
}

/** The memo a marketplace payment from balance carries: the agent id as a bytes32. */
export function agentMemo(agentId: bigint): string {
  return zeroPadValue(toBeHex(agentId), 32);
}

export interface TransferAuthorizationFields {
  to: string;
  amount: bigint;
  caller: string;
  memo: string;
  deadline: bigint;
  /** Defaults to the account's current ledger nonce. */
  nonce?: bigint;
}

/** `signer`'s ledger `TransferAuthorization` (SplitsLedger.transferWithSig), which only `caller` may submit. */
export async function signTransferAuthorization(
  ledger: SplitsLedger,
  signer: TypedDataSigner,
  fields: TransferAuthorizationFields,
): Promise<string> {
  const nonce = fields.nonce ?? (await ledger.nonces(signer.address));
  const { to, amount, caller, memo, deadline } = fields;
  const message = { account: signer.address, to, amount, caller, memo, nonce, deadline };
  return signer.signTypedData(await ledgerTypedDomain(ledger), ethersTypes(transferAuthorizationTypes), message);
}

/**
 * What `payFromBalanceWithSig(agentId, signer, amount, deadline, ·)` takes: `signer`'s transfer of
 * `amount` to the marketplace, submitted by the marketplace, with the agent id as memo.
 */
export async function signPayFromBalance(
  ledger: SplitsLedger,
  marketplaceAddress: string,
  signer: TypedDataSigner,
  agentId: bigint,
  amount: bigint,
  deadline: bigint,
  nonce?: bigint,
): Promise<string> {
  return signTransferAuthorization(ledger, signer, {
    to: marketplaceAddress,
    amount,
    caller: marketplaceAddress,
    memo: agentMemo(agentId),
    deadline,
    nonce,
  });
}

/*//////////////////////////////////////////////////////////////
                        PAYMENT ADDRESSES
//////////////////////////////////////////////////////////////*/

/** EIP-1167 creation code of a clone of `implementation` (what OpenZeppelin's Clones deploys). */
export function cloneInitCode(implementation: string): string {
  return `0x3d602d80600a3d3981f3363d3d373d3d3d363d73${implementation.slice(2).toLowerCase()}5af43d82803e903d91602b57fd5bf3`;
}

/** The CREATE2 address of `owner`'s listing number `count` (0 for its first): salt = keccak256(abi.encode(owner, count)). */
export function predictPaymentAddress(marketplace: string, implementation: string, owner: string, count: bigint): string {
  const salt = keccak256(AbiCoder.defaultAbiCoder().encode(["address", "uint256"], [owner, count]));
  return getCreate2Address(marketplace, salt, keccak256(cloneInitCode(implementation)));
}

/*//////////////////////////////////////////////////////////////
              SPLITS (a model of SplitsLedger.distribute)
//////////////////////////////////////////////////////////////*/

export interface SplitDefinition {
  recipients: { account: string; share: bigint }[];
  remainderRecipient: string;
}

/**
 * Splits created in a test and what each has distributed in its lifetime: each entry of a split is
 * credited `⌊distributed × share / SCALE⌋` over the split's life; nested splits recurse.
 */
export class SplitModel {
  readonly definitions = new Map<string, SplitDefinition>();
  readonly distributed = new Map<string, bigint>();

  add(split: string, definition: SplitDefinition) {
    this.definitions.set(split.toLowerCase(), definition);
  }

  isSplit(address: string): boolean {
    return this.definitions.has(address.toLowerCase());
  }

  /** The split's entries in its order: recipients, then the remainder recipient with the share left. */
  entries(split: string): { account: string; share: bigint }[] {
    const definition = this.definitions.get(split.toLowerCase())!;
    const total = definition.recipients.reduce((sum, r) => sum + r.share, 0n);
    return [...definition.recipients, { account: definition.remainderRecipient, share: SCALE - total }];
  }

  /** Every account reached through `split` (nested splits expanded). */
  leaves(split: string): string[] {
    return this.entries(split).flatMap((e) => (this.isSplit(e.account) ? this.leaves(e.account) : [e.account.toLowerCase()]));
  }

  /**
   * Distributes `amount` through `split` as the ledger does: returns the credit of each leaf and, per
   * split reached, the credits its `SplitDistributed` event carries.
   */
  distribute(
    split: string,
    amount: bigint,
    leaves = new Map<string, bigint>(),
    events: { split: string; amount: bigint; credits: bigint[] }[] = [],
  ) {
    const key = split.toLowerCase();
    const before = this.distributed.get(key) ?? 0n;
    const after = before + amount;
    this.distributed.set(key, after);
    const credits: bigint[] = [];
    const nested: [string, bigint][] = [];
    for (const { account: who, share } of this.entries(split)) {
      const part = (after * share) / SCALE - (before * share) / SCALE;
      credits.push(part);
      if (part === 0n) continue;
      if (this.isSplit(who)) nested.push([who, part]);
      else leaves.set(who.toLowerCase(), (leaves.get(who.toLowerCase()) ?? 0n) + part);
    }
    // The ledger emits a split's event after its nested entries have distributed (theirs come first, in
    // entry order); each split's rounding depends only on its own lifetime total, so the order of
    // crediting does not change any amount.
    for (const [who, part] of nested) this.distribute(who, part, leaves, events);
    events.push({ split: key, amount, credits });
    return { leaves, events };
  }
}

/** Creates `definition` (recipients sorted as the ledger requires) and records it in `model`. */
export async function createSplit(ledger: SplitsLedger, model: SplitModel, definition: SplitDefinition): Promise<string> {
  const recipients = [...definition.recipients].sort((x, y) => (BigInt(x.account) < BigInt(y.account) ? -1 : 1));
  const sorted = { recipients, remainderRecipient: definition.remainderRecipient };
  const split = await ledger.predictSplitAddress(sorted);
  await (await ledger.createSplit(sorted)).wait();
  model.add(split, sorted);
  return split;
}

/** A fresh address no test signer holds, named by `tag` (deterministic). */
export function freshAddress(tag: string): string {
  return getAddress(`0x${keccak256(toUtf8Bytes(tag)).slice(26)}`);
}

/** An offline signer (no ETH, never sends a transaction): its payments are submitted by relayers. */
export function offlineWallet(tag: string): Wallet {
  return new Wallet(keccak256(toUtf8Bytes(`wallet:${tag}`)));
}

/*//////////////////////////////////////////////////////////////
                      CONSERVATION AND EVENTS
//////////////////////////////////////////////////////////////*/

interface Contracts {
  usdc: MockUSDC;
  ledger: SplitsLedger;
  marketplace: AgentMarketplace;
}

async function logsOf(contract: { getAddress(): Promise<string>; runner: unknown }, provider: NonNullable<MockUSDC["runner"]>["provider"]): Promise<Log[]> {
  return provider!.getLogs({ address: await contract.getAddress(), fromBlock: 0, toBlock: "latest" });
}

/**
 * Every account the ledger ever credited, read from its events: payees of `Paid`, receivers of
 * `Transferred`, and every entry of every split (credited by `SplitDistributed`).
 */
export async function ledgerAccounts(ledger: SplitsLedger): Promise<{ accounts: Set<string>; splits: Set<string> }> {
  const accounts = new Set<string>();
  const splits = new Set<string>();
  for (const log of await logsOf(ledger, ledger.runner!.provider)) {
    const parsed = ledger.interface.parseLog(log);
    if (parsed === null) continue;
    if (parsed.name === "Paid") accounts.add(String(parsed.args.payee).toLowerCase());
    else if (parsed.name === "Transferred") accounts.add(String(parsed.args.to).toLowerCase());
    else if (parsed.name === "SplitCreated") {
      splits.add(String(parsed.args.split).toLowerCase());
      accounts.add(String(parsed.args.split).toLowerCase());
      for (const r of parsed.args.definition.recipients) accounts.add(String(r.account).toLowerCase());
      accounts.add(String(parsed.args.definition.remainderRecipient).toLowerCase());
    }
  }
  return { accounts, splits };
}

/**
 * Each agent's pending payments as an indexer rebuilds them: its `AgentPaid` events since its last
 * `PaymentsDistributed` (from `distribute` or `updateTerms`), oldest first.
 */
export async function pendingFromEvents(marketplace: AgentMarketplace): Promise<Map<bigint, Payment[]>> {
  const pending = new Map<bigint, Payment[]>();
  for (const log of await logsOf(marketplace, marketplace.runner!.provider)) {
    const parsed = marketplace.interface.parseLog(log);
    if (parsed === null) continue;
    const agentId = BigInt(parsed.args[0] ?? 0);
    if (parsed.name === "AgentPaid") {
      const list = pending.get(agentId) ?? [];
      list.push({ payer: parsed.args.payer, referrer: parsed.args.referrer, amount: parsed.args.amount });
      pending.set(agentId, list);
    } else if (parsed.name === "PaymentsDistributed") pending.set(agentId, []);
  }
  return pending;
}

/**
 * The custody invariants: the USDC the ledger holds is the sum of the balances of every account it
 * ever credited plus the rounding dust its splits hold back (`splitTotals`: owed to their entries,
 * paid as later distributions make it whole); the marketplace holds no USDC itself, and its ledger
 * balance is exactly the pending payments of all agents, each agent's of which re-hash from its
 * chain's base to its head.
 */
export async function expectConservation({ usdc, ledger, marketplace }: Contracts) {
  const { accounts, splits } = await ledgerAccounts(ledger);
  let credited = 0n;
  for (const who of accounts) credited += await ledger.balanceOf(who);
  let dust = 0n;
  for (const split of splits) dust += (await ledger.splitTotals(split))[1];
  expect(credited + dust, "Σ ledger balances + split dust == USDC held by the ledger").to.equal(
    await usdc.balanceOf(await ledger.getAddress()),
  );
  const marketplaceAddress = await marketplace.getAddress();
  expect(await usdc.balanceOf(marketplaceAddress), "the marketplace holds no USDC").to.equal(0n);
  let pendingTotal = 0n;
  const agents = await marketplace.agentCount();
  const pending = await pendingFromEvents(marketplace);
  for (let agentId = 1n; agentId <= agents; agentId++) {
    const payments = pending.get(agentId) ?? [];
    const [head, base, count] = await marketplace.paymentChain(agentId);
    expect(count, `agent ${agentId} pending count`).to.equal(BigInt(payments.length));
    expect(payments.reduce((state, p) => link(state, p), base), `agent ${agentId} chain`).to.equal(head);
    pendingTotal += payments.reduce((sum, p) => sum + p.amount, 0n);
  }
  expect(await ledger.balanceOf(marketplaceAddress), "marketplace ledger balance == Σ pending payments").to.equal(pendingTotal);
}

/** Credits of one transaction read from its ledger events: `Transferred` from `from`, per receiver. */
export function transfersFrom(ledger: SplitsLedger, logs: readonly Log[], from: string): Map<string, bigint> {
  const credits = new Map<string, bigint>();
  for (const log of logs) {
    if (log.address.toLowerCase() !== (ledger.target as string).toLowerCase()) continue;
    const parsed = ledger.interface.parseLog(log);
    if (parsed?.name !== "Transferred" || String(parsed.args.from).toLowerCase() !== from.toLowerCase()) continue;
    const to = String(parsed.args.to).toLowerCase();
    credits.set(to, (credits.get(to) ?? 0n) + BigInt(parsed.args.amount));
  }
  return credits;
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

let latest: Agents | undefined;

/** The suite the last `setupAgents` call deployed (for an `afterEach` conservation check). */
export function latestAgents(): Agents | undefined {
  return latest;
}

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
  async function payWithAuthorization(agentId: bigint, payer: TypedDataSigner, amount: bigint): Promise<Payment> {
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

  /** Grants the admin the ledger's compliance role (its admin may) and returns the officer. */
  async function complianceOfficer(): Promise<HardhatEthersSigner> {
    await (await ledger.connect(f.admin).grantRole(await ledger.COMPLIANCE_ROLE(), f.admin.address)).wait();
    return f.admin;
  }

  /** See `expectConservation`. */
  const conservation = () => expectConservation({ usdc, ledger, marketplace });

  const agents = {
    ...f,
    alice, bob, carol, dave, eve, frank, grace, heidi, ivan, judy, rest,
    marketplaceAddress, ledgerAddress, list, fundLedger, payFromBalance, payWithAuthorization, balances,
    complianceOfficer, conservation,
  };
  latest = agents;
  return agents;
}
export type Agents = Awaited<ReturnType<typeof setupAgents>>;

export const ethersMaxUint = 2n ** 256n - 1n;

/*//////////////////////////////////////////////////////////////
          THE WORST CASE (issue 11 §1: fund locking by gas)
//////////////////////////////////////////////////////////////*/

/** Base's per-transaction gas cap (EIP-7825), also the test chain's block gas limit. */
export const GAS_CAP = 16_777_216n;

/**
 * The most expensive distribution anyone can set up: an agent whose flow uses every component
 * (16 fixed amounts and 16 shares, 33 distinct recipients: escrow budgets, ledger splits and fresh
 * accounts), whose owner's referrer is a split, with a full chain of MAX_PENDING payments, each from
 * a different payer whose referrer is a different 64-leaf, depth-4 split never credited before, each
 * with a partial call (so every component of every payment is computed), half of them x402
 * authorizations and half signed payments from ledger balances, plus stray USDC on the address.
 */
export async function buildWorstCase(a: Agents, options: { kindOf?: (k: number) => number } = {}) {
  /** The kind of the k-th fixed amount or share (and of the remainder, k = 0): a third each by default. */
  const kindOf = options.kindOf ?? ((k: number) => [Kind.Budget, Kind.Split, Kind.Account][k % 3]);
  const { ledger, marketplace, usdc, escrow, alice, frank: funder, stranger: relayer, creator } = a;
  const model = new SplitModel();
  const leaf = (tag: string) => freshAddress(`leaf:${tag}`);
  // A shared depth-3 tree of 63 fresh accounts: L1 (30 + remainder), L2 (L1, 30 + remainder), L3 (L2 + remainder).
  const l1 = await createSplit(ledger, model, {
    recipients: Array.from({ length: 30 }, (_, j) => ({ account: leaf(`l1:${j}`), share: 31_000n + BigInt(j) })),
    remainderRecipient: leaf("l1:rest"),
  });
  const l2 = await createSplit(ledger, model, {
    recipients: [
      { account: l1, share: 400_000n },
      ...Array.from({ length: 30 }, (_, j) => ({ account: leaf(`l2:${j}`), share: 19_000n + BigInt(j) })),
    ],
    remainderRecipient: leaf("l2:rest"),
  });
  const l3 = await createSplit(ledger, model, { recipients: [{ account: l2, share: 990_001n }], remainderRecipient: leaf("l3:rest") });
  // Depth 4 and 64 leaves, each distinct by an account of its own.
  const topSplit = (tag: string) =>
    createSplit(ledger, model, { recipients: [{ account: l3, share: 984_375n }], remainderRecipient: leaf(`top:${tag}`) });

  const price = 10_000n;
  const budgetIds: bigint[] = [];
  const recipientFor = async (k: number, tag: string): Promise<Recipient> => {
    if (kindOf(k) === Kind.Budget) {
      budgetIds.push(await createBudget(usdc, escrow, { creator, amount: 1n, agents: [a.agent.address] }));
      return budget(budgetIds[budgetIds.length - 1]);
    }
    if (kindOf(k) === Kind.Split) return splitRecipient(await topSplit(`flow:${tag}`));
    return account(freshAddress(`recipient:${tag}`));
  };
  const fixedAmounts: Flow["fixedAmounts"] = [];
  const shares: Flow["shares"] = [];
  for (let k = 0; k < 16; k++) fixedAmounts.push({ recipient: await recipientFor(k, `fixed:${k}`), amount: 100n + BigInt(k) });
  for (let k = 0; k < 16; k++) shares.push({ recipient: await recipientFor(k, `share:${k}`), share: 50_000n + BigInt(k) });
  const flow = flowOf({
    fixedAmounts,
    shares,
    payerReferrerShare: 100_000n,
    payeeReferrerShare: 50_000n,
    remainder: await recipientFor(0, "remainder"),
  });
  const ownerReferrer = await topSplit("owner");
  const { agentId, paymentAddress } = await a.list(alice, flow, price, { referrer: ownerReferrer });

  const max = await marketplace.MAX_PENDING();
  await (await usdc.mint(funder.address, max * 4n * price)).wait();
  await (await usdc.connect(funder).approve(a.ledgerAddress, ethersMaxUint)).wait();
  const deadline = BigInt((await a.ethers.provider.getBlock("latest"))!.timestamp) + 60n * 86_400n;
  const payments: Payment[] = [];
  const referrers: string[] = [];
  for (let i = 0n; i < max; i++) {
    const payer = offlineWallet(`payer:${i}`);
    const referrer = await topSplit(`referrer:${i}`);
    referrers.push(referrer);
    await marketplace.connect(relayer).setReferrerWithSig(payer.address, referrer, await signReferral(marketplace, payer, referrer));
    const amount = price * (1n + (i % 3n)) + 7_777n + i;
    if (i % 2n === 0n) {
      await usdc.mint(payer.address, amount);
      const { authorization: x, signature } = await signAuthorization(usdc, payer, paymentAddress, amount, { validBefore: deadline });
      await marketplace.connect(relayer).payWithAuthorization(agentId, x.from, x.value, x.validAfter, x.validBefore, x.nonce, signature);
    } else {
      await ledger.connect(funder).pay(payer.address, amount);
      const signature = await signPayFromBalance(ledger, a.marketplaceAddress, payer, agentId, amount, deadline, 0n);
      await marketplace.connect(relayer).payFromBalanceWithSig(agentId, payer.address, amount, deadline, signature);
    }
    payments.push({ payer: payer.address, referrer, amount });
  }
  const stray = 2n * price + 333n;
  await (await usdc.mint(paymentAddress, stray)).wait();
  return { agentId, paymentAddress, flow, price, payments, referrers, stray, model, l1, l2, l3, ownerReferrer, budgetIds, deadline };
}
export type WorstCase = Awaited<ReturnType<typeof buildWorstCase>>;
