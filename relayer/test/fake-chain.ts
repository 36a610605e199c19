/**
 * A fake chain for unit tests of the rules: it implements the services' {@link ChainPort} and
 * {@link MarketplacePort} over a few maps, with what the escrow, the token and the transaction
 * manager would do (an open opens, a settlement settles, a payment uses its authorization), and
 * records every simulation and transaction so that tests can assert on them. Everything else
 * (store, HTTP, providers, agents) is real in the tests that use it.
 */
import type { Repository } from "../src/store/repository.ts";
import type { PaymentPayload, PaymentRequirements, VerifyResponse } from "@x402/core/types";
import { getAddress, type Address, type Hex } from "viem";
import { sessionIdOf, type CompactSignature, type SessionTerms, type SignedVoucher } from "@agentmesh/sdk";
import type { ChainPort, EscrowSessionState, MarketplacePort, ProviderMetrics, TransactionsPort } from "../src/core/chain-port.ts";
import type { ListedAgent, TransferAuthorization } from "../src/marketplace.ts";
import { TxPendingError, type SentTx, type TxOutcome, type TxRecord, type TxRequest, type TxStatus } from "../src/tx-manager.ts";

export const ESCROW: Address = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const GAS_ACCOUNT: Address = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const TOKEN: Address = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512";

/** What mining a transaction does to the fake chain. */
type Effect = () => void;

/** A transaction the fake transaction manager was asked to send. */
export interface FakeTx extends TxRecord {
  request: TxRequest;
}

/**
 * The transaction manager, faked: `send` records the transaction (running `link` as the real one
 * does, before the broadcast), then mines it at once unless `hold` is set; `finish` ends a held one.
 * `wait` answers a final outcome, or throws {@link TxPendingError} at once for one still in flight
 * (as the real one does at its timeout).
 */
export class FakeTransactions implements TransactionsPort {
  readonly sent: FakeTx[] = [];
  /** Purposes whose transactions stay in flight until `finish`. */
  readonly hold = new Set<string>();
  /** Runs at each broadcast (after `link`): what the store holds then is what a crash would leave. */
  onBroadcast: ((tx: FakeTx) => void) | undefined;
  private readonly effects = new Map<number, Effect>();

  /** The effect that mining the request whose data is `data` has (set by the chain's simulations). */
  readonly pending = new Map<Hex, Effect>();

  /** The store `link` records in (the relayer's, set by the harness). */
  repo: Repository | undefined;

  async send(purpose: string, request: TxRequest, link?: (sent: SentTx, repo: Repository) => Promise<void>): Promise<SentTx> {
    const id = this.sent.length + 1;
    const hash = `0x${id.toString(16).padStart(64, "0")}` as Hex;
    const tx: FakeTx = { id, purpose, nonce: id - 1, status: "pending", hashes: [hash], minedHash: null, minedBlock: null, request };
    this.sent.push(tx);
    this.effects.set(id, this.pending.get(request.data) ?? (() => undefined));
    const sent = { id, nonce: tx.nonce, hash };
    if (link !== undefined) await this.repo!.transaction((repo) => link(sent, repo));
    this.onBroadcast?.(tx);
    if (!this.hold.has(purpose)) this.finish(id, "confirmed");
    return sent;
  }

  /** Ends transaction `id`: confirmed (its effect applies), reverted, or replaced. */
  finish(id: number, status: Extract<TxStatus, "confirmed" | "reverted" | "replaced">): void {
    const tx = this.sent[id - 1];
    if (status === "confirmed") this.effects.get(id)!();
    Object.assign(tx, { status, minedHash: status === "replaced" ? null : tx.hashes[0], minedBlock: status === "replaced" ? null : 1 });
  }

  async wait(id: number): Promise<TxOutcome> {
    const tx = this.sent[id - 1];
    if (tx.status === "confirmed" || tx.status === "reverted") return { status: tx.status, hash: tx.minedHash!, blockNumber: 1 };
    if (tx.status === "replaced") return { status: "replaced", hash: null, blockNumber: null };
    throw new TxPendingError(id, tx.hashes[0], "held by the test");
  }

  async get(id: number): Promise<TxRecord | undefined> {
    return this.sent[id - 1];
  }

  async inFlight(): Promise<TxRecord[]> {
    return this.sent.filter((tx) => tx.status === "pending" || tx.status === "mined");
  }

  async poll(): Promise<void> {}

  /** The transactions sent for `purpose`. */
  of(purpose: string): FakeTx[] {
    return this.sent.filter((tx) => tx.purpose === purpose);
  }
}

/** The escrow, the registry's metrics and the clock, faked (see the module comment). */
export class FakeChain implements ChainPort {
  readonly chainId = 31337;
  readonly escrow = ESCROW;
  readonly account = { address: GAS_ACCOUNT };
  readonly transactions = new FakeTransactions();
  /** The escrow's sessions: `claimEnd` 0 none, 1 finalized. */
  readonly sessions = new Map<Hex, EscrowSessionState>();
  /** Every open simulated, and every settlement or close simulated (its vouchers). */
  readonly opensSimulated: SessionTerms[] = [];
  readonly settlementsSimulated: { kind: "settle" | "close"; vouchers: SignedVoucher[] }[] = [];
  /** The escrow's revert for the next opens simulated (e.g. "EscrowInvalidSignature"), if any. */
  refuseOpens: string | undefined;
  now = BigInt(Math.floor(Date.now() / 1000));
  private requests = 0;

