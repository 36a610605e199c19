import type { Address, TypedDataDomain } from "viem";

/**
 * USDC's EIP-712 messages with FiatTokenV2_2's exact type strings: EIP-2612 permits (approve by
 * signature) and EIP-3009 authorizations (transfer by signature, as x402 'exact' payments use).
 * MockUSDC implements the same messages on the same domain fields.
 */

/**
 * USDC's EIP-712 domain. Real USDC on Base is named "USD Coin" (version "2"), as is MockUSDC; some
 * deployments use another name (USDC on Base Sepolia is "USDC"), so read `name()` when in doubt.
 */
export function usdcDomain(
  chainId: number,
  verifyingContract: Address,
  name = "USD Coin",
  version = "2",
): TypedDataDomain {
  return { name, version, chainId, verifyingContract };
}

export const permitTypes = {
  Permit: [
    { name: "owner", type: "address" },
    { name: "spender", type: "address" },
    { name: "value", type: "uint256" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
} as const;

const authorizationFields = [
  { name: "from", type: "address" },
  { name: "to", type: "address" },
  { name: "value", type: "uint256" },
  { name: "validAfter", type: "uint256" },
  { name: "validBefore", type: "uint256" },
  { name: "nonce", type: "bytes32" },
] as const;

export const transferWithAuthorizationTypes = { TransferWithAuthorization: authorizationFields } as const;

export const receiveWithAuthorizationTypes = { ReceiveWithAuthorization: authorizationFields } as const;

export const cancelAuthorizationTypes = {
  CancelAuthorization: [
    { name: "authorizer", type: "address" },
    { name: "nonce", type: "bytes32" },
  ],
} as const;
