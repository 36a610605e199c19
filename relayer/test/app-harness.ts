/**
 * The relayer's app (`createApp(deps)`, app.ts) in-process over real parts — SQLite in memory, the
 * outbound HTTP client of the local chain, a test-local provider on 127.0.0.1 — and a fake chain
 * (fake-chain.ts), with one open session of the fixtures' agent, indexed as open on-chain.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { countOutputTokens, countPromptTokens, type ChatMessage } from "@agentmesh/sdk/tokens";
import { INITIAL_STATE, escrowDomainSeparator, sessionIdOf, type SessionTerms } from "@agentmesh/sdk";
import type { Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { createApp } from "../src/app.ts";
import type { RegisteredProvider } from "../src/chain.ts";
import { ChainViewCache, DEFAULT_LIMITS, ReceiptSigners, type RelayerContext, type RelayerLimits } from "../src/context.ts";
import { InProcessRateLimits } from "../src/rate-limits.ts";
import { X402Gateway } from "../src/core/x402.ts";
import { OutboundHttp, outboundPolicy } from "../src/outbound.ts";
import { ProviderStats } from "../src/stats.ts";
import { ChainIndex } from "../src/store/chain-index.ts";
import { openTestDatabase } from "./test-database.ts";
import { Repository } from "../src/store/repository.ts";
import { ESCROW, FakeChain, FakeMarketplace } from "./fake-chain.ts";
import { registeredProvider, sessionTerms } from "./fixtures.ts";

export const API_KEY = "am_test-key";
export const MODEL = "agentmesh-small";

/** Listens on 127.0.0.1 at a free port; the port. */
export async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

/** Closes `server`, cutting its open connections. */
export async function closeServer(server: Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** A provider's request, parsed, with its headers. */
export interface ProviderRequest {
  body: Record<string, unknown> & { stream?: boolean; max_tokens?: number; max_completion_tokens?: number };
  headers: IncomingMessage["headers"];
}

/** A provider answering `handle` for each chat request; counts the requests it got. */
export async function startProvider(handle: (request: ProviderRequest, res: ServerResponse) => void | Promise<void>) {
  const requests: ProviderRequest[] = [];
  const server = createServer((req, res) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (piece: string) => (text += piece));
    req.on("end", () => {
      const request = { body: JSON.parse(text), headers: req.headers };
      requests.push(request);
      void handle(request, res);
    });
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}/v1`, requests, close: () => closeServer(server) };
}

/** One `chat.completion.chunk` carrying `content` (and `extra` fields, e.g. usage). */
export const contentChunk = (content: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ id: "chatcmpl-1", object: "chat.completion.chunk", created: 1, model: MODEL, choices: [{ index: 0, delta: { content }, finish_reason: null }], ...extra });

/** Usage as an honest provider reports it for `messages` and `content` (the relayer's own count). */
export const honestUsage = (messages: ChatMessage[], content: string) => {
  const prompt_tokens = countPromptTokens({ messages });
  const completion_tokens = countOutputTokens({ content, toolCalls: [] });
  return { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens };
};

/** A non-streamed completion of `content` with `usage`. */
export const completion = (content: string, usage: Record<string, unknown>) => ({
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1,
  model: MODEL,
  choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
  usage,
});

/**
 * A relayer over `providerUrl` with one session of the fixtures' agent (API key {@link API_KEY}),
 * provider 1 serving {@link MODEL}, on a {@link FakeChain} (`chain`); `limits` override the
 * defaults. With `agents`, it serves an agent marketplace (a {@link FakeMarketplace}) over x402.
 */
export async function startRelayerApp(
  providerUrl: string,
  options: { limits?: Partial<RelayerLimits>; terms?: Partial<SessionTerms>; provider?: Partial<RegisteredProvider>; agents?: boolean } = {},
) {
  const signerKey = generatePrivateKey();
  const signer = privateKeyToAccount(signerKey).address;
  const database = await openTestDatabase();
  const repo = new Repository(database);
  const chainIndex = new ChainIndex(database);
  const now = Math.floor(Date.now() / 1000);
  const terms = sessionTerms({ receiptSigner: signer, deadline: now + 3600, ...options.terms });
  const sessionId = sessionIdOf(terms);
  await repo.insertSession({ id: sessionId, agent: terms.agent, providerId: 1, modelId: 0, model: MODEL, terms, state: INITIAL_STATE, openTx: `0x${"ab".repeat(32)}` });
  await repo.addSessionKey(API_KEY, sessionId);
  await chainIndex.putProvider(registeredProvider({ receiptSigner: signer, endpoint: providerUrl, ...options.provider }), 10);
  await chainIndex.putBudget({ id: 1, creator: terms.agent, available: 0n, perSessionLimit: 10n ** 9n, expiry: now + 86_400 }, 10);
  await chainIndex.openSession({ id: sessionId, budgetId: 1, agent: terms.agent, providerId: 1, maxSpend: terms.maxSpend, claimEnd: terms.deadline + 86_400 }, 10);
  chainIndex.observeHead(10, now, Date.now());
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const chain = new FakeChain();
  chain.transactions.repo = repo;
  chain.sessions.set(sessionId, { settled: 0n, sequence: 0, claimEnd: terms.deadline + 86_400 });
  const context: RelayerContext = {
    repo,
    chainIndex,
    chain,
    domainSeparator: escrowDomainSeparator(chain.chainId, ESCROW),
    receiptSigners: new ReceiptSigners([signerKey]),
    limits,
    rateLimits: new InProcessRateLimits(limits),
    chainViews: new ChainViewCache(chain, chainIndex, limits.chainViewCacheMs),
    stats: new ProviderStats(),
    outbound: new OutboundHttp(outboundPolicy(chain.chainId)),
    about: {
      version: "0.0.0-test",
      chainId: chain.chainId,
      contracts: { ComputeEscrow: ESCROW, ProviderRegistry: ESCROW },
      gasAddress: chain.account.address,
      receiptSigners: [signer],
      settlement: { maxBatch: 100, maxAgeMs: 30_000, confirmations: 1, maxFeePerGasGwei: 50 },
    },
  };
  const marketplace = options.agents ? new FakeMarketplace(chain) : undefined;
  if (marketplace !== undefined) {
    context.marketplace = marketplace;
    context.x402 = new X402Gateway(context, marketplace);
  }
  const server = createServer(createApp(context));
  const port = await listen(server);
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    context,
    repo,
    chainIndex,
    chain,
    marketplace,
    signer,
    sessionId,
    terms,
    /** `POST /v1/chat/completions` with the session's key (or `headers` given). */
    chat: (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
      fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json", ...headers },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], ...body }),
      }),
    /** The session's receipts as stored. */
    receipts: () => repo.receiptsOf(sessionId),
    async close() {
      await closeServer(server);
      await context.outbound.close();
      await repo.close();
    },
  };
}

/** The `data:` payloads of an SSE body, in order. */
export function sseData(text: string): string[] {
  return text
    .split("\n\n")
    .map((event) => event.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trim()).join("\n"))
    .filter((data) => data !== "");
}
