import { bytesToHex, getAddress, hashDomain, hexToBytes, keccak256, toHex, type Address, type Hex } from "viem";
import { keccak256Bytes } from "#keccak";
import { writeBytes32, writeUint32, writeUint64 } from "./abi-words.ts";
import { secp256k1 } from "./native-crypto.ts";
import { escrowDomain, voucherTypes, type CompactSignature, type Voucher } from "./typed-data.ts";

/**
 * Voucher digests built by hand, for the hot path: the relayer and the agent each hash and sign a
 * voucher per call, and generic EIP-712 encoding costs ~10× more than these two keccaks over bytes
 * written in place. The result is the EIP-712 digest of `Voucher` (tested against viem's
 * hashTypedData and the contract's).
 */

/** A voucher without its terms: the cumulative state of a session after some calls. */
export type VoucherState = Omit<Voucher, "terms">;

/** `Voucher`'s EIP-712 type string (its own fields, then the nested SessionTerms'), from the type definitions. */
function voucherTypeString(): string {
  const encode = (name: keyof typeof voucherTypes) =>
    `${name}(${voucherTypes[name].map((field) => `${field.type} ${field.name}`).join(",")})`;
  return encode("Voucher") + encode("SessionTerms");
}

const VOUCHER_TYPEHASH = keccak256(toHex(voucherTypeString()));

/** The EIP-712 domain separator of the escrow at `escrow` on `chainId` (compute once, reuse). */
export function escrowDomainSeparator(chainId: number, escrow: Address): Hex {
  return hashDomain({
    domain: { ...escrowDomain(chainId, escrow), chainId: BigInt(chainId) },
    types: {
      EIP712Domain: [
        { name: "name", type: "string" },
        { name: "version", type: "string" },
        { name: "chainId", type: "uint256" },
        { name: "verifyingContract", type: "address" },
      ],
    },
  });
}

const VOUCHER_TYPEHASH_BYTES = hexToBytes(VOUCHER_TYPEHASH);
/** `Voucher`'s struct encoding: typehash, session id (the terms' struct hash), then 8 state words. */
const STRUCT_WORDS = 10;

/** The EIP-712 digest of the voucher of session `sessionId` (the struct hash of its terms) at `state`. */
export function voucherDigest(domainSeparator: Hex, sessionId: Hex, state: VoucherState): Hex {
  const struct = new Uint8Array(32 * STRUCT_WORDS);
  const view = new DataView(struct.buffer);
  struct.set(VOUCHER_TYPEHASH_BYTES, 0);
  writeBytes32(struct, 32, sessionId);
  writeUint32(view, 64, state.sequence);
  writeUint64(view, 96, state.cumulativeCost);
  writeUint32(view, 128, state.requestCount);
  writeUint32(view, 160, state.inputTokens);
  writeUint32(view, 192, state.outputTokens);
  writeUint32(view, 224, state.latencyMs);
  writeBytes32(struct, 256, state.receiptHead);
  struct[288 + 31] = state.isFinal ? 1 : 0;
  const envelope = new Uint8Array(66);
  envelope.set([0x19, 0x01], 0);
  writeBytes32(envelope, 2, domainSeparator);
  envelope.set(keccak256Bytes(struct), 34);
  return bytesToHex(keccak256Bytes(envelope));
}

/** Half the curve order: the contract (OpenZeppelin ECDSA) accepts only s at or below it. */
const HALF_CURVE_ORDER = hexToBytes("0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0");

/** Whether the 32-byte big-endian `a` is greater than `b`. */
function greaterThan(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return a[i] > b[i];
  return false;
}

/**
 * Signs a 32-byte digest, in the compact form the escrow takes, with the fastest libsecp256k1 build
 * available (see `native-crypto.ts`). Signatures are RFC 6979 and low-s, byte for byte what viem's
 * `sign` gives (tested). A low s leaves its top bit free: EIP-2098 puts y parity there.
 */
export function signDigest(privateKey: Hex, digest: Hex): CompactSignature {
  const { signature, recoveryId } = secp256k1.sign(hexToBytes(digest), hexToBytes(privateKey));
  const yParityAndS = signature.slice(32, 64);
  yParityAndS[0] |= (recoveryId & 1) << 7;
  return { r: bytesToHex(signature.subarray(0, 32)), yParityAndS: bytesToHex(yParityAndS) };
}

/**
 * The address that produced `signature` over `digest`, or undefined when it is malformed, recovers
 * to none, or the contract would refuse it (s above half the curve order).
 */
export function recoverDigestSigner(digest: Hex, signature: CompactSignature): Address | undefined {
  const compact = new Uint8Array(64);
  try {
    writeBytes32(compact, 0, signature.r);
    writeBytes32(compact, 32, signature.yParityAndS);
  } catch {
    return undefined; // not two 32-byte words
  }
  const recoveryId = compact[32] >> 7;
  compact[32] &= 0x7f;
  if (greaterThan(compact.subarray(32), HALF_CURVE_ORDER)) return undefined;
  const publicKey = secp256k1.recover(hexToBytes(digest), compact, recoveryId);
  return publicKey === undefined ? undefined : addressOf(publicKey);
}

/** Checksummed addresses of recently seen public keys: the same agents and signers sign every call. */
const addressCache = new Map<string, Address>();
const ADDRESS_CACHE_SIZE = 10_000;

function addressOf(publicKey: Uint8Array): Address {
  const key = bytesToHex(publicKey);
  let address = addressCache.get(key);
  if (address === undefined) {
    if (addressCache.size >= ADDRESS_CACHE_SIZE) addressCache.clear();
    address = getAddress(bytesToHex(keccak256Bytes(publicKey.subarray(1)).subarray(12)));
    addressCache.set(key, address);
  }
  return address;
}
