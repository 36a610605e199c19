import { createHash } from "node:crypto";
import type { PaymentPayload, PaymentRequirements, SettleResponse, SupportedResponse, VerifyResponse } from "@x402/core/types";
import { getAddress, isAddress, isHex, keccak256, toBytes, type Hex } from "viem";
import { formatUsdc } from "@agentmesh/sdk";
import { ApiError } from "@agentmesh/sdk/http";
import type { RelayerContext } from "../context.ts";
import type { ListedAgent, TransferAuthorization } from "../marketplace.ts";
import { PeriodicPass } from "../periodic.ts";
import { passLeaseMs } from "../store/leases.ts";
import { EndpointRefusedError, ResponseTooLargeError, readCapped, readHead, type EndpointUrl } from "../outbound.ts";
import type { SentTx, TxRequest } from "../tx-manager.ts";
import type { MarketplacePort } from "./chain-port.ts";
import type { Repository } from "../store/repository.ts";
import { PaymentLocks, type PaymentKind, type PaymentRecord } from "../store/agent-payments.ts";
import { log } from "../log.ts";
import type { AgentList, AgentView, ErrorCode } from "@agentmesh/sdk/protocol";

/**
 * Agents sold per call over x402 (protocol version 2), with the relayer as its own facilitator.
 *
 * `POST /agents/{id}` is agent `id`'s paid URL. Without a `PAYMENT-SIGNATURE` header it answers 402
 * with `PAYMENT-REQUIRED`: scheme `exact`, the agent's price in atomic USDC, payTo = the agent's
 * payment address. With one, the payment is verified (the official EVM `exact` facilitator checks:
 * signature, amount, recipient, validity window, balance, unused nonce), the request is forwarded to
 * the agent's endpoint, and only if the agent answers 2xx is the payment settled — through the
 * marketplace, which moves the USDC through the payment address into its ledger balance and records
 * the payer for its referral reward — and the agent's answer returned with `PAYMENT-RESPONSE`. A
 * failed or refused agent call settles nothing. An agent whose endpoint the relayer's outbound
 * policy refuses (see `outbound.ts`) is not offered for payment at all.
 *
 * One payment buys one run (see relayer/README.md, "x402: one run per payment"): its authorization
 * (payer, nonce) is locked in the store while in use, the agent's answer is stored before the
 * transfer is sent, and a retry of the same payment gets that answer, never a second run. A transfer
 * that does not mine within `limits.x402SettleTimeoutMs` is never answered 402 (it may still mine):
 * the call answers 409 `payment_pending`, the payment is reconciled with the chain, and the payer
 * retries with the same payment to get the answer.
 *
 * The facilitator API is served as well: `GET /x402/supported`, `POST /x402/verify`, and
 * `POST /x402/settle` (settling only payments to AgentMesh agents, since the relayer pays the gas),
 * under the same lock: one authorization sends at most one transaction at a time.
 *
 * This module holds the rules, with no HTTP: the routes (routes/x402.ts) read the headers
 * (`PAYMENT-SIGNATURE`), call {@link callAgent} or the {@link X402Gateway}, and write the answer.
 */

/** How long a payment authorization may take to settle after it is signed. */
const MAX_TIMEOUT_SECONDS = 300;
/** Time allowed for an agent's endpoint to answer. */
const AGENT_TIMEOUT_MS = 60_000;
/** Largest agent answer relayed. */
const MAX_AGENT_RESPONSE_BYTES = 4 * 1024 * 1024;
/** How often unresolved settlements are reconciled with the chain, and how many per pass. */
const RECONCILE_INTERVAL_MS = 5_000;
const RECONCILE_BATCH = 100;
/**
 * A reservation older than this, on a database several instances share, is a stopped instance's: a
 * live one verifies the payment and calls the agent (AGENT_TIMEOUT_MS) well within it.
 */
const STALE_RESERVATION_MS = 5 * AGENT_TIMEOUT_MS;
/** How long a call's answer is kept for retries of its payment once the payment is resolved. */
const ANSWER_RETENTION_MS = 24 * 3_600_000;
/** What a payer is told to wait before retrying a payment in flight or pending. */
export const RETRY_AFTER_SECONDS = 2;

