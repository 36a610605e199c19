import type { PaymentPayload, PaymentRequirements, VerifyResponse } from "@x402/core/types";
import { toFacilitatorEvmSigner } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/facilitator";
import {
  decodeEventLog,
  encodeFunctionData,
  getAbiItem,
  isAddressEqual,
  parseEventLogs,
  parseSignature,
  publicActions,
  serializeSignature,
  type Address,
  type Hex,
} from "viem";
import { agentMarketplaceAbi, mockUSDCAbi, pendingDistribution, splitsLedgerAbi } from "@agentmesh/sdk";
import type { ChainGateway } from "./chain.ts";
import type { MarketplacePort } from "./core/chain-port.ts";
import type { TxRequest } from "./tx-manager.ts";
import { PeriodicPass } from "./periodic.ts";
import { passLeaseMs, type Leases } from "./store/leases.ts";
import type { PayoutLogs, StoredLog } from "./store/agent-payments.ts";
import { log } from "./log.ts";

/** An agent listing as the marketplace stores it. */
export interface ListedAgent {
  id: number;
  owner: Address;
  status: "active" | "paused" | "retired";
  /** Atomic USDC per call. */
  pricePerCall: bigint;
  /** Where x402 payments to it go (a clone salted by its owner: read, never derived from the id). */
  paymentAddress: Address;
  name: string;
  metadataURI: string;
  endpoint: string;
}

/** An EIP-3009 `TransferWithAuthorization`, as an x402 'exact' payload carries it. */
export interface TransferAuthorization {
  from: Address;
  to: Address;
  value: bigint;
  validAfter: bigint;
  validBefore: bigint;
  nonce: Hex;
}

const STATUS = ["none", "active", "paused", "retired"] as const;

/** How far back `authorizationTx` looks for the transaction that used an authorization. */
const AUTHORIZATION_LOOKBACK_BLOCKS = 10_000n;

/** The marketplace events a distribution is rebuilt from. */
const PAYOUT_EVENTS = [
  getAbiItem({ abi: agentMarketplaceAbi, name: "AgentTermsSet" }),
  getAbiItem({ abi: agentMarketplaceAbi, name: "AgentPaid" }),
] as const;

/** One of the marketplace's `AgentTermsSet` or `AgentPaid` logs, raw (decoded when needed). */
export interface PayoutLog extends StoredLog {
  event: "AgentTermsSet" | "AgentPaid";
  agentId: number;
}

/**
 * The relayer's view of the agent marketplace: listings (read through a short cache, so a paid call
 * costs no extra RPC round trip), the payment token's EIP-712 domain, and the transactions the
 * relayer pays gas for — settling an x402 payment through the marketplace, distributing an agent's
 * pending payments, and distributing the ledger splits such a distribution credited. All are
 * permissionless on the contracts; the relayer only relays.
 */
export class MarketplaceGateway implements MarketplacePort {
  readonly address: Address;
  private readonly chain: ChainGateway;
  private readonly cacheMs: number;
  private readonly agents = new Map<number, { agent: ListedAgent; at: number }>();
  private readonly agentIdsByPaymentAddress = new Map<string, number>();
  private token?: Promise<{ address: Address; name: string; version: string }>;
  private ledgerAddress?: Promise<Address>;
  /** The official x402 EVM `exact` facilitator's checks, signing as the relayer's gas account. */
  private readonly scheme: ExactEvmScheme;

  constructor(chain: ChainGateway, address: Address, cacheMs = 2_000) {
    this.chain = chain;
    this.address = address;
    this.cacheMs = cacheMs;
    const client = chain.walletClient.extend(publicActions);
    this.scheme = new ExactEvmScheme(toFacilitatorEvmSigner({ ...client, address: chain.account.address } as never));
  }

