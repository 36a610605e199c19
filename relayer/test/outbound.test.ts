/**
 * The outbound policy (issue 12, SSRF): every endpoint that comes from the chain — provider calls,
 * agent calls, health probes — is refused off the local chain when it names or resolves to a
 * special-purpose address, has an abnormal shape or redirects; bodies are capped while they are read.
 * Real servers on loopback stand for what an attacker would reach (the chain node's JSON-RPC).
 */
import assert from "node:assert/strict";
import type { LookupAddress } from "node:dns";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, LookupFunction } from "node:net";
import { after, before, describe, it } from "node:test";
import ipaddr from "ipaddr.js";
import { ApiError } from "@agentmesh/sdk/http";
import { probeEndpoint } from "../src/health.ts";
import type { ListedAgent } from "../src/marketplace.ts";
import {
  EndpointRefusedError,
  LOCAL_CHAIN_ID,
  OutboundHttp,
  ResponseTooLargeError,
  cappedText,
  outboundPolicy,
  readCapped,
  specialPurposeRange,
  type OutboundPolicy,
} from "../src/outbound.ts";
import { startReferenceProvider } from "../src/reference-provider/server.ts";
import { UpstreamError, callUpstream, type UpstreamOptions } from "../src/upstream.ts";
import { forwardToAgent } from "../src/core/x402.ts";

/** Base mainnet: any chain but the local one. */
const BASE = 8453;
const HARDHAT_ACCOUNT_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const ETH_ACCOUNTS = { jsonrpc: "2.0", id: 1, method: "eth_accounts", params: [] };

async function listen(server: Server, host: string): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as AddressInfo).port;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** A lookup answering from `answers` (and ENOTFOUND otherwise), counting its calls. */
function fakeDns(answers: Record<string, LookupAddress[]>): LookupFunction & { calls: number } {
  const lookup = ((hostname, options, callback) => {
    lookup.calls++;
    const addresses = answers[hostname];
    if (addresses === undefined) callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" }), "", 0);
    else if (options.all) callback(null, addresses);
    else callback(null, addresses[0].address, addresses[0].family);
  }) as LookupFunction & { calls: number };
  lookup.calls = 0;
  return lookup;
}

const offChain = outboundPolicy(BASE);
const v4 = (address: string): LookupAddress => ({ address, family: 4 });
const v6 = (address: string): LookupAddress => ({ address, family: 6 });
/** Off the local chain, with host names answered by `answers`. */
const withDns = (answers: Record<string, LookupAddress[]>): OutboundPolicy => ({ ...offChain, lookup: fakeDns(answers) });
/** Off the local chain, but 127.0.0.2 stands for a public server (a test needs one it can reach). */
const PUBLIC_STAND_IN = "127.0.0.2";
const withPublicStandIn: OutboundPolicy = { ...offChain, refuse: (address) => (address === PUBLIC_STAND_IN ? undefined : specialPurposeRange(address)) };

function agent(endpoint: string): ListedAgent {
  return {
    id: 7,
    owner: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    status: "active",
    pricePerCall: 1n,
    paymentAddress: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    name: "Attacker",
    metadataURI: "",
    endpoint,
  };
}

function upstreamOptions(outbound: OutboundHttp): UpstreamOptions {
  return {
    outbound,
    firstByteTimeoutMs: 5_000,
    idleTimeoutMs: 5_000,
    clientSignal: new AbortController().signal,
    onStreamStart: () => {},
    onChunk: () => {},
    drained: () => undefined,
  };
}

/** A provider request body, as chat.ts sends it. */
const chatBody = (stream = false) => ({
  model: "agentmesh-small",
  messages: [{ role: "user", content: "hi" }],
  max_tokens: 8,
  stream,
  ...(stream ? { stream_options: { include_usage: true } } : {}),
});

/** The loopback chain node's JSON-RPC, as an attacker would like to read it: answers eth_accounts. */
function startChainNode() {
  const node = { requests: 0, server: undefined as unknown as Server, port: 0 };
  node.server = createServer((req, res) => {
    node.requests++;
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: 1, result: [HARDHAT_ACCOUNT_0] }));
    });
  });
  return node;
}

