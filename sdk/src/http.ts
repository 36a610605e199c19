import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { ErrorCode, ForeignErrorCode } from "./protocol.ts";

/**
 * HTTP plumbing shared by the agent proxy, the relayer and the reference provider (as
 * `@agentmesh/sdk/http`): OpenAI-shaped errors, JSON responses and bounded JSON bodies.
 */

/**
 * An error answered as an OpenAI-shaped JSON body:
 * `{ "error": { "message", "type", "param", "code" } }`.
 */
export class ApiError extends Error {
  readonly status: number;
  /** One of the relayer's codes (checked when written), or another server's passed on. */
  readonly code: ErrorCode | ForeignErrorCode;
  readonly param: string | null;
  readonly type: string;
  /** Extra response headers, such as `Allow` for a 405. */
  readonly headers: OutgoingHttpHeaders;

  constructor(
    status: number,
    code: ErrorCode | ForeignErrorCode,
    message: string,
    details: { param?: string; headers?: OutgoingHttpHeaders; type?: string } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.param = details.param ?? null;
    this.headers = details.headers ?? {};
    this.type = details.type ?? (status < 500 ? "invalid_request_error" : "server_error");
  }

  /** The JSON body of the error response. */
  toJSON(): { error: { message: string; type: string; param: string | null; code: string } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A 400 `invalid_request_error`. */
export const badRequest = (message: string, code: ErrorCode | ForeignErrorCode = "invalid_request") => new ApiError(400, code, message);

/** Sends a complete JSON response (bigints as decimal strings). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  let payload: string;
  try {
    payload = JSON.stringify(body); // the fast path: most bodies hold no bigint
  } catch {
    payload = JSON.stringify(body, (_key, value) => (typeof value === "bigint" ? value.toString() : value));
  }
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(payload) });
  res.end(payload);
}

/**
 * Sends an {@link ApiError}. If a response is already under way, an event stream ends with the
 * error as its last event (OpenAI's clients throw it); any other response is cut off.
 */
export function sendError(res: ServerResponse, error: ApiError): void {
  if (res.headersSent) {
    if (String(res.getHeader("content-type")).startsWith("text/event-stream") && !res.writableEnded) res.end(`data: ${JSON.stringify(error)}\n\n`);
    else res.destroy();
    return;
  }
  sendJson(res, error.status, error, error.headers);
}

/** Deepest nesting of arrays and objects accepted in a JSON body (OpenAI requests need a handful). */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether `body` (JSON text as bytes) nests arrays and objects deeper than `maxDepth`. One pass
 * over the bytes, before parsing: a deep body is refused before it costs a parse, and before any
 * recursive walk (a serializer, a schema) could overflow the stack on it.
 */
export function nestedDeeperThan(body: Uint8Array, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const byte = body[i];
    if (inString) {
      if (byte === 0x5c) i++; // backslash: skip the escaped byte
      else if (byte === 0x22) inString = false;
    } else if (byte === 0x22) {
      inString = true;
    } else if (byte === 0x5b || byte === 0x7b) {
      if (++depth > maxDepth) return true;
    } else if (byte === 0x5d || byte === 0x7d) {
      depth--;
    }
  }
  return false;
}

/** Whether a Content-Type names JSON (`application/json`, or any `+json` type), whatever its parameters. */
function isJsonType(contentType: string): boolean {
  const type = contentType.split(";")[0].trim().toLowerCase();
  return type === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(type);
}

/**
 * Reads a request body of at most `maxBytes` bytes and parses it as JSON.
 *
 * A body that is declared or turns out to be larger is rejected with a 413 as soon as that is
 * known, without buffering the rest; the connection is then closed after the error response, so
 * the unread remainder is dropped. A body declared as anything but JSON is refused unread (415):
 * browsers send `text/plain` and form bodies cross-origin without asking, so accepting them would
 * let any web page post to a local server. A body with no Content-Type is read as JSON.
 *
 * @throws {ApiError} 415 `unsupported_media_type`, 413 `request_too_large`, 400 `invalid_json`
 * or 400 `json_too_deep` (nesting deeper than {@link MAX_JSON_DEPTH}).
 */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const contentType = req.headers["content-type"];
  if (contentType !== undefined && !isJsonType(contentType)) {
    throw new ApiError(415, "unsupported_media_type", `The request body must be JSON (Content-Type: application/json), not ${contentType.slice(0, 100)}.`, {
      headers: { connection: "close" },
    });
  }
  const body = await readBody(req, maxBytes);
  if (nestedDeeperThan(body, MAX_JSON_DEPTH)) {
    throw new ApiError(400, "json_too_deep", `The request body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels.`);
  }
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    throw new ApiError(400, "invalid_json", "The request body is not valid JSON.");
  }
}

function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const tooLarge = () =>
    new ApiError(413, "request_too_large", `The request body exceeds ${maxBytes} bytes.`, {
      headers: { connection: "close" },
    });
  if (Number(req.headers["content-length"]) > maxBytes) return Promise.reject(tooLarge());

  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stopReading = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        stopReading();
        reject(tooLarge());
      } else {
        chunks.push(chunk);
      }
    };
    const onEnd = (): void => {
      stopReading();
      resolve(Buffer.concat(chunks));
    };
    const onError = (error: Error): void => {
      stopReading();
      reject(error);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

/** The bearer token of a request, if any. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  return /^Bearer\s+(\S+)$/i.exec(header)?.[1];
}
