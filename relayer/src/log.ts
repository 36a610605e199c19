import { pino, type DestinationStream, type Logger, type LoggerOptions } from "pino";
import { urlScrubber } from "./redact.ts";

/**
 * The relayer's one logger: structured JSON lines (pino), configured here and nowhere else.
 *
 * - Level: `LOG_LEVEL` (trace, debug, info, warn, error, fatal, silent), default `info`;
 *   {@link configureLogger} replaces it (tests: `configureLogger({ level: "silent" })`, or a
 *   destination stream to capture the lines).
 * - Secrets: pino's `redact` censors the fields that carry them wherever they are logged
 *   ({@link REDACTED_PATHS}); and every RPC URL the relayer uses is registered with
 *   {@link redactUrlInLogs}, so that no line can show it, whatever field it hides in (viem's errors
 *   are already scrubbed where they are thrown: see redact.ts; this is the last line of defence).
 *
 * Modules log through the live binding {@link log}; each HTTP request logs through a child bound to
 * its request id.
 */

/** Fields censored in every log line (one level of nesting with `*`; headers by their lower-case names). */
export const REDACTED_PATHS = [
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  'headers["payment-signature"]',
  '*.headers["payment-signature"]',
  'headers["x-payment"]',
  '*.headers["x-payment"]',
  'headers["proxy-authorization"]',
  '*.headers["proxy-authorization"]',
  "apiKey",
  "*.apiKey",
  "key",
  "*.key",
  "privateKey",
  "*.privateKey",
  "relayerPrivateKey",
  "*.relayerPrivateKey",
  "receiptSignerKeys",
  "*.receiptSignerKeys",
  "paymentSignature",
  "*.paymentSignature",
  "rpcUrl",
  "*.rpcUrl",
];

/** Scrubbers of the registered RPC URLs, by URL, applied to every line written. */
const scrubbers = new Map<string, (text: string) => string>();

export interface LoggerConfig {
  /** Minimum level written (default: `LOG_LEVEL`, else `info`). */
  level?: string;
  /** Where lines go (default: stdout). */
  destination?: DestinationStream;
}

/** A logger with the relayer's redaction; see {@link configureLogger} to make it the relayer's. */
export function createLogger(config: LoggerConfig = {}): Logger {
  const level = config.level ?? process.env.LOG_LEVEL ?? "info";
  const levels = [...Object.keys(pino.levels.values), "silent"];
  if (!levels.includes(level)) throw new Error(`the log level (LOG_LEVEL) must be one of ${levels.join(", ")}, got "${level}"`);
  const options: LoggerOptions = {
    level,
    base: { service: "agentmesh-relayer" },
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    hooks: {
      streamWrite: (line) => {
        for (const scrub of scrubbers.values()) line = scrub(line);
        return line;
      },
    },
  };
  return config.destination === undefined ? pino(options) : pino(options, config.destination);
}

/** The relayer's logger (a live binding: {@link configureLogger} replaces it for every module). */
export let log: Logger = createLogger();

/** Replaces the relayer's logger (level, destination); returns the new one. */
export function configureLogger(config: LoggerConfig): Logger {
  log = createLogger(config);
  return log;
}

/** Keeps `url` (an RPC URL, which may carry an API key) and its other spellings out of every log line. */
export function redactUrlInLogs(url: string): void {
  if (!scrubbers.has(url)) scrubbers.set(url, urlScrubber(url));
}