  async prepareOpen(terms: SessionTerms, _agentSignature: CompactSignature): Promise<TxRequest> {
    this.opensSimulated.push(terms);
    if (this.refuseOpens !== undefined) throw new Error(this.refuseOpens);
    const id = sessionIdOf(terms);
    return this.request(() => this.sessions.set(id, { settled: 0n, sequence: 0, claimEnd: terms.deadline + 86_400 }));
  }

  async prepareSettlement(kind: "settle" | "close", vouchers: SignedVoucher[]): Promise<TxRequest> {
    this.settlementsSimulated.push({ kind, vouchers });
    return this.request(() => {
      for (const { voucher } of vouchers) {
        this.sessions.set(sessionIdOf(voucher.terms), { settled: voucher.cumulativeCost, sequence: voucher.sequence, claimEnd: kind === "close" ? 1 : voucher.terms.deadline + 86_400 });
      }
    });
  }

  async session(id: Hex): Promise<EscrowSessionState> {
    return this.sessions.get(id) ?? { settled: 0n, sequence: 0, claimEnd: 0 };
  }

  async feeBps(): Promise<number> {
    return 250;
  }

  async metrics(_providerId: number): Promise<ProviderMetrics> {
    return { requests: 0n, inputTokens: 0n, outputTokens: 0n, latencyMs: 0n, earnings: 0n };
  }

  async receiptStatus(hash: Hex): Promise<"success" | "reverted" | "unknown"> {
    const tx = this.transactions.sent.find((candidate) => candidate.minedHash === hash);
    if (tx === undefined) return "unknown";
    return tx.status === "reverted" ? "reverted" : "success";
  }

  async knowsTransaction(hash: Hex): Promise<boolean> {
    return this.transactions.sent.some((tx) => tx.hashes.includes(hash) && tx.status !== "replaced");
  }

  async latestBlockTime(): Promise<bigint> {
    return this.now;
  }

  /** A request to send whose mining applies `effect`. */
  request(effect: Effect): TxRequest {
    const data = `0x${(++this.requests).toString(16).padStart(8, "0")}` as Hex;
    this.transactions.pending.set(data, effect);
    return { to: ESCROW, data };
  }
}

/** The agent marketplace and its payment token, faked over {@link FakeChain}. */
export class FakeMarketplace implements MarketplacePort {
  readonly agents = new Map<number, ListedAgent>();
  /** Authorizations the token has used (`payer:nonce`), with the transaction that used each. */
  readonly used = new Map<string, Hex>();
  /** Payments simulated (the chain's `payWithAuthorization`), and payments verified. */
  readonly paymentsSimulated: TransferAuthorization[] = [];
  verifications = 0;
  private readonly chain: FakeChain;
  /** Verifications held until this many are under way (see {@link raceVerifications}). */
  private barrier: { size: number; waiting: (() => void)[] } | undefined;

  constructor(chain: FakeChain) {
    this.chain = chain;
  }

  async agent(id: number): Promise<ListedAgent | undefined> {
    return this.agents.get(id);
  }

  async agentList(): Promise<ListedAgent[]> {
    return [...this.agents.values()];
  }

  async agentPaidAt(address: string): Promise<ListedAgent | undefined> {
    return [...this.agents.values()].find((agent) => agent.paymentAddress.toLowerCase() === address.toLowerCase());
  }

  async paymentToken() {
    return { address: TOKEN, name: "USD Coin", version: "2" };
  }

  /**
   * Makes the next `size` verifications wait for one another, then go on together: requests that
   * race past the payment's lock while a real verification reads the chain, made certain.
   */
  raceVerifications(size: number): void {
    this.barrier = { size, waiting: [] };
  }

  /** Accepts any payment to a listed agent's address of its price (the signature checks are the facilitator library's). */
  async verifyPayment(payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse> {
    this.verifications++;
    const barrier = this.barrier;
    if (barrier !== undefined) {
      await new Promise<void>((resolve) => {
        barrier.waiting.push(resolve);
        if (barrier.waiting.length < barrier.size) return;
        this.barrier = undefined;
        for (const release of barrier.waiting) release();
      });
    }
    const { authorization } = (payload as unknown as { payload: { authorization: { from: string; to: string; value: string } } }).payload;
    const payer = getAddress(authorization.from);
    if (getAddress(authorization.to) !== getAddress(requirements.payTo) || BigInt(authorization.value) < BigInt(requirements.amount)) {
      return { isValid: false, invalidReason: "invalid_exact_evm_payload_recipient_mismatch", payer };
    }
    return { isValid: true, payer };
  }

  async preparePayment(agentId: number, authorization: TransferAuthorization, _signature: Hex): Promise<TxRequest> {
    this.paymentsSimulated.push(authorization);
    const key = usedKey(authorization.from, authorization.nonce);
    if (this.used.has(key)) throw new Error("FiatTokenV2: authorization is used or canceled");
    if (!this.agents.has(agentId)) throw new Error(`MarketplaceUnknownAgent(${agentId})`);
    const request = this.chain.request(() => {
      const tx = this.chain.transactions.sent.find((candidate) => candidate.request.data === request.data)!;
      this.used.set(key, tx.hashes[0]);
    });
    return request;
  }

  async authorizationUsed(payer: Address, nonce: Hex): Promise<boolean> {
    return this.used.has(usedKey(payer, nonce));
  }

  async authorizationTx(payer: Address, nonce: Hex): Promise<Hex | undefined> {
    return this.used.get(usedKey(payer, nonce));
  }
}

const usedKey = (payer: string, nonce: string) => `${payer.toLowerCase()}:${nonce.toLowerCase()}`;
