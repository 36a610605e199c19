import { errorBodySchema, parseAnswer, type WireSchema, type WireValue } from "@agentmesh/sdk/protocol";

/**
 * The dApp's reads of the relayer's HTTP API. Every answer is parsed with its schema in the wire
 * protocol (`@agentmesh/sdk/protocol`), whose types the pages use: integers that may exceed 2^53
 * arrive as decimal strings, USDC amounts as decimal USDC.
 */

/** Thrown when the relayer answers with an error (its OpenAI-shaped message) or cannot be reached. */
export class RelayerRequestError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "RelayerRequestError";
    this.status = status;
  }
}

/**
 * GETs `path` from the relayer at `baseUrl` and parses the answer with `schema`, its shape in the
 * wire protocol (`@agentmesh/sdk/protocol`).
 *
 * @example
 * const { data } = await relayerGet(relayerUrl, "/v1/providers", providerListSchema);
 */
export async function relayerGet<T extends WireSchema>(
  baseUrl: string,
  path: string,
  schema: T,
  signal?: AbortSignal,
  headers?: Record<string, string>,
): Promise<WireValue<T>> {
  let response: Response;
  try {
    response = await fetch(`${baseUrl.replace(/\/$/, "")}${path}`, { signal, headers });
  } catch (cause) {
    if (signal?.aborted) throw cause;
    // A browser reports a refusal by CORS as it does a network failure: name both.
    const origin = globalThis.location?.origin;
    throw new RelayerRequestError(0, `The relayer at ${baseUrl} cannot be reached${origin === undefined ? "" : `, or does not allow calls from ${origin} (its --cors-origin)`}.`);
  }
  const body: unknown = await response.json().catch(() => undefined);
  if (!response.ok) {
    const error = parseAnswer(errorBodySchema, body);
    throw new RelayerRequestError(response.status, error instanceof Error ? `The relayer answered ${response.status}.` : error.error.message);
  }
  const parsed = parseAnswer(schema, body);
  if (parsed instanceof Error) throw new RelayerRequestError(response.status, `The relayer's answer to ${path} is not what this app expects: ${parsed.message}`);
  return parsed;
}
