import type { IncomingMessage, ServerResponse } from "node:http";
import { decodePaymentSignatureHeader, encodePaymentRequiredHeader, encodePaymentResponseHeader } from "@x402/core/http";
import type { PaymentPayload, PaymentRequirements, SettleResponse, SupportedResponse, VerifyResponse } from "@x402/core/types";
import { toFacilitatorEvmSigner } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/facilitator";
import { publicActions, type Address, type Hex } from "viem";
import { z } from "zod";
import { formatUsdc } from "@agentmesh/sdk";
import { ApiError, badRequest, readJsonBody, sendJson } from "@agentmesh/sdk/http";
import type { RelayerContext } from "./context.ts";
import type { ListedAgent, MarketplaceGateway, TransferAuthorization } from "./marketplace.ts";
import { parseBody } from "./sessions.ts";
import { EndpointRefusedError, ResponseTooLargeError, readCapped, readHead, type EndpointUrl } from "./outbound.ts";

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
 * The facilitator API is served as well: `GET /x402/supported`, `POST /x402/verify`, and
 * `POST /x402/settle` (settling only payments to AgentMesh agents, since the relayer pays the gas).
 */

/** How long a payment authorization may take to settle after it is signed. */
const MAX_TIMEOUT_SECONDS = 300;
/** Time allowed for an agent's endpoint to answer. */
const AGENT_TIMEOUT_MS = 60_000;
/** Largest agent answer relayed. */
const MAX_AGENT_RESPONSE_BYTES = 4 * 1024 * 1024;

export class X402Gateway {
  private readonly ctx: RelayerContext;
  private readonly marketplace: MarketplaceGateway;
  private readonly scheme: ExactEvmScheme;
  readonly network: `eip155:${number}`;

  constructor(ctx: RelayerContext, marketplace: MarketplaceGateway) {
    this.ctx = ctx;
    this.marketplace = marketplace;
    this.network = `eip155:${ctx.chain.chainId}`;
    const client = ctx.chain.walletClient.extend(publicActions);
    this.scheme = new ExactEvmScheme(toFacilitatorEvmSigner({ ...client, address: ctx.chain.account.address } as never));
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
    return this.scheme.verify(payload, requirements);
  }

