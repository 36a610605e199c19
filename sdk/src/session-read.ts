import type { Hex } from "viem";

/**
 * Reading a session from the relayer without its API key (`GET /v1/sessions/{id}`): the session's
 * agent, or its budget's creator, signs `sessionReadMessage(sessionId, expiresAt)` (EIP-191,
 * `personal_sign`) and sends `sessionReadAuthorization(expiresAt, signature)` as `Authorization`.
 * The relayer accepts it until `expiresAt` (unix seconds, at most an hour ahead). Browser-safe.
 */

/** Longest a read signature may be valid, in seconds (the relayer refuses a later `expiresAt`). */
export const SESSION_READ_MAX_SECONDS = 3600;

/** The text signed to read session `sessionId` until `expiresAt` (unix seconds). */
export function sessionReadMessage(sessionId: Hex, expiresAt: number): string {
  return `AgentMesh: read session ${sessionId.toLowerCase()} until ${expiresAt}`;
}

/** The `Authorization` header value carrying a read signature. */
export function sessionReadAuthorization(expiresAt: number, signature: Hex): string {
  return `AgentMesh-Signature ${expiresAt} ${signature}`;
}