/** Sends eth_accounts to `endpoint` through `outbound`; the answer's text. */
async function rpcThrough(outbound: OutboundHttp, endpoint: string): Promise<string> {
  const response = await outbound.request(outbound.endpointUrl(endpoint), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(ETH_ACCOUNTS),
    signal: AbortSignal.timeout(3_000),
  });
  return (await readCapped(response.body, 1024 * 1024, response.headers)).toString("utf8");
}

describe("outbound policy", () => {
  // Dual-stack on every loopback address: 127.0.0.1, ::1, ::ffff:127.0.0.1, 0.0.0.0 and :: all reach it.
  const chainNode = startChainNode();
  /** A public server (127.0.0.2, allowed by `withPublicStandIn`) redirecting every request to the chain node. */
  let redirects = 0;
  const redirector = createServer((req, res) => {
    redirects++;
    req.resume();
    res.writeHead(307, { location: `http://127.0.0.1:${chainNode.port}/` }).end();
  });
  let redirectorPort = 0;

  before(async () => {
    chainNode.port = await listen(chainNode.server, "::");
    redirectorPort = await listen(redirector, PUBLIC_STAND_IN);
  });

  after(async () => {
    await closeServer(chainNode.server);
    await closeServer(redirector);
  });

  /** Each case: an endpoint that reaches the chain node (or would, were the policy missing) and the refusal expected. */
  const SSRF_TABLE: { name: string; endpoint: () => string; reason: RegExp; policy?: OutboundPolicy }[] = [
    { name: "IPv4-mapped loopback [::ffff:127.0.0.1]", endpoint: () => `http://[::ffff:127.0.0.1]:${chainNode.port}/`, reason: /IPv4-mapped 127\.0\.0\.1: loopback/ },
    { name: "IPv4-mapped loopback in hex [::ffff:7f00:1]", endpoint: () => `http://[::ffff:7f00:1]:${chainNode.port}/`, reason: /IPv4-mapped 127\.0\.0\.1: loopback/ },
    { name: "IPv4-mapped private [::ffff:10.0.0.1]", endpoint: () => "http://[::ffff:10.0.0.1]/", reason: /IPv4-mapped 10\.0\.0\.1: private/ },
    { name: "unspecified IPv6 [::]", endpoint: () => `http://[::]:${chainNode.port}/`, reason: /unspecified/ },
    { name: "IPv6 loopback [::1]", endpoint: () => `http://[::1]:${chainNode.port}/`, reason: /loopback \(::1\/128\)/ },
    { name: "IPv4-compatible loopback [::127.0.0.1]", endpoint: () => `http://[::127.0.0.1]:${chainNode.port}/`, reason: /IPv4-compatible/ },
    { name: "NAT64 of loopback [64:ff9b::7f00:1]", endpoint: () => "http://[64:ff9b::7f00:1]/", reason: /NAT64 127\.0\.0\.1: loopback/ },
    { name: "6to4 of loopback [2002:7f00:1::1]", endpoint: () => "http://[2002:7f00:1::1]/", reason: /6to4/ },
    { name: "Teredo [2001::1]", endpoint: () => "http://[2001::1]/", reason: /Teredo/ },
    { name: "unique local fc00::/7 [fc00::1]", endpoint: () => "http://[fc00::1]/", reason: /unique local/ },
    { name: "unique local fc00::/7 [fd12:3456::1]", endpoint: () => "http://[fd12:3456::1]/", reason: /unique local/ },
    { name: "IPv6 link-local fe80::/10 [fe80::1]", endpoint: () => "http://[fe80::1]/", reason: /link-local/ },
    { name: "IPv6 multicast [ff02::1]", endpoint: () => "http://[ff02::1]/", reason: /multicast/ },
    { name: "0.0.0.1 (this network)", endpoint: () => `http://0.0.0.1:${chainNode.port}/`, reason: /this network/ },
    { name: "0.0.0.0", endpoint: () => `http://0.0.0.0:${chainNode.port}/`, reason: /this network/ },
    { name: "127.0.0.1", endpoint: () => `http://127.0.0.1:${chainNode.port}/`, reason: /loopback \(127\.0\.0\.0\/8\)/ },
    { name: "127.9.9.9 (all of 127/8)", endpoint: () => `http://127.9.9.9:${chainNode.port}/`, reason: /loopback/ },
    { name: "100.64.0.1 (carrier-grade NAT, 100.64/10)", endpoint: () => "http://100.64.0.1/", reason: /shared address space/ },
    { name: "169.254.169.254 (cloud metadata, 169.254/16)", endpoint: () => "http://169.254.169.254/latest/meta-data", reason: /link-local/ },
    { name: "10.0.0.1 (10/8)", endpoint: () => "http://10.0.0.1/", reason: /private \(10\.0\.0\.0\/8\)/ },
    { name: "172.16.0.1 (172.16/12)", endpoint: () => "http://172.16.0.1/", reason: /private \(172\.16\.0\.0\/12\)/ },
    { name: "172.31.255.254 (end of 172.16/12)", endpoint: () => "http://172.31.255.254/", reason: /private/ },
    { name: "192.168.1.1 (192.168/16)", endpoint: () => "http://192.168.1.1/", reason: /private \(192\.168\.0\.0\/16\)/ },
    { name: "192.0.0.170 (IETF protocol assignments)", endpoint: () => "http://192.0.0.170/", reason: /IETF protocol assignments/ },
    { name: "198.18.0.1 (benchmarking, 198.18/15)", endpoint: () => "http://198.18.0.1/", reason: /benchmarking/ },
    { name: "224.0.0.1 (multicast)", endpoint: () => "http://224.0.0.1/", reason: /multicast/ },
    { name: "240.0.0.1 (reserved 240/4)", endpoint: () => "http://240.0.0.1/", reason: /reserved/ },
    { name: "255.255.255.255 (broadcast)", endpoint: () => "http://255.255.255.255/", reason: /reserved/ },
    { name: "decimal IPv4 2130706433", endpoint: () => `http://2130706433:${chainNode.port}/`, reason: /loopback/ },
    { name: "octal IPv4 0177.0.0.1", endpoint: () => `http://0177.0.0.1:${chainNode.port}/`, reason: /loopback/ },
    { name: "hex IPv4 0x7f.1", endpoint: () => `http://0x7f.1:${chainNode.port}/`, reason: /loopback/ },
    { name: "short IPv4 127.1", endpoint: () => `http://127.1:${chainNode.port}/`, reason: /loopback/ },
    { name: "percent-encoded IPv4 host", endpoint: () => `http://%31%32%37.0.0.1:${chainNode.port}/`, reason: /loopback/ },
    { name: "a public address in decimal (not normal form)", endpoint: () => "http://134744072/", reason: /not written in normal form \(write 8\.8\.8\.8\)/ },
    { name: "localhost", endpoint: () => `http://localhost:${chainNode.port}/`, reason: /localhost is a name that only resolves inside a network/ },
    { name: "LOCALHOST in capitals", endpoint: () => `http://LOCALHOST:${chainNode.port}/`, reason: /localhost is a name that only resolves inside a network/ },
    { name: "localhost. with a trailing dot", endpoint: () => `http://localhost.:${chainNode.port}/`, reason: /not a DNS name/ },
    { name: "a *.localhost name", endpoint: () => `http://rpc.localhost:${chainNode.port}/`, reason: /only resolves inside a network/ },
    { name: "a single-label intranet name", endpoint: () => "http://chainnode:8545/", reason: /only resolves inside a network/ },
    { name: "an mDNS *.local name", endpoint: () => "http://printer.local/", reason: /only resolves inside a network/ },
    {
      name: "real localhost resolution (the name check waived): resolves to loopback",
      endpoint: () => `http://localhost:${chainNode.port}/`,
      reason: /refused to connect to localhost: it resolves to (127\.0\.0\.1|::1), loopback/,
      policy: { ...offChain, privateNames: true },
    },
    {
      name: "a DNS name resolving to a private address",
      endpoint: () => `http://rpc.attacker.net:${chainNode.port}/`,
      reason: /rpc\.attacker\.net: it resolves to 10\.0\.0\.5, private/,
      policy: withDns({ "rpc.attacker.net": [v4("10.0.0.5")] }),
    },
    {
      name: "a DNS name resolving to a public and a loopback address (any one refuses)",
      endpoint: () => `http://mixed.attacker.net:${chainNode.port}/`,
      reason: /it resolves to 127\.0\.0\.1, loopback/,
      policy: withDns({ "mixed.attacker.net": [v4("93.184.216.34"), v4("127.0.0.1")] }),
    },
    {
      name: "a DNS name resolving to an IPv4-mapped loopback AAAA",
      endpoint: () => `http://aaaa.attacker.net:${chainNode.port}/`,
      reason: /resolves to ::ffff:127\.0\.0\.1, IPv4-mapped 127\.0\.0\.1: loopback/,
      policy: withDns({ "aaaa.attacker.net": [v6("::ffff:127.0.0.1")] }),
    },
    {
      name: "a DNS name resolving to cloud metadata",
      endpoint: () => "http://metadata.attacker.net/",
      reason: /resolves to 169\.254\.169\.254, link-local/,
      policy: withDns({ "metadata.attacker.net": [v4("169.254.169.254")] }),
    },
    {
      name: "a redirect from an allowed server to 127.0.0.1",
      endpoint: () => `http://${PUBLIC_STAND_IN}:${redirectorPort}/`,
      reason: /answered HTTP 307 \(to http:\/\/127\.0\.0\.1:\d+\/\): redirects are not followed/,
      policy: withPublicStandIn,
    },
    { name: "# in the endpoint (the attacker's path)", endpoint: () => "http://provider.example.com/rpc#", reason: /fragment/ },
    { name: "? in the endpoint (the attacker's path)", endpoint: () => "http://provider.example.com/rpc?", reason: /query/ },
    { name: "userinfo before a loopback host", endpoint: () => `http://provider.example.com@127.0.0.1:${chainNode.port}/`, reason: /userinfo/ },
    { name: "userinfo with a password", endpoint: () => "http://user:secret@provider.example.com/v1", reason: /userinfo/ },
    { name: "a backslash", endpoint: () => "http://provider.example.com\\@127.0.0.1/", reason: /backslash/ },
    { name: "a .. path segment", endpoint: () => "http://provider.example.com/v1/../admin", reason: /\.\. segment/ },
    { name: "an encoded .. path segment", endpoint: () => "http://provider.example.com/v1/%2e%2e/admin", reason: /percent-encodes/ },
    { name: "an encoded slash", endpoint: () => "http://provider.example.com/v1%2fadmin", reason: /percent-encodes/ },
    { name: "an empty path segment", endpoint: () => "http://provider.example.com//v1", reason: /empty segment/ },
    { name: "a newline (URL parsers drop it silently)", endpoint: () => "http://provider.example.com/v\n1", reason: /printable ASCII/ },
    { name: "no slashes after the scheme", endpoint: () => `http:127.0.0.1:${chainNode.port}/`, reason: /not an http:\/\/ or https:\/\/ URL/ },
    { name: "a file: URL", endpoint: () => "file:///etc/passwd", reason: /not an http:\/\/ or https:\/\/ URL/ },
    { name: "a gopher: URL", endpoint: () => `gopher://127.0.0.1:${chainNode.port}/_eth_accounts`, reason: /not an http:\/\/ or https:\/\/ URL/ },
    { name: "port 0", endpoint: () => "http://provider.example.com:0/", reason: /port/ },
    { name: "an empty host", endpoint: () => "http:///v1", reason: /no host/ },
    { name: "an endpoint longer than 512 bytes", endpoint: () => `http://provider.example.com/${"a".repeat(520)}`, reason: /length/ },
  ];

  describe("SSRF table: every case refused off the local chain, by every caller, with a clear error", () => {
    for (const { name, endpoint, reason, policy } of SSRF_TABLE) {
      it(`refuses ${name}`, async () => {
        const outbound = new OutboundHttp(policy ?? offChain);
        try {
          await assert.rejects(rpcThrough(outbound, endpoint()), (error: unknown) => {
            assert.ok(error instanceof EndpointRefusedError, `an EndpointRefusedError, not ${String(error)}`);
            assert.match(error.message, reason);
            return true;
          });
          // A provider call: thrown as UpstreamError (refused, never served, never a provider failure), not a failed result.
          await assert.rejects(callUpstream(endpoint(), chatBody(), upstreamOptions(outbound)), (error: unknown) => {
            assert.ok(error instanceof UpstreamError && error.cause instanceof EndpointRefusedError, String(error));
            assert.match(error.message, reason);
            return true;
          });
          // A paid agent call: refused as such (nothing settled), not "unreachable".
          await assert.rejects(forwardToAgent({ outbound }, agent(endpoint()), ETH_ACCOUNTS), (error: unknown) => {
            assert.ok(error instanceof ApiError, String(error));
            assert.deepEqual([error.status, error.code], [502, "agent_endpoint_refused"]);
            assert.match(error.message, reason);
            return true;
          });
          // A health probe: fails without contacting anything.
          assert.equal(await probeEndpoint(outbound, endpoint(), 3_000), false);
        } finally {
          await outbound.close();
        }
      });
    }

    it("let nothing reach the chain node, and stopped at the redirect", () => {
      assert.ok(SSRF_TABLE.length >= 20);
      assert.equal(chainNode.requests, 0);
      assert.equal(redirects, 4, "each caller reached the allowed server once and did not follow its redirect");
    });
  });

  describe("reproduction: with one paid call, read eth_accounts from the loopback chain node", () => {
    const attacks = () => [
      `http://[::ffff:127.0.0.1]:${chainNode.port}/`,
      `http://[::]:${chainNode.port}/`,
      `http://0.0.0.0:${chainNode.port}/`,
      `http://2130706433:${chainNode.port}/`,
      `http://127.0.0.1:${chainNode.port}/?`,
    ];

    it("works on the local chain, where private endpoints are allowed (so the refusal below is the policy's doing)", async () => {
      const outbound = new OutboundHttp(outboundPolicy(LOCAL_CHAIN_ID));
      try {
        const answer = await forwardToAgent({ outbound }, agent(`http://[::ffff:127.0.0.1]:${chainNode.port}/`), ETH_ACCOUNTS);
        assert.deepEqual(JSON.parse(answer).result, [HARDHAT_ACCOUNT_0]);
      } finally {
        await outbound.close();
      }
      chainNode.requests = 0;
    });

    it("is refused off the local chain: the agent call never reaches the node", async () => {
      const outbound = new OutboundHttp(offChain);
      try {
        for (const endpoint of attacks()) {
          await assert.rejects(forwardToAgent({ outbound }, agent(endpoint), ETH_ACCOUNTS), (error: unknown) => {
            assert.ok(error instanceof ApiError && error.code === "agent_endpoint_refused", `${endpoint}: ${String(error)}`);
            assert.match(error.message, /no payment was settled/);
            return true;
          });
        }
      } finally {
        await outbound.close();
      }
      assert.equal(chainNode.requests, 0);
    });

    it("is refused when a public-looking name resolves to the node (no DNS rebinding between check and connect)", async () => {
      const lookup = fakeDns({ "agent.attacker.net": [v4("127.0.0.1")] });
      const outbound = new OutboundHttp({ ...offChain, lookup });
      try {
        await assert.rejects(forwardToAgent({ outbound }, agent(`http://agent.attacker.net:${chainNode.port}/`), ETH_ACCOUNTS), /resolves to 127\.0\.0\.1, loopback/);
      } finally {
        await outbound.close();
      }
      assert.equal(lookup.calls, 1, "one resolution, checked, and nothing else resolved");
      assert.equal(chainNode.requests, 0);
    });

    it("the health prober learns nothing of loopback services off the local chain", async () => {
      const outbound = new OutboundHttp(offChain);
      try {
        for (const endpoint of attacks()) assert.equal(await probeEndpoint(outbound, endpoint, 3_000), false);
      } finally {
        await outbound.close();
      }
      assert.equal(chainNode.requests, 0);
    });
  });

  describe("what is allowed", () => {
    it("accepts public endpoints in normal form, and appends paths to them", () => {
      const outbound = new OutboundHttp(offChain);
      for (const endpoint of ["https://api.provider.example.com/v1", "http://8.8.8.8:8080/v1/", "https://[2001:4860:4860::8888]/v1", "https://xn--bcher-kva.example.org/a-b_c~d/e.f"]) {
        assert.equal(outbound.endpointUrl(endpoint).href.replace(/\/$/, ""), endpoint.replace(/\/$/, ""));
      }
      assert.equal(outbound.endpointUrl("https://api.provider.example.com/v1/", "/models").href, "https://api.provider.example.com/v1/models");
      assert.equal(outbound.endpointUrl("https://api.provider.example.com", "/chat/completions").href, "https://api.provider.example.com/chat/completions");
      assert.throws(() => outbound.endpointUrl("https://bücher.example.org/"), /printable ASCII.*punycode/);
    });

    it("calls loopback endpoints on the local chain, as the local stack does", async () => {
      const outbound = new OutboundHttp(outboundPolicy(LOCAL_CHAIN_ID));
      try {
        for (const host of ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "localhost"]) {
          assert.deepEqual(JSON.parse(await rpcThrough(outbound, `http://${host}:${chainNode.port}/`)).result, [HARDHAT_ACCOUNT_0]);
        }
        // Shape rules hold on every chain.
        for (const endpoint of [`http://127.0.0.1:${chainNode.port}/?`, `http://u@127.0.0.1:${chainNode.port}/`, `http://2130706433:${chainNode.port}/`]) {
          assert.throws(() => outbound.endpointUrl(endpoint), EndpointRefusedError);
        }
      } finally {
        await outbound.close();
      }
      chainNode.requests = 0;
    });

    it("calls loopback endpoints off the local chain only when the operator allows private endpoints", async () => {
      assert.match(offChain.refuse("127.0.0.1") ?? "", /loopback/);
      const outbound = new OutboundHttp(outboundPolicy(BASE, true));
      try {
        assert.deepEqual(JSON.parse(await rpcThrough(outbound, `http://127.0.0.1:${chainNode.port}/`)).result, [HARDHAT_ACCOUNT_0]);
        assert.throws(() => outbound.endpointUrl(`http://127.0.0.1:${chainNode.port}/?`), EndpointRefusedError, "shape rules still hold");
      } finally {
        await outbound.close();
      }
      chainNode.requests = 0;
    });

    it("connects to the address its check resolved, once per connection, and keeps the connection alive", async () => {
      const sockets = new Set<unknown>();
      let host = "";
      const server = createServer((req, res) => {
        sockets.add(req.socket);
        host = req.headers.host ?? "";
        req.resume();
        res.end("{}");
      });
      const port = await listen(server, PUBLIC_STAND_IN);
      const lookup = fakeDns({ "provider.attacker.net": [v4(PUBLIC_STAND_IN)] });
      const outbound = new OutboundHttp({ ...withPublicStandIn, lookup });
      try {
        for (let call = 0; call < 5; call++) assert.equal(await rpcThrough(outbound, `http://provider.attacker.net:${port}/`), "{}");
        assert.equal(host, `provider.attacker.net:${port}`);
        assert.equal(lookup.calls, sockets.size, "resolved once per connection, and only by the check");
        // (undici's pool may open a second connection while the first one's response completes.)
        assert.ok(sockets.size <= 2, `pooled connections were reused (${sockets.size} for 5 calls)`);
      } finally {
        await outbound.close();
        await closeServer(server);
      }
    });
  });

  describe("special-purpose ranges", () => {
    it("refuses every range ipaddr.js knows to be other than unicast, IPv4 and IPv6", () => {
      type Ranges = Record<string, [ipaddr.IPv4 | ipaddr.IPv6, number] | [ipaddr.IPv4 | ipaddr.IPv6, number][]>;
      for (const table of [(ipaddr.IPv4.prototype as unknown as { SpecialRanges: Ranges }).SpecialRanges, (ipaddr.IPv6.prototype as unknown as { SpecialRanges: Ranges }).SpecialRanges]) {
        for (const [name, ranges] of Object.entries(table)) {
          for (const [network, bits] of (Array.isArray(ranges[0]) ? ranges : [ranges]) as [ipaddr.IPv4 | ipaddr.IPv6, number][]) {
            const first = network.toString();
            const last = (network.kind() === "ipv4" ? ipaddr.IPv4 : ipaddr.IPv6).broadcastAddressFromCIDR(`${first}/${bits}`).toString();
            for (const address of [first, last]) assert.notEqual(specialPurposeRange(address), undefined, `${address} (${name})`);
          }
        }
      }
    });

    it("judges IPv4-mapped and NAT64 addresses by the IPv4 address inside, and passes public unicast", () => {
      assert.match(specialPurposeRange("::ffff:169.254.169.254")!, /IPv4-mapped 169\.254\.169\.254: link-local/);
      assert.match(specialPurposeRange("64:ff9b::a00:1")!, /NAT64 10\.0\.0\.1: private/);
      assert.match(specialPurposeRange("4000::1")!, /outside 2000::\/3/);
      assert.match(specialPurposeRange("not-an-ip")!, /not an IP address/);
      for (const address of ["8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]) {
        assert.equal(specialPurposeRange(address), undefined, address);
      }
    });
  });

  describe("response caps, applied while reading", () => {
    /** Answers every request with a body that never ends (until the relayer hangs up), counting hang-ups. */
    const flood = { server: undefined as unknown as Server, port: 0, hangUps: 0 };
    const floodBody = (req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      const stream = req.url!.includes("stream");
      res.writeHead(200, { "content-type": stream ? "text/event-stream" : "application/json" });
      const chunk = stream ? Buffer.from(`data: ${JSON.stringify({ choices: [{ delta: { content: "a".repeat(60_000) } }] })}\n\n`) : Buffer.alloc(64 * 1024, "a");
      if (!stream) res.write('{"a":"');
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once("drain", pump);
      };
      res.on("close", () => flood.hangUps++);
      pump();
    };

    before(async () => {
      flood.server = createServer(floodBody);
      flood.port = await listen(flood.server, "127.0.0.1");
    });
    after(() => closeServer(flood.server));

    const local = () => new OutboundHttp(outboundPolicy(LOCAL_CHAIN_ID));

    it("cuts a body that never ends as soon as it passes the cap", async () => {
      const outbound = local();
      try {
        const response = await outbound.request(outbound.endpointUrl(`http://127.0.0.1:${flood.port}/`), { method: "GET" });
        await assert.rejects(readCapped(response.body, 1024 * 1024), ResponseTooLargeError);
        const streamed = await outbound.request(outbound.endpointUrl(`http://127.0.0.1:${flood.port}/stream`), { method: "GET" });
        let read = 0;
        await assert.rejects(
          (async () => {
            for await (const text of cappedText(streamed.body, 1024 * 1024)) read += text.length;
          })(),
          /larger than 1048576 bytes/,
        );
        assert.ok(read <= 1024 * 1024);
      } finally {
        await outbound.close();
      }
    });

    it("refuses a body whose declared length passes the cap without reading it", async () => {
      const server = createServer((req, res) => {
        req.resume();
        res.writeHead(200, { "content-length": String(100 * 1024 * 1024) });
        res.write("{"); // and nothing more: reading would wait for the rest
      });
      const port = await listen(server, "127.0.0.1");
      const outbound = local();
      try {
        const response = await outbound.request(outbound.endpointUrl(`http://127.0.0.1:${port}/`), { method: "GET" });
        await assert.rejects(readCapped(response.body, 1024 * 1024, response.headers), ResponseTooLargeError);
      } finally {
        await outbound.close();
        await closeServer(server);
      }
    });

    it("fails provider calls, plain and streamed, agent calls and probes whose answers never end", async () => {
      const outbound = local();
      const before = flood.hangUps;
      try {
        const plain = await callUpstream(`http://127.0.0.1:${flood.port}/v1`, chatBody(), upstreamOptions(outbound));
        assert.deepEqual(plain, { kind: "failed", message: "bad response: the response is larger than 8388608 bytes" });
        // The flood's content reached the client before the cap: a cut stream, billed for what it delivered.
        const streamed = await callUpstream(`http://127.0.0.1:${flood.port}/stream`, chatBody(true), upstreamOptions(outbound));
        assert.deepEqual([streamed.kind, "message" in streamed && streamed.message], ["cut", "stream broke: the response is larger than 33554432 bytes"]);
        await assert.rejects(forwardToAgent({ outbound }, agent(`http://127.0.0.1:${flood.port}/`), {}), (error: unknown) => {
          assert.ok(error instanceof ApiError && error.code === "agent_error", String(error));
          assert.match(error.message, /larger than 4194304 bytes; the payment was not settled/);
          return true;
        });
        assert.equal(await probeEndpoint(outbound, `http://127.0.0.1:${flood.port}/v1`), false);
      } finally {
        await outbound.close();
      }
      // The server sees each hang-up a moment after the relayer made it.
      for (let wait = 0; wait < 100 && flood.hangUps - before < 4; wait++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(flood.hangUps - before, 4, "each answer was cut off by the relayer");
    });

    it("fails a stream whose SSE line never ends", async () => {
      const server = createServer((req, res) => {
        req.resume();
        res.writeHead(200, { "content-type": "text/event-stream" });
        const chunk = Buffer.alloc(64 * 1024, "a");
        res.write("data: ");
        const pump = () => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once("drain", pump);
        };
        pump();
      });
      const port = await listen(server, "127.0.0.1");
      const outbound = local();
      try {
        const result = await callUpstream(`http://127.0.0.1:${port}/v1`, chatBody(true), upstreamOptions(outbound));
        assert.deepEqual(result, { kind: "failed", message: "stream broke: an SSE line is longer than 1048576 characters" });
      } finally {
        await outbound.close();
        await closeServer(server);
      }
    });
  });

  describe("provider calls", () => {
    it("call a loopback reference provider on the local chain only; off it the provider sees no request", async () => {
      const provider = await startReferenceProvider();
      const [strict, local] = [new OutboundHttp(offChain), new OutboundHttp(outboundPolicy(LOCAL_CHAIN_ID))];
      try {
        await assert.rejects(callUpstream(provider.url, chatBody(), upstreamOptions(strict)), (error: unknown) => {
          assert.ok(error instanceof UpstreamError && error.cause instanceof EndpointRefusedError);
          assert.match(error.message, /loopback/);
          return true;
        });
        assert.equal(provider.stats().requests, 0);
        const served = await callUpstream(provider.url, chatBody(), upstreamOptions(local));
        assert.equal(served.kind, "completed", JSON.stringify(served));
        const streamed = await callUpstream(provider.url, chatBody(true), upstreamOptions(local));
        assert.equal(streamed.kind, "completed", JSON.stringify(streamed));
        assert.equal(await probeEndpoint(local, provider.url), true);
        assert.equal(provider.stats().requests, 3);
      } finally {
        await strict.close();
        await local.close();
        await provider.close();
      }
    });
  });
});
