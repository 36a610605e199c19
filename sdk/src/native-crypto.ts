import { createRequire } from "node:module";
import path from "node:path";
import * as wasm from "tiny-secp256k1";
import { keccak256 as viemKeccak256 } from "viem";

/**
 * The hot-path primitives behind vouchers: secp256k1 signing and recovery, and keccak256. Relayers
 * and agents sign, recover and hash on every call, so each comes from a prebuilt N-API addon when
 * this platform has one — no compiler, no download: the `secp256k1` and `keccak` packages ship
 * binaries for Linux x64 and others — and falls back to portable code otherwise:
 *
 * | primitive        | native  | fallback                        |
 * |------------------|---------|---------------------------------|
 * | sign             | ~40 µs  | ~120 µs (libsecp256k1 in WASM)  |
 * | recover          | ~60 µs  | ~290 µs (libsecp256k1 in WASM)  |
 * | keccak256, 320 B | ~2.6 µs | ~22 µs (@noble/hashes via viem) |
 */

const require = createRequire(import.meta.url);

export interface Secp256k1Backend {
  /** "native" or "wasm": which build of libsecp256k1 is in use. */
  name: "native" | "wasm";
  /** Signs a 32-byte digest (RFC 6979): 64-byte (r, s) with low s, and the recovery id. */
  sign(digest: Uint8Array, privateKey: Uint8Array): { signature: Uint8Array; recoveryId: number };
  /** The 65-byte uncompressed public key behind a 64-byte (r, s) signature, or undefined. */
  recover(digest: Uint8Array, signature: Uint8Array, recoveryId: number): Uint8Array | undefined;
}

/** The subset of the `secp256k1` package's API used here. */
interface NativeSecp256k1 {
  ecdsaSign(digest: Uint8Array, privateKey: Uint8Array): { signature: Uint8Array; recid: number };
  ecdsaRecover(signature: Uint8Array, recoveryId: number, digest: Uint8Array, compressed: boolean): Uint8Array;
}

function nativeSecp256k1(): Secp256k1Backend | undefined {
  let native: NativeSecp256k1;
  try {
    // `bindings` (not the package root) so a missing binary lands here instead of in the package's
    // own pure-JS fallback, which is slower than WebAssembly.
    native = require("secp256k1/bindings") as NativeSecp256k1;
  } catch {
    return undefined;
  }
  return {
    name: "native",
    sign(digest, privateKey) {
      const { signature, recid } = native.ecdsaSign(digest, privateKey);
      return { signature, recoveryId: recid };
    },
    recover(digest, signature, recoveryId) {
      try {
        return native.ecdsaRecover(signature, recoveryId, digest, false);
      } catch {
        return undefined; // r or s out of range, or no such point
      }
    },
  };
}

const wasmSecp256k1: Secp256k1Backend = {
  name: "wasm",
  sign(digest, privateKey) {
    return wasm.signRecoverable(digest, privateKey);
  },
  recover(digest, signature, recoveryId) {
    try {
      return wasm.recover(digest, signature, recoveryId as 0 | 1, false) ?? undefined;
    } catch {
      return undefined;
    }
  },
};

/** Both secp256k1 backends this platform has, fastest first (tests check they agree). */
export const secp256k1Backends: readonly Secp256k1Backend[] = [nativeSecp256k1(), wasmSecp256k1].filter(
  (backend): backend is Secp256k1Backend => backend !== undefined,
);

/** The fastest secp256k1 backend this platform has. */
export const secp256k1: Secp256k1Backend = secp256k1Backends[0];

/** The `keccak` package's native sponge (its JS API wraps each hash in a stream; this skips that). */
interface NativeKeccakState {
  initialize(rate: number, capacity: number): void;
  absorb(data: Uint8Array): void;
  squeeze(length: number): Uint8Array;
}

function nativeKeccak256(): ((data: Uint8Array) => Uint8Array) | undefined {
  let state: NativeKeccakState;
  try {
    const loadAddon = require("node-gyp-build") as (directory: string) => new () => NativeKeccakState;
    state = new (loadAddon(path.dirname(require.resolve("keccak/package.json"))))();
  } catch {
    return undefined;
  }
  return (data) => {
    state.initialize(1088, 512); // keccak256: rate 1088 bits, capacity 512
    state.absorb(data);
    return state.squeeze(32);
  };
}

/** keccak256 of `data`: native when available, else @noble/hashes (through viem). */
export const keccak256Bytes: (data: Uint8Array) => Uint8Array = nativeKeccak256() ?? ((data) => viemKeccak256(data, "bytes"));
