import type { Address, Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { INITIAL_STATE, verifySignedReceipt } from "./metering.ts";
import { formatUsdc } from "./pricing.ts";
import type { Receipt } from "./receipts.ts";
import { sessionIdOf, sessionTermsTypes, escrowDomain, toCompactSignature, type CompactSignature, type SessionTerms } from "./typed-data.ts";
import { escrowDomainSeparator, signDigest, voucherDigest, type VoucherState } from "./vouchers.ts";

/**
 * An agent's metered session through an AgentMesh relayer. Pass {@link AgentSession.openAIOptions}
 * to the official `openai` client: every response's receipt is checked (prices, arithmetic, hash
 * chain, the provider's signature) and its voucher signed before the next request goes out. The
 * agent's key never leaves this object.
 *
 * @example
 * const session = await AgentSession.open({ relayerUrl, privateKey, chainId, escrow, budgetId: 1n, providerId: 1, model: "agentmesh-small", maxSpend: 2_000_000n });
 * const openai = new OpenAI(session.openAIOptions());
 * await openai.chat.completions.create({ model: "agentmesh-small", messages: [{ role: "user", content: "Hi" }] });
 * await session.close();
 */
export interface OpenSessionOptions {
  relayerUrl: string;
  /** The agent's key (whitelisted on the budget). */
  privateKey: Hex;
  chainId: number;
  escrow: Address;
  budgetId: bigint;
  providerId: number;
  /** Model name as the relayer lists it. */
  model: string;
  /** Amount locked from the budget; no call is paid beyond it. */
  maxSpend: bigint;
  /** Seconds from now until the session stops serving (default 1 day). */
  durationSeconds?: number;
  /** Stop sending requests once this much is spent (default: maxSpend). */
  spendCap?: bigint;
  /**
   * A call's voucher rides on the session's next request; when none follows within this many
   * milliseconds it is posted on its own (default 100).
   */
  voucherFlushMs?: number;
}

/** Thrown for anything the relayer answers with an error, with its OpenAI-shaped code. */
export class RelayerError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "RelayerError";
    this.status = status;
    this.code = code;
  }
}

interface ReceiptJson extends Omit<Receipt, "cost"> {
  cost: string;
  providerSignature: CompactSignature;
}

/** What `GET /v1/providers/{id}` tells an agent about the terms a session opened now must carry. */
interface ProviderJson {
  receiptSigner: Address;
  minChargePerCall: number;
  /** The escrow's current protocol fee. */
  feeBps: number;
  models: { id: number; name: string; inputPricePer1K: number; outputPricePer1K: number }[];
}

async function relayerJson<T>(url: string, init?: RequestInit): Promise<T> {
  const response = await fetch(url, { ...init, headers: { "content-type": "application/json", ...init?.headers } });
  const body = (await response.json()) as T & { error?: { code: string; message: string } };
  if (!response.ok) throw new RelayerError(response.status, body.error?.code ?? "error", body.error?.message ?? response.statusText);
  return body;
}

export class AgentSession {
  readonly sessionId: Hex;
  readonly terms: SessionTerms;
  readonly apiKey: string;
  private readonly relayerUrl: string;
  private readonly privateKey: Hex;
  private readonly domainSeparator: Hex;
  private readonly spendCap: bigint;
  private readonly voucherFlushMs: number;
  /** The latest state the agent has verified and signed. */
  private signed: VoucherState = INITIAL_STATE;
  /** The voucher of `signed`, and whether it has gone out to the relayer. */
  private voucher: { sequence: number; signature: CompactSignature } | undefined;
  private voucherSent = true;
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** Receipt handling of the previous response, awaited before the next request. */
  private pending: Promise<void> = Promise.resolve();

  private constructor(init: {
    sessionId: Hex;
    terms: SessionTerms;
    apiKey: string;
    relayerUrl: string;
    privateKey: Hex;
    domainSeparator: Hex;
    spendCap: bigint;
    voucherFlushMs: number;
  }) {
    this.sessionId = init.sessionId;
    this.terms = init.terms;
    this.apiKey = init.apiKey;
    this.relayerUrl = init.relayerUrl;
    this.privateKey = init.privateKey;
    this.domainSeparator = init.domainSeparator;
    this.spendCap = init.spendCap;
    this.voucherFlushMs = init.voucherFlushMs;
  }

