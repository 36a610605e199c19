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
 * Blocks an event scan reads again on every call, in case the chain reorganized them since: on Base
 * far beyond any reorganization seen in practice.
 */
export const REORG_DEPTH = 64n;

/**
 * Where a scan from `fromBlock` to `toBlock` resumes when an earlier scan of the same logs reached
 * `scannedTo` (undefined: none did): logs cached below the returned block stay, and the chain is
 * read from it on. An earlier scan past `toBlock` does not help (the scan starts over).
 */
export function resumeBlock(scannedTo: bigint | undefined, fromBlock: bigint, toBlock: bigint): bigint {
  if (scannedTo === undefined || scannedTo > toBlock) return fromBlock;
  const resume = scannedTo + 1n - REORG_DEPTH;
  return resume > fromBlock ? resume : fromBlock;
}

/** The logs each scan found so far, by chain, contract, event, filter and start block. */
const scans = new Map<string, { logs: readonly { blockNumber: bigint }[]; scannedTo: bigint }>();

/**
 * Every `event` log of `address` from `fromBlock`, fetched in ranges of {@link LOG_RANGE} blocks.
 * Repeated scans (the pages poll) read only the blocks added since the last one, plus the last
 * {@link REORG_DEPTH}.
 *
 * @example
 * const logs = await getEventLogs(client, { address: escrow, event: budgetCreatedEvent, args: { creator }, fromBlock });
 */
export async function getEventLogs<const event extends AbiEvent>(
  client: PublicClient,
  parameters: EventLogsParameters<event>,
): Promise<GetLogsReturnType<event, [event], true, bigint, bigint>> {
  type Logs = GetLogsReturnType<event, [event], true, bigint, bigint>;
  const toBlock = parameters.toBlock ?? (await client.getBlockNumber({ cacheTime: 0 }));
  const key = JSON.stringify([client.chain?.id, parameters.address, parameters.event, parameters.args ?? {}, parameters.fromBlock], (_key, value) =>
    typeof value === "bigint" ? value.toString() : value,
  );
  const cached = scans.get(key);
  const resume = resumeBlock(cached?.scannedTo, parameters.fromBlock, toBlock);
  const ranges: [bigint, bigint][] = [];
  for (let from = resume; from <= toBlock; from += LOG_RANGE) {
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
      >) as Promise<Logs>,
    ),
  );
  const kept = resume > parameters.fromBlock ? (cached!.logs as Logs).filter((log) => log.blockNumber < resume) : [];
  const logs = [...kept, ...chunks.flat()] as Logs;
  scans.set(key, { logs, scannedTo: toBlock });
  return logs;
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
