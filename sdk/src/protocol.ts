import { getAddress, isAddress, type Address, type Hex } from "viem";
import { z } from "zod";

/**
 * The relayer's wire protocol, in one place (`@agentmesh/sdk/protocol`): the zod schemas of every
 * request body the relayer accepts and of every JSON response it sends, and the union of the error
 * codes it answers with. The relayer validates requests with these schemas and types its responses
 * by them; the SDK and the dApp parse responses with them. An API change that breaks a client so
 * fails to compile, or fails loudly at the edge, instead of misreading money. The EIP-712 types the
 * requests carry signatures of are in `typed-data.ts`, the contracts' ABIs in `abi/`.
 *
 * Integers that may pass 2^53 travel as decimal strings; amounts named `…Usdc`, `spent`, `remaining`
 * and the like are decimal USDC strings with 6 decimals (`formatUsdc`).
 *
 * Browser-safe: zod and viem only.
 */

// ---- primitives, as requests carry them (parsed into the values the relayer computes with) ------

/** 32 bytes as 0x-prefixed hex, lower-cased: session ids, receipt hashes, signature halves. */
export const hex32Schema = z
  .string()
  .regex(/^0x[0-9a-fA-F]{64}$/, "must be 0x-prefixed 32-byte hex")
  .transform((value) => value.toLowerCase() as Hex);

/** A Solidity `uint<bits>`, sent as a JSON number or a decimal string; parsed to a bigint. */
export const uintSchema = (bits: number) =>
  z
    .union([z.number().int().nonnegative(), z.string().regex(/^\d+$/, "must be a non-negative integer")])
    .transform((value) => BigInt(value))
    .refine((value) => value < 1n << BigInt(bits), `must fit in uint${bits}`);

/** A `uint32`, parsed to a number. */
export const uint32Schema = uintSchema(32).transform(Number);

/** An address in any case; parsed to its checksummed form. */
export const addressSchema = z
  .string()
  .refine(isAddress, "must be an address")
  .transform((value) => getAddress(value));

/** An EIP-2098 compact signature (`r`, `yParityAndS`). */
export const compactSignatureSchema = z.object({ r: hex32Schema, yParityAndS: hex32Schema });

/** `SessionTerms` as the agent signs them (see `sessionTermsTypes`), at Solidity widths. */
export const sessionTermsSchema = z.object({
  agent: addressSchema,
  budgetId: uintSchema(64),
  providerId: uint32Schema,
  modelId: uint32Schema,
  receiptSigner: addressSchema,
  inputPricePer1K: uint32Schema,
  outputPricePer1K: uint32Schema,
  minChargePerCall: uint32Schema,
  feeBps: uintSchema(16).transform(Number),
  maxSpend: uintSchema(64),
  deadline: uint32Schema,
  salt: uintSchema(64),
});

// ---- requests ------------------------------------------------------------------------------------

/** `POST /v1/sessions`: the terms and the agent's signature of them. */
export const openSessionRequestSchema = z.object({ terms: sessionTermsSchema, signature: compactSignatureSchema });

/**
 * The agent's signature of the state after call `sequence`: the body of
 * `POST /v1/sessions/{id}/vouchers`, or a chat request's `voucher`.
 */
export const voucherSchema = z.object({ sequence: z.number().int().positive(), signature: compactSignatureSchema });

/** `POST /v1/sessions/{id}/close`: the agent's signature of the final state (one past the last call, `isFinal`). */
export const closeSessionRequestSchema = z.object({ signature: compactSignatureSchema });

/** Receipts per page of `GET /v1/sessions/{id}`: by default, and at most. */
export const RECEIPT_PAGE = { default: 100, max: 200 } as const;

/** The query of `GET /v1/sessions/{id}?after={sequence}&limit={n}`. */
export const receiptPageQuerySchema = z.object({
  after: z.string().regex(/^\d{1,10}$/, "must be a receipt sequence").transform(Number).default(0),
  limit: z
    .string()
    .regex(/^\d{1,4}$/, "must be a whole number")
    .transform(Number)
    .refine((limit) => limit >= 1 && limit <= RECEIPT_PAGE.max, `must be 1 to ${RECEIPT_PAGE.max}`)
    .default(RECEIPT_PAGE.default),
});

/**
 * Content parts the relayer can bound the cost of: text, and images (at their detail's bound, see
 * the SDK's token counter). Others (audio, files) would be billed by the provider beyond the credit
 * the call was given, so they are refused.
 */
