import { sendJson } from "@agentmesh/sdk/http";
import { listModels, listProviders, showBudget, showProvider } from "../core/catalog.ts";
import { pathId, type Route } from "./route.ts";
import { budgetViewSchema, modelListSchema, providerListSchema, providerViewSchema, relayerInfoSchema } from "@agentmesh/sdk/protocol";

/** The relayer itself, models, providers and budgets (see core/catalog.ts). */
export const catalogRoutes: Route[] = [
  { method: "GET", pattern: /^\/v1\/relayer$/, handler: (ctx, _req, res) => sendJson(res, 200, ctx.about), doc: { summary: "This relayer: chain, contracts, gas and receipt-signer addresses, version, settlement policy", response: relayerInfoSchema } },
  { method: "GET", pattern: /^\/v1\/models$/, handler: async (ctx, _req, res) => sendJson(res, 200, await listModels(ctx)), doc: { summary: "Models with the providers serving them and their prices", response: modelListSchema } },
  { method: "GET", pattern: /^\/v1\/budgets\/([^/]+)$/, handler: async (ctx, _req, res, id) => sendJson(res, 200, await showBudget(ctx, pathId(id, "budget"))), doc: { summary: "A budget and its sessions as indexed on-chain", response: budgetViewSchema } },
  { method: "GET", pattern: /^\/v1\/providers$/, handler: async (ctx, _req, res) => sendJson(res, 200, await listProviders(ctx)), doc: { summary: "Every registered provider with its models and metrics", response: providerListSchema } },
  { method: "GET", pattern: /^\/v1\/providers\/([^/]+)$/, handler: async (ctx, _req, res, id) => sendJson(res, 200, await showProvider(ctx, pathId(id, "provider"))), doc: { summary: "A provider with its models, metrics and the fee new sessions carry", response: providerViewSchema } },
];