/**
 * Where the transfer of a payment stands after an attempt to settle it:
 * - `settled`: the authorization was used on-chain (`transaction`, when known, used it);
 * - `pending`: a transfer was sent (or may have been) and has not mined: it may still;
 * - `failed`: nothing was charged and, as things stand, nothing will be.
 */
export type SettlementOutcome =
  | { state: "settled"; transaction: Hex | null }
  | { state: "pending"; transaction: Hex | null }
  | { state: "failed"; reason: string; message: string };

/** A paid call's result: the agent's answer with the settled payment, or why there is none. */
export type CallOutcome =
  | { state: "served"; answer: string; settlement: SettleResponse }
  | Exclude<SettlementOutcome, { state: "settled" }>
  | { state: "conflict"; code: ErrorCode; message: string };

/** A payment held by a request or a reconciliation in this process. */
interface InFlight {
  kind: PaymentKind;
  authorizationHash: Hex;
  requestHash: string | null;
  outcome: Promise<SettlementOutcome>;
}

/** A verified-shape `exact` payment: its authorization, signature, and the hash of both. */
interface ExactPayment {
  authorization: TransferAuthorization;
  signature: Hex;
  authorizationHash: Hex;
}

/** Thrown when a payment payload is not an EIP-3009 `exact` payload. */
export class MalformedPaymentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MalformedPaymentError";
  }
}

export class X402Gateway {
  private readonly ctx: RelayerContext;
  private readonly marketplace: MarketplacePort;
  private readonly payments: PaymentLocks;
  /** Payments held in this process, by `payer:nonce`: a second user of one joins the first. */
  private readonly inFlight = new Map<string, InFlight>();
  /**
   * Payments a request of this process is looking up, verifying or reserving, by `payer:nonce`
   * (the store's reads and writes are awaited): another user of one waits, then joins its use.
   */
  private readonly claims = new Map<string, Promise<void>>();
  private readonly reconciler: PeriodicPass<{ settled: number; failed: number; pending: number }>;
  readonly network: `eip155:${number}`;

  constructor(ctx: RelayerContext, marketplace: MarketplacePort) {
    this.ctx = ctx;
    this.marketplace = marketplace;
    this.network = `eip155:${ctx.chain.chainId}`;
    this.payments = new PaymentLocks(ctx.repo);
    const lease = ctx.leases && { leases: ctx.leases, name: "x402-reconciliation", ttlMs: passLeaseMs(RECONCILE_INTERVAL_MS) };
    this.reconciler = new PeriodicPass("x402 settlement reconciliation", RECONCILE_INTERVAL_MS, () => this.reconcilePass(), lease);
  }

  /**
   * Releases the reservations a previous process left (nothing was sent for them) and starts
   * reconciling unresolved settlements every RECONCILE_INTERVAL_MS.
   */
  async start(): Promise<void> {
    // Alone on its database, reservations left were a previous run's; sharing it, one older than a
    // call may last is a stopped instance's (a live one keeps its call within that).
    const before = this.ctx.repo.database.dialect === "sqlite" ? Date.now() : Date.now() - STALE_RESERVATION_MS;
    const released = await this.payments.releaseReservations(before);
    if (released > 0) log.warn({ released }, "released x402 payments reserved by a previous run (nothing was settled for them)");
    this.reconciler.start();
  }

  /** Stops reconciling (after the pass under way). */
  stop(): Promise<void> {
    return this.reconciler.stop();
  }

  /** What a call to `agent` costs, as x402 payment requirements. */
  async requirements(agent: ListedAgent): Promise<PaymentRequirements> {
    const token = await this.marketplace.paymentToken();
    return {
      scheme: "exact",
      network: this.network,
      asset: token.address,
      amount: agent.pricePerCall.toString(),
      payTo: agent.paymentAddress,
      maxTimeoutSeconds: MAX_TIMEOUT_SECONDS,
      extra: { name: token.name, version: token.version },
    };
  }

  supported(): SupportedResponse {
    return {
      kinds: [{ x402Version: 2, scheme: "exact", network: this.network }],
      extensions: [],
      signers: { "eip155:*": [this.ctx.chain.account.address] },
    };
  }