export const METERED_PART_TYPES: ReadonlySet<string> = new Set(["text", "image_url"]);

const contentPartSchema = z
  .object({ type: z.string(), text: z.string().optional() })
  .passthrough()
  .refine((part) => METERED_PART_TYPES.has(part.type), {
    error: (issue) => `content part type ${JSON.stringify((issue.input as { type: unknown }).type)} is not metered: use text or image_url`,
  });

const chatMessageSchema = z
  .object({
    role: z.enum(["system", "developer", "user", "assistant", "tool"]),
    content: z.union([z.string(), z.array(contentPartSchema), z.null()], { error: "must be a string, a list of content parts or null" }).optional(),
    name: z.string().optional(),
    tool_calls: z.array(z.object({ function: z.object({ name: z.string(), arguments: z.string() }).passthrough() }).passthrough()).optional(),
  })
  .passthrough();

/**
 * `POST /v1/chat/completions`: an OpenAI chat request, the fields the relayer meters checked, every
 * other field passed through to the provider; plus AgentMesh's `sessionId`, `voucher`, `providerId`
 * and `provider` preferences.
 */
export const chatRequestSchema = z
  .object({
    model: z.string().min(1, "must name a model"),
    messages: z.array(chatMessageSchema).min(1, "must hold at least one message"),
    max_tokens: z.number().int().positive().optional(),
    max_completion_tokens: z.number().int().positive().optional(),
    stream: z.boolean().optional(),
    /** One choice per call: a receipt meters one output. */
    n: z.literal(1, { error: "only n = 1 is served: a call is metered for one choice" }).optional(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).passthrough().optional(),
    temperature: z.number().min(0).max(2).optional(),
    tools: z.array(z.unknown()).optional(),
    tool_choice: z.unknown().optional(),
    /** AgentMesh: serve with this provider only. */
    providerId: z.number().int().positive().optional(),
    /** AgentMesh: the API key's session (optional: a key serves its own session only). */
    sessionId: z
      .string()
      .regex(/^0x[0-9a-fA-F]{64}$/, "must be a session id")
      .transform((id) => id.toLowerCase() as Hex)
      .optional(),
    /**
     * AgentMesh: the agent's voucher for the session's previous call, so that one request per call
     * suffices (instead of also posting it to /v1/sessions/{id}/vouchers). For the key's session.
     */
    voucher: voucherSchema.optional(),
    /**
     * AgentMesh, OpenRouter-style routing preferences, checked against the key's session.
     * `allow_fallbacks` and `sort` are accepted for OpenRouter clients: a key serves one session, so
     * the agent proxy, which holds a session per provider, is what sorts and falls back.
     */
    provider: z
      .object({
        order: z.array(z.number().int().positive()).optional(),
        allow_fallbacks: z.boolean().optional(),
        /** Highest acceptable prices, in USDC per 1K tokens. */
        max_price: z.object({ prompt: z.number().nonnegative().optional(), completion: z.number().nonnegative().optional() }).optional(),
        sort: z.enum(["price", "latency"]).optional(),
      })
      .optional(),
  })
  .passthrough();

export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type OpenSessionRequest = z.infer<typeof openSessionRequestSchema>;
export type VoucherRequest = z.infer<typeof voucherSchema>;
export type ReceiptPageQuery = z.infer<typeof receiptPageQuerySchema>;

// ---- primitives, as responses carry them (validated, left as the JSON has them) ------------------

/**
 * An integer as a response carries it: a JSON number, or a decimal string where it may pass 2^53.
 * (`bigint` is accepted for the relayer's side: its JSON writer turns bigints into decimal strings.)
 */
const jsonIntSchema = z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/), z.bigint().nonnegative()]);
/** Decimal USDC with 6 decimals, e.g. "1.250000" (`formatUsdc`); negative never. */
const usdcSchema = z.string().regex(/^\d+\.\d{6}$/, "must be decimal USDC");
// Plain string schemas (so that the OpenAPI document shows their patterns), typed as viem's.
const hashSchema = z.string().regex(/^0x[0-9a-fA-F]{64}$/, "must be a 32-byte hash") as unknown as z.ZodType<Hex>;
const addressOutSchema = z.string().regex(/^0x[0-9a-fA-F]{40}$/, "must be an address") as unknown as z.ZodType<Address>;
const signatureOutSchema = z.object({ r: hashSchema, yParityAndS: hashSchema });
const listOf = <T extends z.ZodType>(item: T) => z.object({ object: z.literal("list"), data: z.array(item) });

