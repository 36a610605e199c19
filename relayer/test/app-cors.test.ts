/** CORS through `createApp(deps)`: which web pages may call the API. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startRelayerApp } from "./app-harness.ts";

/** The CORS answer to a page at `origin`: a preflight and a plain read. */
async function corsFor(url: string, origin: string) {
  const preflight = await fetch(`${url}/v1/models`, { method: "OPTIONS", headers: { origin, "access-control-request-method": "GET" } });
  const read = await fetch(`${url}/v1/models`, { headers: { origin } });
  return {
    preflight: [preflight.status, preflight.headers.get("access-control-allow-origin"), preflight.headers.get("vary")],
    read: [read.status, read.headers.get("access-control-allow-origin"), read.headers.get("vary")],
  };
}

describe("CORS through createApp", () => {
  it("lets any page call by default: nothing is authorized by cookies, only by bearer keys and signatures", async () => {
    const app = await startRelayerApp("http://127.0.0.1:9/v1");
    try {
      assert.deepEqual(await corsFor(app.url, "https://anyone.example"), { preflight: [204, "*", null], read: [200, "*", null] });
    } finally {
      await app.close();
    }
  });

  it("with configured origins, allows those pages alone, varying by Origin", async () => {
    const app = await startRelayerApp("http://127.0.0.1:9/v1");
    app.context.corsOrigins = ["https://app.agentmesh.example"];
    try {
      assert.deepEqual(await corsFor(app.url, "https://app.agentmesh.example"), {
        preflight: [204, "https://app.agentmesh.example", "origin"],
        read: [200, "https://app.agentmesh.example", "origin"],
      });
      // The browser refuses the answer to any other page: no Access-Control-Allow-Origin.
      assert.deepEqual(await corsFor(app.url, "https://evil.example"), { preflight: [204, null, "origin"], read: [200, null, "origin"] });
    } finally {
      await app.close();
    }
  });
});
