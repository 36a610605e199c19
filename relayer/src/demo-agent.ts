/**
 * The demo agent behind the seeded agent listing: `POST /` with `{ "input": string }` answers JSON
 * `{ output, model, usage, cost }`. It is a real (if small) agent: it asks a model through an
 * OpenAI-compatible endpoint — in the local stack, the demo agent's proxy, so its own compute is
 * metered, receipted and paid from a budget that the listing's flow of funds tops up.
 *
 * @module
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { ApiError, readJsonBody, sendError, sendJson } from "@agentmesh/sdk/http";
import { foreignCode } from "@agentmesh/sdk/protocol";

export interface DemoAgentOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** OpenAI-compatible base URL the agent thinks with, e.g. `http://127.0.0.1:8788/v1`. */
  inferenceUrl: string;
  /** The API key sent to `inferenceUrl` (the agent proxy's token). */
  inferenceApiKey: string;
  model: string;
}

export interface DemoAgent {
  url: string;
  close(): Promise<void>;
}

const MAX_INPUT_CHARACTERS = 8_000;
const requestSchema = z.object({ input: z.string().trim().min(1, "must not be empty").max(MAX_INPUT_CHARACTERS, `must be at most ${MAX_INPUT_CHARACTERS} characters`) });

const INSTRUCTIONS = "You are AutoDev, a concise software assistant. Answer the task in a few sentences.";

export async function startDemoAgent(options: DemoAgentOptions): Promise<DemoAgent> {
  const server: Server = createServer((req, res) => {
    void (async () => {
      try {
        if (req.method !== "POST" || (req.url ?? "/").split("?")[0] !== "/") throw new ApiError(404, "not_found", "POST / with {\"input\": string}");
        const parsed = requestSchema.safeParse(await readJsonBody(req, 64 * 1024));
        if (!parsed.success) throw new ApiError(400, "invalid_request", `input: ${parsed.error.issues[0].message}`);
        const response = await fetch(`${options.inferenceUrl.replace(/\/$/, "")}/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${options.inferenceApiKey}` },
          body: JSON.stringify({
            model: options.model,
            messages: [
              { role: "system", content: INSTRUCTIONS },
              { role: "user", content: parsed.data.input },
            ],
            max_tokens: 128,
          }),
          signal: AbortSignal.timeout(30_000),
        });
        const completion = (await response.json()) as {
          choices?: { message?: { content?: string } }[];
          usage?: unknown;
          cost?: unknown;
          error?: { message?: string };
        };
        if (!response.ok) throw new ApiError(502, foreignCode("inference_failed"), `the model call failed: ${completion.error?.message ?? response.status}`);
        sendJson(res, 200, { output: completion.choices?.[0]?.message?.content ?? "", model: options.model, usage: completion.usage, cost: completion.cost });
      } catch (error) {
        sendError(res, error instanceof ApiError ? error : new ApiError(502, foreignCode("inference_failed"), (error as Error).message));
      }
    })();
  });
  server.listen(options.port ?? 0, options.host ?? "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? "127.0.0.1"}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