// ---- responses -----------------------------------------------------------------------------------

/**
 * Every error the relayer (and the agent proxy) answers with, as `error.code` of an OpenAI-shaped
 * body. A provider's own 4xx is passed through with the provider's code, which may be any string.
 */
export const ERROR_CODES = [
  // the request itself
  "invalid_request",
  "invalid_json",
  "json_too_deep",
  "request_too_large",
  "unsupported_media_type",
  "method_not_allowed",
  "unknown_url",
  "invalid_path",
  "invalid_max_tokens",
  "invalid_idempotency_key",
  "idempotency_key_reused",
  "idempotency_key_in_use",
  "invalid_session_id",
  "invalid_receipt_hash",
  "invalid_provider_id",
  "invalid_budget_id",
  "invalid_agent_id",
  "not_found",
  // authentication
  "missing_api_key",
  "invalid_api_key",
  "api_key_revoked",
  "key_not_for_session",
  "invalid_signature",
  "invalid_proxy_token",
  "proxy_error",
  "host_not_allowed",
  "origin_not_allowed",
  // sessions and their money
  "session_not_found",
  "session_exists",
  "session_required",
  "session_busy",
  "session_closed",
  "session_closing",
  "session_finalized",
  "session_expired",
  "session_exhausted",
  "budget_expired",
  "provider_inactive",
  "signer_rotated",
  "receipt_signer_unavailable",
  "unknown_receipt_signer",
  "model_not_found",
  "provider_not_found",
  "budget_not_found",
  "receipt_not_found",
  "context_length_exceeded",
  "voucher_required",
  "stale_voucher",
  "unknown_sequence",
  "open_rejected",
  "open_pending",
  "close_pending",
  "settle_rejected",
  "settle_reverted",
  "close_rejected",
  "close_reverted",
  // rate limits
  "rate_limit_exceeded",
  "rate_limited",
  // agents sold over x402
  "agents_unavailable",
  "agent_not_found",
  "agent_paused",
  "agent_retired",
  "agent_endpoint_refused",
  "agent_unreachable",
  "agent_error",
  "payment_required",
  "invalid_payment",
  "settlement_failed",
  "payment_pending",
  "payment_in_flight",
  "payment_already_used",
  "payment_nonce_reused",
  "payment_answer_expired",
  // the provider, the chain and the relayer itself
  "upstream_error",
  "provider_rejected_request",
  "chain_unavailable",
  "relayer_not_ready",
  "relayer_shutting_down",
  "internal_error",
] as const;

/** An error code of the relayer's (see {@link ERROR_CODES}). */
export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * An error code outside the relayer's own: a provider's or an agent's 4xx that the relayer passes
 * through, an x402 verification reason, the relayer's answer passed on by the agent proxy, and the
 * codes of the reference provider and the demo agent (which speak as a provider and an agent do).
 * Made with {@link foreignCode}, so that every code the relayer defines itself is checked against
 * {@link ErrorCode} where it is written.
 */
export type ForeignErrorCode = string & { readonly foreignErrorCode: true };

/** Marks `code` as another server's (see {@link ForeignErrorCode}). */
export const foreignCode = (code: string): ForeignErrorCode => code as ForeignErrorCode;

/** The OpenAI-shaped error body of every 4xx and 5xx. */
export const errorBodySchema = z.object({
  error: z.object({ message: z.string(), type: z.string(), param: z.string().nullable(), code: z.string().nullable() }),
});

/** `GET /healthz`: the process is up. */
export const healthSchema = z.object({ status: z.literal("ok"), chainId: z.number().int() });

/** `GET /readyz`: 200 when the relayer serves calls, else 503 with what is missing. */
export const readinessSchema = z.object({
  status: z.enum(["ready", "not_ready"]),
  chainId: z.number().int(),
  indexedBlock: z.number().int().nullable(),
  problems: z.array(
    z.object({
      check: z.enum(["configuration", "rpc", "indexer", "store", "gas", "directory", "shutdown"]),
      message: z.string(),
      /** For `indexer`: how many confirmed blocks are not indexed yet (null before the head is known). */
      behindBlocks: z.number().int().nullable().optional(),
    }),
  ),
});

