import { createRequire } from "node:module";
import * as wasm from "tiny-secp256k1";

/**
 * The hot-path signature primitives behind vouchers: secp256k1 signing and recovery. Relayers and
 * agents sign and recover on every call, so both come from a prebuilt N-API addon when this
 * platform has one — no compiler, no download: the `secp256k1` package ships binaries for Linux x64
 * and others — and fall back to libsecp256k1 in WebAssembly otherwise (keccak256 works the same
 * way: see `keccak.node.ts`):
 *
 * | primitive | native | fallback |
 * |-----------|--------|----------|
 * | sign      | ~40 µs | ~120 µs  |
 * | recover   | ~60 µs | ~290 µs  |
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
