import { keccak256 } from "viem";

/**
 * keccak256 over bytes, portable: @noble/hashes through viem. This is what browsers get; under
 * Node, the package's `#keccak` import resolves to `keccak.node.ts`, a native sponge ~8× faster.
 */
export const keccak256Bytes = (data: Uint8Array): Uint8Array => keccak256(data, "bytes");

/** Which implementation `keccak256Bytes` is. */
export const keccakBackend: "native" | "portable" = "portable";
