import type { z } from "zod";
import { errorBodySchema, type ErrorCode } from "./protocol.ts";

/** The relayer client's plumbing, shared by the agent's session and the agent proxy. */

/** Thrown for anything the relayer answers with an error, with its OpenAI-shaped code. */
export class RelayerError extends Error {
  readonly status: number;
  /**
   * The relayer's error code (an {@link ErrorCode}), a provider's own code it passed through, or one
   * of the session's: `spend_cap_reached`, `bad_session` (the relayer opened other terms) and
   * `bad_response` (an answer that does not follow the protocol).
   */
  readonly code: string;
  constructor(status: number, code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RelayerError";
    this.status = status;
    this.code = code;
  }
}

/**
 * Sends a request to the relayer and parses its JSON answer with `schema` (see `protocol.ts`).
 *
 * @throws {RelayerError} the relayer's error, or `bad_response` (502) when the answer does not
 * follow the protocol.
 */
export async function relayerJson<T extends z.ZodType>(url: string, schema: T, init?: RequestInit): Promise<z.infer<T>> {
  // A body's type only: on a GET it would make a browser send a CORS preflight for nothing.
  const headers = init?.body === undefined ? init?.headers : { "content-type": "application/json", ...init.headers };
  const response = await fetch(url, { ...init, headers });
  const body: unknown = await response.json().catch(() => undefined);
  if (!response.ok) {
    const error = errorBodySchema.safeParse(body);
    if (!error.success) throw new RelayerError(response.status, "bad_response", `the relayer answered ${response.status} ${response.statusText} with no error body`);
    throw new RelayerError(response.status, error.data.error.code ?? "bad_response", error.data.error.message);
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new RelayerError(502, "bad_response", `the relayer's answer to ${new URL(url).pathname} does not follow the protocol: ${parsed.error.message}`);
  return parsed.data;
}

/** Whether `error` is the relayer's error `code`. */
export function isRelayerError(error: unknown, code: ErrorCode): boolean {
  return error instanceof RelayerError && error.code === code;
}

/** The error code of a relayer's error response, read from a clone (the body stays unread); undefined when it has none. */
export async function errorCodeOf(response: Response): Promise<string | undefined> {
  const body: unknown = await response.clone().json().catch(() => undefined);
  return errorBodySchema.safeParse(body).data?.error.code ?? undefined;
}
