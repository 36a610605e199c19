import type { IncomingMessage, ServerResponse } from "node:http";
import { getAddress, isAddress, type Hex } from "viem";
import { z } from "zod";
import { badRequest } from "@agentmesh/sdk/http";
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
}

/** Parses `value` with `schema`, or throws a 400 naming every bad field. */
export function parseBody<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const fields = result.error.issues.map((issue) => `${issue.path.join(".") || "body"}: ${issue.message}`);
  throw badRequest(`invalid request: ${fields.join("; ")}`);
}

/** A positive integer id in a path (a provider, budget or agent), or a 400 `invalid_{what}_id`. */
export function pathId(id: string, what: "provider" | "budget" | "agent"): number {
  if (!/^\d+$/.test(id) || Number(id) < 1) throw badRequest(`"${id}" is not a${what === "agent" ? "n" : ""} ${what} id`, `invalid_${what}_id`);
  return Number(id);
}

// Field schemas shared by the request bodies (zod at the HTTP edge, with Solidity-width integers).

export const hex32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/, "must be 0x-prefixed 32-byte hex").transform((value) => value.toLowerCase() as Hex);
export const uint = (bits: number) =>
  z
    .union([z.number().int().nonnegative(), z.string().regex(/^\d+$/, "must be a non-negative integer")])
    .transform((value) => BigInt(value))
    .refine((value) => value < 1n << BigInt(bits), `must fit in uint${bits}`);
export const uint32 = uint(32).transform(Number);
export const address = z.string().refine(isAddress, "must be an address").transform((value) => getAddress(value));
export const signatureSchema = z.object({ r: hex32, yParityAndS: hex32 });
