import type { HardhatEthersSigner } from "@nomicfoundation/hardhat-ethers/types";
import { Signature } from "ethers";
import type { Address } from "viem";
import { permitTypes, usdcDomain } from "../../../sdk/src/usdc.ts";
import type { MockUSDC } from "../../../types/ethers-contracts/index.ts";
import { ethersTypes } from "../../../scripts/lib/ethers-types.ts";

/**
 * An EIP-2612 permit letting `spender` take `value` of `owner`'s USDC until `deadline`, at the
 * owner's current nonce, signed by `signer` (the owner unless a test forges one).
 */
export async function signPermit(
  usdc: MockUSDC,
  signer: HardhatEthersSigner,
  spender: string,
  value: bigint,
  deadline: number | bigint,
  owner: string = signer.address,
): Promise<Signature> {
  const { chainId } = await usdc.runner!.provider!.getNetwork();
  const domain = usdcDomain(Number(chainId), (await usdc.getAddress()) as Address);
  const message = { owner, spender, value, nonce: await usdc.nonces(owner), deadline };
  return Signature.from(await signer.signTypedData(domain, ethersTypes(permitTypes), message));
}
