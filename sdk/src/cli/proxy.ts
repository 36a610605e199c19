import { chmod, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import type { Hex } from "viem";
import { DeploymentFileError, loadLocalStack } from "../deployment.ts";
import { startAgentProxy } from "../proxy.ts";
import { parseUsdcAmount, UsageError } from "./options.ts";

const USAGE =
  "usage: agentmesh proxy [--local-file .agentmesh/local.json] [--port 8788] [--session-max-spend 5] [--token-file .agentmesh/proxy-token] [--allow-origin <origin>]...";

/**
 * `agentmesh proxy`: an OpenAI-compatible endpoint on 127.0.0.1 for the agent of the stack file (its
 * key comes from AGENTMESH_AGENT_KEY, else the file's dev-only `agent` account): point any OpenAI
 * client at http://127.0.0.1:8788/v1 with the proxy's token as its API key. The token comes from
 * AGENTMESH_PROXY_TOKEN, else is generated at start; either way it is printed and written to the
 * token file (mode 0600). Web pages may call the proxy only from an origin given with
 * --allow-origin. Runs until SIGINT or SIGTERM.
 */
export async function proxy(args: readonly string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        "local-file": { type: "string", default: ".agentmesh/local.json" },
        port: { type: "string", default: "8788" },
        "session-max-spend": { type: "string", default: "5" },
        "token-file": { type: "string", default: ".agentmesh/proxy-token" },
        "allow-origin": { type: "string", multiple: true, default: [] },
      },
    }));
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n${USAGE}`);
  }
  for (const origin of values["allow-origin"]) {
    // An origin is scheme://host[:port], exactly as a browser sends it.
    if (!/^https?:\/\/[^/?#\s]+$/.test(origin)) throw new UsageError(`--allow-origin must be an origin such as http://localhost:5173, got "${origin}"`);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UsageError(`--port must be a TCP port number, got "${values.port}"`);
  const sessionMaxSpend = parseUsdcAmount("--session-max-spend", values["session-max-spend"]);
  const stack = await loadLocalStack(values["local-file"]).catch((error: unknown) => {
    throw error instanceof DeploymentFileError ? new UsageError(error.message) : error;
  });
  if (stack.relayerUrl === undefined) throw new Error(`${values["local-file"]} names no relayer: is \`npm start\` running?`);
  const privateKey = (process.env.AGENTMESH_AGENT_KEY as Hex | undefined) ?? stack.accounts.agent.privateKey;

  const running = await startAgentProxy({
    relayerUrl: stack.relayerUrl,
    privateKey,
    chainId: stack.chainId,
    escrow: stack.contracts.ComputeEscrow,
    budgetId: BigInt(stack.budgetId),
    sessionMaxSpend,
    port,
    token: process.env.AGENTMESH_PROXY_TOKEN,
    allowedOrigins: values["allow-origin"],
  });
  const tokenFile = values["token-file"];
  await mkdir(path.dirname(tokenFile), { recursive: true });
  await writeFile(tokenFile, `${running.token}\n`, { mode: 0o600 });
  await chmod(tokenFile, 0o600); // writeFile's mode applies only to a new file
  console.log(`agent proxy on ${running.url}/v1 (relayer ${stack.relayerUrl})`);
  console.log(`its token (the OpenAI client's apiKey), also in ${tokenFile}: ${running.token}`);
  const stop = () => void running.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
