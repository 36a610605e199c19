import type { IncomingMessage, ServerResponse } from "node:http";
import { decodePaymentSignatureHeader, encodePaymentRequiredHeader, encodePaymentResponseHeader } from "@x402/core/http";
import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { formatUsdc } from "@agentmesh/sdk";
import { ApiError, readJsonBody, sendJson } from "@agentmesh/sdk/http";
import type { RelayerContext } from "../context.ts";
import { RETRY_AFTER_SECONDS, agentView, callAgent, exactPayment, listAgents, listedAgent, pendingMessage, requireRunnable, requireX402 } from "../core/x402.ts";
import { parseBody, pathId, type Route } from "./route.ts";
import { agentListSchema, agentViewSchema, facilitatorRequestSchema, foreignCode, type ErrorCode, type ForeignErrorCode } from "@agentmesh/sdk/protocol";

/** Agents over x402 (see core/x402.ts), and the facilitator API. */
export const x402Routes: Route[] = [
  { method: "GET", pattern: /^\/v1\/agents$/, handler: (ctx, req, res) => getAgents(ctx, req, res), doc: { summary: "Every agent listing with its paid URL", response: agentListSchema } },
  { method: "GET", pattern: /^\/v1\/agents\/([^/]+)$/, handler: showAgent, doc: { summary: "An agent listing with its paid URL", response: agentViewSchema } },
  {
    method: "POST",
    pattern: /^\/agents\/([^/]+)$/,
    handler: postAgentCall,
    needsChainIndex: true,
    doc: { summary: "Call an agent, paid per call with x402 (402 with PAYMENT-REQUIRED without PAYMENT-SIGNATURE); answers the agent's JSON", auth: "x402" },
  },
  { method: "GET", pattern: /^\/x402\/supported$/, handler: (ctx, _req, res) => sendJson(res, 200, requireX402(ctx).supported()), doc: { summary: "x402 facilitator: the kinds of payment supported" } },
  { method: "POST", pattern: /^\/x402\/verify$/, handler: facilitatorVerify, doc: { summary: "x402 facilitator: verify a payment to an AgentMesh agent", body: facilitatorRequestSchema } },
  { method: "POST", pattern: /^\/x402\/settle$/, handler: facilitatorSettle, doc: { summary: "x402 facilitator: settle a payment to an AgentMesh agent", body: facilitatorRequestSchema } },
];

/** The relayer's URL as the client addressed it (paid URLs are built from it). */
/** The relayer's URL for the URLs it hands out: the configured public URL, else the request's host (local use). */
function origin(ctx: RelayerContext, req: IncomingMessage): string {
  return ctx.publicUrl ?? `http://${req.headers.host ?? "127.0.0.1"}`;
}

/** `GET /v1/agents`: every listing, with its paid URL. */
async function getAgents(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  sendJson(res, 200, await listAgents(ctx, origin(ctx, req)));
}

/** `GET /v1/agents/{id}`. */
async function showAgent(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
  requireX402(ctx);
  sendJson(res, 200, agentView(await listedAgent(ctx, pathId(id, "agent")), origin(ctx, req)));
}

/**
 * `POST /agents/{id}`: a paid call (see core/x402.ts). Without a `PAYMENT-SIGNATURE`, 402 with
 * `PAYMENT-REQUIRED`; with one, the call's outcome: the agent's answer with `PAYMENT-RESPONSE`, 402
 * when the payment failed (nothing was charged), 409 `payment_pending` while its transfer may still
 * mine (never 402), 409/410 when the payment is in use or was used for something else.
 */
async function postAgentCall(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
  const x402 = requireX402(ctx);
  const agent = await listedAgent(ctx, pathId(id, "agent"));
  const body = await readJsonBody(req, ctx.limits.maxBodyBytes);
  const requirements = await x402.requirements(agent);
  const resource = { url: `${origin(ctx, req)}/agents/${agent.id}`, description: agent.name, mimeType: "application/json" };
  const paymentRequired = (error: ErrorCode | ForeignErrorCode, message: string) => {
    res.setHeader("payment-required", encodePaymentRequiredHeader({ x402Version: 2, error, resource, accepts: [requirements] }));
    return new ApiError(402, error, message, { type: "payment_required" });
  };
  const header = req.headers["payment-signature"];
  if (typeof header !== "string") {
    requireRunnable(ctx, agent);
    throw paymentRequired("payment_required", `agent ${agent.id} costs ${formatUsdc(agent.pricePerCall)} USDC per call: pay with x402 (PAYMENT-SIGNATURE)`);
  }
  let payload: PaymentPayload;
  try {
    payload = decodePaymentSignatureHeader(header);
    exactPayment(payload);
  } catch {
    throw paymentRequired("invalid_payment", "PAYMENT-SIGNATURE is not a base64-encoded x402 `exact` payment payload");
  }
  const outcome = await callAgent(ctx, agent, requirements, payload, body);
  switch (outcome.state) {
    case "served":
      res.setHeader("payment-response", encodePaymentResponseHeader(outcome.settlement));
      res.writeHead(200, { "content-type": "application/json" });
      res.end(outcome.answer);
      return;
    case "failed":
      throw paymentRequired(foreignCode(outcome.reason), outcome.message); // ours, or an x402 verifier's reason
    case "pending":
      throw new ApiError(409, "payment_pending", pendingMessage(outcome.transaction), { headers: { "retry-after": String(RETRY_AFTER_SECONDS) } });
    case "conflict":
      if (outcome.code === "payment_answer_expired") throw new ApiError(410, outcome.code, outcome.message);
      throw new ApiError(409, outcome.code, outcome.message, outcome.code === "payment_in_flight" ? { headers: { "retry-after": String(RETRY_AFTER_SECONDS) } } : {});
  }
}

async function readFacilitatorRequest(ctx: RelayerContext, req: IncomingMessage) {
  const request = parseBody(facilitatorRequestSchema, await readJsonBody(req, ctx.limits.maxBodyBytes));
  return { payload: request.paymentPayload as unknown as PaymentPayload, requirements: request.paymentRequirements as unknown as PaymentRequirements };
}

/** `POST /x402/verify`: 200 with `isValid` either way, as facilitators answer. */
async function facilitatorVerify(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const x402 = requireX402(ctx);
  const { payload, requirements } = await readFacilitatorRequest(ctx, req);
  sendJson(res, 200, await x402.verify(payload, requirements));
}

/** `POST /x402/settle`. */
async function facilitatorSettle(ctx: RelayerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const x402 = requireX402(ctx);
  const { payload, requirements } = await readFacilitatorRequest(ctx, req);
  sendJson(res, 200, await x402.settle(payload, requirements));
}
