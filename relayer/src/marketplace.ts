import { parseSignature, serializeSignature, type Address, type Hex } from "viem";
import { agentMarketplaceAbi, mockUSDCAbi, pendingDistribution } from "@agentmesh/sdk";
import type { ChainGateway } from "./chain.ts";
import { PeriodicPass } from "./periodic.ts";

/** An agent listing as the marketplace stores it. */
export interface ListedAgent {
  id: number;
  owner: Address;
  status: "active" | "paused" | "retired";
  /** Atomic USDC per call. */
  pricePerCall: bigint;
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
 * costs no extra RPC round trip), the payment token's EIP-712 domain, and the two transactions the
 * relayer pays gas for — settling an x402 payment through the marketplace, and distributing an
 * agent's pending payments. Both are permissionless on the contract; the relayer only relays.
 */
export class MarketplaceGateway {
  readonly address: Address;
  private readonly chain: ChainGateway;
  private readonly cacheMs: number;
  private readonly agents = new Map<number, { agent: ListedAgent; at: number }>();
  private readonly agentIdsByPaymentAddress = new Map<string, number>();
  private token?: Promise<{ address: Address; name: string; version: string }>;

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

  /**
   * Executes `authorization` (signed by its `from`) through the marketplace, which moves the USDC to
   * agent `agentId`'s payment address and records the payer for its referral reward. Simulates
   * first, so a refused payment costs no gas; resolves once mined.
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
   * Distributes what agent `agentId`'s payment address holds: the payments pending on its chain
   * (rebuilt from the marketplace's events since `fromBlock` by the SDK's `pendingDistribution`) with
   * their payers' referrers, and any other USDC sent to it as one payment. Resolves to the
   * transaction, or undefined when there is nothing.
   */
  async distribute(agentId: number, fromBlock: bigint): Promise<Hex | undefined> {
    const read = this.chain.publicClient;
    const agent = await this.agent(agentId);
    if (agent === undefined) return undefined;
    const { address: token } = await this.paymentToken();
    const held = await read.readContract({ address: token, abi: mockUSDCAbi, functionName: "balanceOf", args: [agent.paymentAddress] });
    if (held === 0n) return undefined;
    // The chain's pending count and the events, as of one block.
    const toBlock = await read.getBlockNumber({ cacheTime: 0 });
    const id = BigInt(agentId);
    const events = { address: this.address, abi: agentMarketplaceAbi, args: { agentId: id }, fromBlock, toBlock, strict: true } as const;
    const [[, , pending], termsSet, paid] = await Promise.all([
      read.readContract({ address: this.address, abi: agentMarketplaceAbi, functionName: "paymentChain", args: [id], blockNumber: toBlock }),
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
}

/**
 * Distributes agents' payments in batches: every `intervalMs`, each agent whose payment address
 * holds USDC gets one `distribute` covering everything pending. Failures are logged and retried on
 * the next pass.
 */
export class PayoutWorker {
  private readonly marketplace: MarketplaceGateway;
  private readonly fromBlock: bigint;
  private readonly passes: PeriodicPass<Map<number, Hex>>;

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

  /** One pass, after any under way: the transactions sent, by agent id. */
  distributeAll(): Promise<Map<number, Hex>> {
    return this.passes.run();
  }

  private async pass(): Promise<Map<number, Hex>> {
    const sent = new Map<number, Hex>();
    for (const agent of await this.marketplace.agentList()) {
      const hash = await this.marketplace.distribute(agent.id, this.fromBlock);
      if (hash !== undefined) sent.set(agent.id, hash);
    }
    return sent;
  }
}
