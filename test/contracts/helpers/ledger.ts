import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import type { Log, TransactionReceipt } from "ethers";
import { type Address, type Hex, hashTypedData } from "viem";
import type { PrivateKeyAccount } from "viem/accounts";
import { ledgerDomain, withdrawalTypes } from "../../../sdk/src/typed-data.ts";
import type { SplitsLedger } from "../../../types/ethers-contracts/index.ts";
import type { ISplitsLedger } from "../../../types/ethers-contracts/SplitsLedger.ts";
import type { deployFixture } from "../fixture.ts";

type Fixture = Awaited<ReturnType<typeof deployFixture>>;

export type Split = ISplitsLedger.SplitStruct;
export interface Recipient {
  account: string;
  share: bigint;
}

export const SCALE = 1_000_000n;
export const ONE_USDC = 1_000_000n;
export const ZERO_ADDRESS = "0x0000000000000000000000000000000000000000";
export const DAY = 24n * 3600n;
/** Base's per-transaction gas cap (EIP-7825), which the test chain's block gas limit equals. */
export const TX_GAS_CAP = 16_777_216n;

export const WITHDRAWAL_TYPE = "Withdrawal(address account,address to,uint256 amount,uint256 nonce,uint256 deadline)";
export const TRANSFER_AUTHORIZATION_TYPE =
  "TransferAuthorization(address account,address to,uint256 amount,address caller,bytes32 memo,uint256 nonce,uint256 deadline)";