  /** Verifies, then settles `payload` through the marketplace; payTo must be an agent's payment address. */
  async settle(payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse> {
    const agent = await this.marketplace.agentPaidAt(requirements.payTo);
    if (agent === undefined) return this.failure("invalid_payment_requirements", `${requirements.payTo} is not the payment address of an AgentMesh agent`);
    const verified = await this.verify(payload, requirements);
    if (!verified.isValid) return this.failure(verified.invalidReason ?? "invalid_payment", verified.invalidMessage ?? "payment is invalid", verified.payer);
    return this.settleVerified(agent, payload);
  }

  /**
   * Settles a payment to `agent` already verified against its requirements. The marketplace call is
   * simulated first, so a payment that stopped being valid since (e.g. the payer spent the funds)
   * fails here without a transaction.
   */
  async settleVerified(agent: ListedAgent, payload: PaymentPayload): Promise<SettleResponse> {
    const { authorization, signature } = exactPayload(payload);
    try {
      const transaction = await this.marketplace.payWithAuthorization(agent.id, authorization, signature);
      return { success: true, transaction, network: this.network, payer: authorization.from, amount: authorization.value.toString() };
    } catch (error) {
      return this.failure("settlement_failed", (error as Error).message.split("\n")[0], authorization.from);
    }
  }

  private failure(errorReason: string, errorMessage: string, payer?: string): SettleResponse {
    return { success: false, errorReason, errorMessage, payer, transaction: "", network: this.network };
  }
}

/** The EIP-3009 authorization and signature inside an `exact` payload (already verified). */
function exactPayload(payload: PaymentPayload): { authorization: TransferAuthorization; signature: Hex } {
  const { authorization, signature } = payload.payload as {
    authorization: Record<keyof TransferAuthorization, string>;
    signature: Hex;
  };
  return {
    authorization: {
      from: authorization.from as Address,
      to: authorization.to as Address,
      value: BigInt(authorization.value),
      validAfter: BigInt(authorization.validAfter),
      validBefore: BigInt(authorization.validBefore),
      nonce: authorization.nonce as Hex,
    },
    signature,
  };
}

function requireX402(ctx: RelayerContext): X402Gateway {
  if (ctx.x402 === undefined) throw new ApiError(404, "agents_unavailable", "this relayer is not configured with an agent marketplace");
  return ctx.x402;
}

async function listedAgent(ctx: RelayerContext, id: string): Promise<ListedAgent> {
  if (!/^\d+$/.test(id) || Number(id) < 1) throw badRequest(`"${id}" is not an agent id`, "invalid_agent_id");
  const agent = await ctx.marketplace!.agent(Number(id));
  if (agent === undefined) throw new ApiError(404, "agent_not_found", `no agent ${id}`);
  return agent;
}

function agentView(agent: ListedAgent, relayerUrl: string) {
  return { ...agent, pricePerCall: formatUsdc(agent.pricePerCall), pricePerCallAtomic: agent.pricePerCall.toString(), url: `${relayerUrl}/agents/${agent.id}` };
}

/** `GET /v1/agents`: every listing, with its paid URL. */
export async function listAgents(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  requireX402(ctx);
  const agents = await ctx.marketplace!.agentList();
  sendJson(res, 200, { object: "list", data: agents.map((agent) => agentView(agent, origin(req))) });
}

/** `GET /v1/agents/{id}`. */
export async function showAgent(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
  requireX402(ctx);
  sendJson(res, 200, agentView(await listedAgent(ctx, id), origin(req)));
}

function origin(req: IncomingMessage): string {
  return `http://${req.headers.host ?? "127.0.0.1"}`;
}

/** `POST /agents/{id}`: a paid call (see the module comment). */
export async function callAgent(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
  const x402 = requireX402(ctx);
  const agent = await listedAgent(ctx, id);
  if (agent.status !== "active") throw new ApiError(409, `agent_${agent.status}`, `agent ${agent.id} is ${agent.status}`);
  agentUrl(ctx, agent); // refused endpoints are refused before any payment is asked for
  const body = await readJsonBody(req, ctx.limits.maxBodyBytes);
  const requirements = await x402.requirements(agent);
  const resource = { url: `${origin(req)}/agents/${agent.id}`, description: agent.name, mimeType: "application/json" };
  const paymentRequired = (error: string, message: string) => {
    res.setHeader("payment-required", encodePaymentRequiredHeader({ x402Version: 2, error, resource, accepts: [requirements] }));
    return new ApiError(402, error, message, { type: "payment_required" });
  };
  const header = req.headers["payment-signature"];
  if (typeof header !== "string") {
    throw paymentRequired("payment_required", `agent ${agent.id} costs ${formatUsdc(agent.pricePerCall)} USDC per call: pay with x402 (PAYMENT-SIGNATURE)`);
  }
  let payload: PaymentPayload;
  try {
    payload = decodePaymentSignatureHeader(header);
  } catch {
    throw paymentRequired("invalid_payment", "PAYMENT-SIGNATURE is not a base64-encoded x402 payment payload");
  }
  const verified = await x402.verify(payload, requirements);
  if (!verified.isValid) throw paymentRequired(verified.invalidReason ?? "invalid_payment", verified.invalidMessage ?? "the payment is invalid");

  const answer = await forwardToAgent(ctx, agent, body);
  const settled = await x402.settleVerified(agent, payload);
  if (!settled.success) throw paymentRequired(settled.errorReason ?? "settlement_failed", settled.errorMessage ?? "the payment could not be settled");
  res.setHeader("payment-response", encodePaymentResponseHeader(settled));
  res.writeHead(200, { "content-type": "application/json" });
  res.end(answer);
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
  const upstreamError = (code: string, message: string) => new ApiError(502, code, message, { type: "upstream_error" });
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

const facilitatorRequest = z.object({
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

async function readFacilitatorRequest(ctx: RelayerContext, req: IncomingMessage) {
  const request = parseBody(facilitatorRequest, await readJsonBody(req, ctx.limits.maxBodyBytes));
  return { payload: request.paymentPayload as unknown as PaymentPayload, requirements: request.paymentRequirements as unknown as PaymentRequirements };
}

/** `GET /x402/supported`. */
export function facilitatorSupported(ctx: RelayerContext, _req: IncomingMessage, res: ServerResponse): void {
  sendJson(res, 200, requireX402(ctx).supported());
}

/** `POST /x402/verify`: 200 with `isValid` either way, as facilitators answer. */
export async function facilitatorVerify(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const x402 = requireX402(ctx);
  const { payload, requirements } = await readFacilitatorRequest(ctx, req);
  sendJson(res, 200, await x402.verify(payload, requirements));
}

/** `POST /x402/settle`. */
export async function facilitatorSettle(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const x402 = requireX402(ctx);
  const { payload, requirements } = await readFacilitatorRequest(ctx, req);
  sendJson(res, 200, await x402.settle(payload, requirements));
}
