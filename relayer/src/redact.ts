import type { Transport } from "viem";

/**
 * RPC URLs often carry a secret: an API key in the path (`/v2/<key>`), the query (`?apikey=`) or the
 * userinfo. viem puts the URL in its errors' messages (`URL: …`, stripping only userinfo), and those
 * errors reach logs and, through error messages, responses. {@link redactRpcErrors} scrubs every
 * error the RPC transport throws, where it is thrown, so no later log or response can show it.
 */

/** `url` with everything after the origin replaced, e.g. `https://base-mainnet.example.com/…`. */
export function redactUrl(url: string): string {
  try {
    return `${new URL(url).origin}/…`;
  } catch {
    return "<RPC URL>";
  }
}

/** Every spelling of `url` an error may carry (as given, normalized, without userinfo), longest first. */
function spellings(url: string): string[] {
  const forms = new Set([url]);
  try {
    const parsed = new URL(url);
    forms.add(parsed.href);
    parsed.username = "";
    parsed.password = "";
    forms.add(parsed.href);
    if (parsed.pathname.length > 1 || parsed.search.length > 0) forms.add(`${parsed.pathname}${parsed.search}`);
  } catch {
    // not a URL: only the text as given is known
  }
  return [...forms].filter((form) => form.length > 0).sort((a, b) => b.length - a.length);
}

/** A function that replaces every spelling of `url` in a text with {@link redactUrl}'s form (the logger's last line of defence uses it too). */
export function urlScrubber(url: string): (text: string) => string {
  const forms = spellings(url);
  const safe = redactUrl(url);
  return (text) => forms.reduce((result, form) => (result.includes(form) ? result.split(form).join(safe) : result), text);
}

/** Replaces every spelling of `url` in `error` and its causes (messages, details, stacks, `url` fields), in place. */
export function redactError<E>(error: E, url: string): E {
  const scrub = urlScrubber(url);
  const seen = new Set<object>();
  let current: unknown = error;
  for (let depth = 0; depth < 16 && typeof current === "object" && current !== null && !seen.has(current); depth++) {
    seen.add(current);
    const record = current as Record<string, unknown>;
    for (const field of ["message", "shortMessage", "details", "stack", "url", "body"]) {
      const value = record[field];
      if (typeof value === "string") record[field] = scrub(value);
    }
    if (Array.isArray(record.metaMessages)) record.metaMessages = record.metaMessages.map((line) => (typeof line === "string" ? scrub(line) : line));
    current = record.cause;
  }
  return error;
}

/** `transport` whose every error is scrubbed of `rpcUrl` (see {@link redactError}) before it is thrown. */
export function redactRpcErrors<T extends Transport>(transport: T, rpcUrl: string): T {
  return ((parameters: Parameters<T>[0]) => {
    const inner = transport(parameters);
    const request = (async (args: unknown, options: unknown) => {
      try {
        return await (inner.request as (args: unknown, options: unknown) => Promise<unknown>)(args, options);
      } catch (error) {
        throw redactError(error, rpcUrl);
      }
    }) as typeof inner.request;
    return { ...inner, request };
  }) as T;
}