/** The ledger's signed transfer, which only `caller` may submit (ISplitsLedger.transferWithSig). */
export const transferAuthorizationTypes = {
  TransferAuthorization: [
    { name: "account", type: "address" },
    { name: "to", type: "address" },
    { name: "amount", type: "uint256" },
    { name: "caller", type: "address" },
    { name: "memo", type: "bytes32" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
} as const;

export interface WithdrawalMessage {
  account: Address;
  to: Address;
  amount: bigint;
  nonce: bigint;
  deadline: bigint;
}

export interface TransferAuthorizationMessage {
  account: Address;
  to: Address;
  amount: bigint;
  caller: Address;
  memo: Hex;
  nonce: bigint;
  deadline: bigint;
}

/*//////////////////////////////////////////////////////////////
                              SPLITS
//////////////////////////////////////////////////////////////*/

/** A deterministic, distinct, non-zero address per (pool, index), never used by any signer. */
export function addr(pool: number, index: number): string {
  const hex = (BigInt(pool) << 64n) | BigInt(index + 1);
  return `0x${hex.toString(16).padStart(40, "0")}`;
}

export function sortRecipients(recipients: Recipient[]): Recipient[] {
  return [...recipients].sort((a, b) => (BigInt(a.account) < BigInt(b.account) ? -1 : 1));
}

/** A split definition with its recipients sorted as the ledger requires. */
export function splitOf(recipients: Recipient[], remainderRecipient: string): Split {
  return { recipients: sortRecipients(recipients), remainderRecipient };
}

/** Each entry of a split in the ledger's order: its recipients, then the remainder recipient with the share left. */
export function entriesOf(split: Split): Recipient[] {
  const listed = split.recipients.map((r) => ({ account: String(r.account), share: BigInt(r.share) }));
  const used = listed.reduce((sum, r) => sum + r.share, 0n);
  return [...listed, { account: String(split.remainderRecipient), share: SCALE - used }];
}

/** A split of `count` plain accounts from `pool`, equal small shares, remainder an account of the pool. */
export function flatSplit(pool: number, count: number): Split {
  const recipients = Array.from({ length: count }, (_, i) => ({ account: addr(pool, i), share: 1000n }));
  return splitOf(recipients, addr(pool, 1000));
}

/** One `SplitDistributed` event. */
export interface Distribution {
  split: string;
  amount: bigint;
  credits: bigint[];
}

/**
 * A model of the ledger's splits, independent of the contract: each entry is credited the growth of
 * floor(lifetime distributed × share / SCALE); an entry that was a split when its parent was created
 * passes its credit on (its event comes before its parent's, as the ledger emits them).
 */
export class SplitModel {
  readonly #entries = new Map<string, { account: string; share: bigint; nested: boolean }[]>();
  readonly #distributed = new Map<string, bigint>();
  /** What leaves (accounts, and splits created after their parent) were credited, by lower-cased address. */
  readonly credited = new Map<string, bigint>();

  /** Records `split` (created at `address`) as the ledger would at `createSplit`. */
  add(address: string, split: Split): void {
    const key = address.toLowerCase();
    if (this.#entries.has(key)) return;
    this.#entries.set(
      key,
      entriesOf(split).map((e) => ({ ...e, nested: this.#entries.has(e.account.toLowerCase()) })),
    );
    this.#distributed.set(key, 0n);
  }

  /** Distributes `amount` held by `split`; returns the events in emission order. */
  distribute(split: string, amount: bigint): Distribution[] {
    const events: Distribution[] = [];
    this.#distribute(split.toLowerCase(), amount, events);
    return events;
  }

  #distribute(split: string, amount: bigint, events: Distribution[]): void {
    const entries = this.#entries.get(split);
    if (entries === undefined) throw new Error(`${split} is not a split of the model`);
    const before = this.#distributed.get(split)!;
    const after = before + amount;
    this.#distributed.set(split, after);
    const credits: bigint[] = [];
    for (const entry of entries) {
      const part = (after * entry.share) / SCALE - (before * entry.share) / SCALE;
      credits.push(part);
      if (part === 0n) continue;
      if (entry.nested) this.#distribute(entry.account.toLowerCase(), part, events);
      else this.credited.set(entry.account.toLowerCase(), (this.credited.get(entry.account.toLowerCase()) ?? 0n) + part);
    }
    events.push({ split, amount, credits });
  }

  /** Lifetime distributed total and rounding dust of `split` (ISplitsLedger.splitTotals). */
  totals(split: string): { distributed: bigint; dust: bigint } {
    const key = split.toLowerCase();
    const distributed = this.#distributed.get(key)!;
    let dust = distributed;
    for (const entry of this.#entries.get(key)!) dust -= (distributed * entry.share) / SCALE;
    return { distributed, dust };
  }

  /** Every split of the model. */
  splits(): string[] {
    return [...this.#entries.keys()];
  }

  /** What `account` was credited by distributions of the model. */
  creditOf(account: string): bigint {
    return this.credited.get(account.toLowerCase()) ?? 0n;
  }
}

/** The `SplitDistributed` events `receipt` holds, in order, with lower-cased split addresses. */
export function splitDistributions(ledger: SplitsLedger, receipt: TransactionReceipt | null): Distribution[] {
  const ledgerAddress = String(ledger.target).toLowerCase();
  const out: Distribution[] = [];
  for (const log of (receipt?.logs ?? []) as Log[]) {
    if (log.address.toLowerCase() !== ledgerAddress) continue;
    const parsed = ledger.interface.parseLog(log);
    if (parsed?.name !== "SplitDistributed") continue;
    out.push({
      split: String(parsed.args[0]).toLowerCase(),
      amount: BigInt(parsed.args[1]),
      credits: (parsed.args[2] as bigint[]).map((c) => BigInt(c)),
    });
  }
  return out;
}

/*//////////////////////////////////////////////////////////////
                            SIGNATURES
//////////////////////////////////////////////////////////////*/

/** The ledger's EIP-712 digest of a withdrawal, computed by viem. */
export function withdrawalDigest(chainId: number, ledger: Address, message: WithdrawalMessage): Hex {
  return hashTypedData({ domain: ledgerDomain(chainId, ledger), types: withdrawalTypes, primaryType: "Withdrawal", message });
}

/** The ledger's EIP-712 digest of a transfer authorization, computed by viem. */
export function transferAuthorizationDigest(chainId: number, ledger: Address, message: TransferAuthorizationMessage): Hex {
  return hashTypedData({
    domain: ledgerDomain(chainId, ledger),
    types: transferAuthorizationTypes,
    primaryType: "TransferAuthorization",
    message,
  });
}

/** `signer`'s signature (65 bytes) over viem's digest of a withdrawal. */
export function signWithdrawalMessage(
  signer: PrivateKeyAccount,
  chainId: number,
  ledger: Address,
  message: WithdrawalMessage,
): Promise<Hex> {
  return signer.sign({ hash: withdrawalDigest(chainId, ledger, message) });
}

/** `signer`'s signature (65 bytes) over viem's digest of a transfer authorization. */
export function signTransferMessage(
  signer: PrivateKeyAccount,
  chainId: number,
  ledger: Address,
  message: TransferAuthorizationMessage,
): Promise<Hex> {
  return signer.sign({ hash: transferAuthorizationDigest(chainId, ledger, message) });
}

/*//////////////////////////////////////////////////////////////
                        ACCOUNTS AND WALLETS
//////////////////////////////////////////////////////////////*/

/**
 * A signer sending as `address` (a contract such as the escrow included), funded with gas money,
 * through `hardhat_impersonateAccount`.
 */
export async function impersonate(fx: Pick<Fixture, "connection" | "ethers">, address: string): Promise<HardhatEthersSigner> {
  await fx.connection.networkHelpers.impersonateAccount(address);
  await fx.connection.networkHelpers.setBalance(address, 10n ** 20n);
  return fx.ethers.getSigner(address);
}

/**
 * Runtime code of a minimal ERC-1271 wallet: `isValidSignature(hash, …)` returns the magic value
 * 0x1626ba7e exactly when `hash` equals its storage slot 0, and zero otherwise.
 *   PUSH1 4 CALLDATALOAD  PUSH1 0 SLOAD  EQ  PUSH1 0x0f JUMPI  PUSH1 32 PUSH1 0 RETURN
 *   JUMPDEST  PUSH4 0x1626ba7e PUSH1 224 SHL PUSH1 0 MSTORE  PUSH1 32 PUSH1 0 RETURN
 */
export const ERC1271_WALLET_CODE =
  "0x6004356000541460" + "0f" + "57" + "60206000f3" + "5b" + "631626ba7e" + "60e01b" + "600052" + "60206000f3";

/** Places the ERC-1271 wallet above at `address`, approving `digest` (zero: none). */
export async function installWallet(fx: Pick<Fixture, "connection">, address: string, digest: Hex | bigint = 0n): Promise<void> {
  await fx.connection.networkHelpers.setCode(address, ERC1271_WALLET_CODE);
  await approveDigest(fx, address, digest);
}

/** Makes the wallet at `address` approve `digest` (and nothing else). */
export async function approveDigest(fx: Pick<Fixture, "connection">, address: string, digest: Hex | bigint): Promise<void> {
  await fx.connection.networkHelpers.setStorageAt(address, 0, BigInt(digest));
}

/*//////////////////////////////////////////////////////////////
                  SIGNATURES BY HARDHAT (WALLET) SIGNERS
//////////////////////////////////////////////////////////////*/

async function domainOf(ledger: SplitsLedger) {
  const { chainId } = await ledger.runner!.provider!.getNetwork();
  return ledgerDomain(Number(chainId), (await ledger.getAddress()) as Address);
}

/** `signer`'s withdrawal of its own balance (at its current nonce unless given), signed as a wallet would. */
export async function signWithdrawalBy(
  ledger: SplitsLedger,
  signer: HardhatEthersSigner,
  fields: { to: string; amount: bigint; deadline: bigint; nonce?: bigint },
): Promise<string> {
  const message = {
    account: signer.address,
    to: fields.to,
    amount: fields.amount,
    nonce: fields.nonce ?? (await ledger.nonces(signer.address)),
    deadline: fields.deadline,
  };
  return signer.signTypedData(await domainOf(ledger), { Withdrawal: [...withdrawalTypes.Withdrawal] }, message);
}

/** `signer`'s transfer authorization of its own balance (at its current nonce unless given), signed as a wallet would. */
export async function signTransferBy(
  ledger: SplitsLedger,
  signer: HardhatEthersSigner,
  fields: { to: string; amount: bigint; caller: string; memo?: string; deadline: bigint; nonce?: bigint },
): Promise<string> {
  const message = {
    account: signer.address,
    to: fields.to,
    amount: fields.amount,
    caller: fields.caller,
    memo: fields.memo ?? `0x${"00".repeat(32)}`,
    nonce: fields.nonce ?? (await ledger.nonces(signer.address)),
    deadline: fields.deadline,
  };
  return signer.signTypedData(
    await domainOf(ledger),
    { TransferAuthorization: [...transferAuthorizationTypes.TransferAuthorization] },
    message,
  );
}
