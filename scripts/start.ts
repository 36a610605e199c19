/**
 * `npm start`: the whole local stack on 127.0.0.1 — a Hardhat chain (EDR, OP-stack chain type) with
 * the contracts deployed and seeded, two reference providers, the relayer, the demo agent's
 * OpenAI-compatible proxy and the dApp — until Ctrl-C, which stops everything it started. Writes
 * `.agentmesh/local.json` for the SDK, the CLI and the UI.
 *
 *   npm start -- --chain-port 8545 --relayer-port 8787 --proxy-port 8788 --provider-ports 9001,9002 --ui-port 5173 --out .agentmesh/local.json
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { startLocalStack } from "./lib/local-stack.ts";

const { values } = parseArgs({
  options: {
    "chain-port": { type: "string", default: "8545" },
    "relayer-port": { type: "string", default: "8787" },
    "proxy-port": { type: "string", default: "8788" },
    "provider-ports": { type: "string", default: "9001,9002" },
    "ui-port": { type: "string", default: "5173" },
    out: { type: "string", default: ".agentmesh/local.json" },
    verbose: { type: "boolean", default: false },
  },
});

function port(name: string, value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > 65_535) {
    console.error(`--${name} must be a TCP port number, got "${value}"`);
    process.exit(2);
  }
  return parsed;
}

const providerPorts = values["provider-ports"].split(",").map((value) => port("provider-ports", value.trim()));
if (providerPorts.length !== 2) {
  console.error(`--provider-ports takes two ports, got "${values["provider-ports"]}"`);
  process.exit(2);
}

console.log("Starting the AgentMesh local stack…");
const running = await startLocalStack({
  chainPort: port("chain-port", values["chain-port"]),
  relayerPort: port("relayer-port", values["relayer-port"]),
  proxyPort: port("proxy-port", values["proxy-port"]),
  providerPorts: [providerPorts[0], providerPorts[1]],
  localFile: path.resolve(values.out),
  verbose: values.verbose,
  ui: { port: port("ui-port", values["ui-port"]), mode: "dev" },
});
const { stack, relayer, proxy } = running;

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  console.log("\nStopping…");
  await running.stop();
  process.exit(0);
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

console.log(`
AgentMesh local stack is up.
  chain      ${stack.rpcUrl} (chain id ${stack.chainId})
  providers  ${stack.providers.map((provider) => `${provider.id}: ${provider.endpoint}`).join("   ")}
  relayer    ${relayer.url}  (GET /healthz, /v1/models, /v1/providers, /metrics)
  agent      ${proxy.url}/v1  (OpenAI-compatible proxy of the demo agent; API key: ${proxy.token})
  dApp       ${running.uiUrl}  (open it in a browser; connect "Local dev account" to act as any demo account)
  stack file ${running.localFile}  (contracts, demo accounts with dev-only keys, budget ${stack.budgetId})

Try it:
  curl -s ${proxy.url}/v1/chat/completions -H 'content-type: application/json' -H 'authorization: Bearer ${proxy.token}' \\
    -d '{"model":"agentmesh-small","messages":[{"role":"user","content":"Hello!"}]}'

  // any OpenAI SDK, e.g. Node:
  import OpenAI from "openai";
  const openai = new OpenAI({ baseURL: "${proxy.url}/v1", apiKey: "${proxy.token}" });
  const reply = await openai.chat.completions.create({ model: "agentmesh-large", messages: [{ role: "user", content: "Hi" }] });
  console.log(reply.choices[0].message.content, reply.cost, reply.receipt);

  node sdk/examples/chat.ts        # the SDK directly: open a session, chat, stream, close on-chain

Press Ctrl-C to stop.`);
