import { BaseError, HttpRequestError, SocketClosedError, TimeoutError, WebSocketRequestError } from "viem";

/**
 * Whether `error` says the chain's RPC could not be reached or did not answer in time (an outage,
 * not an answer): the request should be answered 503 and tried again, never 4xx, which would tell
 * the client its request was wrong.
 */
export function chainUnavailable(error: unknown): boolean {
  if (!(error instanceof BaseError)) return false;
  return (
    error.walk(
      (cause) =>
        cause instanceof HttpRequestError || cause instanceof TimeoutError || cause instanceof SocketClosedError || cause instanceof WebSocketRequestError,
    ) !== null
  );
}
