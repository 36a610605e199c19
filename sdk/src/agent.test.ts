import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";
import { recoverMessageAddress, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { AgentSession, ReceiptRejectedError } from "./agent.ts";
import { sessionReadMessage } from "./session-read.ts";
import { outputOfCompletion, type CompletionOutput } from "./completion-output.ts";
import { INITIAL_STATE, checkReceipt } from "./metering.ts";
import { callCost } from "./pricing.ts";
import { hashCompletionOutput, hashRequestMessages, type Receipt } from "./receipts.ts";
import { countCompletionTokens, countPromptTokens } from "./tokens.ts";
import { sessionIdOf, type SessionTerms } from "./typed-data.ts";
import { escrowDomainSeparator, signDigest, voucherDigest, type VoucherState } from "./vouchers.ts";
import type { ErrorBody, ErrorCode, OpenedSession, ProviderView, ReceiptView, SessionView } from "./protocol.ts";

// The SDK's side of issue 12 item 7: an agent signs only receipts it can check against its own
// request and response. The relayer here is hostile: it signs every receipt with the session's
// real receipt-signer key, so each receipt passes the price, chain and signature checks, and only
// the checks against the call itself can refuse it.

const CHAIN_ID = 31337;
const ESCROW = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const AGENT_KEY: Hex = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
const SIGNER_KEY: Hex = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
const domainSeparator = escrowDomainSeparator(CHAIN_ID, ESCROW);
const ANSWER = "AgentMesh settles in USDC.";

/** How the relayer misbehaves on the next call: it may change the receipt before signing it. */
interface Behaviour {
  tamper?: (receipt: Receipt) => void;
  tokenMismatch?: boolean;
  /** Sends the signed receipt as this instead (a shape the protocol does not allow). */
  malform?: (receipt: ReceiptView) => unknown;
  /** Stream the answer, and cut the stream after this many content chunks (no receipt in it). */
  cutStreamAfter?: number;
  /** For a cut stream: the output the relayer shows at catch-up as delivered. */
  deliveredOutput?: (sent: CompletionOutput) => CompletionOutput | undefined;
}

class HostileRelayer {
  server!: Server;
  url = "";
  terms!: SessionTerms;
  sessionId!: Hex;
  state: VoucherState = INITIAL_STATE;
  behaviour: Behaviour = {};
  /** Receipts issued and not yet signed by the agent, as catch-up shows them. */
  unsigned: ReceiptView[] = [];
  vouchersReceived: number[] = [];
  /** Every session read: its query and authorization. */
  reads: { query: string; authorization: string | undefined }[] = [];

  /** Whether `header` is a live read signature of this session by its agent (as the relayer checks it). */
  async readAuthorized(header: string | undefined): Promise<boolean> {
    const match = /^AgentMesh-Signature (\d+) (0x[0-9a-f]{130})$/.exec(header ?? "");
    if (match === null || Number(match[1]) <= Date.now() / 1000) return false;
    const signer = await recoverMessageAddress({ message: sessionReadMessage(this.sessionId, Number(match[1])), signature: match[2] as Hex });
    return signer === this.terms.agent;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.route(req, res).catch((error) => res.destroy(error)));
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  reset(): void {
    this.state = INITIAL_STATE;
    this.behaviour = {};
    this.unsigned = [];
    this.vouchersReceived = [];
    this.reads = [];
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = "";
    for await (const chunk of req) text += chunk;
    const body = text === "" ? {} : JSON.parse(text);
    // Typed by the protocol: the answers have the shapes the real relayer's have.
    const json = <T,>(status: number, value: T) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(value, (_key, field) => (typeof field === "bigint" ? field.toString() : field)));
    };
    const error = (status: number, code: ErrorCode, message: string) => json<ErrorBody>(status, { error: { message, type: "invalid_request_error", param: null, code } });
    if (req.method === "GET" && req.url === "/v1/providers/1") {
      const signer = privateKeyToAccount(SIGNER_KEY).address;
      return json<ProviderView>(200, {
        id: 1,
        owner: signer,
        active: true,
        endpoint: "http://127.0.0.1:1/v1",
        rateLimitPerMinute: 600,
        minChargePerCall: 1,
        features: 0,
        receiptSigner: signer,
        payout: signer,
        feeBps: 0,
        models: [{ id: 0, name: "m", inputPricePer1K: 1_000, outputPricePer1K: 2_000, maxContextTokens: 8_192, active: true }],
        metrics: {
          requests: 0,
          inputTokens: 0,
          outputTokens: 0,
          latencyMs: 0,
          earnings: "0.000000",
          averageLatencyMs: null,
          p50LatencyMs: null,
          p95LatencyMs: null,
          outputTokensPerSecond: null,
          uptimeScore: null,
        },
      });
    }
    if (req.method === "POST" && req.url === "/v1/sessions") {
      const terms = body.terms;
      this.terms = { ...terms, budgetId: BigInt(terms.budgetId), maxSpend: BigInt(terms.maxSpend), salt: BigInt(terms.salt) };
      this.sessionId = sessionIdOf(this.terms);
      return json<OpenedSession>(201, { sessionId: this.sessionId, apiKey: "key", model: "m", providerId: 1, openTxHash: `0x${"11".repeat(32)}` });
    }
    if (req.method === "POST" && req.url?.endsWith("/vouchers")) {
      this.vouchersReceived.push(body.sequence);
      this.unsigned = this.unsigned.filter((receipt) => receipt.sequence > body.sequence);
      return json(200, { sessionId: this.sessionId, signedSequence: body.sequence });
    }
    const url = new URL(req.url ?? "/", this.url);
    if (req.method === "GET" && url.pathname === `/v1/sessions/${this.sessionId}`) {
      this.reads.push({ query: url.search, authorization: req.headers.authorization });
      // As the relayer pages them: after `after`, at most `limit`; an unauthorized read gets nothing.
      if (!(await this.readAuthorized(req.headers.authorization))) return error(401, "missing_api_key", "authorize the read");
      const after = Number(url.searchParams.get("after") ?? 0);
      const limit = Number(url.searchParams.get("limit") ?? 100);
      const receipts = this.unsigned.filter((receipt) => receipt.sequence > after).slice(0, limit);
      return json<SessionView>(200, this.sessionView(receipts, { after, limit, nextAfter: null }));
    }
    if (req.method === "POST" && req.url === "/v1/chat/completions") {
      if (body.voucher !== undefined) {
        this.vouchersReceived.push(body.voucher.sequence);
        this.unsigned = [];
      }
      if (this.unsigned.length > 0) return error(402, "voucher_required", "sign the last call first");
      return this.complete(body, res);
    }
    error(404, "not_found", String(req.url));
  }

  /** `GET /v1/sessions/{id}` as the relayer answers it, with `receipts`. */
  private sessionView(receipts: ReceiptView[], receiptsPage: SessionView["receiptsPage"]): SessionView {
    const signedSequence = this.vouchersReceived.at(-1) ?? 0;
    return {
      sessionId: this.sessionId,
      status: "open",
      agent: this.terms.agent,
      providerId: 1,
      model: "m",
      terms: this.terms,
      state: this.state,
      spent: "0.000000",
      remaining: "0.000000",
      signedSequence,
      settledSequence: 0,
      openTxHash: `0x${"11".repeat(32)}`,
      closeTxHash: null,
      settlement: { onChainSettled: null, onChainSequence: null, unsettled: null },
      receipts,
      receiptsPage,
    };
  }

  /** An honest receipt for `output` of the request `body`, then tampered with as told, then signed. */
  private receiptFor(body: { messages: unknown[] }, output: CompletionOutput): ReceiptView {
    const inputTokens = countPromptTokens(body as never);
    const outputTokens = countCompletionTokens({ content: output.content });
    const receipt: Receipt = {
      sessionId: this.sessionId,
      sequence: this.state.sequence + 1,
      providerId: 1,
      model: "m",
      inputTokens,
      outputTokens,
      cost: 0n,
      latencyMs: 5,
      inputHash: hashRequestMessages(body.messages),
      outputHash: hashCompletionOutput(output.content, output.toolCalls),
      previousHash: this.state.receiptHead,
    };
    this.behaviour.tamper?.(receipt);
    receipt.cost = callCost(this.terms, receipt.inputTokens, receipt.outputTokens);
    this.state = checkReceipt(this.terms, this.sessionId, this.state, receipt);
    const providerSignature = signDigest(SIGNER_KEY, voucherDigest(domainSeparator, this.sessionId, this.state));
    return {
      hash: this.state.receiptHead,
      ...receipt,
      cost: receipt.cost.toString(),
      providerSignature,
      agentSigned: false,
      tokenMismatch: this.behaviour.tokenMismatch ?? false,
      countedByRelayer: false,
      settlementTxHash: null,
      state: { ...this.state, cumulativeCost: this.state.cumulativeCost.toString() },
    };
  }

  /** `receiptFor`, as the response carries it (malformed when told). */
  private sentReceipt(body: { messages: unknown[] }, output: CompletionOutput): unknown {
    const receipt = this.receiptFor(body, output);
    return this.behaviour.malform?.(receipt) ?? receipt;
  }

  private complete(body: { messages: unknown[]; stream?: boolean }, res: ServerResponse): void {
    const output: CompletionOutput = { content: ANSWER, toolCalls: [] };
    if (!body.stream) {
      const completion = { object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: ANSWER } }] };
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ ...completion, receipt: this.sentReceipt(body, outputOfCompletion(completion)) }));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    const words = ANSWER.split(/(?= )/);
    const cut = this.behaviour.cutStreamAfter;
    for (const [index, word] of words.entries()) {
      if (cut !== undefined && index === cut) {
        // The client stopped reading here; the relayer bills what it says it delivered.
        const delivered = this.behaviour.deliveredOutput?.({ content: words.slice(0, cut).join(""), toolCalls: [] });
        const receipt = this.receiptFor(body, delivered ?? output);
        this.unsigned = [{ ...receipt, ...(delivered && { deliveredOutput: delivered }) }];
        res.end();
        return;
      }
      res.write(`data: ${JSON.stringify({ object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: word } }] })}\n\n`);
    }
    const receipt = this.sentReceipt(body, output);
    res.end(`data: ${JSON.stringify({ object: "chat.completion.chunk", choices: [], usage: {}, receipt })}\n\ndata: [DONE]\n\n`);
  }
}

