import { readdir, readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import react from "@vitejs/plugin-react";
import { defineConfig, type Plugin, type UserConfig } from "vite";
import { publicDeployments } from "./src/lib/config.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
/** The public deployment records: AGENTMESH_DEPLOYMENTS_DIR, else the repository's `deployments/`. */
const DEPLOYMENTS = path.resolve(process.env.AGENTMESH_DEPLOYMENTS_DIR || path.join(ROOT, "deployments"));

/** The public deployment records (`deployments/<chainId>.json`) by chain id, their public fields only. */
async function deploymentRecords(): Promise<Record<string, unknown>> {
  const files = (await readdir(DEPLOYMENTS).catch(() => [])).filter((file) => /^\d+\.json$/.test(file));
  const entries = await Promise.all(files.map(async (file) => [file.slice(0, -5), JSON.parse(await readFile(path.join(DEPLOYMENTS, file), "utf8"))]));
  return publicDeployments(Object.fromEntries(entries));
}

/**
 * `/agentmesh.json`, what the app reads at run time rather than bakes in: the public deployment
 * records, and — from the dev server and preview only, since it holds the dev keys — the local stack
 * file (`local`, null when absent). A build contains the public part only, and a `404.html` copy of
 * `index.html`, which static hosts that serve one for unknown paths answer deep links with (the
 * app's routes are History-API paths; see the README's "Deploy the dApp").
 */
export function runtimeConfig(localFile: string): Plugin {
  const serve = async (req: IncomingMessage, res: ServerResponse, next: () => void) => {
    if ((req.url ?? "/").split("?")[0] !== "/agentmesh.json") return next();
    const local = await readFile(localFile, "utf8").then(JSON.parse, () => null);
    const body = JSON.stringify({ local, deployments: await deploymentRecords() });
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" }).end(body);
  };
  return {
    name: "agentmesh-runtime-config",
    configureServer: (server) => void server.middlewares.use(serve),
    configurePreviewServer: (server) => void server.middlewares.use(serve),
    generateBundle: {
      order: "post",
      async handler(_options, bundle) {
        this.emitFile({ type: "asset", fileName: "agentmesh.json", source: JSON.stringify({ local: null, deployments: await deploymentRecords() }) });
        const index = bundle["index.html"];
        if (index?.type === "asset") this.emitFile({ type: "asset", fileName: "404.html", source: index.source });
      },
    },
  };
}

/** The dApp's Vite configuration, serving the stack file at `localFile` (used by `serve.ts` too). */
export function viteConfig(localFile = process.env.AGENTMESH_LOCAL_FILE ?? path.join(ROOT, ".agentmesh/local.json")): UserConfig {
  return {
    root: import.meta.dirname,
    plugins: [react(), runtimeConfig(path.resolve(localFile))],
    build: { target: "es2022", manifest: true, chunkSizeWarningLimit: 1_500 },
    server: { host: "127.0.0.1", port: 5173 },
    preview: { host: "127.0.0.1", port: 5173 },
  };
}

export default defineConfig(viteConfig());
