#!/usr/bin/env node
/**
 * The relayer as a process (`agentmesh-relayer`, `npm run relayer`), configured from flags and the
 * environment (see `config.ts` and `.env.example`):
 *
 *   agentmesh-relayer --network base-sepolia --rpc https://… --gas-keystore gas.json --signer-keystore signer.json
 *   node relayer/src/main.ts --local-file .agentmesh/local.json --port 8787 --db .agentmesh/relayer.db
 *
 * On the dev stack (the default) the gas key is the stack's `relayer` account and it serves every
 * seeded provider, whose receipt-signer keys the file holds (dev-only keys). A bad or missing value
 * exits with status 2 and names the flag or variable.
 */
import { ChainConfigurationError, startRelayer } from "./server.ts";
import { ConfigError, readRelayerConfig } from "./config.ts";
import { SettlementOptionsError } from "./core/settlement.ts";
import { TxManagerOptionsError } from "./tx-manager.ts";
import { log } from "./log.ts";

const options = await readRelayerConfig(process.argv.slice(2)).catch((error: unknown) => {
  if (!(error instanceof ConfigError)) throw error;
  console.error(error.message);
  process.exit(2);
});

const relayer = await startRelayer(options).catch((error: unknown) => {
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