/** A provider's model as registered on-chain (prices in atomic USDC per 1K tokens). */
export const registeredModelSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  inputPricePer1K: z.number().int(),
  outputPricePer1K: z.number().int(),
  maxContextTokens: z.number().int(),
  active: z.boolean(),
});

/**
 * `GET /v1/providers/{id}` (and each of `GET /v1/providers`): the provider as registered on-chain,
 * `feeBps` (the escrow's current fee: with the prices, minimum charge and receipt signer, what the
 * terms of a session opened now must carry), and its metrics.
 */
export const providerViewSchema = z.object({
  id: z.number().int(),
  owner: addressOutSchema,
  active: z.boolean(),
  endpoint: z.string(),
  rateLimitPerMinute: z.number().int(),
  minChargePerCall: z.number().int(),
  features: jsonIntSchema,
  receiptSigner: addressOutSchema,
  payout: addressOutSchema,
  models: z.array(registeredModelSchema),
  feeBps: z.number().int(),
  metrics: z.object({
    requests: jsonIntSchema,
    inputTokens: jsonIntSchema,
    outputTokens: jsonIntSchema,
    latencyMs: jsonIntSchema,
    earnings: usdcSchema,
    averageLatencyMs: z.number().nullable(),
    p50LatencyMs: z.number().nullable(),
    p95LatencyMs: z.number().nullable(),
    outputTokensPerSecond: z.number().nullable(),
    uptimeScore: z.number().nullable(),
  }),
});
export const providerListSchema = listOf(providerViewSchema);

/** `GET /v1/models`: each model name with the providers offering it (prices in decimal USDC per 1K tokens). */
export const modelListSchema = listOf(
  z.object({
    id: z.string(),
    object: z.literal("model"),
    created: z.number().int(),
    owned_by: z.string(),
    providers: z.array(
      z.object({
        providerId: z.number().int(),
        modelId: z.number().int(),
        inputPricePer1K: usdcSchema,
        outputPricePer1K: usdcSchema,
        minChargePerCall: usdcSchema,
        contextLength: z.number().int(),
        features: z.string(),
      }),
    ),
  }),
);

/**
 * `GET /v1/relayer`: who this relayer is. Its chain and contracts, the gas account that pays for
 * opens and settlements, the receipt signers it holds keys for (it serves the providers that
 * registered one of them), its version, and its settlement policy.
 */
export const relayerInfoSchema = z.object({
  version: z.string(),
  chainId: z.number().int(),
  contracts: z.object({
    ComputeEscrow: addressOutSchema,
    ProviderRegistry: addressOutSchema,
    AgentMarketplace: addressOutSchema.optional(),
    /** Where this relayer announces its public URL for its receipt signers. */
    RelayerDirectory: addressOutSchema.optional(),
  }),
  gasAddress: addressOutSchema,
  receiptSigners: z.array(addressOutSchema),
  settlement: z.object({
    /** Vouchers per settlement transaction at most. */
    maxBatch: z.number().int(),
    /** How long a signed voucher waits for a batch before it is settled anyway. */
    maxAgeMs: z.number().int(),
    /** Blocks a settlement must be under before it counts. */
    confirmations: z.number().int(),
    /** The most the relayer pays per gas. */
    maxFeePerGasGwei: z.number(),
  }),
});

/** `POST /v1/sessions` (201): the opened session and the API key that serves it alone. */
export const openedSessionSchema = z.object({
  sessionId: hashSchema,
  apiKey: z.string().min(1),
  model: z.string(),
  providerId: z.number().int(),
  openTxHash: hashSchema,
});

/** A session's cumulative state after a call: what a voucher signs. */
export const voucherStateSchema = z.object({
  sequence: z.number().int(),
  cumulativeCost: jsonIntSchema,
  requestCount: z.number().int(),
  inputTokens: z.number().int(),
  outputTokens: z.number().int(),
  latencyMs: z.number().int(),
  receiptHead: hashSchema,
  isFinal: z.boolean(),
});

/** A tool call as a receipt's output hash covers it. */
const hashedToolCallSchema = z.object({ id: z.string(), name: z.string(), arguments: z.string() });

