import { chmod, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import type { Address, Hex } from "viem";
import { DeploymentFileError, loadLocalStack } from "../deployment.ts";
import { startAgentProxy } from "../proxy.ts";
import { connect } from "./context.ts";
import { loadPrivateKey } from "./keys.ts";
import { chosenRelayer, RELAYER_OPTION, relayerUrlSchema } from "./relayer.ts";
import { idSchema, parseCommand, parseField, parseUsdcAmount, UsageError } from "./options.ts";

const USAGE = `usage:
  agentmesh proxy [--local-file .agentmesh/local.json] [options]        the agent of the dev stack file
  agentmesh proxy --network base-sepolia|base|local | --deployment <file> --budget <id> [--relayer <url>]
                  [--rpc <url>] [--keystore <file>] [options]             an agent's key from AGENTMESH_PRIVATE_KEY or --keystore;
                                                                          the relayer found on-chain unless --relayer names one
options: [--port 8788] [--session-max-spend 5] [--token-file .agentmesh/proxy-token] [--allow-origin <origin>]...`;

/** The proxy's own options, in either mode. */
const PROXY_OPTIONS = {
  port: { type: "string", default: "8788" },
  "session-max-spend": { type: "string", default: "5" },
  "token-file": { type: "string", default: ".agentmesh/proxy-token" },
  "allow-origin": { type: "string", multiple: true, default: [] as string[] },
} satisfies ParseArgsOptionsConfig;

/** Where the proxy's sessions are opened, and by whom. */
interface ProxyTarget {
  relayerUrl: string;
  privateKey: Hex;
  chainId: number;
  escrow: Address;
  budgetId: bigint;
}

/**
 * `agentmesh proxy`: an OpenAI-compatible endpoint on 127.0.0.1 that opens and reuses sessions of
 * an agent on a budget: point any OpenAI client at http://127.0.0.1:8788/v1 with the proxy's token
 * as its API key. On a deployment (`--network`, `--deployment`) the agent's key comes from
 * AGENTMESH_PRIVATE_KEY or `--keystore`, the budget from `--budget` and the relayer from
 * `--relayer` or else from the chain (the RelayerDirectory entry of the active providers' receipt
 * signers); its `GET /v1/relayer` must name the deployment's chain and escrow. Without them it
 * serves the agent of the dev stack file (its key from AGENTMESH_AGENT_KEY, else the file's dev-only
 * `agent` account). The token comes from AGENTMESH_PROXY_TOKEN, else is generated at start; either
 * way it is printed and written to the token file (mode 0600). Web pages may call the proxy only
 * from an origin given with --allow-origin. Runs until SIGINT or SIGTERM.
 */
export async function proxy(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const onDeployment = args.some((arg) => /^--(network|deployment)(=|$)/.test(arg));
  const { options, target } = onDeployment ? await deploymentTarget(args, env) : await stackTarget(args, env);
  for (const origin of options["allow-origin"]) {
    // An origin is scheme://host[:port], exactly as a browser sends it.
    if (!/^https?:\/\/[^/?#\s]+$/.test(origin)) throw new UsageError(`--allow-origin must be an origin such as http://localhost:5173, got "${origin}"`);
  }
  const port = Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UsageError(`--port must be a TCP port number, got "${options.port}"`);
  const running = await startAgentProxy({
    ...target,
    sessionMaxSpend: parseUsdcAmount("--session-max-spend", options["session-max-spend"]),
    port,
    token: env.AGENTMESH_PROXY_TOKEN,
    allowedOrigins: options["allow-origin"],
  });
  const tokenFile = options["token-file"];
  await mkdir(path.dirname(tokenFile), { recursive: true });
  await writeFile(tokenFile, `${running.token}\n`, { mode: 0o600 });
  await chmod(tokenFile, 0o600); // writeFile's mode applies only to a new file
  console.log(`agent proxy on ${running.url}/v1 (relayer ${target.relayerUrl})`);
  console.log(`its token (the OpenAI client's apiKey), also in ${tokenFile}: ${running.token}`);
  const stop = () => void running.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

type ProxyOptions = { port: string; "session-max-spend": string; "token-file": string; "allow-origin": string[] };

/** The dev stack file's agent, budget and relayer. */
async function stackTarget(args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ options: ProxyOptions; target: ProxyTarget }> {
  let values;
  try {
    ({ values } = parseArgs({ args: [...args], options: { ...PROXY_OPTIONS, "local-file": { type: "string", default: ".agentmesh/local.json" } } }));
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n${USAGE}`);
  }
  const stack = await loadLocalStack(values["local-file"]).catch((error: unknown) => {
    throw error instanceof DeploymentFileError ? new UsageError(error.message) : error;
  });
  if (stack.relayerUrl === undefined) throw new Error(`${values["local-file"]} names no relayer: is \`npm start\` running?`);
  return {
    options: values,
    target: {
      relayerUrl: stack.relayerUrl,
      privateKey: (env.AGENTMESH_AGENT_KEY as Hex | undefined) ?? stack.accounts.agent.privateKey,
      chainId: stack.chainId,
      escrow: stack.contracts.ComputeEscrow,
      budgetId: BigInt(stack.budgetId),
    },
  };
}

/**
 * A deployment's escrow, the agent's key, `--budget`, and the relayer: `--relayer`, or the one the
 * chain names; either way checked to serve the same chain and escrow.
 */
async function deploymentTarget(args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ options: ProxyOptions; target: ProxyTarget }> {
  const { common, values } = parseCommand(args, { ...PROXY_OPTIONS, ...RELAYER_OPTION, budget: { type: "string" } }, env);
  if (values.relayer !== undefined) parseField("--relayer", relayerUrlSchema, values.relayer); // a bad URL is refused before the RPC is asked
  const budgetId = parseField("--budget", idSchema, values.budget);
  const context = await connect(common, env);
  const escrow = context.deployment.contracts.ComputeEscrow;
  const { url: relayerUrl } = await chosenRelayer(context, values.relayer);
  return {
    options: values as unknown as ProxyOptions,
    target: { relayerUrl, privateKey: await loadPrivateKey(common.keystore, env), chainId: context.chainId, escrow, budgetId },
  };
}