describe("AgentSession signs only receipts it can check against its own call (issue 12 item 7)", () => {
  const relayer = new HostileRelayer();
  const messages = [{ role: "user", content: "What does AgentMesh settle in?" }];
  let session: AgentSession;

  before(() => relayer.start());
  after(() => relayer.server.close());
  beforeEach(async () => {
    relayer.reset();
    session = await AgentSession.open({
      relayerUrl: relayer.url,
      privateKey: AGENT_KEY,
      chainId: CHAIN_ID,
      escrow: ESCROW,
      budgetId: 1n,
      providerId: 1,
      model: "m",
      maxSpend: 10_000_000n,
      voucherFlushMs: 60_000,
    });
  });

  const call = (extra: Record<string, unknown> = {}) =>
    session.fetch(`${relayer.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: "m", messages, ...extra }) });

  /** Whether the session refuses to go on: the next call rejects before anything is sent. */
  async function assertSessionRefusesMore(): Promise<void> {
    const before = relayer.vouchersReceived.length;
    await assert.rejects(call(), ReceiptRejectedError);
    assert.equal(relayer.vouchersReceived.length, before, "no voucher went out");
  }

  it("signs an honest receipt, plain or streamed", async () => {
    const plain = await call();
    assert.equal(((await plain.json()) as { choices: { message: { content: string } }[] }).choices[0].message.content, ANSWER);
    const streamed = await call({ stream: true });
    await streamed.text();
    const state = await session.state();
    assert.equal(state.sequence, 2);
    assert.equal(state.cumulativeCost, relayer.state.cumulativeCost);
    assert.deepEqual(relayer.vouchersReceived, [1], "the first voucher rode on the second call");
  });

  it("refuses a receipt whose inputHash is not of the messages sent", async () => {
    relayer.behaviour.tamper = (receipt) => {
      receipt.inputHash = hashRequestMessages([{ role: "user", content: "something else" }]);
    };
    await assert.rejects(call(), (error: Error) => error instanceof ReceiptRejectedError && /inputHash/.test(error.message));
    assert.equal(session.spent, 0n, "nothing was signed");
    await assertSessionRefusesMore();
  });

  it("refuses a receipt that does not follow the wire protocol, plain or streamed, and signs nothing", async () => {
    // Correctly signed, but a negative cost string and no state: nothing the agent could check.
    relayer.behaviour.malform = (receipt) => ({ ...receipt, cost: "-1", state: undefined });
    await assert.rejects(call(), (error: Error) => error instanceof ReceiptRejectedError && /protocol/.test(error.message));
    assert.equal(session.spent, 0n, "nothing was signed");
    await assertSessionRefusesMore();
  });

  it("refuses a malformed streamed receipt before passing on the rest of the stream", async () => {
    relayer.behaviour.malform = (receipt) => ({ ...receipt, providerSignature: "0x00" });
    const streamed = await call({ stream: true });
    await assert.rejects(streamed.text(), (error: Error) => error instanceof ReceiptRejectedError && /protocol/.test(error.message));
    assert.equal(session.spent, 0n, "nothing was signed");
    await assertSessionRefusesMore();
  });

  it("refuses a receipt whose outputHash is not of the output received", async () => {
    relayer.behaviour.tamper = (receipt) => {
      receipt.outputHash = hashCompletionOutput("a longer answer the agent never received");
    };
    await assert.rejects(call(), /outputHash/);
    await assertSessionRefusesMore();
  });

  it("refuses token counts above its own count beyond the tolerance, input or output", async () => {
    relayer.behaviour.tamper = (receipt) => {
      receipt.inputTokens = Math.floor(receipt.inputTokens * 1.05) + 17;
    };
    await assert.rejects(call(), /input tokens/);
    await assertSessionRefusesMore();
  });

  it("refuses output tokens above the request's own limit", async () => {
    relayer.behaviour.tamper = (receipt) => {
      receipt.outputTokens = 11;
    };
    await assert.rejects(call({ max_tokens: 10 }), /above the request's limit of 10/);
  });

  it("takes the request's output limit as the relayer serves it: max_tokens before max_completion_tokens", async () => {
    relayer.behaviour.tamper = (receipt) => {
      receipt.outputTokens = 8;
    };
    await (await call({ max_tokens: 10, max_completion_tokens: 5 })).text();
    assert.equal((await session.state()).outputTokens, 8);
  });

  it("holds a receipt the relayer flagged (tokenMismatch) to its own count, without the relative tolerance", async () => {
    // A long prompt, so that 4 % of it is well above the 16 tokens of slack.
    const long = [{ role: "user", content: "word ".repeat(2_000) }];
    const send = () =>
      session.fetch(`${relayer.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: "m", messages: long }) });
    relayer.behaviour.tamper = (receipt) => {
      receipt.inputTokens += Math.floor(receipt.inputTokens * 0.04);
    };
    await (await send()).text();
    assert.equal((await session.state()).sequence, 1, "4 % more is within the tolerance when unflagged");
    relayer.behaviour.tokenMismatch = true;
    await assert.rejects(send(), /input tokens/);
  });

  it("streams: a refused receipt errors the stream where it arrives, and nothing is signed", async () => {
    relayer.behaviour.tamper = (receipt) => {
      receipt.outputTokens += 1_000;
    };
    const response = await call({ stream: true });
    await assert.rejects(response.text(), ReceiptRejectedError);
    await assertSessionRefusesMore();
  });

  it("catch-up signs a stream it stopped reading only if the output billed begins with what it read", async () => {
    relayer.behaviour = { cutStreamAfter: 2, deliveredOutput: (sent) => ({ content: `${sent.content} and a bit more`, toolCalls: [] }) };
    await (await call({ stream: true })).text();
    relayer.behaviour = {};
    await (await call()).text(); // voucher_required, catch-up, then the call
    assert.equal((await session.state()).sequence, 2);
    // Issue 12 item 10: the catch-up read is signed by the agent and asks only for what follows
    // the state it signed, one small page.
    assert.deepEqual(relayer.reads.map((read) => read.query), ["?after=0&limit=10"]);
  });

  for (const [name, deliveredOutput] of [
    ["an output that does not begin with what it read", () => ({ content: "something else entirely", toolCalls: [] })],
    ["no output at all", () => undefined],
  ] as const) {
    it(`catch-up refuses a stream it stopped reading when the relayer shows ${name}`, async () => {
      relayer.behaviour = { cutStreamAfter: 2, deliveredOutput };
      await (await call({ stream: true })).text();
      relayer.behaviour = {};
      await assert.rejects(call(), ReceiptRejectedError);
      assert.deepEqual(relayer.vouchersReceived, []);
    });
  }

  it("catch-up refuses a receipt for a call it never made", async () => {
    await (await call()).text();
    await session.flushVoucher();
    // The relayer now claims a second call the agent never sent.
    relayer.behaviour = { cutStreamAfter: 0 };
    const forged = { messages: [{ role: "user", content: "never sent" }], stream: true };
    const discard = { writeHead() {}, write() {}, end() {} };
    (relayer as unknown as { complete: (body: unknown, res: unknown) => void }).complete(forged, discard);
    assert.equal(relayer.unsigned.length, 1);
    await assert.rejects(call(), /no call of this session awaits a receipt/);
    assert.deepEqual(relayer.vouchersReceived, [1]);
  });
});
