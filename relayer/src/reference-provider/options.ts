import { z } from "zod";

/** The largest request body accepted, in bytes (1 MiB). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** The largest `max_tokens` / `max_completion_tokens` accepted. */
export const MAX_TOKENS_LIMIT = 16_384;

/** The most connections served at once; further ones are refused. */
export const MAX_CONNECTIONS = 256;

/** How long a `timeout` fault holds a request before dropping its connection. */
export const HANG_LIMIT_MS = 10 * 60_000;

/**
 * Process-wide fault injection. Every valid chat completion request without an
 * `x-reference-fault` header draws one number from a seeded generator and gets
 * at most one fault; the rates are probabilities and may add up to at most 1.
 */
export interface FaultOptions {
  /** Probability of answering HTTP 500 (default 0). */
  errorRate?: number;
  /** Probability of never answering (default 0). */
  timeoutRate?: number;
  /** Probability of dropping the connection halfway through the response (default 0). */
  cutStreamRate?: number;
  /** Probability of adding `slowLatencyMs` before the first token (default 0). */
  slowRate?: number;
  /** Extra latency of the `slow` fault, in milliseconds (default 2000). */
  slowLatencyMs?: number;
  /** Seed of the generator that draws faults (default `"agentmesh-faults"`). */
  seed?: string;
}

/** How to run a reference provider; every field is optional. */
export interface ReferenceProviderOptions {
  /** Interface to listen on (default `127.0.0.1`). */
  host?: string;
  /** Port to listen on; 0 picks a free one (default 0). */
  port?: number;
  /** Model ids served (default `["agentmesh-small", "agentmesh-large"]`). */
  models?: readonly string[];
  /** Delay before the first token, in milliseconds (default 0). */
  firstTokenLatencyMs?: number;
  /** Output pace after the first token; 0 means as fast as possible (default 0). */
  tokensPerSecond?: number;
  /** Completion length limit when a request sets none (default 1024). */
  defaultMaxTokens?: number;
  /** Process-wide fault injection (default: none). */
  faults?: FaultOptions;
  /** Seed mixed into every generated output (default `"agentmesh-reference"`). */
  seed?: string;
}

const milliseconds = z.number().int().min(0).max(HANG_LIMIT_MS);
const probability = z.number().min(0).max(1);

const faultsSchema = z
  .strictObject({
    errorRate: probability.default(0),
    timeoutRate: probability.default(0),
    cutStreamRate: probability.default(0),
    slowRate: probability.default(0),
    slowLatencyMs: milliseconds.default(2000),
    seed: z.string().default("agentmesh-faults"),
  })
  .refine((faults) => faults.errorRate + faults.timeoutRate + faults.cutStreamRate + faults.slowRate <= 1, {
    message: "the fault rates must add up to at most 1",
  });

const optionsSchema = z.strictObject({
  host: z.string().min(1).default("127.0.0.1"),
  port: z.number().int().min(0).max(65_535).default(0),
  models: z
    .array(z.string().min(1))
    .min(1)
    .refine((models) => new Set(models).size === models.length, { message: "model ids must be unique" })
    .default(["agentmesh-small", "agentmesh-large"]),
  firstTokenLatencyMs: milliseconds.default(0),
  tokensPerSecond: z.number().min(0).max(1_000_000).default(0),
  defaultMaxTokens: z.number().int().min(1).max(MAX_TOKENS_LIMIT).default(1024),
  faults: faultsSchema.prefault({}),
  seed: z.string().default("agentmesh-reference"),
});

/** {@link ReferenceProviderOptions} with every default filled in. */
export type ResolvedOptions = z.output<typeof optionsSchema>;

/** {@link FaultOptions} with every default filled in. */
export type ResolvedFaultOptions = ResolvedOptions["faults"];

/**
 * Validates options and fills in the defaults.
 *
 * @throws {RangeError} naming every invalid option.
 */
export function resolveOptions(options: ReferenceProviderOptions): ResolvedOptions {
  const result = optionsSchema.safeParse(options);
  if (!result.success) {
    throw new RangeError(`Invalid reference provider options:\n${z.prettifyError(result.error)}`);
  }
  return result.data;
}
