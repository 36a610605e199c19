/**
 * The relayer as a process, configured from the local stack file that `npm start` writes:
 *
 *   node relayer/src/main.ts --local-file .agentmesh/local.json --port 8787 --db .agentmesh/relayer.db
 *
 * The relayer's gas key is the stack's `relayer` account; it serves every seeded provider, whose
 * receipt-signer keys the file holds (dev-only keys).
 */
import { parseArgs } from "node:util";
import { loadLocalStack } from "@agentmesh/sdk";
import { ChainConfigurationError, startRelayer } from "./server.ts";
import { SettlementOptionsError } from "./core/settlement.ts";
import { TxManagerOptionsError } from "./tx-manager.ts";
import { log } from "./log.ts";

const { values } = parseArgs({
  options: {
    "local-file": { type: "string", default: ".agentmesh/local.json" },
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8787" },
    db: { type: "string", default: ".agentmesh/relayer.db" },
    "settle-batch": { type: "string", default: "100" },
    "settle-age-ms": { type: "string", default: "30000" },
    /** Blocks a transaction must be under before it counts (default: 1 on the local chain, else 3). */
    confirmations: { type: "string" },
    /** The most the relayer pays per gas, in gwei (default 50). */
    "max-fee-gwei": { type: "string", default: "50" },
  },
});

function integerOption(name: string, value: string, min: number, max: number): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
    console.error(`--${name} must be an integer from ${min} to ${max}, got "${value}"`);
    process.exit(2);
  }
  return parsed;
}

const stack = await loadLocalStack(values["local-file"]);
const signerKeys = stack.providers.map((provider) => {
  const account = Object.values(stack.accounts).find((candidate) => candidate.address === provider.receiptSigner);
  if (account === undefined) throw new Error(`${values["local-file"]} has no key for provider ${provider.id}'s receipt signer`);
  return account.privateKey;
});
const relayerAccount = stack.accounts.relayer;
if (relayerAccount === undefined) throw new Error(`${values["local-file"]} has no "relayer" account`);

const relayer = await startRelayer({
  host: values.host,
  port: integerOption("port", values.port, 0, 65_535),
  databasePath: values.db,
  chain: {
    rpcUrl: stack.rpcUrl,
    chainId: stack.chainId,
    escrow: stack.contracts.ComputeEscrow,
    registry: stack.contracts.ProviderRegistry,
    marketplace: stack.contracts.AgentMarketplace,
    relayerPrivateKey: relayerAccount.privateKey,
  },
  receiptSignerKeys: signerKeys,
  indexer: { startBlock: stack.startBlock },
  settlement: {
    maxBatch: Number(values["settle-batch"]), // checked against the escrow's MAX_BATCH
    maxAgeMs: integerOption("settle-age-ms", values["settle-age-ms"], 0, 86_400_000),
  },
  transactions: {
    ...(values.confirmations !== undefined && { confirmations: integerOption("confirmations", values.confirmations, 1, 1_000) }),
    maxFeePerGas: BigInt(integerOption("max-fee-gwei", values["max-fee-gwei"], 1, 100_000)) * 1_000_000_000n,
  },
}).catch((error: unknown) => {
  if (!(error instanceof TxManagerOptionsError)) throw error;
  console.error(error.message);
  process.exit(2);
});
log.info({ url: relayer.url }, `relayer listening on ${relayer.url} (not ready until the chain answers and the indexer catches up: GET /readyz)`);
relayer.ready.then(
  () => log.info("relayer ready"),
  async (error: unknown) => {
    if (stopping) return;
    // The chain refuses this configuration (wrong chain id, a batch above the escrow's MAX_BATCH).
    // A refused configuration is a usage error for the person who ran the command: plain text on stderr.
    if (error instanceof SettlementOptionsError || error instanceof ChainConfigurationError) console.error(error.message);
    else log.fatal({ err: error }, "relayer start-up failed");
    await relayer.close();
    process.exit(2);
  },
);

// SIGTERM/SIGINT drain: calls in flight finish and signed vouchers are settled before the exit. A
// second signal exits at once.
let stopping = false;
const stop = () => {
  if (stopping) process.exit(1);
  stopping = true;
  relayer.close().then(
    () => process.exit(0),
    (error: unknown) => {
      log.fatal({ err: error }, "relayer shutdown failed");
      process.exit(1);
    },
  );
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
