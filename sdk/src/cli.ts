#!/usr/bin/env node
/**
 * The AgentMesh command line (`agentmesh <command>`): dispatches to the commands in `cli/`.
 * Exit status: 0 done, 2 bad or missing input (nothing sent), 1 refused by the chain or failed.
 * See the "Command line" section of sdk/README.md.
 */
import { describeError } from "./contract-errors.ts";
import { UsageError } from "./cli/options.ts";

type Command = (args: readonly string[]) => Promise<void>;

/** Each command's module is loaded only when it runs, so that a run starts quickly. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  balance: async () => (await import("./cli/ledger.ts")).balance,
  withdraw: async () => (await import("./cli/ledger.ts")).withdraw,
  budget: async () => (await import("./cli/budget.ts")).budget,
  provider: async () => (await import("./cli/provider.ts")).provider,
  session: async () => (await import("./cli/session.ts")).session,
  agent: async () => (await import("./cli/agent.ts")).agent,
  keystore: async () => (await import("./cli/keystore.ts")).keystore,
  proxy: async () => (await import("./cli/proxy.ts")).proxy,
};

const USAGE = `usage: agentmesh <command> [options]

commands:
  balance [--address 0x…]                   ledger balance and wallet USDC
  withdraw <amount> [--to 0x…]              move ledger balance to a wallet
  budget create|top-up|allow|deny|refund|show
  provider register|update|models|stake|unstake|withdraw|delegate-signer|show
  session list [--budget <id>] [--agent 0x…] | session close <sessionId>
  agent publish|list|call                   list an agent for sale; the listings; pay one over x402
  keystore new|import|address <file>
  proxy                                     the local OpenAI-compatible agent proxy

chain options: --network base-sepolia|base|local | --deployment <file>, --rpc <url> (or AGENTMESH_RPC_URL),
  --local-file <stack file> (with --network local), --json
keys: AGENTMESH_PRIVATE_KEY, or --keystore <file> with AGENTMESH_KEYSTORE_PASSWORD or a prompt`;

const [command, ...rest] = process.argv.slice(2);
const load = command === undefined || !Object.hasOwn(COMMANDS, command) ? undefined : COMMANDS[command];
const json = rest.includes("--json");
if (load === undefined) {
  console.error(command === undefined || command === "help" || command === "--help" ? USAGE : `unknown command "${command}"\n${USAGE}`);
  process.exit(command === "help" || command === "--help" ? 0 : 2);
}
try {
  await (await load())(rest);
} catch (error) {
  const usage = error instanceof UsageError;
  const message = usage ? error.message : describeError(error);
  if (json) console.log(JSON.stringify({ error: message }));
  console.error(`agentmesh ${command}: ${message}`);
  process.exitCode = usage ? 2 : 1;
}
