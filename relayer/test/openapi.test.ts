/** `GET /openapi.json`: generated from the router and the wire protocol's schemas, so it lists every route. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ROUTES } from "../src/app.ts";
import { openApiPath } from "../src/routes/openapi.ts";
import { startRelayerApp } from "./app-harness.ts";

type Operation = {
  summary: string;
  parameters?: { name: string; in: string }[];
  requestBody?: { content: { "application/json": { schema: Record<string, any> } } };
  responses: Record<string, { content?: Record<string, { schema?: Record<string, any> }> }>;
  security?: Record<string, unknown>[];
};

describe("GET /openapi.json", () => {
  it("describes every route in the router, with the protocol's request and answer schemas", async () => {
    const app = await startRelayerApp("http://127.0.0.1:9/v1");
    try {
      const response = await fetch(`${app.url}/openapi.json`);
      assert.equal(response.status, 200);
      const document = (await response.json()) as { openapi: string; info: { version: string }; paths: Record<string, Record<string, Operation>> };
      assert.equal(document.openapi, "3.1.0");
      assert.equal(document.info.version, app.context.about.version);

      const routed = ROUTES.map((route) => `${route.method} ${openApiPath(route)}`).sort();
      const documented = Object.entries(document.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`)).sort();
      assert.deepEqual(documented, routed);
      assert.ok(routed.length >= 20, `${routed.length} routes`);

      for (const route of ROUTES) {
        const operation = document.paths[openApiPath(route)][route.method.toLowerCase()];
        assert.ok(operation.summary.length > 0);
        assert.ok(operation.responses.default, `${route.method} ${openApiPath(route)}: its errors`);
        assert.equal(operation.requestBody !== undefined, route.doc.body !== undefined, `${route.method} ${openApiPath(route)}: its body`);
        if (route.pattern.source.includes("(")) assert.deepEqual(operation.parameters?.map(({ name, in: where }) => [name, where]), [[route.doc.param ?? "id", "path"]]);
      }

      // The schemas are the protocol's: field names, patterns and required fields come through.
      const open = document.paths["/v1/sessions"].post;
      const terms = open.requestBody!.content["application/json"].schema.properties.terms;
      assert.deepEqual(terms.required.sort(), ["agent", "budgetId", "deadline", "feeBps", "inputPricePer1K", "maxSpend", "minChargePerCall", "modelId", "outputPricePer1K", "providerId", "receiptSigner", "salt"]);
      const opened = open.responses["201"].content!["application/json"].schema!;
      assert.equal(opened.properties.sessionId.pattern, "^0x[0-9a-fA-F]{64}$");
      assert.deepEqual(document.paths["/v1/sessions/{id}"].get.security, [{ sessionRead: [] }]);
      assert.deepEqual(document.paths["/v1/receipts/{hash}"].get.parameters, [{ name: "hash", in: "path", required: true, schema: { type: "string" } }]);
      const error = open.responses.default.content!["application/json"].schema!;
      assert.deepEqual(error.properties.error.required.sort(), ["code", "message", "param", "type"]);
    } finally {
      await app.close();
    }
  });
});
