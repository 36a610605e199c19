#!/usr/bin/env node
/**
 * The AgentMesh command line.
 *
 *   agentmesh proxy [--local-file .agentmesh/local.json] [--port 8788] [--session-max-spend 5]
 *                   [--token-file .agentmesh/proxy-token] [--allow-origin http://localhost:5173 ...]
 *
 * `proxy` serves an OpenAI-compatible endpoint on 127.0.0.1 for the agent of the stack file (its
 * key comes from AGENTMESH_AGENT_KEY, else the file's dev-only `agent` account): point any OpenAI
 * client at http://127.0.0.1:8788/v1 with the proxy's token as its API key. The token comes from
 * AGENTMESH_PROXY_TOKEN, else is generated at start; either way it is printed and written to the
 * token file (mode 0600). Web pages may call the proxy only from an origin given with
 * --allow-origin.
 */
import { chmod, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseUnits, type Hex } from "viem";
import { loadLocalStack } from "./deployment.ts";
import { startAgentProxy } from "./proxy.ts";

const [command, ...rest] = process.argv.slice(2);
if (command !== "proxy") {
  console.error(
    "usage: agentmesh proxy [--local-file .agentmesh/local.json] [--port 8788] [--session-max-spend 5] [--token-file .agentmesh/proxy-token] [--allow-origin <origin>]...",
  );
  process.exit(2);
}
const { values } = parseArgs({
  args: rest,
  options: {
    "local-file": { type: "string", default: ".agentmesh/local.json" },
    port: { type: "string", default: "8788" },
    "session-max-spend": { type: "string", default: "5" },
    "token-file": { type: "string", default: ".agentmesh/proxy-token" },
    "allow-origin": { type: "string", multiple: true, default: [] },
  },
});
for (const origin of values["allow-origin"]) {
  // An origin is scheme://host[:port], exactly as a browser sends it.
  if (!/^https?:\/\/[^/?#\s]+$/.test(origin)) {
    console.error(`--allow-origin must be an origin such as http://localhost:5173, got "${origin}"`);
    process.exit(2);
  }
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65_535) {
  console.error(`--port must be a TCP port number, got "${values.port}"`);
  process.exit(2);
}
if (!/^\d+(\.\d{1,6})?$/.test(values["session-max-spend"])) {
  console.error(`--session-max-spend must be a USDC amount such as 5 or 0.25, got "${values["session-max-spend"]}"`);
  process.exit(2);
}
const stack = await loadLocalStack(values["local-file"]);
if (stack.relayerUrl === undefined) throw new Error(`${values["local-file"]} names no relayer: is \`npm start\` running?`);
const privateKey = (process.env.AGENTMESH_AGENT_KEY as Hex | undefined) ?? stack.accounts.agent.privateKey;

const proxy = await startAgentProxy({
  relayerUrl: stack.relayerUrl,
  privateKey,
  chainId: stack.chainId,
  escrow: stack.contracts.ComputeEscrow,
  budgetId: BigInt(stack.budgetId),
  sessionMaxSpend: parseUnits(values["session-max-spend"], 6),
  port,
  token: process.env.AGENTMESH_PROXY_TOKEN,
  allowedOrigins: values["allow-origin"],
});
const tokenFile = values["token-file"];
await mkdir(path.dirname(tokenFile), { recursive: true });
await writeFile(tokenFile, `${proxy.token}\n`, { mode: 0o600 });
await chmod(tokenFile, 0o600); // writeFile's mode applies only to a new file
console.log(`agent proxy on ${proxy.url}/v1 (relayer ${stack.relayerUrl})`);
console.log(`its token (the OpenAI client's apiKey), also in ${tokenFile}: ${proxy.token}`);
const stop = () => void proxy.close().then(() => process.exit(0));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
