/**
 * Command line entry of the reference provider. Prints the API base URL on
 * stdout once listening, and stops cleanly on SIGINT or SIGTERM.
 *
 * @example node relayer/src/reference-provider/main.ts --port 9001 --first-token-latency-ms 20 --tokens-per-second 0
 * @module
 */
import { parseArgs } from "node:util";
import { startReferenceProvider, type ReferenceProviderOptions } from "./server.ts";

const USAGE = `Usage: node relayer/src/reference-provider/main.ts [options]

  --host <host>                  interface to listen on (default 127.0.0.1)
  --port <port>                  port to listen on, 0 for any free one (default 0)
  --models <id,id,...>           model ids served (default agentmesh-small,agentmesh-large)
  --first-token-latency-ms <ms>  delay before the first token (default 0)
  --tokens-per-second <n>        output pace, 0 for as fast as possible (default 0)
  --default-max-tokens <n>       completion limit when a request sets none (default 1024)
  --seed <text>                  seed of the generated output
  --error-rate <p>               probability of an HTTP 500 per request (default 0)
  --timeout-rate <p>             probability of never answering (default 0)
  --cut-stream-rate <p>          probability of dropping the connection mid-response (default 0)
  --slow-rate <p>                probability of extra latency (default 0)
  --slow-latency-ms <ms>         extra latency of a slow response (default 2000)
  --fault-seed <text>            seed of the fault draws
  --help                         show this help

A request can also ask for a fault with the header x-reference-fault: error | timeout | cut-stream | slow.`;

try {
  const { values: flags } = parseFlags();
  if (flags.help) {
    console.log(USAGE);
  } else {
    const provider = await startReferenceProvider(toOptions(flags));
    console.log(provider.url);
    const stop = (): void => void provider.close();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  }
} catch (error) {
  console.error(`${error instanceof Error ? error.message : String(error)}\nRun with --help to see the options.`);
  process.exitCode = 1;
}

function parseFlags() {
  const text = { type: "string" } as const;
  return parseArgs({
    strict: true,
    allowPositionals: false,
    options: {
      host: text,
      port: text,
      models: text,
      "first-token-latency-ms": text,
      "tokens-per-second": text,
      "default-max-tokens": text,
      seed: text,
      "error-rate": text,
      "timeout-rate": text,
      "cut-stream-rate": text,
      "slow-rate": text,
      "slow-latency-ms": text,
      "fault-seed": text,
      help: { type: "boolean" },
    },
  });
}

function toOptions(flags: ReturnType<typeof parseFlags>["values"]): ReferenceProviderOptions {
  return {
    host: flags.host,
    port: toNumber(flags.port),
    models: flags.models?.split(",").map((model) => model.trim()),
    firstTokenLatencyMs: toNumber(flags["first-token-latency-ms"]),
    tokensPerSecond: toNumber(flags["tokens-per-second"]),
    defaultMaxTokens: toNumber(flags["default-max-tokens"]),
    seed: flags.seed,
    faults: {
      errorRate: toNumber(flags["error-rate"]),
      timeoutRate: toNumber(flags["timeout-rate"]),
      cutStreamRate: toNumber(flags["cut-stream-rate"]),
      slowRate: toNumber(flags["slow-rate"]),
      slowLatencyMs: toNumber(flags["slow-latency-ms"]),
      seed: flags["fault-seed"],
    },
  };
}

/** The number a flag spells, `NaN` (rejected by the option checks) if none. */
function toNumber(flag: string | undefined): number | undefined {
  if (flag === undefined) return undefined;
  return flag.trim() === "" ? Number.NaN : Number(flag);
}
