import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { badRequest } from "@agentmesh/sdk/http";
import type { WireSchema } from "@agentmesh/sdk/protocol";
import type { RelayerContext } from "../context.ts";

/**
 * A route's handler: it reads and validates the request (body, path parameter `param`, headers),
 * calls a service in `core/`, and writes the response. Errors it throws are answered centrally
 * (app.ts): an `ApiError` as itself, a chain outage as 503, anything else as 500.
 */
export type Handler = (ctx: RelayerContext, req: IncomingMessage, res: ServerResponse, param: string) => unknown;

/** One entry of the route table (app.ts). */
export interface Route {
  method: string;
  /** The path; its one capture group, if any, is the handler's `param` (URL-decoded). */
  pattern: RegExp;
  handler: Handler;
  /**
   * Refused (503) until the chain index has caught up, and during shutdown: the call serves, opens
   * or closes sessions by what the index says. Status reads and voucher submissions are always served.
   */
  needsChainIndex?: boolean;
  /** What `GET /openapi.json` says of it (see routes/openapi.ts). */
  doc: RouteDoc;
}

/** A route in the OpenAPI document: its schemas are the wire protocol's, as the route uses them. */
export interface RouteDoc {
  summary: string;
  /** The path parameter's name, for a pattern with a capture group (default `id`). */
  param?: string;
  /** The JSON request body's schema. */
  body?: WireSchema;
  /** The answer's status (default 200) and JSON schema; `mediaType` for an answer that is not JSON. */
  status?: number;
  response?: WireSchema;
  mediaType?: string;
  /** How the request authenticates, when it must. */
  auth?: "apiKey" | "sessionRead" | "x402";
}

/**
 * Parses `value` with `schema` (a request schema of the wire protocol, `@agentmesh/sdk/protocol`),
 * or throws a 400 naming every bad field.
 */
export function parseBody<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const fields = result.error.issues.map((issue) => `${issue.path.join(".") || "body"}: ${issue.message}`);
  throw badRequest(`invalid request: ${fields.join("; ")}`);
}

/** A positive integer id in a path (a provider, budget or agent), or a 400 `invalid_{what}_id`. */
export function pathId(id: string, what: "provider" | "budget" | "agent"): number {
  if (!/^\d+$/.test(id) || Number(id) < 1) throw badRequest(`"${id}" is not a${what === "agent" ? "n" : ""} ${what} id`, `invalid_${what}_id` as const);
  return Number(id);
}
