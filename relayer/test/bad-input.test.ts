/**
 * Bad input is answered with the right 4xx (issue 12 §11), in-process over a test-local provider.
 * The table across every route, with the database and the chain checked unchanged, is
 * test/e2e/bad-input.test.ts.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { describe, it } from "node:test";
import { toCompactSignature } from "@agentmesh/sdk";
import { ChainGateway } from "../src/chain.ts";
import { ChainViewCache, type RelayerContext } from "../src/context.ts";
import { closeServer, listen, startProvider, startRelayerApp } from "./app-harness.ts";

interface ErrorBody {
  error: { message: string; type: string; code: string; param: string | null };
}

const failures = async (context: RelayerContext) => /agentmesh_upstream_failures_total\{provider="1"\} (\d+)/.exec(await context.stats.prometheus())?.[1] ?? "0";

describe("bad input gets a 4xx", () => {
  it("answers a malformed % escape in the path with 400 invalid_path, not 500", async () => {
    const provider = await startProvider((_request, res) => void res.end());
    const relayer = await startRelayerApp(provider.url);
    try {
      for (const path of ["/v1/sessions/%zz", "/v1/receipts/%E0%A4%A", "/v1/providers/%", "/agents/%C0%80%"]) {
        const response = await fetch(`${relayer.url}${path}`, { method: path.startsWith("/agents") ? "POST" : "GET" });
        assert.equal(response.status, 400, path);
        assert.equal(((await response.json()) as ErrorBody).error.code, "invalid_path", path);
      }
    } finally {
      await relayer.close();
      await provider.close();
    }
  });

  it("answers a deeply nested pass-through field with 400 json_too_deep, calling no provider", async () => {
    const provider = await startProvider((_request, res) => void res.end());
    const relayer = await startRelayerApp(provider.url);
    try {
      const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
      const response = await fetch(`${relayer.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: "Bearer am_test-key", "content-type": "application/json" },
        body: `{"model":"agentmesh-small","messages":[{"role":"user","content":"hi"}],"metadata":${deep}}`,
      });
      assert.equal(response.status, 400);
      assert.equal(((await response.json()) as ErrorBody).error.code, "json_too_deep");
      assert.equal(provider.requests.length, 0);
      assert.equal(await failures(relayer.context), "0");
      // 64 levels are fine: the request is served.
      const ok = await relayer.chat({ metadata: JSON.parse(`${"[".repeat(60)}${"]".repeat(60)}`) });
      assert.notEqual(ok.status, 400);
    } finally {
      await relayer.close();
      await provider.close();
    }
  });

  for (const [status, code] of [
    [400, "invalid_value"],
    [422, "unsupported_content"],
  ] as const) {
    it(`answers a provider's own ${status} with that ${status}, no fallback, no failure counted`, async () => {
      const provider = await startProvider((_request, res) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: "image parts are not supported", type: "invalid_request_error", code, param: "messages" } }));
      });
      const relayer = await startRelayerApp(provider.url);
      try {
        for (const stream of [false, true]) {
          const response = await relayer.chat({ stream });
          assert.equal(response.status, status);
          const { error } = (await response.json()) as ErrorBody;
          assert.deepEqual([error.code, error.param, error.type], [code, "messages", "invalid_request_error"]);
          assert.match(error.message, /image parts are not supported/);
        }
        assert.equal(provider.requests.length, 2, "called once per request: no retry, no fallback");
        assert.equal(await failures(relayer.context), "0");
        assert.equal((await relayer.receipts()).length, 0);
      } finally {
        await relayer.close();
        await provider.close();
      }
    });
  }

  it("answers an RPC outage with 503 chain_unavailable, not 400", async () => {
    const provider = await startProvider((_request, res) => void res.end());
    const relayer = await startRelayerApp(provider.url);
    // A real chain gateway whose RPC is down (a port that refuses connections).
    const dead = createServer();
    const port = await listen(dead);
    await closeServer(dead);
    relayer.context.chain = new ChainGateway({
      rpcUrl: `http://127.0.0.1:${port}`,
      chainId: 31337,
      escrow: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
      registry: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
      relayerPrivateKey: `0x${"11".repeat(32)}`,
    });
    relayer.context.chainViews = new ChainViewCache(relayer.context.chain, relayer.context.chainIndex, 5_000);
    try {
      const terms = { ...relayer.terms, salt: 99n };
      const signature = toCompactSignature(`0x${"22".repeat(32)}${"33".repeat(32)}1b`);
      const open = await fetch(`${relayer.url}/v1/sessions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ terms, signature }, (_key, value) => (typeof value === "bigint" ? value.toString() : value)),
      });
      assert.equal(open.status, 503);
      assert.equal(((await open.json()) as ErrorBody).error.code, "chain_unavailable");
      assert.equal(open.headers.get("retry-after"), "5");
      const providers = await fetch(`${relayer.url}/v1/providers`);
      assert.equal(providers.status, 503);
      assert.equal((await relayer.repo.openSessionsFor(relayer.terms.agent, "agentmesh-small")).length, 1, "no session added");
    } finally {
      await relayer.close();
      await provider.close();
    }
  });

  it("refuses bodies that are not JSON with 415 on every POST route", async () => {
    const provider = await startProvider((_request, res) => void res.end());
    const relayer = await startRelayerApp(provider.url);
    try {
      for (const path of ["/v1/chat/completions", "/v1/sessions", `/v1/sessions/${relayer.sessionId}/vouchers`, `/v1/sessions/${relayer.sessionId}/close`]) {
        for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]) {
          const response = await fetch(`${relayer.url}${path}`, {
            method: "POST",
            headers: { authorization: "Bearer am_test-key", "content-type": type },
            body: '{"model":"agentmesh-small","messages":[{"role":"user","content":"hi"}]}',
          });
          assert.equal(response.status, 415, `${path} ${type}`);
          assert.equal(((await response.json()) as ErrorBody).error.code, "unsupported_media_type");
        }
      }
      assert.equal(provider.requests.length, 0);
      // JSON with parameters, and +json types, are JSON.
      const json = await relayer.chat({}, { "content-type": "application/json; charset=utf-8" });
      assert.notEqual(json.status, 415);
    } finally {
      await relayer.close();
      await provider.close();
    }
  });

  it("carries Allow on every 405", async () => {
    const provider = await startProvider((_request, res) => void res.end());
    const relayer = await startRelayerApp(provider.url);
    try {
      for (const [method, path, allow] of [
        ["GET", "/v1/chat/completions", "POST, OPTIONS"],
        ["DELETE", "/v1/models", "GET, OPTIONS"],
        ["PUT", `/v1/sessions/${relayer.sessionId}`, "GET, OPTIONS"],
        ["GET", "/x402/settle", "POST, OPTIONS"],
      ] as const) {
        const response = await fetch(`${relayer.url}${path}`, { method });
        assert.equal(response.status, 405, `${method} ${path}`);
        assert.equal(response.headers.get("allow"), allow, `${method} ${path}`);
        assert.equal(((await response.json()) as ErrorBody).error.code, "method_not_allowed");
      }
    } finally {
      await relayer.close();
      await provider.close();
    }
  });
});
