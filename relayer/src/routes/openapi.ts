import { z } from "zod";
import { ERROR_CODES, errorBodySchema, type WireSchema } from "@agentmesh/sdk/protocol";
import type { Route } from "./route.ts";

/**
 * `GET /openapi.json`: an OpenAPI 3.1 document of every route in the router, generated from each
 * route's `doc` and the wire protocol's zod schemas it names (the schemas the route validates with
 * and answers by), so that it cannot drift from the code: no hand-kept copy.
 */

/** A route's path as OpenAPI writes it: its pattern, the capture group as `{param}`. */
export function openApiPath(route: Route): string {
  const path = route.pattern.source.replace(/^\^|\$$/g, "").replaceAll("\\/", "/").replaceAll("\\.", ".");
  return path.replace("([^/]+)", `{${route.doc.param ?? "id"}}`);
}

/** JSON Schema 2020-12 (OpenAPI 3.1's dialect) of `schema` as a request carries it (`input`) or an answer does (`output`). */
function jsonSchema(schema: WireSchema, io: "input" | "output"): Record<string, unknown> {
  // Refinements (e.g. "fits in uint64") and viem's types have no JSON Schema: they are left out.
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: "any", target: "draft-2020-12" });
  return rest;
}

const SECURITY_SCHEMES = {
  apiKey: { type: "http", scheme: "bearer", description: "The session's API key, from POST /v1/sessions" },
  sessionRead: {
    type: "apiKey",
    in: "header",
    name: "Authorization",
    description: "The session's API key (`Bearer …`), or `AgentMesh-Signature <expiresAt> <signature>` by its agent or budget creator",
  },
  x402: { type: "apiKey", in: "header", name: "PAYMENT-SIGNATURE", description: "An x402 v2 `exact` payment (EIP-3009 USDC authorization)" },
};

/** The OpenAPI 3.1 document of `routes`. */
export function openApiDocument(routes: readonly Route[], version: string): Record<string, unknown> {
  const error = {
    description: `An OpenAI-shaped error. \`code\` is one of the relayer's (${ERROR_CODES.join(", ")}), or a provider's own 4xx passed through.`,
    content: { "application/json": { schema: jsonSchema(errorBodySchema, "output") } },
  };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const { doc } = route;
    const path = openApiPath(route);
    const answer = doc.response !== undefined ? { "application/json": { schema: jsonSchema(doc.response, "output") } } : { [doc.mediaType ?? "application/json"]: {} };
    (paths[path] ??= {})[route.method.toLowerCase()] = {
      summary: doc.summary,
      ...(path.includes("{") && { parameters: [{ name: doc.param ?? "id", in: "path", required: true, schema: { type: "string" } }] }),
      ...(doc.body !== undefined && { requestBody: { required: true, content: { "application/json": { schema: jsonSchema(doc.body, "input") } } } }),
      ...(doc.auth !== undefined && { security: [{ [doc.auth]: [] }] }),
      responses: { [String(doc.status ?? 200)]: { description: doc.summary, content: answer }, default: error },
    };
  }
  return {
    openapi: "3.1.0",
    info: { title: "AgentMesh relayer", version, description: "Metered, OpenAI-compatible inference settled in USDC; agents sold per call over x402." },
    paths,
    components: { securitySchemes: SECURITY_SCHEMES },
  };
}