  /** Checks an x402 `exact` payment against `requirements` without settling it (read-only). */
  verifyPayment(payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse> {
    return this.scheme.verify(payload, requirements);
  }

  /** Listing `id`, or undefined when there is none. */
  async agent(id: number): Promise<ListedAgent | undefined> {
    const cached = this.cachedAgent(id);
    if (cached !== undefined) return cached;
    if (id < 1 || id > (await this.agentCount())) return undefined;
    return this.readAgent(id);
  }

  /** Every listing, in id order. */
  async agentList(): Promise<ListedAgent[]> {
    const count = await this.agentCount();
    return Promise.all(
      Array.from({ length: count }, (_, index) => this.cachedAgent(index + 1) ?? this.readAgent(index + 1)),
    );
  }

  /** Listing `id` as read less than `cacheMs` ago, if it was. */
  private cachedAgent(id: number): ListedAgent | undefined {
    const cached = this.agents.get(id);
    return cached !== undefined && Date.now() - cached.at < this.cacheMs ? cached.agent : undefined;
  }

  private async agentCount(): Promise<number> {
    return Number(await this.chain.publicClient.readContract({ address: this.address, abi: agentMarketplaceAbi, functionName: "agentCount" }));
  }

  /** Reads listing `id` (which exists) from the chain into the cache. */
  private async readAgent(id: number): Promise<ListedAgent> {
    const raw = await this.chain.publicClient.readContract({ address: this.address, abi: agentMarketplaceAbi, functionName: "getAgent", args: [BigInt(id)] });
    const agent: ListedAgent = {
      id,
      owner: raw.owner,
      status: STATUS[raw.status] as ListedAgent["status"],
      pricePerCall: raw.pricePerCall,
      paymentAddress: raw.paymentAddress,
      name: raw.metadata.name,
      metadataURI: raw.metadata.metadataURI,
      endpoint: raw.metadata.endpoint,
    };
    this.agents.set(id, { agent, at: Date.now() });
    this.agentIdsByPaymentAddress.set(agent.paymentAddress.toLowerCase(), id);
    return agent;
  }

  /** The agent whose payment address is `address`, if any. */
  async agentPaidAt(address: string): Promise<ListedAgent | undefined> {
    let id = this.agentIdsByPaymentAddress.get(address.toLowerCase());
    if (id === undefined) {
      await this.agentList();
      id = this.agentIdsByPaymentAddress.get(address.toLowerCase());
    }
    return id === undefined ? undefined : this.agent(id);
  }

  /** The latest block number (never cached). */
  headBlock(): Promise<bigint> {
    return this.chain.publicClient.getBlockNumber({ cacheTime: 0 });
  }

  /** The payment token with its EIP-712 name and version (what x402 requirements carry as `extra`). */
  paymentToken(): Promise<{ address: Address; name: string; version: string }> {
    this.token ??= (async () => {
      const read = this.chain.publicClient.readContract;
      const address = await read({ address: this.address, abi: agentMarketplaceAbi, functionName: "token" });
      const [name, version] = await Promise.all([
        read({ address, abi: mockUSDCAbi, functionName: "name" }),
        read({ address, abi: mockUSDCAbi, functionName: "version" }),
      ]);
      return { address, name, version };
    })();
    return this.token;
  }

  /** The ledger that holds the marketplace's pending payments and credits every distribution. */
  private ledger(): Promise<Address> {
    this.ledgerAddress ??= this.chain.publicClient.readContract({ address: this.address, abi: agentMarketplaceAbi, functionName: "ledger" });
    return this.ledgerAddress;
  }

  /**
   * Simulates executing `authorization` (signed by its `from`) through the marketplace, which moves
   * the USDC through agent `agentId`'s payment address into the marketplace's ledger balance and
   * records the payment, with the payer's referrer, on the agent's payment chain. Resolves to the
   * request to send (through the transaction manager); a payment the chain would refuse rejects
   * here, costing no gas.
   */
  async preparePayment(agentId: number, authorization: TransferAuthorization, signature: Hex): Promise<TxRequest> {
    const { request } = await this.chain.publicClient.simulateContract({
      account: this.chain.account,
      address: this.address,
      abi: agentMarketplaceAbi,
      functionName: "payWithAuthorization",
      args: [
        BigInt(agentId),
        authorization.from,
        authorization.value,
        authorization.validAfter,
        authorization.validBefore,
        authorization.nonce,
        serializeSignature(parseSignature(signature)),
      ],
    });
    return { to: request.address, data: encodeFunctionData({ abi: request.abi, functionName: request.functionName, args: request.args }) };
  }

  /** Whether the token has used `payer`'s authorization `nonce` (EIP-3009 `authorizationState`), as of the latest block. */
  async authorizationUsed(payer: Address, nonce: Hex): Promise<boolean> {
    const { address } = await this.paymentToken();
    return this.chain.publicClient.readContract({ address, abi: mockUSDCAbi, functionName: "authorizationState", args: [payer, nonce] });
  }

  /**
   * The transaction that used `payer`'s authorization `nonce` (the token's `AuthorizationUsed`),
   * looked for in the last AUTHORIZATION_LOOKBACK_BLOCKS blocks; undefined when not found there.
   */
  async authorizationTx(payer: Address, nonce: Hex): Promise<Hex | undefined> {
    const { address } = await this.paymentToken();
    const head = await this.chain.publicClient.getBlockNumber({ cacheTime: 0 });
    const logs = await this.chain.publicClient.getContractEvents({
      address,
      abi: mockUSDCAbi,
      eventName: "AuthorizationUsed",
      args: { authorizer: payer, nonce },
      fromBlock: head > AUTHORIZATION_LOOKBACK_BLOCKS ? head - AUTHORIZATION_LOOKBACK_BLOCKS : 0n,
      toBlock: head,
    });
    return logs.at(-1)?.transactionHash ?? undefined;
  }

  /** Agent `agent`'s payment chain (head, pending count) and the USDC at its payment address, as of `blockNumber`. */
  async paymentState(agent: ListedAgent, blockNumber: bigint): Promise<{ head: Hex; pending: bigint; held: bigint }> {
    const read = this.chain.publicClient;
    const { address: token } = await this.paymentToken();
    const [[head, , pending], held] = await Promise.all([
      read.readContract({ address: this.address, abi: agentMarketplaceAbi, functionName: "paymentChain", args: [BigInt(agent.id)], blockNumber }),
      read.readContract({ address: token, abi: mockUSDCAbi, functionName: "balanceOf", args: [agent.paymentAddress], blockNumber }),
    ]);
    return { head, pending, held };
  }

  /**
   * The marketplace's `AgentTermsSet` and `AgentPaid` logs in [fromBlock, toBlock], oldest first:
   * one `getLogs` for every agent's, or one per event for agent `agentId`'s alone.
   */
  async payoutLogs(fromBlock: bigint, toBlock: bigint, agentId?: number): Promise<PayoutLog[]> {
    const read = this.chain.publicClient;
    const logs =
      agentId === undefined
        ? await read.getLogs({ address: this.address, events: PAYOUT_EVENTS, fromBlock, toBlock, strict: true })
        : (
            await Promise.all(
              (["AgentTermsSet", "AgentPaid"] as const).map((eventName) =>
                read.getContractEvents({ address: this.address, abi: agentMarketplaceAbi, eventName, args: { agentId: BigInt(agentId) }, fromBlock, toBlock, strict: true }),
              ),
            )
          )
            .flat()
            .sort((a, b) => (a.blockNumber === b.blockNumber ? a.logIndex - b.logIndex : a.blockNumber < b.blockNumber ? -1 : 1));
    return logs.map((log) => ({
      event: log.eventName,
      agentId: Number(log.args.agentId),
      blockNumber: log.blockNumber,
      logIndex: log.logIndex,
      topics: log.topics as [Hex, ...Hex[]],
      data: log.data,
    }));
  }

  /**
   * Distributes agent `agentId`'s payments: the `pending` ones on its chain, rebuilt from its
   * `AgentTermsSet` and `AgentPaid` logs by the SDK's `pendingDistribution` (as the dApp does), with
   * their payers' referrers, and any USDC sent straight to its payment address as one payment.
   * Resolves to the transaction once mined.
   *
   * @throws {PendingDistributionError} when the logs cannot rebuild the pending payments.
   */
  async distribute(agentId: number, termsLogs: readonly StoredLog[], paidLogs: readonly StoredLog[], pending: bigint): Promise<Hex> {
    const id = BigInt(agentId);
    const { flow, payments } = pendingDistribution({
      agentId: id,
      termsSet: termsLogs.map((log) => decodeEventLog({ abi: agentMarketplaceAbi, eventName: "AgentTermsSet", topics: log.topics, data: log.data }).args),
      paid: paidLogs.map((log) => decodeEventLog({ abi: agentMarketplaceAbi, eventName: "AgentPaid", topics: log.topics, data: log.data }).args),
      pending,
    });
    const { request } = await this.chain.publicClient.simulateContract({
      account: this.chain.account,
      address: this.address,
      abi: agentMarketplaceAbi,
      functionName: "distribute",
      args: [id, flow, payments],
    });
    return this.chain.sendAndConfirm(request);
  }

  /**
   * The ledger splits that transaction `hash` (a distribution) credited: the payees of the ledger's
   * `Transferred` from the marketplace that are splits. Their recipients see nothing until each is
   * distributed in turn.
   */
  async creditedSplits(hash: Hex): Promise<Address[]> {
    const read = this.chain.publicClient;
    const ledger = await this.ledger();
    const { logs } = await read.getTransactionReceipt({ hash });
    const credited = parseEventLogs({
      abi: splitsLedgerAbi,
      eventName: "Transferred",
      logs: logs.filter((log) => isAddressEqual(log.address, ledger)),
      args: { from: this.address },
    });
    const payees = [...new Set(credited.map((log) => log.args.to))];
    const isSplit = await Promise.all(payees.map((payee) => read.readContract({ address: ledger, abi: splitsLedgerAbi, functionName: "isSplit", args: [payee] })));
    return payees.filter((_, index) => isSplit[index]);
  }

  /**
   * Distributes what ledger split `split` holds through all its recipients (`SplitsLedger.distribute`,
   * bounded by the ledger's limits on a split's size). Resolves to the transaction, or undefined when
   * it holds nothing.
   */
  async distributeSplit(split: Address): Promise<Hex | undefined> {
    const read = this.chain.publicClient;
    const ledger = await this.ledger();
    const held = await read.readContract({ address: ledger, abi: splitsLedgerAbi, functionName: "balanceOf", args: [split] });
    if (held === 0n) return undefined;
    const { request } = await read.simulateContract({ account: this.chain.account, address: ledger, abi: splitsLedgerAbi, functionName: "distribute", args: [split] });
    return this.chain.sendAndConfirm(request);
  }
}

/** What a payout pass did: the block ranges of marketplace logs it read, and what it sent. */
export interface PayoutPass {
  /** The ranges of the new blocks scanned (each one `getLogs`), oldest first. */
  scanned: { fromBlock: bigint; toBlock: bigint }[];
  /** Agents whose logs were read again from the start block, since the stored ones disagreed with the chain. */
  rebuilt: number[];
  agents: Map<number, Hex>;
  splits: Map<Address, Hex>;
}

/** Splits a pass distributes at most (one transaction each); the rest wait for the next pass. */
const SPLITS_PER_PASS = 64;

/** Where the payout worker starts and how far one `getLogs` reaches. */
export interface PayoutOptions {
  /** The deployment's start block: the first block scanned. */
  startBlock: bigint;
  intervalMs: number;
  /** The fleet's leases: passes run on one instance at a time (none: here). */
  leases?: Leases;
  /** The most blocks one `getLogs` covers (default 5,000, what common RPC providers accept). */
  maxRange?: number;
}

/**
 * Distributes agents' payments in batches: every `intervalMs`, each agent with payments pending (or
 * USDC at its payment address) gets one `distribute` covering all of it. Recipients and referrers
 * that are ledger splits are only credited by it, so the worker then distributes each split it paid
 * into, at most SPLITS_PER_PASS per pass, each once. A failure (say a frozen split) is logged and
 * stops nothing else: an agent is retried on the next pass, a split whenever a distribution credits
 * it again (or anyone distributes it).
 *
 * A distribution is rebuilt from the marketplace's logs. The worker reads each block's logs once:
 * a pass scans only the blocks after its stored cursor, in ranges of at most `maxRange` blocks, and
 * stores each range's `AgentTermsSet` and `AgentPaid` logs with the cursor in one transaction (a
 * restart resumes there). It keeps per agent only its last terms and its payments not yet
 * distributed. When the stored payments do not reach the chain's head of the agent's payment chain
 * (a reorg, a lost row), that agent alone is read again from the start block.
 */
export class PayoutWorker {
  private readonly marketplace: MarketplaceGateway;
  private readonly logs: PayoutLogs;
  private readonly startBlock: bigint;
  private readonly maxRange: bigint;
  private readonly passes: PeriodicPass<PayoutPass>;
  /** Splits credited and not distributed yet, oldest first. */
  private readonly splits = new Set<Address>();

