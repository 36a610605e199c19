import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { inspect } from "node:util";
import { after, before, describe, it } from "node:test";
import { ChainGateway } from "../src/chain.ts";
import { redactUrl } from "../src/redact.ts";

// Issue 12 item 10: "RPC URLs with API keys appear in logged errors". An RPC that fails in every
// way viem reports (an HTTP error, a JSON-RPC error, a refused connection) must leave no trace of
// the secret in the path or the query of its URL: not in the message, the stack, or anything
// console.error would print (util.inspect of the whole error and its causes).

const SECRET_PATH = "v2/PATHSECRET0123456789";
const SECRET_QUERY = "apikey=QUERYSECRET987";

describe("RPC URL redaction", () => {
  let server: Server;
  let port: number;
  /** How the RPC answers the next request. */
  let mode: "http-error" | "rpc-error" = "http-error";

  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        if (mode === "http-error") {
          res.writeHead(403, { "content-type": "text/plain" }).end(`forbidden: ${req.url}`);
        } else {
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: 0, error: { code: -32000, message: `quota for ${req.url} exceeded` } }));
        }
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    port = (server.address() as AddressInfo).port;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const gateway = (rpcUrl: string) =>
    new ChainGateway({
      rpcUrl,
      chainId: 31337,
      escrow: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
      registry: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
      relayerPrivateKey: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    });

  /** Everything of `error` that a log line or a response could show. */
  const shown = (error: unknown) => `${String(error)}\n${(error as Error).stack}\n${inspect(error, { depth: null })}\n${JSON.stringify(error)}`;

  for (const [name, url, setMode] of [
    ["an HTTP error", () => `http://127.0.0.1:${port}/${SECRET_PATH}?${SECRET_QUERY}`, () => (mode = "http-error")],
    ["a JSON-RPC error", () => `http://127.0.0.1:${port}/${SECRET_PATH}?${SECRET_QUERY}`, () => (mode = "rpc-error")],
    ["a refused connection", () => `http://127.0.0.1:1/${SECRET_PATH}?${SECRET_QUERY}`, () => {}],
  ] as const) {
    it(`keeps the secret of an RPC URL out of ${name}`, async () => {
      setMode();
      const error = await gateway(url()).feeBps().then(
        () => assert.fail("the RPC call should fail"),
        (caught: unknown) => caught,
      );
      const text = shown(error);
      assert.doesNotMatch(text, /PATHSECRET|QUERYSECRET/);
      assert.match(text, /127\.0\.0\.1:\d+\/…/, "the host is still named, for whoever reads the log");
    });
  }

  it("redacts a URL to its origin", () => {
    assert.equal(redactUrl("https://user:pw@base-mainnet.example.com/v2/KEY?apikey=1"), "https://base-mainnet.example.com/…");
    assert.equal(redactUrl("not a url"), "<RPC URL>");
  });
});