  /**
   * Signs session terms at the provider's current prices and receipt signer and the escrow's current
   * fee, as the relayer publishes them (the escrow opens a session only when all of them match the
   * chain), and has the relayer open the session on-chain. Every receipt must then be signed by that
   * receipt signer.
   */
  static async open(options: OpenSessionOptions): Promise<AgentSession> {
    const relayerUrl = options.relayerUrl.replace(/\/$/, "");
    const provider = await relayerJson<ProviderJson>(`${relayerUrl}/v1/providers/${options.providerId}`);
    const model = provider.models.find((candidate) => candidate.name === options.model);
    if (model === undefined) throw new RelayerError(404, "model_not_found", `provider ${options.providerId} has no model ${options.model}`);
    const account = privateKeyToAccount(options.privateKey);
    const terms: SessionTerms = {
      agent: account.address,
      budgetId: options.budgetId,
      providerId: options.providerId,
      modelId: model.id,
      receiptSigner: provider.receiptSigner,
      inputPricePer1K: model.inputPricePer1K,
      outputPricePer1K: model.outputPricePer1K,
      minChargePerCall: provider.minChargePerCall,
      feeBps: provider.feeBps,
      maxSpend: options.maxSpend,
      deadline: Math.floor(Date.now() / 1000) + (options.durationSeconds ?? 86_400),
      salt: BigInt(Date.now()) * 1_000_000n + BigInt(Math.floor(Math.random() * 1_000_000)),
    };
    const signature = await account.signTypedData({
      domain: escrowDomain(options.chainId, options.escrow),
      types: sessionTermsTypes,
      primaryType: "SessionTerms",
      message: terms,
    });
    const opened = await relayerJson<{ sessionId: Hex; apiKey: string }>(`${relayerUrl}/v1/sessions`, {
      method: "POST",
      body: JSON.stringify({ terms, signature: toCompactSignature(signature) }, (_key, value) =>
        typeof value === "bigint" ? value.toString() : value,
      ),
    });
    if (opened.sessionId !== sessionIdOf(terms)) throw new RelayerError(502, "bad_session", "the relayer opened another session");
    return new AgentSession({
      ...opened,
      terms,
      relayerUrl,
      privateKey: options.privateKey,
      domainSeparator: escrowDomainSeparator(options.chainId, options.escrow),
      spendCap: options.spendCap ?? options.maxSpend,
      voucherFlushMs: options.voucherFlushMs ?? 100,
    });
  }

  /** Total signed for so far, in atomic USDC. */
  get spent(): bigint {
    return this.signed.cumulativeCost;
  }

  /** The latest verified and signed state, once the last response's receipt is handled. */
  async state(): Promise<VoucherState> {
    await this.pending;
    return this.signed;
  }

  /** Options for `new OpenAI(...)`: the relayer's URL, this session's API key and the metering fetch. */
  openAIOptions(): { baseURL: string; apiKey: string; fetch: typeof fetch } {
    return { baseURL: `${this.relayerUrl}/v1`, apiKey: this.apiKey, fetch: this.fetch };
  }

