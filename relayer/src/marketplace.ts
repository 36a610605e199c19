import { isAddressEqual, parseEventLogs, parseSignature, serializeSignature, type Address, type Hex } from "viem";
import { agentMarketplaceAbi, mockUSDCAbi, pendingDistribution, splitsLedgerAbi } from "@agentmesh/sdk";
import type { ChainGateway } from "./chain.ts";
import { PeriodicPass } from "./periodic.ts";

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

/**
 * The relayer's view of the agent marketplace: listings (read through a short cache, so a paid call
 * costs no extra RPC round trip), the payment token's EIP-712 domain, and the transactions the
 * relayer pays gas for — settling an x402 payment through the marketplace, distributing an agent's
 * pending payments, and distributing the ledger splits such a distribution credited. All are
 * permissionless on the contracts; the relayer only relays.
 */
export class MarketplaceGateway {
  readonly address: Address;
  private readonly chain: ChainGateway;
  private readonly cacheMs: number;
  private readonly agents = new Map<number, { agent: ListedAgent; at: number }>();
  private readonly agentIdsByPaymentAddress = new Map<string, number>();
  private token?: Promise<{ address: Address; name: string; version: string }>;
  private ledgerAddress?: Promise<Address>;

  constructor(chain: ChainGateway, address: Address, cacheMs = 2_000) {
    this.chain = chain;
    this.address = address;
    this.cacheMs = cacheMs;
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
   * Executes `authorization` (signed by its `from`) through the marketplace, which moves the USDC
   * through agent `agentId`'s payment address into the marketplace's ledger balance and records the
   * payment, with the payer's referrer, on the agent's payment chain. Simulates first, so a refused
   * payment costs no gas; resolves once mined.
   */
  async payWithAuthorization(agentId: number, authorization: TransferAuthorization, signature: Hex): Promise<Hex> {
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
    return this.chain.sendAndConfirm(request);
  }

  /**
   * Distributes agent `agentId`'s payments: those pending on its chain (rebuilt from the marketplace's
   * events since `fromBlock` by the SDK's `pendingDistribution`) with their payers' referrers, and any
   * USDC sent straight to its payment address as one payment. Resolves to the transaction, or
   * undefined when there is nothing.
   */
  async distribute(agentId: number, fromBlock: bigint): Promise<Hex | undefined> {
    const read = this.chain.publicClient;
    const agent = await this.agent(agentId);
    if (agent === undefined) return undefined;
    const { address: token } = await this.paymentToken();
    // The chain's pending count, the payment address's USDC and the events, as of one block.
    const toBlock = await read.getBlockNumber({ cacheTime: 0 });
    const id = BigInt(agentId);
    const [[, , pending], held] = await Promise.all([
      read.readContract({ address: this.address, abi: agentMarketplaceAbi, functionName: "paymentChain", args: [id], blockNumber: toBlock }),
      read.readContract({ address: token, abi: mockUSDCAbi, functionName: "balanceOf", args: [agent.paymentAddress], blockNumber: toBlock }),
    ]);
    if (pending === 0n && held === 0n) return undefined;
    const events = { address: this.address, abi: agentMarketplaceAbi, args: { agentId: id }, fromBlock, toBlock, strict: true } as const;
    const [termsSet, paid] = await Promise.all([
      read.getContractEvents({ ...events, eventName: "AgentTermsSet" }),
      read.getContractEvents({ ...events, eventName: "AgentPaid" }),
    ]);
    const { flow, payments } = pendingDistribution({
      agentId: id,
      termsSet: termsSet.map((log) => log.args),
      paid: paid.map((log) => log.args),
      pending,
    });
    const { request } = await read.simulateContract({
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

/** What a payout pass sent: the distribution of each agent and of each split they credited. */
export interface PayoutPass {
  agents: Map<number, Hex>;
  splits: Map<Address, Hex>;
}

/** Splits a pass distributes at most (one transaction each); the rest wait for the next pass. */
const SPLITS_PER_PASS = 64;

/**
 * Distributes agents' payments in batches: every `intervalMs`, each agent with payments pending (or
 * USDC at its payment address) gets one `distribute` covering all of it. Recipients and referrers
 * that are ledger splits are only credited by it, so the worker then distributes each split it paid
 * into, at most SPLITS_PER_PASS per pass, each once. A failure (say a frozen split) is logged and
 * stops nothing else: an agent is retried on the next pass, a split whenever a distribution credits
 * it again (or anyone distributes it).
 */
export class PayoutWorker {
  private readonly marketplace: MarketplaceGateway;
  private readonly fromBlock: bigint;
  private readonly passes: PeriodicPass<PayoutPass>;
  /** Splits credited and not distributed yet, oldest first. */
  private readonly splits = new Set<Address>();

  constructor(marketplace: MarketplaceGateway, fromBlock: bigint, intervalMs: number) {
    this.marketplace = marketplace;
    this.fromBlock = fromBlock;
    this.passes = new PeriodicPass("agent payouts", intervalMs, () => this.pass());
  }

  start(): void {
    this.passes.start();
  }

  stop(): Promise<void> {
    return this.passes.stop();
  }

  /** One pass, after any under way: the transactions it sent. */
  distributeAll(): Promise<PayoutPass> {
    return this.passes.run();
  }

  private async pass(): Promise<PayoutPass> {
    const sent: PayoutPass = { agents: new Map(), splits: new Map() };
    for (const agent of await this.marketplace.agentList()) {
      try {
        const hash = await this.marketplace.distribute(agent.id, this.fromBlock);
        if (hash === undefined) continue;
        sent.agents.set(agent.id, hash);
        for (const split of await this.marketplace.creditedSplits(hash)) this.splits.add(split);
      } catch (error) {
        console.error(`paying out agent ${agent.id} failed: ${(error as Error).message}`);
      }
    }
    for (const split of [...this.splits].slice(0, SPLITS_PER_PASS)) {
      this.splits.delete(split);
      try {
        const hash = await this.marketplace.distributeSplit(split);
        if (hash !== undefined) sent.splits.set(split, hash);
      } catch (error) {
        console.error(`distributing split ${split} failed: ${(error as Error).message}`);
      }
    }
    return sent;
  }
}
