/**
 * The x402 rules through `createApp(deps)` in-process, on a fake chain and marketplace
 * (fake-chain.ts): one run per payment, a pending transfer never answered 402, and one transaction
 * per payment. The store, the HTTP API and the agent's endpoint (on 127.0.0.1) are real.
 */
import assert from "node:assert/strict";
import { createServer, request } from "node:http";
import { describe, it } from "node:test";
import { decodePaymentResponseHeader, encodePaymentSignatureHeader } from "@x402/core/http";
import type { PaymentPayload } from "@x402/core/types";
import type { Address, Hex } from "viem";
import { closeServer, listen, startRelayerApp } from "./app-harness.ts";

const PAYER: Address = "0x976EA74026E726554dB657fA54763abd0C3a0aa9";
const PAY_TO: Address = "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955";
const PRICE = 10_000n;

/** An agent's endpoint answering `{ "run": n }` for its n-th run (500 once `failNext` is set); `runs` counts them. */
async function startAgent() {
  const agent = { runs: 0, failNext: false, close: async () => {}, url: "" };
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      agent.runs++;
      if (agent.failNext) {
        agent.failNext = false;
        res.writeHead(500, { "content-type": "application/json" }).end('{"error":"boom"}');
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ run: agent.runs }));
    });
  });
  agent.url = `http://127.0.0.1:${await listen(server)}`;
  agent.close = () => closeServer(server);
  return agent;
}

async function withApp(test: (app: Awaited<ReturnType<typeof startRelayerApp>>, agent: Awaited<ReturnType<typeof startAgent>>) => Promise<void>): Promise<void> {
  const agent = await startAgent();
  // No chat here: the provider's endpoint is never called.
  const app = await startRelayerApp("http://127.0.0.1:9/v1", { agents: true });
  app.marketplace!.agents.set(1, {
    id: 1,
    owner: PAYER,
    status: "active",
    pricePerCall: PRICE,
    paymentAddress: PAY_TO,
    name: "echo",
    metadataURI: "",
    endpoint: agent.url,
  });
  try {
    await test(app, agent);
  } finally {
    await app.close();
    await agent.close();
  }
}

/** An `exact` payment of PRICE to agent 1 by PAYER with authorization `nonce`. */
function payment(nonce: number): PaymentPayload {
  return {
    x402Version: 2,
    accepted: { scheme: "exact", network: "eip155:31337", asset: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512", amount: PRICE.toString(), payTo: PAY_TO, maxTimeoutSeconds: 300, extra: {} },
    payload: {
      authorization: {
        from: PAYER,
        to: PAY_TO,
        value: PRICE.toString(),
        validAfter: "0",
        validBefore: String(Math.floor(Date.now() / 1000) + 300),
        nonce: `0x${nonce.toString(16).padStart(64, "0")}`,
      },
      signature: `0x${"11".repeat(65)}`,
    },
  } as PaymentPayload;
}

/** `POST /agents/1` with `body`, paid with `paid` (or not). */
async function callAgent(url: string, body: unknown, paid?: PaymentPayload) {
  const response = await fetch(`${url}/agents/1`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(paid && { "payment-signature": encodePaymentSignatureHeader(paid) }) },
    body: JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, any> };
}

