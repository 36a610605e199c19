import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";

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
  readonly code: string;
  readonly param: string | null;
  readonly type: string;
  /** Extra response headers, such as `Allow` for a 405. */
  readonly headers: OutgoingHttpHeaders;

  constructor(
    status: number,
    code: string,
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
export const badRequest = (message: string, code = "invalid_request") => new ApiError(400, code, message);

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

/** Sends an {@link ApiError}; if a response is already under way, drops the connection instead. */
export function sendError(res: ServerResponse, error: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, error.status, error, error.headers);
}

/**
 * Reads a request body of at most `maxBytes` bytes and parses it as JSON.
 *
 * A body that is declared or turns out to be larger is rejected with a 413 as soon as that is
 * known, without buffering the rest; the connection is then closed after the error response, so
 * the unread remainder is dropped.
 *
 * @throws {ApiError} 413 `request_too_large` or 400 `invalid_json`.
 */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const body = await readBody(req, maxBytes);
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
