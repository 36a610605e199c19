import {
  hashStruct,
  parseSignature,
  signatureToCompactSignature,
  type Address,
  type Hex,
} from "viem";

/**
 * EIP-712 definitions of the messages agents, providers and account holders sign. They mirror the
 * typehash strings of `contracts/libraries/SessionLib.sol` and `contracts/SplitsLedger.sol`; the
 * contract tests check that viem's `hashTypedData` over these equals the contracts' digests.
 */
export const sessionTermsTypes = {
  SessionTerms: [
    { name: "agent", type: "address" },
    { name: "budgetId", type: "uint64" },
    { name: "providerId", type: "uint32" },
    { name: "modelId", type: "uint32" },
    { name: "receiptSigner", type: "address" },
    { name: "inputPricePer1K", type: "uint32" },
    { name: "outputPricePer1K", type: "uint32" },
    { name: "minChargePerCall", type: "uint32" },
    { name: "feeBps", type: "uint16" },
    { name: "maxSpend", type: "uint64" },
    { name: "deadline", type: "uint32" },
    { name: "salt", type: "uint64" },
  ],
} as const;

/** A voucher nests its session's terms, so wallets show them and the id needs no separate field. */
export const voucherTypes = {
  Voucher: [
    { name: "terms", type: "SessionTerms" },
    { name: "sequence", type: "uint32" },
    { name: "cumulativeCost", type: "uint64" },
    { name: "requestCount", type: "uint32" },
    { name: "inputTokens", type: "uint32" },
    { name: "outputTokens", type: "uint32" },
    { name: "latencyMs", type: "uint32" },
    { name: "receiptHead", type: "bytes32" },
    { name: "isFinal", type: "bool" },
  ],
  ...sessionTermsTypes,
} as const;

export const withdrawalTypes = {
  Withdrawal: [
    { name: "account", type: "address" },
    { name: "to", type: "address" },
    { name: "amount", type: "uint256" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
} as const;

/**
 * A ledger transfer by signature (`SplitsLedger.transferWithSig`), which only `caller` may submit.
 * The marketplace's `payFromBalanceWithSig` takes one with `to` and `caller` both the marketplace and
 * `memo` the agent id as a bytes32, so it pays that agent and nothing else.
 */
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

/**
 * A receipt signer's announcement of its relayer's URL (`RelayerDirectory.announceWithSignature`),
 * which anyone may submit: a relayer's gas account submits it for its signers.
 */
export const announcementTypes = {
  Announcement: [
    { name: "signer", type: "address" },
    { name: "url", type: "string" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
} as const;

/**
 * A session's terms, fixed at open; the session id is their EIP-712 struct hash. The prices, the
 * receipt signer and the fee must equal the registry's and the escrow's when the session opens.
 */
export interface SessionTerms {
  agent: Address;
  budgetId: bigint;
  providerId: number;
  modelId: number;
  /** The provider's receipt signer: the only key that co-signs this session's states. */
  receiptSigner: Address;
  inputPricePer1K: number;
  outputPricePer1K: number;
  minChargePerCall: number;
  /** The protocol fee (basis points) this session's settlements pay. */
  feeBps: number;
  maxSpend: bigint;
  deadline: number;
  salt: bigint;
}

/** The cumulative state of a session that the agent signs and the provider co-signs. */
export interface Voucher {
  terms: SessionTerms;
  sequence: number;
  cumulativeCost: bigint;
  requestCount: number;
  inputTokens: number;
  outputTokens: number;
  latencyMs: number;
  receiptHead: Hex;
  isFinal: boolean;
}

/** An ERC-2098 64-byte signature: the form in which the escrow takes every signature. */
export interface CompactSignature {
  r: Hex;
  yParityAndS: Hex;
}

/** A voucher with both signatures, as the escrow settles it. */
export interface SignedVoucher {
  voucher: Voucher;
  agentSignature: CompactSignature;
  providerSignature: CompactSignature;
}

/** `signature` (65-byte hex, as wallets return it) in the escrow's compact form. */
export function toCompactSignature(signature: Hex): CompactSignature {
  return signatureToCompactSignature(parseSignature(signature));
}

/** A session's id: the EIP-712 struct hash of its terms. */
export function sessionIdOf(terms: SessionTerms): Hex {
  return hashStruct({ data: terms, primaryType: "SessionTerms", types: sessionTermsTypes });
}

/** An EIP-712 domain with the four fields every AgentMesh contract uses. */
export interface ContractDomain {
  name: string;
  version: string;
  chainId: number;
  verifyingContract: Address;
}

/** The EIP-712 domain of the ComputeEscrow at `verifyingContract` on `chainId`. */
export function escrowDomain(chainId: number, verifyingContract: Address): ContractDomain {
  return { name: "AgentMesh Escrow", version: "1", chainId, verifyingContract };
}

/** The EIP-712 domain of the SplitsLedger at `verifyingContract` on `chainId`. */
export function ledgerDomain(chainId: number, verifyingContract: Address): ContractDomain {
  return { name: "AgentMesh Ledger", version: "1", chainId, verifyingContract };
}

/** The EIP-712 domain of the RelayerDirectory at `verifyingContract` on `chainId`. */
export function directoryDomain(chainId: number, verifyingContract: Address): ContractDomain {
  return { name: "AgentMesh RelayerDirectory", version: "1", chainId, verifyingContract };
}