describe("x402 through createApp, on a fake chain", () => {
  it("answers an unpaid call 402 with its price, running nothing", async () => {
    await withApp(async (app, agent) => {
      const unpaid = await callAgent(app.url, { q: 1 });
      assert.equal(unpaid.status, 402);
      assert.equal(unpaid.body.error.code, "payment_required");
      assert.ok(unpaid.headers.get("payment-required"));
      assert.deepEqual([agent.runs, app.chain.transactions.sent.length], [0, 0]);
    });
  });

  it("names an agent's paid URL by the configured public URL, never by the request's Host header", async () => {
    await withApp(async (app) => {
      // fetch sets Host from the URL; node:http lets a client send any Host.
      const hostile = { host: "attacker.example" };
      const get = (path: string, headers: Record<string, string>) =>
        new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
          const req = request(`${app.url}${path}`, { method: path.startsWith("/agents") ? "POST" : "GET", headers: { "content-type": "application/json", ...headers } }, (res) => {
            let body = "";
            res.setEncoding("utf8").on("data", (piece: string) => (body += piece)).on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
          });
          req.on("error", reject).end(path.startsWith("/agents") ? "{}" : undefined);
        });
      app.context.publicUrl = "https://relayer.example";
      const listing = await get("/v1/agents/1", hostile);
      assert.equal(JSON.parse(listing.body).url, "https://relayer.example/agents/1");
      const unpaid = await get("/agents/1", hostile);
      assert.equal(unpaid.status, 402);
      const required = JSON.parse(Buffer.from(String(unpaid.headers["payment-required"]), "base64").toString("utf8"));
      assert.equal(required.resource.url, "https://relayer.example/agents/1");
    });
  });

  it("runs the agent once for four concurrent calls with one payment, settled by one transaction", async () => {
    await withApp(async (app, agent) => {
      const paid = payment(1);
      app.marketplace!.raceVerifications(4);
      const answers = await Promise.all(Array.from({ length: 4 }, () => callAgent(app.url, { q: "same" }, paid)));
      assert.deepEqual(answers.map((answer) => [answer.status, answer.body]), Array(4).fill([200, { run: 1 }]));
      assert.equal(agent.runs, 1);
      const [tx] = app.chain.transactions.of("payWithAuthorization");
      assert.equal(app.chain.transactions.sent.length, 1);
      assert.equal(app.marketplace!.verifications, 4, "all four raced past the lock's first look");
      for (const answer of answers) {
        const settlement = decodePaymentResponseHeader(answer.headers.get("payment-response")!);
        assert.deepEqual([settlement.success, settlement.transaction, settlement.payer], [true, tx.hashes[0], PAYER]);
      }
      const other = await callAgent(app.url, { q: "other" }, paid);
      assert.deepEqual([other.status, other.body.error.code, agent.runs], [409, "payment_already_used", 1]);
    });
  });

  it("answers 409 payment_pending, never 402, while the payment's transfer is in flight; once it mines, the same payment gets the answer", async () => {
    await withApp(async (app, agent) => {
      app.chain.transactions.hold.add("payWithAuthorization");
      const paid = payment(2);
      for (let attempt = 0; attempt < 2; attempt++) {
        const pending = await callAgent(app.url, { q: 2 }, paid);
        assert.equal(pending.status, 409);
        assert.equal(pending.body.error.code, "payment_pending");
        assert.equal(pending.headers.get("retry-after"), "2");
        assert.equal(pending.headers.get("payment-required"), null);
      }
      assert.equal(agent.runs, 1);
      assert.equal(app.chain.transactions.sent.length, 1, "a retry does not send the transfer again");
      app.chain.transactions.finish(1, "confirmed");
      const served = await callAgent(app.url, { q: 2 }, paid);
      assert.deepEqual([served.status, served.body], [200, { run: 1 }]);
      assert.equal(decodePaymentResponseHeader(served.headers.get("payment-response")!).transaction, app.chain.transactions.sent[0].hashes[0]);
      assert.deepEqual([agent.runs, app.chain.transactions.sent.length], [1, 1]);
    });
  });

  it("settles nothing when the agent fails (502), and the same payment then buys a run", async () => {
    await withApp(async (app, agent) => {
      agent.failNext = true;
      const paid = payment(4);
      const failed = await callAgent(app.url, { q: 4 }, paid);
      assert.deepEqual([failed.status, failed.body.error.code], [502, "agent_error"]);
      assert.deepEqual([agent.runs, app.chain.transactions.sent.length, app.marketplace!.used.size], [1, 0, 0], "nothing was charged");
      const served = await callAgent(app.url, { q: 4 }, paid);
      assert.deepEqual([served.status, served.body], [200, { run: 2 }]);
      assert.deepEqual([agent.runs, app.chain.transactions.sent.length], [2, 1]);
    });
  });

  it("sends one transaction for racing /x402/settle requests of one payment, and answers it to each", async () => {
    await withApp(async (app) => {
      // The transfer stays in flight while they race: each could otherwise simulate and send its own.
      app.chain.transactions.hold.add("payWithAuthorization");
      const paid = payment(3);
      const requirements = { ...paid.accepted };
      const settle = async () => {
        const response = await fetch(`${app.url}/x402/settle`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ x402Version: 2, paymentPayload: paid, paymentRequirements: requirements }),
        });
        return { status: response.status, body: (await response.json()) as { success: boolean; transaction: Hex; errorReason?: string } };
      };
      app.marketplace!.raceVerifications(3);
      const racing = await Promise.all([settle(), settle(), settle()]);
      const [tx] = app.chain.transactions.sent;
      assert.deepEqual(
        racing.map((answer) => [answer.status, answer.body.success, answer.body.errorReason, answer.body.transaction]),
        Array(3).fill([200, false, "settlement_pending", tx.hashes[0]]),
      );
      assert.equal(app.chain.transactions.sent.length, 1);
      app.chain.transactions.finish(tx.id, "confirmed");
      const later = await settle();
      assert.deepEqual([later.body.success, later.body.transaction], [true, tx.hashes[0]]);
      assert.equal(app.chain.transactions.sent.length, 1);
      assert.equal(app.marketplace!.paymentsSimulated.length, 1);
      assert.equal(app.marketplace!.verifications, 3, "all three raced past the lock's first look");
    });
  });
});
