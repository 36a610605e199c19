import type { TypedDataField } from "ethers";

/**
 * The SDK's `as const` EIP-712 type definitions (typed for viem) in the mutable shape ethers'
 * `signTypedData` takes.
 */
export function ethersTypes(types: Record<string, readonly TypedDataField[]>): Record<string, TypedDataField[]> {
  return Object.fromEntries(Object.entries(types).map(([name, fields]) => [name, [...fields]]));
}