  /**
   * A `fetch` that pins requests to this session, carries the previous call's voucher and verifies
   * each receipt before the next call.
   */
  readonly fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    await this.pending;
    if (this.signed.cumulativeCost >= this.spendCap) {
      throw new RelayerError(402, "spend_cap_reached", `session ${this.sessionId} reached its spend cap of ${formatUsdc(this.spendCap)} USDC`);
    }
    const headers = new Headers(init?.headers);
    headers.set("authorization", `Bearer ${this.apiKey}`);
    const send = () => {
      const voucher = this.takeUnsent();
      const body =
        typeof init?.body === "string" ? JSON.stringify({ ...JSON.parse(init.body), sessionId: this.sessionId, ...(voucher && { voucher }) }) : init?.body;
      return fetch(input, { ...init, headers, body });
    };
    let response = await send();
    if (response.status === 402 && (await response.clone().json()).error?.code === "voucher_required") {
      await this.catchUp();
      response = await send();
    }
    if (!response.ok || response.body === null) return response;
    if (response.headers.get("content-type")?.includes("text/event-stream")) return this.meterStream(response);
    const text = await response.text();
    const receipt = (JSON.parse(text) as { receipt?: ReceiptJson }).receipt;
    if (receipt !== undefined) await (this.pending = this.accept(receipt));
    return new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers });
  };

  /** Passes a stream through, taking the receipt from its final chunk once it ends. */
  private meterStream(response: Response): Response {
    const decoder = new TextDecoder();
    let buffered = "";
    // Clients stop reading at [DONE] and may cancel the body, so the receipt is taken as soon as
    // its chunk passes, not when the stream ends.
    const scan = (text: string) => {
      buffered += text;
      let newline: number;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line.startsWith("data:") && line.includes('"receipt"')) this.pending = this.accept(JSON.parse(line.slice(5)).receipt);
      }
    };
    const metered = response.body!.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform: (chunk, controller) => {
          scan(decoder.decode(chunk, { stream: true }));
          controller.enqueue(chunk);
        },
      }),
    );
    return new Response(metered, { status: response.status, statusText: response.statusText, headers: response.headers });
  }

  /**
   * Verifies a receipt against the signed state and signs the resulting voucher, which goes out
   * with the next request or, after `voucherFlushMs` without one, on its own.
   */
  private async accept(json: ReceiptJson): Promise<void> {
    const receipt: Receipt = { ...json, cost: BigInt(json.cost) };
    const next = verifySignedReceipt(this.domainSeparator, this.terms, this.sessionId, this.signed, receipt, json.providerSignature);
    this.signed = next;
    this.voucher = { sequence: next.sequence, signature: signDigest(this.privateKey, voucherDigest(this.domainSeparator, this.sessionId, next)) };
    this.voucherSent = false;
    clearTimeout(this.flushTimer);
    this.flushTimer = setTimeout(() => void this.flush().catch(() => {}), this.voucherFlushMs);
  }

  /** The latest voucher if it has not gone out yet, now marked as sent by the caller. */
  private takeUnsent() {
    clearTimeout(this.flushTimer);
    if (this.voucherSent) return undefined;
    this.voucherSent = true;
    return this.voucher;
  }

  /**
   * Sends the latest voucher now instead of with the next request, e.g. before the relayer settles
   * or before the agent goes idle. (Idle sessions flush on their own after `voucherFlushMs`.)
   */
  async flushVoucher(): Promise<void> {
    await this.pending;
    await this.flush();
  }

  /**
   * Posts a voucher on its own. A stale answer means the relayer already has it; on any other
   * failure it stays unsent, for the next request to carry.
   */
  private async flush(voucher = this.takeUnsent()): Promise<void> {
    if (voucher === undefined) return;
    try {
      await relayerJson(`${this.relayerUrl}/v1/sessions/${this.sessionId}/vouchers`, { method: "POST", body: JSON.stringify(voucher) });
    } catch (error) {
      if (error instanceof RelayerError && error.code === "stale_voucher") return;
      if (this.voucher === voucher) this.voucherSent = false;
      throw error;
    }
  }

  /**
   * Brings the relayer and the agent level: signs receipts the agent has not seen (e.g. of a stream
   * it abandoned), in order, and re-sends the latest voucher if the relayer lacks it (e.g. it rode
   * on a request the relayer refused).
   */
  private async catchUp(): Promise<void> {
    const status = await relayerJson<{ receipts: ReceiptJson[]; signedSequence: number }>(`${this.relayerUrl}/v1/sessions/${this.sessionId}`);
    for (const receipt of status.receipts.filter((candidate) => candidate.sequence > this.signed.sequence)) {
      await (this.pending = this.accept(receipt));
    }
    if (status.signedSequence < this.signed.sequence) {
      this.takeUnsent();
      await this.flush(this.voucher);
    }
  }

  /** Cooperative close: signs the final state; the escrow pays the rest and returns the unused lock at once. */
  async close(): Promise<{ closeTxHash: Hex; settled: string }> {
    await this.pending;
    await this.catchUp();
    const final: VoucherState = { ...this.signed, sequence: this.signed.sequence + 1, isFinal: true };
    const signature = signDigest(this.privateKey, voucherDigest(this.domainSeparator, this.sessionId, final));
    return relayerJson(`${this.relayerUrl}/v1/sessions/${this.sessionId}/close`, { method: "POST", body: JSON.stringify({ signature }) });
  }
}