  constructor(marketplace: MarketplaceGateway, logs: PayoutLogs, options: PayoutOptions) {
    this.marketplace = marketplace;
    this.logs = logs;
    this.startBlock = options.startBlock;
    this.maxRange = BigInt(options.maxRange ?? 5_000);
    if (this.maxRange < 1n) throw new Error(`the payout worker's maxRange must be at least 1 block, not ${options.maxRange}`);
    const lease = options.leases && { leases: options.leases, name: "agent-payouts", ttlMs: passLeaseMs(options.intervalMs) };
    this.passes = new PeriodicPass("agent payouts", options.intervalMs, () => this.pass(), lease);
  }

  start(): void {
    this.passes.start();
  }

  stop(): Promise<void> {
    return this.passes.stop();
  }

  /** One pass, after any under way: what it scanned and sent. */
  distributeAll(): Promise<PayoutPass> {
    return this.passes.run();
  }

  private async pass(): Promise<PayoutPass> {
    const sent: PayoutPass = { scanned: [], rebuilt: [], agents: new Map(), splits: new Map() };
    const head = await this.marketplace.headBlock();
    const cursor = await this.scan(head, sent);
    for (const agent of await this.marketplace.agentList()) {
      try {
        const hash = await this.payOut(agent, cursor, sent);
        if (hash === undefined) continue;
        sent.agents.set(agent.id, hash);
        for (const split of await this.marketplace.creditedSplits(hash)) this.splits.add(split);
      } catch (error) {
        log.error({ agentId: agent.id, err: error }, "paying out agent failed");
      }
    }
    for (const split of [...this.splits].slice(0, SPLITS_PER_PASS)) {
      this.splits.delete(split);
      try {
        const hash = await this.marketplace.distributeSplit(split);
        if (hash !== undefined) sent.splits.set(split, hash);
      } catch (error) {
        log.error({ split, err: error }, "distributing split failed");
      }
    }
    return sent;
  }

