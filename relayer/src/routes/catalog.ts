import { sendJson } from "@agentmesh/sdk/http";
import { listModels, listProviders, showBudget, showProvider } from "../core/catalog.ts";
import { pathId, type Route } from "./route.ts";

/** The relayer itself, models, providers and budgets (see core/catalog.ts). */
export const catalogRoutes: Route[] = [
  { method: "GET", pattern: /^\/v1\/relayer$/, handler: (ctx, _req, res) => sendJson(res, 200, ctx.about) },
  { method: "GET", pattern: /^\/v1\/models$/, handler: (ctx, _req, res) => sendJson(res, 200, listModels(ctx)) },
  { method: "GET", pattern: /^\/v1\/budgets\/([^/]+)$/, handler: (ctx, _req, res, id) => sendJson(res, 200, showBudget(ctx, pathId(id, "budget"))) },
  { method: "GET", pattern: /^\/v1\/providers$/, handler: async (ctx, _req, res) => sendJson(res, 200, await listProviders(ctx)) },
  { method: "GET", pattern: /^\/v1\/providers\/([^/]+)$/, handler: async (ctx, _req, res, id) => sendJson(res, 200, await showProvider(ctx, pathId(id, "provider"))) },
];
