/**
 * `npm start`: the local stack. Starts an in-process Hardhat chain (EDR, OP-stack chain type) as a
 * JSON-RPC node on 127.0.0.1, deploys and seeds the contracts, writes `.agentmesh/local.json`, and
 * keeps running until Ctrl-C, which stops every process it started.
 *
 *   npm start -- --port 8545 --out .agentmesh/local.json
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { parseArgs } from "node:util";

const hardhatPackage = createRequire(import.meta.url).resolve("hardhat/package.json");
const hardhatCli = path.join(path.dirname(hardhatPackage), "dist/src/cli.js");

const { values: options } = parseArgs({
  options: {
    port: { type: "string", default: "8545" },
    out: { type: "string", default: ".agentmesh/local.json" },
  },
});
const port = Number(options.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`--port must be a TCP port number, got "${options.port}"`);
  process.exit(2);
}
const rpcUrl = `http://127.0.0.1:${port}`;
const children: ChildProcess[] = [];

function run(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, [hardhatCli, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, ...env },
  });
  children.push(child);
  return child;
}

function stopAll(code: number): never {
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  process.exit(code);
}
process.on("SIGINT", () => stopAll(0));
process.on("SIGTERM", () => stopAll(0));

async function waitForRpc(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(rpcUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`the local chain did not answer on ${rpcUrl} within ${timeoutMs} ms`);
}

const chain = run(["node", "--hostname", "127.0.0.1", "--port", String(port)]);
chain.stdout?.resume();
chain.on("exit", (code) => {
  console.error(`the local chain exited (code ${code})`);
  stopAll(1);
});
await waitForRpc(60_000);

const seed = run(["run", "scripts/seed-local.ts", "--network", "localhost"], {
  AGENTMESH_LOCAL_FILE: options.out,
  AGENTMESH_RPC_URL: rpcUrl,
});
seed.stdout?.pipe(process.stdout);
const seedCode: number = await new Promise((resolve) => seed.on("exit", (code) => resolve(code ?? 1)));
if (seedCode !== 0) {
  console.error("deploying and seeding the local chain failed");
  stopAll(1);
}

console.log(`
AgentMesh local stack is up.
  chain      ${rpcUrl} (chain id 31337)
  contracts  ${options.out}

Try it:
  curl -s -X POST ${rpcUrl} -H 'content-type: application/json' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'

Press Ctrl-C to stop.`);
