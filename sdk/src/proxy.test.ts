/**
 * The agent proxy answers only its own clients (issue 12 §12): a bearer token, no web page unless
 * its origin is allowed, and no Host but a loopback one (DNS rebinding). Real HTTP on 127.0.0.1;
 * the relayer is a plain HTTP server that counts what reaches it.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, request, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { generatePrivateKey } from "viem/accounts";
import { startAgentProxy, type AgentProxy } from "./proxy.ts";

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: { error?: { code: string; message: string }; data?: unknown[]; status?: string };
}

/** One HTTP request to the proxy, with exactly the given headers (Host included). */
function call(port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, headers, setHost: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text === "" ? {} : JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("agent proxy: token, Origin and Host checks", () => {
  let relayer: Server;
  let relayerRequests = 0;
  let proxy: AgentProxy;
  const allowed = "http://localhost:5173";

  before(async () => {
    relayer = createServer((req, res) => {
      relayerRequests++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "list", data: [{ id: "agentmesh-small", providers: [] }] }));
    }).listen(0, "127.0.0.1");
    await once(relayer, "listening");
    proxy = await startAgentProxy({
      relayerUrl: `http://127.0.0.1:${(relayer.address() as AddressInfo).port}`,
      privateKey: generatePrivateKey(),
      chainId: 31337,
      escrow: "0x0000000000000000000000000000000000000001",
      budgetId: 1n,
      sessionMaxSpend: 1_000_000n,
      port: 0,
      allowedOrigins: [allowed],
    });
  });

  after(async () => {
    await proxy.close();
    relayer.close();
    await once(relayer, "close");
  });

  const host = () => `127.0.0.1:${proxy.port}`;
  const chatBody = JSON.stringify({ model: "agentmesh-small", messages: [{ role: "user", content: "spend it" }] });

  it("refuses calls without the proxy's token (401) and reaches nothing behind it", async () => {
    assert.match(proxy.token, /^amp_[A-Za-z0-9_-]{43}$/);
    for (const authorization of [undefined, "Bearer sk-anything", `Bearer ${proxy.token}x`, proxy.token]) {
      const headers: Record<string, string> = { host: host(), "content-type": "application/json" };
      if (authorization !== undefined) headers.authorization = authorization;
      for (const [method, path, body] of [
        ["GET", "/v1/models", undefined],
        ["POST", "/v1/chat/completions", chatBody],
      ] as const) {
        const answer = await call(proxy.port, method, path, headers, body);
        assert.equal(answer.status, 401, `${method} ${path} with ${authorization}`);
        assert.equal(answer.body.error?.code, "invalid_proxy_token");
        assert.equal(answer.headers["www-authenticate"], "Bearer");
      }
    }
    assert.equal(relayerRequests, 0);
    // Liveness needs no token.
    assert.deepEqual((await call(proxy.port, "GET", "/healthz", { host: host() })).body, { status: "ok" });
  });

  it("serves a client with the token", async () => {
    const answer = await call(proxy.port, "GET", "/v1/models", { host: host(), authorization: `Bearer ${proxy.token}` });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body.data, [{ id: "agentmesh-small", providers: [] }]);
    assert.equal(answer.headers["access-control-allow-origin"], undefined);
    assert.equal(relayerRequests, 1);
    relayerRequests = 0;
  });

  it("refuses a web page of another origin, even with the token, and its CORS preflight", async () => {
    const evil = "https://evil.example";
    const preflight = await call(proxy.port, "OPTIONS", "/v1/chat/completions", {
      host: host(),
      origin: evil,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type",
    });
    assert.equal(preflight.status, 403);
    assert.equal(preflight.body.error?.code, "origin_not_allowed");
    assert.equal(preflight.headers["access-control-allow-origin"], undefined);
    // A "simple" request a page can send without a preflight (text/plain, no-cors) carries its Origin.
    for (const origin of [evil, "null", `${allowed}.evil.example`]) {
      const answer = await call(proxy.port, "POST", "/v1/chat/completions", { host: host(), origin, "content-type": "text/plain", authorization: `Bearer ${proxy.token}` }, chatBody);
      assert.equal(answer.status, 403, origin);
      assert.equal(answer.body.error?.code, "origin_not_allowed");
    }
    assert.equal(relayerRequests, 0);
  });

  it("answers an allowed origin's preflight and calls with CORS headers", async () => {
    const preflight = await call(proxy.port, "OPTIONS", "/v1/models", { host: host(), origin: allowed, "access-control-request-method": "GET" });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers["access-control-allow-origin"], allowed);
    assert.equal(preflight.headers["access-control-allow-headers"], "authorization, content-type");
    assert.equal(preflight.headers.vary, "Origin");
    const answer = await call(proxy.port, "GET", "/v1/models", { host: host(), origin: allowed, authorization: `Bearer ${proxy.token}` });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers["access-control-allow-origin"], allowed);
    // The allowed origin still needs the token.
    const without = await call(proxy.port, "GET", "/v1/models", { host: host(), origin: allowed });
    assert.equal(without.status, 401);
    assert.equal(without.headers["access-control-allow-origin"], allowed, "the page can read why");
    assert.equal(relayerRequests, 1);
    relayerRequests = 0;
  });

  it("refuses a Host that is not loopback (DNS rebinding), even with the token", async () => {
    for (const name of [`rebind.evil.example:${proxy.port}`, "evil.example", "127.0.0.1.evil.example", "", "localhost:80@evil", "[::2]"]) {
      const answer = await call(proxy.port, "GET", "/v1/models", { host: name, authorization: `Bearer ${proxy.token}` });
      assert.equal(answer.status, 403, name);
      assert.equal(answer.body.error?.code, "host_not_allowed");
    }
    assert.equal(relayerRequests, 0);
    for (const name of [`localhost:${proxy.port}`, `LOCALHOST:${proxy.port}`, "127.0.0.1", `[::1]:${proxy.port}`]) {
      const answer = await call(proxy.port, "GET", "/v1/models", { host: name, authorization: `Bearer ${proxy.token}` });
      assert.equal(answer.status, 200, name);
    }
  });

  it("takes a given token, and refuses a weak one", async () => {
    const options = {
      relayerUrl: "http://127.0.0.1:9",
      privateKey: generatePrivateKey(),
      chainId: 31337,
      escrow: "0x0000000000000000000000000000000000000001" as const,
      budgetId: 1n,
      sessionMaxSpend: 1n,
      port: 0,
    };
    await assert.rejects(startAgentProxy({ ...options, token: "short" }), /at least 16 printable characters/);
    await assert.rejects(startAgentProxy({ ...options, token: "sixteen chars with spaces" }), /without spaces/);
    const given = await startAgentProxy({ ...options, token: "a-token-from-the-environment" });
    try {
      assert.equal(given.token, "a-token-from-the-environment");
      assert.equal((await call(given.port, "GET", "/healthz", { host: `127.0.0.1:${given.port}`, authorization: "Bearer a-token-from-the-environment" })).status, 200);
    } finally {
      await given.close();
    }
  });
});
