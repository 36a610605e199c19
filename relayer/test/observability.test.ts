import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { RelayerContext } from "../src/context.ts";
import { configureLogger, log, redactUrlInLogs } from "../src/log.ts";
import { API_KEY, completion, honestUsage, startProvider, startRelayerApp } from "./app-harness.ts";

// Issue 12 §10 / issue 13: structured logs (pino) with request ids and no secrets; /metrics by prom-client.

const RPC_URL = "https://base-mainnet.example.com/v2/rpc-secret-key-123";

/** Every JSON line the relayer logs while the tests run. */
const lines: string[] = [];
const records = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);

before(() => {
  configureLogger({ level: "info", destination: { write: (line: string) => void lines.push(line) } });
});
after(() => {
  configureLogger({ level: "silent" });
});

async function withRelayer(test: (relayer: Awaited<ReturnType<typeof startRelayerApp>>) => Promise<void>): Promise<void> {
  const provider = await startProvider((request, res) => {
    const messages = request.body.messages as Parameters<typeof honestUsage>[0];
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(completion("hello there", honestUsage(messages, "hello there"))));
  });
  const relayer = await startRelayerApp(provider.url);
  try {
    await test(relayer);
  } finally {
    await relayer.close();
    await provider.close();
  }
}

describe("logs", () => {
  it("log one line per request carrying its x-request-id, and never a bearer key or an RPC URL", async () => {
    redactUrlInLogs(RPC_URL); // what startRelayer does with its chain's RPC URL
    await withRelayer(async (relayer) => {
      const response = await relayer.chat({ max_tokens: 20 }, { "x-request-id": "test-req-42" });
      assert.equal(response.status, 200);
      await response.json();
      // A chain read failing with viem's kind of message, which names the RPC URL.
      (relayer.context as { chainViews: unknown }).chainViews = {
        feeBps: () => Promise.reject(new Error(`HTTP request failed.\n\nURL: ${RPC_URL}\nRequest body: {"method":"eth_call"}`)),
      };
      const failed = await fetch(`${relayer.url}/v1/providers?verbose=1`, { headers: { "x-request-id": "test-req-43", authorization: `Bearer ${API_KEY}` } });
      assert.equal(failed.status, 500);
      await failed.text();
      log.info({ headers: { authorization: `Bearer ${API_KEY}`, "payment-signature": "signed-payment-xyz" }, apiKey: API_KEY, rpcUrl: "https://other.example/key-in-field" }, "secrets in fields");
    });
    const all = records();
    const chat = all.find((record) => record.requestId === "test-req-42" && record.msg === "request");
    assert.ok(chat !== undefined, lines.join(""));
    assert.equal(chat.level, 30);
    assert.equal(chat.method, "POST");
    assert.equal(chat.path, "/v1/chat/completions");
    assert.equal(chat.route, "/v1/chat/completions");
    assert.equal(chat.status, 200);
    assert.equal(typeof chat.durationMs, "number");
    const error = all.find((record) => record.requestId === "test-req-43" && record.level === 50);
    assert.ok(error !== undefined, lines.join(""));
    assert.equal(error.path, "/v1/providers"); // never the query
    assert.match(JSON.stringify(error.err), /URL: https:\/\/base-mainnet\.example\.com\/…/);
    const done = all.find((record) => record.requestId === "test-req-43" && record.msg === "request");
    assert.equal(done?.status, 500);
    assert.equal(done?.route, "/v1/providers");
    const fields = all.find((record) => record.msg === "secrets in fields");
    assert.deepEqual(fields?.headers, { authorization: "[redacted]", "payment-signature": "[redacted]" });
    assert.equal(fields?.apiKey, "[redacted]");
    assert.equal(fields?.rpcUrl, "[redacted]");
    const text = lines.join("");
    for (const secret of [API_KEY, "rpc-secret-key-123", "/v2/rpc-secret", "signed-payment-xyz", "key-in-field"]) assert.equal(text.includes(secret), false, `${secret} was logged`);
  });
});

/**
 * The samples of a Prometheus text exposition, by series (`name{labels}`); throws on a malformed line.
 * Like Prometheus's own parser (Go's ParseFloat), NaN is read in any case: prom-client writes it as `Nan`.
 */
function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# HELP ") || line.startsWith("# TYPE ")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?) (-?[0-9.e+-]+|[Nn][Aa][Nn]|\+Inf|-Inf)$/.exec(line);
    assert.ok(match !== null, `not a Prometheus sample line: ${line}`);
    samples.set(match[1], Number(match[2]));
  }
  return samples;
}

describe("/metrics", () => {
  it("is Prometheus text with the per-provider counters, request durations and process metrics after a billed call", async () => {
    await withRelayer(async (relayer) => {
      (relayer.context as RelayerContext).stats.collectProcessMetrics();
      const response = await relayer.chat({ max_tokens: 20 });
      assert.equal(response.status, 200);
      const body = (await response.json()) as { receipt: { inputTokens: number; outputTokens: number; cost: string } };
      // A client's own method must not mint a series of its own.
      assert.equal((await fetch(`${relayer.url}/v1/models`, { method: "PROPFIND" })).status, 405);
      const scrape = await fetch(`${relayer.url}/metrics`);
      assert.equal(scrape.status, 200);
      assert.match(scrape.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      const samples = parsePrometheus(await scrape.text());
      assert.equal(samples.get('agentmesh_upstream_calls_total{provider="1"}'), 1);
      assert.equal(samples.get('agentmesh_upstream_failures_total{provider="1"}'), 0);
      assert.equal(samples.get('agentmesh_billed_calls_total{provider="1"}'), 1);
      assert.equal(samples.get('agentmesh_input_tokens_total{provider="1"}'), body.receipt.inputTokens);
      assert.equal(samples.get('agentmesh_output_tokens_total{provider="1"}'), body.receipt.outputTokens);
      assert.equal(samples.get('agentmesh_billed_usdc_atomic_total{provider="1"}'), Number((await relayer.receipts())[0].receipt.cost));
      assert.equal(samples.get('agentmesh_http_request_duration_seconds_count{method="POST",route="/v1/chat/completions",status="200"}'), 1);
      assert.equal(samples.get('agentmesh_http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/v1/chat/completions",status="200"}'), 1);
      assert.equal(samples.get('agentmesh_http_request_duration_seconds_count{method="other",route="/v1/models",status="405"}'), 1);
      assert.equal([...samples.keys()].some((series) => series.includes("PROPFIND")), false);
      assert.ok((samples.get("process_resident_memory_bytes") ?? 0) > 0);
      assert.ok(samples.has("nodejs_eventloop_lag_seconds"));
      // A second relayer's registry is its own: nothing clashes, nothing is shared.
      const other = await startRelayerApp("http://127.0.0.1:9/v1");
      try {
        const otherSamples = parsePrometheus(await (await fetch(`${other.url}/metrics`)).text());
        assert.equal(otherSamples.get('agentmesh_billed_calls_total{provider="1"}'), undefined);
      } finally {
        await other.close();
      }
    });
  });
});

describe("log level", () => {
  it("refuses an unknown level, naming the valid ones", () => {
    assert.throws(() => configureLogger({ level: "verbose" }), /the log level \(LOG_LEVEL\) must be one of trace, debug, info, warn, error, fatal, silent, got "verbose"/);
  });
});
