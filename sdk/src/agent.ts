import type { Address, Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { CompletionShapeError, StreamedOutput, outputOfCompletion, reasoningTokensOf, type CompletionOutput } from "./completion-output.ts";
import {
  DEFAULT_TOKEN_TOLERANCE,
  INITIAL_STATE,
  ReceiptError,
  checkReceiptMatchesCall,
  verifySignedReceipt,
  type ObservedCall,
  type TokenTolerance,
} from "./metering.ts";
import { formatUsdc } from "./pricing.ts";
import { sessionReadAuthorization, sessionReadMessage } from "./session-read.ts";
import { hashRequestMessages, type Receipt } from "./receipts.ts";
import { countOutputTokens, countPromptTokens, type ChatMessage } from "./tokens.ts";
import { sessionIdOf, sessionTermsTypes, escrowDomain, toCompactSignature, type CompactSignature, type SessionTerms } from "./typed-data.ts";
import { escrowDomainSeparator, signDigest, voucherDigest, type VoucherState } from "./vouchers.ts";
import { RelayerError, errorCodeOf, isRelayerError, relayerJson } from "./relayer-client.ts";
import {
  closedSessionSchema,
  keyRevokedSchema,
  openedSessionSchema,
  providerViewSchema,
  receiptViewSchema,
  sessionViewSchema,
  voucherAcceptedSchema,
  type ErrorCode,
  type ReceiptView,
} from "./protocol.ts";

export { RelayerError };

/**
 * An agent's metered session through an AgentMesh relayer. Pass {@link AgentSession.openAIOptions}
 * to the official `openai` client: every response's receipt is checked before its voucher is signed
 * and the next request goes out: prices, arithmetic, hash chain and the provider's signature, and
 * that it describes this very call (the hashes of the messages sent and the output received, and
 * token counts within {@link OpenSessionOptions.tokenTolerance} of the session's own count). A
 * receipt that fails any check is never signed: the call rejects with a {@link ReceiptRejectedError}
 * and so does every later one (close the session). The agent's key never leaves this object.
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
  /**
   * How far a receipt's token counts may exceed the session's own count (default 5 % + 16 tokens;
   * widen it for providers whose tokenizer counts more than o200k does).
   */
  tokenTolerance?: TokenTolerance;
}

/**
 * A receipt the session refused to sign (its cause says why): it does not follow the signed state,
 * is not signed by the session's receipt signer, or does not describe the call as the agent made
 * and received it. The session serves no more calls; close it.
 */
export class ReceiptRejectedError extends RelayerError {
  constructor(cause: Error) {
    super(502, "receipt_rejected", `receipt refused, nothing signed: ${cause.message}`, { cause });
    this.name = "ReceiptRejectedError";
  }
}

/** The request of the call in flight, as the session counted and hashed it before sending it. */
interface CallInFlight {
  inputHash: Hex;
  promptTokens: number;
  maxOutputTokens?: number;
  /** What has arrived of the output so far, and whether all of it has. */
  output: CompletionOutput;
  complete: boolean;
  reasoningTokens: number;
}

/** What `GET /v1/providers/{id}` tells an agent about the terms a session opened now must carry. */
/**
 * An `Authorization` header value that lets the holder of `privateKey` (a session's agent, or its
 * budget's creator) read session `sessionId` for the next `seconds` (at most 3600).
 *
 * @example
 * await fetch(`${relayerUrl}/v1/sessions/${sessionId}`, { headers: { authorization: await signSessionRead(agentKey, sessionId) } });
 */
export async function signSessionRead(privateKey: Hex, sessionId: Hex, seconds = 300): Promise<string> {
  const expiresAt = Math.floor(Date.now() / 1000) + seconds;
  const signature = await privateKeyToAccount(privateKey).signMessage({ message: sessionReadMessage(sessionId, expiresAt) });
  return sessionReadAuthorization(expiresAt, signature);
}

/** Receipts a catch-up asks for at most: the credit limit is one call, so one unseen receipt is the most a relayer may hold. */
const CATCH_UP_PAGE = 10;