/** A receipt as the relayer shows it: the hashed fields, its signature and flags, and the state after it. */
export const receiptViewSchema = z.object({
  hash: hashSchema,
  sessionId: hashSchema,
  sequence: z.number().int(),
  providerId: z.number().int(),
  model: z.string(),
  inputTokens: z.number().int(),
  outputTokens: z.number().int(),
  /** Atomic USDC. */
  cost: jsonIntSchema,
  latencyMs: z.number().int(),
  inputHash: hashSchema,
  outputHash: hashSchema,
  previousHash: hashSchema,
  providerSignature: signatureOutSchema,
  agentSigned: z.boolean(),
  /** The provider's token counts and the relayer's disagree beyond the tolerance. */
  tokenMismatch: z.boolean(),
  /** The provider reported no usage (a cut stream): the relayer counted what it delivered. */
  countedByRelayer: z.boolean(),
  settlementTxHash: hashSchema.nullable(),
  state: voucherStateSchema,
  /**
   * Only to the session's agent, for a call it has not signed: what the relayer delivered and billed
   * (a stream the client stopped reading), to check the receipt against before signing.
   */
  deliveredOutput: z.object({ content: z.string().nullable(), toolCalls: z.array(hashedToolCallSchema) }).optional(),
});

/** The terms of a session as responses show them (integers that may pass 2^53 as strings). */
const sessionTermsViewSchema = z.object({
  agent: addressOutSchema,
  budgetId: jsonIntSchema,
  providerId: z.number().int(),
  modelId: z.number().int(),
  receiptSigner: addressOutSchema,
  inputPricePer1K: z.number().int(),
  outputPricePer1K: z.number().int(),
  minChargePerCall: z.number().int(),
  feeBps: z.number().int(),
  maxSpend: jsonIntSchema,
  deadline: z.number().int(),
  salt: jsonIntSchema,
});

/**
 * `GET /v1/sessions/{id}`: the session, its cumulative state, where its settlement stands, and one
 * page of receipts (oldest first: those after `receiptsPage.after`, at most `limit`; `nextAfter` is
 * the next page's cursor, or null on the last page).
 */
export const sessionViewSchema = z.object({
  sessionId: hashSchema,
  status: z.enum(["open", "closing", "closed"]),
  agent: addressOutSchema,
  providerId: z.number().int(),
  model: z.string(),
  terms: sessionTermsViewSchema,
  state: voucherStateSchema,
  spent: usdcSchema,
  remaining: usdcSchema,
  signedSequence: z.number().int(),
  settledSequence: z.number().int(),
  openTxHash: hashSchema,
  closeTxHash: hashSchema.nullable(),
  settlement: z.object({
    /** What the escrow holds as settled (when finalized, else as the indexer last saw it). */
    onChainSettled: usdcSchema.nullable(),
    onChainSequence: z.number().int().nullable(),
    /** Signed vouchers that can never settle, and why. */
    unsettled: z.object({ fromSequence: z.number().int(), toSequence: z.number().int(), amount: usdcSchema, reason: z.string() }).nullable(),
  }),
  receipts: z.array(receiptViewSchema),
  receiptsPage: z.object({ after: z.number().int(), limit: z.number().int(), nextAfter: z.number().int().nullable() }),
});

/** `GET /v1/receipts/{hash}`: a receipt and whether its signatures check out. */
export const receiptStatusSchema = z.object({
  receipt: receiptViewSchema,
  verification: z.object({
    providerSignatureValid: z.boolean(),
    agentSignatureValid: z.boolean().nullable(),
    chainsTo: hashSchema,
  }),
  settlementTxHash: hashSchema.nullable(),
});

/** `POST /v1/sessions/{id}/vouchers`: the voucher is stored (durably) as the session's latest signed state. */
export const voucherAcceptedSchema = z.object({ sessionId: hashSchema, signedSequence: z.number().int() });

/** `POST /v1/sessions/{id}/close`: the session is finalized on-chain at its final state. */
export const closedSessionSchema = z.object({ sessionId: hashSchema, status: z.literal("closed"), closeTxHash: hashSchema, settled: usdcSchema });

/** `DELETE /v1/sessions/{id}/key`: the session's API key serves no more calls. */
export const keyRevokedSchema = z.object({ sessionId: hashSchema, revoked: z.literal(true) });

/** What AgentMesh adds to a chat completion (and to a stream's last data chunk): the call's receipt. */
export const chatReceiptFieldsSchema = z.object({ cost: usdcSchema, latencyMs: z.number().int(), receipt: receiptViewSchema });

/** `POST /v1/chat/completions`, not streamed: OpenAI's chat completion, with the call's receipt. */
export const chatCompletionSchema = chatReceiptFieldsSchema.extend({ id: z.string(), object: z.literal("chat.completion"), choices: z.array(z.unknown()) }).passthrough();

