import { useCallback, useState } from "react";
import type { Hex } from "viem";
import { useSignMessage } from "wagmi";
import { SESSION_READ_MAX_SECONDS, sessionReadAuthorization, sessionReadMessage } from "@agentmesh/sdk/browser";

const storageKey = (sessionId: string) => `agentmesh:session-read:${sessionId.toLowerCase()}`;

/** A stored read signature of `sessionId`, if it is still good for a minute. */
function stored(sessionId: string): string | undefined {
  const value = sessionStorage.getItem(storageKey(sessionId));
  const expiresAt = Number(value?.split(" ")[1]);
  return value !== null && expiresAt > Date.now() / 1000 + 60 ? value : undefined;
}

/**
 * The read signature that lets the connected wallet (the session's agent or its budget's creator)
 * see a session at the relayer, valid for an hour and kept for this tab; `sign` asks the wallet for
 * it, `forget` drops one the relayer refused.
 */
export function useSessionReadAuthorization(sessionId: string) {
  const [authorization, setAuthorization] = useState(() => stored(sessionId));
  const { signMessageAsync, isPending, error } = useSignMessage();
  const sign = useCallback(async () => {
    const expiresAt = Math.floor(Date.now() / 1000) + SESSION_READ_MAX_SECONDS - 60;
    const signature = await signMessageAsync({ message: sessionReadMessage(sessionId as Hex, expiresAt) });
    const value = sessionReadAuthorization(expiresAt, signature);
    sessionStorage.setItem(storageKey(sessionId), value);
    setAuthorization(value);
  }, [sessionId, signMessageAsync]);
  const forget = useCallback(() => {
    sessionStorage.removeItem(storageKey(sessionId));
    setAuthorization(undefined);
  }, [sessionId]);
  return { authorization, sign, forget, signing: isPending, error };
}