  /** Checks `payload` against `requirements` without settling it (read-only). */
  verify(payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse> {
    return this.marketplace.verifyPayment(payload, requirements);
  }

  /**
   * `/x402/settle`: verifies, then settles `payload` through the marketplace; payTo must be an
   * agent's payment address. Under the payment's lock: concurrent settles of one authorization join
   * one attempt and send at most one transaction; a settled one answers its transaction again.
   */
  async settle(payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse> {
    const agent = await this.marketplace.agentPaidAt(requirements.payTo);
    if (agent === undefined) return this.failure("invalid_payment_requirements", `${requirements.payTo} is not the payment address of an AgentMesh agent`);
    let payment: ExactPayment;
    try {
      payment = exactPayment(payload);
    } catch (error) {
      return this.failure("invalid_payload", (error as Error).message);
    }
    const payer = payment.authorization.from;
    const outcome = await this.use(agent, requirements, payload, payment, "settle", null, async () => {
      await this.payments.settling(this.key(payment), null);
      return this.sendAndAwait(agent, payment);
    });
    switch (outcome.state) {
      case "settled":
        return { success: true, transaction: outcome.transaction ?? "", network: this.network, payer, amount: payment.authorization.value.toString() };
      case "pending":
        return {
          ...this.failure("settlement_pending", pendingMessage(outcome.transaction), payer),
          transaction: outcome.transaction ?? "",
        };
      case "failed":
      case "conflict":
        return this.failure("code" in outcome ? outcome.code : outcome.reason, outcome.message, payer);
    }
  }

  /**
   * A paid call: runs `call` (the agent) once for the payment, then settles it. A payment already
   * settled for this same request answers its stored answer again; one held by another request
   * joins it; one whose transfer is pending is reconciled with the chain first.
   */
  async call(agent: ListedAgent, requirements: PaymentRequirements, payload: PaymentPayload, requestHash: string, call: () => Promise<string>): Promise<CallOutcome> {
    const payment = exactPayment(payload);
    const outcome = await this.use(agent, requirements, payload, payment, "call", requestHash, async (record) => {
      let answer = record.response;
      if (answer === null) {
        try {
          answer = await call();
        } catch (error) {
          await this.payments.failed(this.key(payment), `the agent call failed: ${(error as Error).message}`);
          throw error;
        }
      }
      await this.payments.settling(this.key(payment), answer);
      return this.sendAndAwait(agent, payment);
    });
    if (outcome.state !== "settled") return outcome;
    const answer = (await this.payments.get(this.key(payment)))?.response;
    if (answer == null) {
      const hours = ANSWER_RETENTION_MS / 3_600_000;
      return { state: "conflict", code: "payment_answer_expired", message: `this payment was settled and answered more than ${hours} hours ago; its answer is no longer kept` };
    }
    return {
      state: "served",
      answer,
      settlement: {
        success: true,
        transaction: outcome.transaction ?? "",
        network: this.network,
        payer: payment.authorization.from,
        amount: payment.authorization.value.toString(),
      },
    };
  }

  /**
   * Uses `payment` under its lock. In order: a use in flight in this process is joined (when it is
   * the same payment for the same purpose; one another request is still claiming is waited for);
   * a stored payment is answered from the store (settled), reconciled (settling), or refused (held
   * elsewhere, or used for something else); otherwise the payment is verified, reserved, and `run`
   * (given the stored record) settles it.
   */
  private async use(
    agent: ListedAgent,
    requirements: PaymentRequirements,
    payload: PaymentPayload,
    payment: ExactPayment,
    kind: PaymentKind,
    requestHash: string | null,
    run: (record: PaymentRecord) => Promise<SettlementOutcome>,
  ): Promise<SettlementOutcome | { state: "conflict"; code: ErrorCode; message: string }> {
    const key = this.key(payment);
    const id = inFlightId(key);
    const wanted = { kind, authorizationHash: payment.authorizationHash, requestHash };
    for (let attempt = 0; attempt < 3; attempt++) {
      const running = this.inFlight.get(id);
      if (running !== undefined) return sameUse(running, wanted) ?? running.outcome;
      const claimed = this.claims.get(id);
      if (claimed !== undefined) {
        // Not an attempt: another request of this process holds the claim, and ends it.
        await claimed;
        attempt--;
        continue;
      }
      let release!: () => void;
      this.claims.set(id, new Promise<void>((resolve) => (release = resolve)));
      try {
        const stored = await this.payments.get(key);
        if (stored !== undefined && stored.state !== "failed") {
          const conflict = sameUse(stored, wanted);
          if (conflict !== undefined) return conflict;
          if (stored.state === "settled") return { state: "settled", transaction: stored.txHash };
          if (stored.state === "reserved") return inFlightConflict();
          return this.hold(id, wanted, () => this.reconcile(stored));
        }
        const verified = await this.verify(payload, requirements);
        if (this.inFlight.has(id) || (await this.payments.get(key))?.state !== stored?.state) continue; // taken meanwhile: look again
        if (!verified.isValid) {
          return { state: "failed", reason: verified.invalidReason ?? "invalid_payment", message: verified.invalidMessage ?? "the payment is invalid" };
        }
        const reserved = { ...key, ...wanted, agentId: agent.id, payload: JSON.stringify(payload) };
        if (!(await this.payments.reserve(reserved))) continue;
        const record = (await this.payments.get(key))!;
        return this.hold(id, wanted, () => run(record));
      } finally {
        // After hold (if any) registered the use: those waiting join it.
        this.claims.delete(id);
        release();
      }
    }
    return inFlightConflict();
  }

  /** Runs `work` as the one use of payment `id` in this process. */
  private hold(id: string, use: Omit<InFlight, "outcome">, work: () => Promise<SettlementOutcome>): Promise<SettlementOutcome> {
    const outcome = work().finally(() => this.inFlight.delete(id));
    this.inFlight.set(id, { ...use, outcome });
    return outcome;
  }

  /**
   * Sends the transfer of a `settling` payment (simulated first: a payment the chain refuses costs
   * no gas and fails) and waits up to `limits.x402SettleTimeoutMs` for it to mine.
   */
  private async sendAndAwait(agent: ListedAgent, payment: ExactPayment): Promise<SettlementOutcome> {
    const key = this.key(payment);
    let request;
    try {
      request = await this.marketplace.preparePayment(agent.id, payment.authorization, payment.signature);
    } catch (error) {
      // Refused by the chain: used meanwhile (then it is paid), or it cannot be paid (nothing is charged).
      if (await this.marketplace.authorizationUsed(payment.authorization.from, payment.authorization.nonce).catch(() => false)) {
        return this.settled(key, (await this.marketplace.authorizationTx(payment.authorization.from, payment.authorization.nonce).catch(() => undefined)) ?? null);
      }
      const message = `the payment could not be settled: ${(error as Error).message.split("\n")[0]}`;
      await this.payments.failed(key, message);
      return { state: "failed", reason: "settlement_failed", message };
    }
    let sent: SentTx;
    try {
      sent = await this.sendPayment(request, (recorded, repo) => this.payments.sent(key, recorded.hash, repo));
    } catch (error) {
      // Refused before the transaction manager recorded it (gas estimation): nothing was sent yet.
      await this.payments.note(key, `sending the transfer failed: ${(error as Error).message.split("\n")[0]}`);
      return { state: "pending", transaction: null };
    }
    try {
      const outcome = await this.ctx.chain.transactions.wait(sent.id, this.ctx.limits.x402SettleTimeoutMs);
      if (outcome.status === "confirmed") return this.settled(key, outcome.hash);
    } catch (error) {
      await this.payments.note(key, `no receipt for ${sent.hash} yet: ${(error as Error).message.split("\n")[0]}`);
      return { state: "pending", transaction: sent.hash };
    }
    return this.reconcile((await this.payments.get(key))!);
  }

  /**
   * Sends the simulated `payWithAuthorization` request through the relayer's transaction manager
   * (which owns the gas account's nonces, re-broadcasts and bumps it); `recorded` runs in the same
   * database transaction that records it. The one place the facilitator broadcasts a transaction.
   */
  private sendPayment(request: TxRequest, recorded: (sent: SentTx, repo: Repository) => Promise<void>): Promise<SentTx> {
    return this.ctx.chain.transactions.send("payWithAuthorization", request, recorded);
  }

  /**
   * Brings a `settling` payment in line with the chain. The authorization used (`authorizationState`)
   * means paid, whoever sent it. Otherwise: its transfer reverted → failed; mined but not yet seen as
   * used, or still known to the node (in its mempool) → pending; none known (dropped, or the send
   * failed) → failed once the authorization has expired by the chain's clock, else sent again.
   */
  private async reconcile(record: PaymentRecord): Promise<SettlementOutcome> {
    const payment = exactPayment(JSON.parse(record.payload) as PaymentPayload);
    const { from, nonce, validBefore } = payment.authorization;
    const key = this.key(payment);
    try {
      const status = record.txHash === null ? "none" : await this.ctx.chain.receiptStatus(record.txHash);
      if (await this.marketplace.authorizationUsed(from, nonce)) {
        return this.settled(key, status === "success" ? record.txHash : ((await this.marketplace.authorizationTx(from, nonce)) ?? record.txHash));
      }
      if (status === "reverted") {
        const message = `the settlement transaction ${record.txHash} reverted; nothing was charged`;
        await this.payments.failed(key, message);
        return { state: "failed", reason: "settlement_failed", message };
      }
      if (status === "success" || (record.txHash !== null && (await this.knownTransaction(record.txHash)))) {
        return { state: "pending", transaction: record.txHash };
      }
      if ((await this.ctx.chain.latestBlockTime()) >= validBefore) {
        const message = "the payment's authorization expired before its transfer mined; nothing was charged";
        await this.payments.failed(key, message);
        return { state: "failed", reason: "settlement_failed", message };
      }
      const agent = await this.marketplace.agent(record.agentId);
      if (agent === undefined) throw new Error(`agent ${record.agentId} is not listed`);
      return await this.sendAndAwait(agent, payment);
    } catch (error) {
      await this.payments.note(key, `reconciling failed: ${(error as Error).message.split("\n")[0]}`);
      return { state: "pending", transaction: record.txHash };
    }
  }

  /**
   * Whether transaction `hash` may still mine: the transaction manager still follows it (it
   * re-broadcasts what the node dropped, and may replace it with higher fees), or the node knows it.
   */
  private async knownTransaction(hash: Hex): Promise<boolean> {
    if ((await this.ctx.chain.transactions.inFlight()).some((tx) => tx.hashes.includes(hash))) return true;
    return this.ctx.chain.knowsTransaction(hash);
  }

  private async settled(key: { payer: Hex; nonce: Hex }, transaction: Hex | null): Promise<SettlementOutcome> {
    await this.payments.settled(key, transaction);
    return { state: "settled", transaction };
  }

  /**
   * One reconciliation pass: every unresolved settlement not held in this process, least recently
   * looked at first (at most RECONCILE_BATCH). Runs every RECONCILE_INTERVAL_MS once started.
   */
  reconcileAll(): Promise<{ settled: number; failed: number; pending: number }> {
    return this.reconciler.run();
  }

  private async reconcilePass(): Promise<{ settled: number; failed: number; pending: number }> {
    await this.payments.forgetAnswers(Date.now() - ANSWER_RETENTION_MS);
    const counts = { settled: 0, failed: 0, pending: 0 };
    for (const record of await this.payments.settlingPayments(RECONCILE_BATCH)) {
      const id = inFlightId(record);
      if (this.inFlight.has(id) || this.claims.has(id)) continue;
      const outcome = await this.hold(id, record, () => this.reconcile(record));
      counts[outcome.state]++;
    }
    return counts;
  }

  private key(payment: ExactPayment): { payer: Hex; nonce: Hex } {
    return { payer: payment.authorization.from, nonce: payment.authorization.nonce };
  }

  private failure(errorReason: string, errorMessage: string, payer?: string): SettleResponse {
    return { success: false, errorReason, errorMessage, payer, transaction: "", network: this.network };
  }
}

const inFlightId = ({ payer, nonce }: { payer: Hex; nonce: Hex }) => `${payer.toLowerCase()}:${nonce.toLowerCase()}`;

const inFlightConflict = () =>
  ({ state: "conflict", code: "payment_in_flight", message: "this payment is being used by another request: retry with the same payment to get its result" }) as const;

/** Why a stored or running use of a payment is not the use wanted (undefined when it is). */
function sameUse(
  use: Pick<InFlight, "kind" | "authorizationHash" | "requestHash">,
  wanted: Pick<InFlight, "kind" | "authorizationHash" | "requestHash">,
): { state: "conflict"; code: ErrorCode; message: string } | undefined {
  if (use.authorizationHash !== wanted.authorizationHash) {
    return { state: "conflict", code: "payment_nonce_reused", message: "another authorization with this payer and nonce is already in use: sign a new payment" };
  }
  if (use.kind !== wanted.kind || use.requestHash !== wanted.requestHash) {
    return { state: "conflict", code: "payment_already_used", message: "this payment was used for another request: sign a new payment for this one" };
  }
  return undefined;
}

/** What a payer whose payment's transfer is pending is told (answered 409 `payment_pending`, never 402). */
export function pendingMessage(transaction: Hex | null): string {
  return `the payment's transfer ${transaction ?? "(hash unknown)"} has not mined yet; it may still: retry with the same payment to get the result (it is never charged twice)`;
}

/**
 * The EIP-3009 authorization and signature inside an `exact` payload, checked for shape.
 *
 * @throws {MalformedPaymentError} when it has none.
 */
export function exactPayment(payload: PaymentPayload): ExactPayment {
  const inner = (payload as { payload?: unknown }).payload as { authorization?: Record<string, unknown>; signature?: unknown } | undefined;
  const raw = inner?.authorization;
  const signature = inner?.signature;
  const uint = (value: unknown) => (typeof value === "string" || typeof value === "number") && /^\d{1,78}$/.test(String(value));
  if (
    raw === undefined ||
    typeof raw.from !== "string" ||
    !isAddress(raw.from) ||
    typeof raw.to !== "string" ||
    !isAddress(raw.to) ||
    !uint(raw.value) ||
    !uint(raw.validAfter) ||
    !uint(raw.validBefore) ||
    typeof raw.nonce !== "string" ||
    !isHex(raw.nonce) ||
    raw.nonce.length !== 66 ||
    typeof signature !== "string" ||
    !isHex(signature)
  ) {
    throw new MalformedPaymentError("the payment is not an EIP-3009 `exact` payload (authorization and signature)");
  }
  const authorization: TransferAuthorization = {
    from: getAddress(raw.from),
    to: getAddress(raw.to),
    value: BigInt(raw.value as string),
    validAfter: BigInt(raw.validAfter as string),
    validBefore: BigInt(raw.validBefore as string),
    nonce: raw.nonce.toLowerCase() as Hex,
  };
  const authorizationHash = keccak256(
    toBytes(JSON.stringify({ ...authorization, value: `${authorization.value}`, validAfter: `${authorization.validAfter}`, validBefore: `${authorization.validBefore}`, signature: signature.toLowerCase() })),
  );
  return { authorization, signature, authorizationHash };
}

/** The x402 gateway, or a 404 when the relayer serves no marketplace. */
export function requireX402(ctx: RelayerContext): X402Gateway {
  if (ctx.x402 === undefined) throw new ApiError(404, "agents_unavailable", "this relayer is not configured with an agent marketplace");
  return ctx.x402;
}

/** Agent `id`'s listing, or a 404. */
export async function listedAgent(ctx: RelayerContext, id: number): Promise<ListedAgent> {
  const agent = await ctx.marketplace!.agent(id);
  if (agent === undefined) throw new ApiError(404, "agent_not_found", `no agent ${id}`);
  return agent;
}

/** A listing as the API shows it, with its paid URL at `relayerUrl`. */
export function agentView(agent: ListedAgent, relayerUrl: string): AgentView {
  return { ...agent, pricePerCall: formatUsdc(agent.pricePerCall), pricePerCallAtomic: agent.pricePerCall.toString(), url: `${relayerUrl}/agents/${agent.id}` };
}

/** Every listing, with its paid URL at `relayerUrl`. */
export async function listAgents(ctx: RelayerContext, relayerUrl: string): Promise<AgentList> {
  requireX402(ctx);
  const agents = await ctx.marketplace!.agentList();
  return { object: "list", data: agents.map((agent) => agentView(agent, relayerUrl)) };
}

/**
 * Whether `agent` runs a new call: a paused or retired agent, or one whose endpoint is refused, is
 * not offered for payment and runs no new call (409, or 502 `agent_endpoint_refused`).
 */
export function requireRunnable(ctx: Pick<RelayerContext, "outbound">, agent: ListedAgent): void {
  if (agent.status !== "active") throw new ApiError(409, `agent_${agent.status}`, `agent ${agent.id} is ${agent.status}`);
  agentUrl(ctx, agent);
}

/**
 * A paid call to `agent` with `payload` (an `exact` payment, see {@link exactPayment}) for request
 * `body`: the agent runs once for the payment, which settles only if it answered (see the module
 * comment). A payment that already bought an answer to this same body gets it again, even from an
 * agent paused since.
 */
export function callAgent(ctx: RelayerContext, agent: ListedAgent, requirements: PaymentRequirements, payload: PaymentPayload, body: unknown): Promise<CallOutcome> {
  const requestHash = createHash("sha256").update(JSON.stringify(body)).digest("hex");
  return requireX402(ctx).call(agent, requirements, payload, requestHash, () => {
    requireRunnable(ctx, agent);
    return forwardToAgent(ctx, agent, body);
  });
}

function endpointRefused(agent: ListedAgent, error: EndpointRefusedError): ApiError {
  return new ApiError(502, "agent_endpoint_refused", `agent ${agent.id} cannot be called: ${error.message}; no payment was settled`, { type: "upstream_error" });
}

/** The agent's endpoint, once the outbound policy accepts its shape and host. */
function agentUrl(ctx: Pick<RelayerContext, "outbound">, agent: ListedAgent): EndpointUrl {
  try {
    return ctx.outbound.endpointUrl(agent.endpoint);
  } catch (error) {
    if (error instanceof EndpointRefusedError) throw endpointRefused(agent, error);
    throw error;
  }
}

/**
 * Calls the agent's endpoint through the outbound policy; its JSON answer, or a 502 (nothing is
 * settled then). The answer is read up to MAX_AGENT_RESPONSE_BYTES, no further.
 */
export async function forwardToAgent(ctx: Pick<RelayerContext, "outbound">, agent: ListedAgent, body: unknown): Promise<string> {
  const upstreamError = (code: ErrorCode, message: string) => new ApiError(502, code, message, { type: "upstream_error" });
  const url = agentUrl(ctx, agent);
  let response;
  try {
    response = await ctx.outbound.request(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(AGENT_TIMEOUT_MS),
    });
  } catch (error) {
    if (error instanceof EndpointRefusedError) throw endpointRefused(agent, error);
    throw upstreamError("agent_unreachable", `agent ${agent.id} did not answer: ${(error as Error).message}`);
  }
  if (response.statusCode < 200 || response.statusCode > 299) {
    const text = await readHead(response.body, 300);
    throw upstreamError("agent_error", `agent ${agent.id} answered HTTP ${response.statusCode}: ${text}; the payment was not settled`);
  }
  let text: string;
  try {
    text = (await readCapped(response.body, MAX_AGENT_RESPONSE_BYTES, response.headers)).toString("utf8");
  } catch (error) {
    if (error instanceof ResponseTooLargeError) {
      throw upstreamError("agent_error", `agent ${agent.id}'s answer is larger than ${MAX_AGENT_RESPONSE_BYTES} bytes; the payment was not settled`);
    }
    throw upstreamError("agent_unreachable", `agent ${agent.id}'s answer broke off: ${(error as Error).message}; the payment was not settled`);
  }
  try {
    JSON.parse(text);
  } catch {
    throw upstreamError("agent_error", `agent ${agent.id} did not answer JSON; the payment was not settled`);
  }
  return text;
}