/** `POST /x402/verify` and `/x402/settle`: an x402 v2 facilitator request (the relayer settles payments to its agents only). */
export const facilitatorRequestSchema = z.object({
  x402Version: z.literal(2),
  paymentPayload: z.object({ x402Version: z.literal(2), accepted: z.record(z.string(), z.unknown()), payload: z.record(z.string(), z.unknown()) }).passthrough(),
  paymentRequirements: z
    .object({
      scheme: z.string(),
      network: z.string(),
      asset: z.string(),
      amount: z.string(),
      payTo: z.string(),
      maxTimeoutSeconds: z.number(),
      extra: z.record(z.string(), z.unknown()),
    })
    .passthrough(),
});

/** `GET /v1/budgets/{id}`: the budget and its sessions as the indexer last saw them on-chain. */
export const budgetViewSchema = z.object({
  id: z.number().int(),
  creator: addressOutSchema,
  available: usdcSchema,
  perSessionLimit: usdcSchema,
  expiry: z.number().int(),
  indexedBlock: z.number().int().nullable(),
  sessions: z.array(
    z.object({
      id: hashSchema,
      budgetId: z.number().int(),
      agent: addressOutSchema,
      providerId: z.number().int(),
      maxSpend: usdcSchema,
      settled: usdcSchema,
      /** Settled, or what this relayer has served and not settled yet, whichever is more. */
      spent: usdcSchema,
      sequence: z.number().int(),
      claimEnd: z.number().int(),
      finalized: z.boolean(),
      /** Calls served, when this relayer serves the session. */
      requests: z.number().int().nullable(),
    }),
  ),
});

/** `GET /v1/agents/{id}` (and each of `GET /v1/agents`): a listing with its paid x402 URL (`POST` to call it). */
export const agentViewSchema = z.object({
  id: z.number().int(),
  owner: addressOutSchema,
  status: z.enum(["active", "paused", "retired"]),
  pricePerCall: usdcSchema,
  /** Atomic USDC, as a decimal string. */
  pricePerCallAtomic: z.string().regex(/^\d+$/),
  paymentAddress: addressOutSchema,
  name: z.string(),
  metadataURI: z.string(),
  endpoint: z.string(),
  url: z.string(),
});
export const agentListSchema = listOf(agentViewSchema);

export type ErrorBody = z.infer<typeof errorBodySchema>;
export type ProviderView = z.infer<typeof providerViewSchema>;
export type RegisteredModelView = z.infer<typeof registeredModelSchema>;
export type ModelList = z.infer<typeof modelListSchema>;
export type OpenedSession = z.infer<typeof openedSessionSchema>;
export type VoucherStateView = z.infer<typeof voucherStateSchema>;
export type ReceiptView = z.infer<typeof receiptViewSchema>;
export type SessionView = z.infer<typeof sessionViewSchema>;
export type ReceiptStatus = z.infer<typeof receiptStatusSchema>;
export type BudgetView = z.infer<typeof budgetViewSchema>;
export type AgentView = z.infer<typeof agentViewSchema>;
export type AgentList = z.infer<typeof agentListSchema>;
export type RelayerInfo = z.infer<typeof relayerInfoSchema>;
export type ProviderList = z.infer<typeof providerListSchema>;
export type VoucherAccepted = z.infer<typeof voucherAcceptedSchema>;
export type ClosedSession = z.infer<typeof closedSessionSchema>;
export type KeyRevoked = z.infer<typeof keyRevokedSchema>;
export type HealthView = z.infer<typeof healthSchema>;
export type ReadinessView = z.infer<typeof readinessSchema>;

/** Any schema of this module; a client's generic reader takes one (see {@link parseAnswer}). */
export type WireSchema = z.ZodType;
/** The value a response parsed with `Schema` gives. */
export type WireValue<Schema extends WireSchema> = z.infer<Schema>;

/**
 * Parses a response body with its schema: the value, or an Error listing what does not follow the
 * protocol (field by field), for clients that do not depend on zod themselves.
 */
export function parseAnswer<Schema extends WireSchema>(schema: Schema, body: unknown): WireValue<Schema> | Error {
  const parsed = schema.safeParse(body);
  return parsed.success ? parsed.data : new Error(z.prettifyError(parsed.error));
}