  /** Reads the logs of the blocks after the cursor up to `head`, range by range; the new cursor. */
  private async scan(head: bigint, sent: PayoutPass): Promise<bigint> {
    let cursor = (await this.logs.cursor()) ?? this.startBlock - 1n;
    while (cursor < head) {
      const fromBlock = cursor + 1n;
      const toBlock = head - fromBlock + 1n > this.maxRange ? fromBlock + this.maxRange - 1n : head;
      const logs = await this.marketplace.payoutLogs(fromBlock, toBlock);
      await this.logs.append(toBlock, logs);
      sent.scanned.push({ fromBlock, toBlock });
      cursor = toBlock;
    }
    return cursor;
  }

  /** Distributes `agent`'s payments as of block `atBlock` (the cursor); undefined when it has none. */
  private async payOut(agent: ListedAgent, atBlock: bigint, sent: PayoutPass): Promise<Hex | undefined> {
    const { head, pending, held } = await this.marketplace.paymentState(agent, atBlock);
    await this.logs.prune(agent.id, atBlock, Number(pending));
    if (pending === 0n && held === 0n) return undefined;
    let paid = await this.logs.logs(agent.id, "AgentPaid", atBlock);
    let terms = await this.logs.logs(agent.id, "AgentTermsSet", atBlock);
    if (terms.length === 0 || (pending > 0n && (BigInt(paid.length) < pending || lastChainHead(paid) !== head))) {
      await this.rebuild(agent.id, atBlock);
      sent.rebuilt.push(agent.id);
      await this.logs.prune(agent.id, atBlock, Number(pending));
      paid = await this.logs.logs(agent.id, "AgentPaid", atBlock);
      terms = await this.logs.logs(agent.id, "AgentTermsSet", atBlock);
    }
    return this.marketplace.distribute(agent.id, terms, paid, pending);
  }

  /** Reads agent `agentId`'s logs again from the start block to `toBlock`, replacing what is stored. */
  private async rebuild(agentId: number, toBlock: bigint): Promise<void> {
    const logs: PayoutLog[] = [];
    for (let fromBlock = this.startBlock; fromBlock <= toBlock; fromBlock += this.maxRange) {
      const end = fromBlock + this.maxRange - 1n < toBlock ? fromBlock + this.maxRange - 1n : toBlock;
      logs.push(...(await this.marketplace.payoutLogs(fromBlock, end, agentId)));
    }
    await this.logs.replace(agentId, toBlock, logs);
  }
}

/** The payment chain's head after the last of `paid` (`AgentPaid.chainHead`), if any. */
function lastChainHead(paid: readonly StoredLog[]): Hex | undefined {
  const last = paid.at(-1);
  return last && decodeEventLog({ abi: agentMarketplaceAbi, eventName: "AgentPaid", topics: last.topics, data: last.data }).args.chainHead;
}