/** A receipt as a response carries it, checked against the protocol: a malformed one is never signed. */
function parseReceipt(json: unknown): ReceiptView {
  const parsed = receiptViewSchema.safeParse(json);
  if (!parsed.success) throw new ReceiptError(`the receipt does not follow the protocol: ${parsed.error.message}`);
  return parsed.data;
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
  private readonly tokenTolerance: TokenTolerance;
  /** The latest call sent whose receipt is not yet signed. */
  private inFlight: CallInFlight | undefined;
  /** Set once a receipt is refused: the session signs nothing more. */
  private rejected: ReceiptRejectedError | undefined;
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
    tokenTolerance: TokenTolerance;
  }) {
    this.sessionId = init.sessionId;
    this.terms = init.terms;
    this.apiKey = init.apiKey;
    this.relayerUrl = init.relayerUrl;
    this.privateKey = init.privateKey;
    this.domainSeparator = init.domainSeparator;
    this.spendCap = init.spendCap;
    this.voucherFlushMs = init.voucherFlushMs;
    this.tokenTolerance = init.tokenTolerance;
  }

  /**
   * Signs session terms at the provider's current prices and receipt signer and the escrow's current
   * fee, as the relayer publishes them (the escrow opens a session only when all of them match the
   * chain), and has the relayer open the session on-chain. Every receipt must then be signed by that
   * receipt signer.
   */
  static async open(options: OpenSessionOptions): Promise<AgentSession> {
    const relayerUrl = options.relayerUrl.replace(/\/$/, "");
    const provider = await relayerJson(`${relayerUrl}/v1/providers/${options.providerId}`, providerViewSchema);
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
    const opened = await relayerJson(`${relayerUrl}/v1/sessions`, openedSessionSchema, {
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
      tokenTolerance: options.tokenTolerance ?? DEFAULT_TOKEN_TOLERANCE,
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
    if (this.rejected !== undefined) throw this.rejected;
    if (this.signed.cumulativeCost >= this.spendCap) {
      throw new RelayerError(402, "spend_cap_reached", `session ${this.sessionId} reached its spend cap of ${formatUsdc(this.spendCap)} USDC`);
    }
    if (typeof init?.body !== "string") throw new RelayerError(400, "invalid_request", "the metered fetch sends JSON string bodies only");
    const request = JSON.parse(init.body) as Record<string, unknown>;
    const call = this.observe(request);
    const headers = new Headers(init?.headers);
    headers.set("authorization", `Bearer ${this.apiKey}`);
    const send = () => {
      const voucher = this.takeUnsent();
      const body = JSON.stringify({ ...request, sessionId: this.sessionId, ...(voucher && { voucher }) });
      return fetch(input, { ...init, headers, body });
    };
    let response = await send();
    if (response.status === 402 && (await errorCodeOf(response)) === ("voucher_required" satisfies ErrorCode)) {
      await this.catchUp();
      response = await send();
    }
    if (!response.ok || response.body === null) return response;
    this.inFlight = call;
    if (response.headers.get("content-type")?.includes("text/event-stream")) return this.meterStream(response, call);
    const text = await response.text();
    const body = JSON.parse(text) as { receipt?: unknown; usage?: unknown };
    try {
      call.output = outputOfCompletion(body);
    } catch (error) {
      throw this.reject(error as CompletionShapeError);
    }
    call.complete = true;
    call.reasoningTokens = reasoningTokensOf(body.usage);
    if (body.receipt !== undefined) await (this.pending = this.accept(body.receipt));
    return new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers });
  };

  /** Counts and hashes a request before it goes out: what its receipt will be checked against. */
  private observe(request: Record<string, unknown>): CallInFlight {
    if (!Array.isArray(request.messages)) throw new RelayerError(400, "invalid_request", "messages: must be a list");
    // The limit the relayer serves the call with: `max_tokens` first, as it reads them.
    const limit = request.max_tokens ?? request.max_completion_tokens;
    return {
      inputHash: hashRequestMessages(request.messages),
      promptTokens: countPromptTokens({
        messages: request.messages as ChatMessage[],
        tools: Array.isArray(request.tools) ? request.tools : undefined,
        response_format: request.response_format,
      }),
      maxOutputTokens: typeof limit === "number" ? limit : undefined,
      output: { content: null, toolCalls: [] },
      complete: false,
      reasoningTokens: 0,
    };
  }

  /** Refuses to sign anything more in this session, for `cause`; returns the error to throw. */
  private reject(cause: Error): ReceiptRejectedError {
    this.rejected ??= new ReceiptRejectedError(cause);
    return this.rejected;
  }

  /**
   * Passes a stream through, assembling its output as it passes and taking the receipt from its
   * final chunk. A receipt refused errors the stream, so the reader learns of it there.
   */
  private meterStream(response: Response, call: CallInFlight): Response {
    const decoder = new TextDecoder();
    const streamed = new StreamedOutput();
    let buffered = "";
    // Clients stop reading at [DONE] and may cancel the body, so the receipt is taken as soon as
    // its chunk passes, not when the stream ends.
    const scan = (text: string) => {
      buffered += text;
      let newline: number;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (!line.startsWith("data:") || line === "data: [DONE]") continue;
        const chunk = JSON.parse(line.slice(5)) as { receipt?: unknown; usage?: unknown };
        streamed.add(chunk);
        call.output = streamed.output;
        if (chunk.receipt === undefined) continue;
        call.complete = true;
        call.reasoningTokens = reasoningTokensOf(chunk.usage);
        this.pending = this.accept(chunk.receipt);
      }
    };
    const metered = response.body!.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform: async (chunk, controller) => {
          try {
            scan(decoder.decode(chunk, { stream: true }));
            await this.pending;
          } catch (error) {
            controller.error(error instanceof ReceiptRejectedError ? error : this.reject(error as Error));
            return;
          }
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
  private async accept(received: unknown): Promise<void> {
    let next;
    try {
      const json = parseReceipt(received);
      const receipt: Receipt = { ...json, cost: BigInt(json.cost) };
      next = verifySignedReceipt(this.domainSeparator, this.terms, this.sessionId, this.signed, receipt, json.providerSignature);
      checkReceiptMatchesCall(receipt, this.evidenceFor(json), { tolerance: this.tokenTolerance, flagged: json.tokenMismatch === true });
    } catch (error) {
      throw this.reject(error as Error);
    }
    this.inFlight = undefined;
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
      await relayerJson(`${this.relayerUrl}/v1/sessions/${this.sessionId}/vouchers`, voucherAcceptedSchema, { method: "POST", body: JSON.stringify(voucher) });
    } catch (error) {
      if (isRelayerError(error, "stale_voucher")) return;
      if (this.voucher === voucher) this.voucherSent = false;
      throw error;
    }
  }

  /**
   * What the session knows of the call `json` bills: the call in flight. For a stream the agent
   * stopped reading, the output is what the relayer says it delivered, accepted only if it begins
   * with everything the agent did read (the rest was in transit when it stopped; the request's
   * output limit bounds it).
   */
  private evidenceFor(json: ReceiptView): ObservedCall {
    const call = this.inFlight;
    if (call === undefined) throw new ReceiptError(`receipt ${json.sequence}: no call of this session awaits a receipt`);
    let output = call.output;
    if (!call.complete) {
      const delivered = json.deliveredOutput;
      if (delivered === undefined) throw new ReceiptError(`receipt ${json.sequence}: the relayer does not show the output it billed`);
      if (!extendsOutput(delivered, call.output)) throw new ReceiptError(`receipt ${json.sequence}: the output billed does not begin with the output received`);
      output = delivered;
    }
    return {
      inputHash: call.inputHash,
      promptTokens: call.promptTokens,
      output,
      completionTokens: countOutputTokens(output),
      reasoningTokens: call.reasoningTokens,
      maxOutputTokens: call.maxOutputTokens,
    };
  }

  /**
   * Brings the relayer and the agent level: signs the receipt of the call in flight if the agent
   * has not seen it (e.g. of a stream it stopped reading) and can check it, and re-sends the latest
   * voucher if the relayer lacks it (e.g. it rode on a request the relayer refused). A receipt for
   * anything else is refused: the relayer shows nothing the agent signs unchecked.
   */
  private async catchUp(): Promise<void> {
    // Only the receipts after the latest state the agent signed: the rest it has checked already.
    const url = `${this.relayerUrl}/v1/sessions/${this.sessionId}?after=${this.signed.sequence}&limit=${CATCH_UP_PAGE}`;
    const status = await relayerJson(url, sessionViewSchema, { headers: { authorization: await signSessionRead(this.privateKey, this.sessionId) } });
    for (const receipt of status.receipts.filter((candidate) => candidate.sequence > this.signed.sequence)) {
      await (this.pending = this.accept(receipt));
    }
    if (status.signedSequence < this.signed.sequence) {
      this.takeUnsent();
      await this.flush(this.voucher);
    }
  }

  /**
   * Revokes this session's API key at the relayer: it is refused from then on, by anyone (this
   * object included). The session can still be closed, which needs the agent's signature only.
   */
  async revokeKey(): Promise<void> {
    await relayerJson(`${this.relayerUrl}/v1/sessions/${this.sessionId}/key`, keyRevokedSchema, { method: "DELETE", headers: { authorization: `Bearer ${this.apiKey}` } });
  }

  /** Cooperative close: signs the final state; the escrow pays the rest and returns the unused lock at once. */
  async close(): Promise<{ closeTxHash: Hex; settled: string }> {
    await this.pending.catch(() => undefined);
    // A session that refused a receipt cannot agree on a final state: close it on-chain
    // (requestClose) with its last signed voucher instead.
    if (this.rejected !== undefined) throw this.rejected;
    await this.catchUp();
    const final: VoucherState = { ...this.signed, sequence: this.signed.sequence + 1, isFinal: true };
    const signature = signDigest(this.privateKey, voucherDigest(this.domainSeparator, this.sessionId, final));
    return relayerJson(`${this.relayerUrl}/v1/sessions/${this.sessionId}/close`, closedSessionSchema, { method: "POST", body: JSON.stringify({ signature }) });
  }
}

/** Whether `whole` begins with `prefix`: its text, and each of its tool calls' fields, as far as `prefix` goes. */
function extendsOutput(whole: CompletionOutput, prefix: CompletionOutput): boolean {
  if (prefix.content !== null && !(whole.content ?? "").startsWith(prefix.content)) return false;
  if (prefix.toolCalls.length > whole.toolCalls.length) return false;
  return prefix.toolCalls.every((call, index) => {
    const other = whole.toolCalls[index];
    // Only the last call seen may still have been arriving; earlier ones are whole.
    const complete = index < prefix.toolCalls.length - 1;
    const field = (a: string, b: string) => (complete ? a === b : a.startsWith(b));
    return field(other.id, call.id) && field(other.name, call.name) && field(other.arguments, call.arguments);
  });
}
