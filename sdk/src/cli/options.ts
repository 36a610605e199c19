import { parseArgs, type ParseArgsConfig } from "node:util";
import { z } from "zod";

/** A bad or missing option: the command line exits with status 2 and this message, sending nothing. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The chain id each `--network` stands for (`local` reads the stack file instead). */
export const NETWORK_CHAIN_IDS = { "base-sepolia": 84532, base: 8453 } as const;

/** Public RPC endpoints used when neither `--rpc` nor AGENTMESH_RPC_URL is given. */
export const DEFAULT_RPC_URLS: Record<number, string> = { 84532: "https://sepolia.base.org", 8453: "https://mainnet.base.org" };

/** Whether `text` is an absolute http: or https: URL. */
export function isHttpUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === "http:" || protocol === "https:";
  } catch {
    return false;
  }
}

/** The options every chain command takes, as parseArgs reads them. */
export const COMMON_OPTIONS = {
  network: { type: "string" },
  deployment: { type: "string" },
  "local-file": { type: "string" },
  rpc: { type: "string" },
  keystore: { type: "string" },
  json: { type: "boolean", default: false },
} as const satisfies ParseArgsConfig["options"];

/** Where the contracts are, how to reach the chain and how to print: validated once for every command. */
export const commonSchema = z
  .object({
    network: z.enum(["base-sepolia", "base", "local"], { message: "must be base-sepolia, base or local" }).optional(),
    deployment: z.string().min(1, "must be a file path").optional(),
    "local-file": z.string().min(1, "must be a file path").default(".agentmesh/local.json"),
    rpc: z.string().refine(isHttpUrl, "must be an http(s) URL").optional(),
    keystore: z.string().min(1, "must be a file path").optional(),
    json: z.boolean(),
  })
  .refine((options) => (options.network === undefined) !== (options.deployment === undefined), {
    message: "give exactly one of --network base-sepolia|base|local and --deployment <file>",
    path: ["network"],
  });

export type CommonOptions = z.infer<typeof commonSchema>;

/** Zod's issues as "--field message", joined by "; ". */
export function describeIssues(error: z.ZodError): string {
  const lines = error.issues.map((issue) => {
    const field = issue.path.join(".");
    return field === "" ? issue.message : `--${field} ${issue.message}`;
  });
  return [...new Set(lines)].join("; ");
}

/**
 * Reads a command's arguments: the common options plus the command's own, and its positionals.
 * Unknown options and bad values become a {@link UsageError} naming the field.
 */
export function parseCommand<const T extends NonNullable<ParseArgsConfig["options"]>>(
  args: readonly string[],
  options: T,
  env: NodeJS.ProcessEnv = process.env,
) {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: { ...COMMON_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const values = parsed.values as Record<string, unknown>;
  const common = commonSchema.safeParse({ ...values, rpc: values.rpc ?? env.AGENTMESH_RPC_URL });
  if (!common.success) throw new UsageError(describeIssues(common.error));
  return { common: common.data, values: parsed.values, positionals: parsed.positionals };
}

/** Validates one value with `schema`, naming `field` in the error ("is required" when it is missing). */
export function parseField<T>(field: string, schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new UsageError(`${field} ${value === undefined ? "is required" : (result.error.issues[0]?.message ?? "is invalid")}`);
  return result.data;
}

const USDC_AMOUNT = /^\d+(\.\d+)?$/;

/**
 * A USDC amount typed by a person ("12", "0.25") as atomic units (6 decimals). More than six decimals
 * is refused rather than rounded, as are zero (unless `allowZero`), signs and exponents.
 *
 * @example
 * parseUsdcAmount("amount", "1.5"); // 1_500_000n
 */
export function parseUsdcAmount(field: string, text: string | undefined, { allowZero = false } = {}): bigint {
  if (text === undefined || !USDC_AMOUNT.test(text)) throw new UsageError(`${field} must be a USDC amount such as 12 or 0.25, got "${text ?? ""}"`);
  const [whole, fraction = ""] = text.split(".");
  if (fraction.length > 6) throw new UsageError(`${field} has ${fraction.length} decimals, but USDC has 6: "${text}"`);
  const atomic = BigInt(whole) * 1_000_000n + BigInt(fraction.padEnd(6, "0"));
  if (atomic === 0n && !allowZero) throw new UsageError(`${field} must be above 0`);
  if (atomic >= 2n ** 128n) throw new UsageError(`${field} is too large`);
  return atomic;
}

/** A 0x address, checksummed or not. */
export const addressSchema = z.string().regex(/^0x[0-9a-fA-F]{40}$/, "must be a 0x-prefixed 20-byte hex address") as z.ZodType<`0x${string}`>;

/** A positive integer id such as a budget or provider id. */
export const idSchema = z
  .string()
  .regex(/^[1-9]\d{0,30}$/, "must be a positive whole number")
  .transform((text) => BigInt(text));
