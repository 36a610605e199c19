import {
  erc20Abi,
  parseSignature,
  type AbiEvent,
  type Address,
  type GetLogsParameters,
  type GetLogsReturnType,
  type Hex,
  type PublicClient,
  type WalletClient,
} from "viem";
import { mockUSDCAbi, permitTypes, usdcDomain } from "@agentmesh/sdk/browser";

/**
 * Chain reads and signatures the pages share: event scans from a deployment's start block, in
 * ranges public RPC nodes accept, and USDC permits.
 */

/** Largest block range one `eth_getLogs` asks for. */
const LOG_RANGE = 10_000n;

export interface EventLogsParameters<event extends AbiEvent> {
  address: Address;
  event: event;
  args?: GetLogsParameters<event>["args"];
  fromBlock: bigint;
  /** Default: the latest block. */
  toBlock?: bigint;
}

/**
 * Every `event` log of `address` from `fromBlock`, fetched in ranges of {@link LOG_RANGE} blocks.
 *
 * @example
 * const logs = await getEventLogs(client, { address: escrow, event: budgetCreatedEvent, args: { creator }, fromBlock });
 */
export async function getEventLogs<const event extends AbiEvent>(
  client: PublicClient,
  parameters: EventLogsParameters<event>,
): Promise<GetLogsReturnType<event, [event], true, bigint, bigint>> {
  const toBlock = parameters.toBlock ?? (await client.getBlockNumber({ cacheTime: 0 }));
  const ranges: [bigint, bigint][] = [];
  for (let from = parameters.fromBlock; from <= toBlock; from += LOG_RANGE) {
    ranges.push([from, from + LOG_RANGE - 1n < toBlock ? from + LOG_RANGE - 1n : toBlock]);
  }
  const chunks = await Promise.all(
    ranges.map(([fromBlock, to]) =>
      client.getLogs({ address: parameters.address, event: parameters.event, args: parameters.args, fromBlock, toBlock: to, strict: true } as GetLogsParameters<
        event,
        [event],
        true,
        bigint,
        bigint
      >) as Promise<GetLogsReturnType<event, [event], true, bigint, bigint>>,
    ),
  );
  return chunks.flat();
}

export interface PermitParameters {
  publicClient: PublicClient;
  walletClient: WalletClient;
  token: Address;
  owner: Address;
  spender: Address;
  value: bigint;
}

export interface Permit {
  deadline: bigint;
  v: number;
  r: Hex;
  s: Hex;
}

/**
 * Asks the wallet to sign an EIP-2612 permit letting `spender` take `value` of `owner`'s USDC, valid
 * for an hour of chain time. The token's name and version are read from it (they differ between
 * USDC deployments).
 */
export async function signUsdcPermit({ publicClient, walletClient, token, owner, spender, value }: PermitParameters): Promise<Permit> {
  const [name, version, nonce, block] = await Promise.all([
    publicClient.readContract({ address: token, abi: erc20Abi, functionName: "name" }),
    publicClient.readContract({ address: token, abi: mockUSDCAbi, functionName: "version" }),
    publicClient.readContract({ address: token, abi: mockUSDCAbi, functionName: "nonces", args: [owner] }),
    publicClient.getBlock(),
  ]);
  const deadline = block.timestamp + 3_600n;
  const signature = await walletClient.signTypedData({
    // The client's own account: a local account signs in the page, a wallet's asks the wallet.
    account: walletClient.account ?? owner,
    domain: usdcDomain(publicClient.chain!.id, token, name, version),
    types: permitTypes,
    primaryType: "Permit",
    message: { owner, spender, value, nonce, deadline },
  });
  const { r, s, v, yParity } = parseSignature(signature);
  return { deadline, v: Number(v ?? BigInt(yParity + 27)), r, s };
}
