import { sendJson } from "@agentmesh/sdk/http";
import { healthSchema, readinessSchema, type HealthView, type ReadinessView } from "@agentmesh/sdk/protocol";
import type { Route } from "./route.ts";

/** Liveness, readiness and Prometheus metrics, for operators and orchestrators. */
export const operationRoutes: Route[] = [
  {
    method: "GET",
    pattern: /^\/healthz$/,
    handler: (ctx, _req, res) => sendJson(res, 200, { status: "ok", chainId: ctx.chain.chainId } satisfies HealthView),
    doc: { summary: "Liveness", response: healthSchema },
  },
  {
    method: "GET",
    pattern: /^\/readyz$/,
    // 200 when the relayer serves calls, else 503 naming what is missing (see readiness.ts).
    handler: async (ctx, _req, res) => {
      const problems = ctx.readiness?.problems() ?? [];
      const status = problems.length === 0 ? 200 : 503;
      const readiness: ReadinessView = { status: status === 200 ? "ready" : "not_ready", chainId: ctx.chain.chainId, indexedBlock: (await ctx.chainIndex.lastBlock()) ?? null, problems };
      sendJson(res, status, readiness);
    },
    doc: { summary: "Readiness: 200 when calls are served, else 503 naming what is missing", response: readinessSchema },
  },
  {
    method: "GET",
    pattern: /^\/metrics$/,
    handler: async (ctx, _req, res) => {
      const text = await ctx.stats.prometheus();
      res.writeHead(200, { "content-type": ctx.stats.registry.contentType });
      res.end(text);
    },
    doc: { summary: "Prometheus metrics", mediaType: "text/plain" },
  },
];
