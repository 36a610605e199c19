/**
 * The dApp's servers, for `npm start`, the browser tests and `bench:ui`: Vite's dev server (source,
 * hot reload) or a preview of the production build, on 127.0.0.1, reading the stack file at
 * `localFile`.
 */
import { build, createServer, preview } from "vite";
import { viteConfig } from "./vite.config.ts";

export interface FrontendServerOptions {
  /** "dev" serves the source; "preview" serves `frontend/dist` (run {@link buildFrontend} first). */
  mode: "dev" | "preview";
  port: number;
  /** The local stack file served as `/local.json`. */
  localFile: string;
}

export interface FrontendServer {
  url: string;
  close(): Promise<void>;
}

/** Builds the dApp into `frontend/dist`. */
export async function buildFrontend(): Promise<void> {
  await build({ ...viteConfig(), configFile: false, logLevel: "warn" });
}

/** Serves the dApp on 127.0.0.1:`port` until `close()`. */
export async function serveFrontend(options: FrontendServerOptions): Promise<FrontendServer> {
  const config = { ...viteConfig(options.localFile), configFile: false as const, logLevel: "warn" as const };
  const listen = { host: "127.0.0.1", port: options.port, strictPort: true };
  if (options.mode === "dev") {
    const server = await createServer({ ...config, server: listen });
    await server.listen();
    return { url: `http://127.0.0.1:${options.port}`, close: () => server.close() };
  }
  const server = await preview({ ...config, preview: listen });
  return { url: `http://127.0.0.1:${options.port}`, close: () => new Promise((resolve) => server.httpServer.close(() => resolve())) };
}
