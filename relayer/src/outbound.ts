/**
 * Every HTTP request the relayer makes to an address that comes from the chain — provider endpoints
 * (calls and health probes) and agent endpoints — goes through this module, so one policy decides
 * what may be reached:
 *
 * - **Endpoint shape** (`OutboundHttp.endpointUrl`): `http(s)://host[:port][/path]`, at most 512
 *   bytes of printable ASCII (the contracts' bound); no userinfo, no `?` query, no `#` fragment, no
 *   backslash; a host written in its normal form (IPv4 as a dotted quad, not as a decimal, octal,
 *   hex or short number; DNS names as lowercase LDH labels, IDNs in punycode, no trailing dot); a
 *   path without empty, `.` or `..` segments or encoded dots, slashes, backslashes or controls.
 * - **Addresses** (`specialPurposeRange`): an IP written in the endpoint, and every address its host
 *   name resolves to, must be public unicast. The check runs in the connect hook of the undici
 *   dispatcher, for every connection: names are resolved there (node:dns `lookup`, all addresses),
 *   refused if any one is special-purpose, and the socket connects to the addresses checked, so a
 *   name cannot resolve to something else between check and connect (DNS rebinding). TLS still
 *   verifies the certificate against the host name.
 * - **Redirects are never followed**: a 3xx answer is refused (`EndpointRefusedError`), so a public
 *   server cannot bounce a call to a private one.
 * - **Response sizes** are capped while reading (`readCapped`, `cappedText`, `readHead`): the read
 *   stops, and the body is destroyed, as soon as the cap is passed.
 * - **Private destinations are allowed only on the local chain** (`outboundPolicy`, chain id 31337),
 *   or when the operator allows them (`--allow-private-endpoints`: a relayer whose providers and agents
 *   run on its own network): the one place that decision is made.
 *
 * Connections are pooled per origin (undici `Agent`: a keep-alive `Pool` per origin, dropped once
 * its connections close).
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { isIP, isIPv4, type LookupFunction } from "node:net";
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import ipaddr from "ipaddr.js";
import { Agent, buildConnector, type Dispatcher } from "undici";

/** The local development chain (Hardhat, Anvil): the only one whose endpoints may be private. */
export const LOCAL_CHAIN_ID = 31337;

/** Longest endpoint accepted: the registry's MAX_ENDPOINT_LENGTH and the marketplace's MAX_URI_LENGTH. */
export const MAX_ENDPOINT_LENGTH = 512;

/** undici's own bound on any response body, behind the callers' smaller caps (in case one forgets). */
const MAX_ANY_RESPONSE_BYTES = 64 * 1024 * 1024;

/** An endpoint the relayer does not call: its shape, an address it names or resolves to, or a redirect. */
export class EndpointRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EndpointRefusedError";
  }
}

/** A response body longer than its cap; the read stopped there. */
export class ResponseTooLargeError extends Error {
  readonly limit: number;

  constructor(limit: number) {
    super(`the response is larger than ${limit} bytes`);
    this.name = "ResponseTooLargeError";
    this.limit = limit;
  }
}

/** What outbound connections may reach. */
export interface OutboundPolicy {
  /** Why a connection to `address` (an IP, written in an endpoint or resolved) is refused; undefined allows it. */
  refuse: (address: string) => string | undefined;
  /** Whether host names that only resolve inside a network (`localhost`, `*.local`, single labels…) are accepted. */
  privateNames: boolean;
  /** Resolves host names (node:dns `lookup`); tests inject their own. */
  lookup: LookupFunction;
}

/**
 * The outbound policy of a relayer on chain `chainId`: anything on the local chain or when
 * `allowPrivate` (the operator's `--allow-private-endpoints`), only public unicast addresses and
 * names elsewhere. The one place that decides whether private endpoints may be called.
 */
export function outboundPolicy(chainId: number, allowPrivate = false): OutboundPolicy {
  if (chainId === LOCAL_CHAIN_ID || allowPrivate) return { refuse: () => undefined, privateNames: true, lookup: dnsLookup as LookupFunction };
  return { refuse: specialPurposeRange, privateNames: false, lookup: dnsLookup as LookupFunction };
}

// ---------------------------------------------------------------------------------------------------
// Special-purpose addresses
// ---------------------------------------------------------------------------------------------------

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];
const cidrs = (table: [string, string][]): [Range, string][] => table.map(([cidr, name]) => [ipaddr.parseCIDR(cidr), `${name} (${cidr})`]);

/**
 * IPv4 addresses refused off the local chain: the IANA IPv4 Special-Purpose Address Registry (RFC
 * 6890 and successors, every entry, globally reachable or not), multicast and the reserved 240/4.
 * Anything ipaddr.js's `range()` does not call `unicast` is refused as well.
 */
const IPV4_SPECIAL = cidrs([
  ["0.0.0.0/8", "this network"],
  ["10.0.0.0/8", "private"],
  ["100.64.0.0/10", "shared address space (carrier-grade NAT)"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local (cloud metadata)"],
  ["172.16.0.0/12", "private"],
  ["192.0.0.0/24", "IETF protocol assignments"],
  ["192.0.2.0/24", "documentation (TEST-NET-1)"],
  ["192.31.196.0/24", "AS112"],
  ["192.52.193.0/24", "AMT"],
  ["192.88.99.0/24", "6to4 relay anycast (deprecated)"],
  ["192.168.0.0/16", "private"],
  ["192.175.48.0/24", "AS112 direct delegation"],
  ["198.18.0.0/15", "benchmarking"],
  ["198.51.100.0/24", "documentation (TEST-NET-2)"],
  ["203.0.113.0/24", "documentation (TEST-NET-3)"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved (and broadcast)"],
]);

/** IPv6 prefixes that embed an IPv4 address, which is checked instead. */
const IPV4_MAPPED = ipaddr.parseCIDR("::ffff:0:0/96");
const NAT64 = ipaddr.parseCIDR("64:ff9b::/96");
/** Global unicast: IPv6 outside it is refused whatever it is. */
const GLOBAL_UNICAST = ipaddr.parseCIDR("2000::/3");

/**
 * IPv6 addresses refused off the local chain, most specific first: the IANA IPv6 Special-Purpose
 * Address Registry and the other non-global blocks. Outside 2000::/3 everything is refused (these
 * entries only name the reason); inside it, Teredo, 6to4 and the rest of 2001::/23 are refused
 * whatever IPv4 address they embed. Anything ipaddr.js's `range()` does not call `unicast` is
 * refused as well.
 */
const IPV6_SPECIAL = cidrs([
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  ["::/96", "IPv4-compatible (deprecated)"],
  ["::ffff:0:0:0/96", "IPv4-translated"],
  ["64:ff9b:1::/48", "local-use NAT64"],
  ["100::/64", "discard-only"],
  ["100:0:0:1::/64", "dummy prefix"],
  ["2001::/32", "Teredo"],
  ["2001::/23", "IETF protocol assignments"],
  ["2001:db8::/32", "documentation"],
  ["2002::/16", "6to4"],
  ["2620:4f:8000::/48", "AS112 direct delegation"],
  ["3fff::/20", "documentation"],
  ["5f00::/16", "segment routing (SRv6) SIDs"],
  ["fc00::/7", "unique local"],
  ["fe80::/10", "link-local"],
  ["fec0::/10", "site-local (deprecated)"],
  ["ff00::/8", "multicast"],
]);

function ipv4Refusal(ip: ipaddr.IPv4): string | undefined {
  for (const [range, name] of IPV4_SPECIAL) if (ip.match(range)) return name;
  const range = ip.range();
  return range === "unicast" ? undefined : range;
}

/**
 * Why `address` is not a public unicast address — the name of its special-purpose range — or
 * undefined when it is. IPv4-mapped (::ffff:0:0/96) and NAT64 (64:ff9b::/96) IPv6 addresses are
 * judged by the IPv4 address they carry; text that is not an IP address is refused.
 *
 * @example
 * specialPurposeRange("::ffff:127.0.0.1"); // "IPv4-mapped 127.0.0.1: loopback (127.0.0.0/8)"
 * specialPurposeRange("8.8.8.8"); // undefined
 */
export function specialPurposeRange(address: string): string | undefined {
  let ip: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    ip = ipaddr.parse(address);
  } catch {
    return "not an IP address";
  }
  if (ip.kind() === "ipv4") return ipv4Refusal(ip as ipaddr.IPv4);
  const v6 = ip as ipaddr.IPv6;
  for (const [prefix, name] of [
    [IPV4_MAPPED, "IPv4-mapped"],
    [NAT64, "NAT64"],
  ] as const) {
    if (v6.match(prefix)) {
      const [high, low] = v6.parts.slice(6);
      const embedded = new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
      const reason = ipv4Refusal(embedded);
      return reason === undefined ? undefined : `${name} ${embedded.toString()}: ${reason}`;
    }
  }
  for (const [range, name] of IPV6_SPECIAL) if (v6.match(range)) return name;
  if (!v6.match(GLOBAL_UNICAST)) return "not global unicast (outside 2000::/3)";
  const range = v6.range();
  return range === "unicast" ? undefined : range;
}

// ---------------------------------------------------------------------------------------------------
// Endpoint shape
// ---------------------------------------------------------------------------------------------------

/** Top-level names that only resolve inside a network, or never (RFC 6761, 6762, 8375, 9476, ICANN). */
const PRIVATE_SUFFIXES = ["localhost", "local", "internal", "intranet", "private", "corp", "home", "lan", "arpa", "test", "invalid", "example", "onion", "alt"];
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const PATH_SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,;=:]*$/;
/** Percent-encodings of `.`, `/`, `\` and controls: the path tricks that normalization undoes. */
const ENCODED_TRICK = /%(2e|2f|5c|[01][0-9a-f]|7f)/i;

/** A URL whose endpoint passed the shape check (see `OutboundHttp.endpointUrl`). */
export type EndpointUrl = URL & { readonly checkedEndpoint: true };

/**
 * Parses a registered endpoint, refusing every shape but `http(s)://host[:port][/path]` in normal
 * form, and hosts the policy refuses. Names are judged here only by their text; the addresses they
 * resolve to are checked on each connection.
 */
function parseEndpoint(endpoint: string, policy: OutboundPolicy): URL {
  const refuse = (reason: string) => new EndpointRefusedError(`endpoint ${JSON.stringify(endpoint.slice(0, 120))} is refused: ${reason}`);
  if (endpoint.length === 0 || Buffer.byteLength(endpoint) > MAX_ENDPOINT_LENGTH) throw refuse(`its length must be 1 to ${MAX_ENDPOINT_LENGTH} bytes`);
  if (!/^[\x21-\x7e]+$/.test(endpoint)) throw refuse("it may hold only printable ASCII, without spaces (IDN hosts in punycode)");
  if (endpoint.includes("?")) throw refuse("it has a query (?)");
  if (endpoint.includes("#")) throw refuse("it has a fragment (#)");
  if (endpoint.includes("\\")) throw refuse("it has a backslash");
  const parts = /^(https?):\/\/([^/]*)(\/.*)?$/i.exec(endpoint);
  if (parts === null) throw refuse("it is not an http:// or https:// URL");
  const [, , authority, rawPath = ""] = parts;
  if (authority.includes("@")) throw refuse("it has userinfo (@)");
  const bracketed = authority.startsWith("[");
  const hostEnd = bracketed ? authority.indexOf("]") + 1 : authority.lastIndexOf(":") < 0 ? authority.length : authority.lastIndexOf(":");
  const rawHost = authority.slice(0, hostEnd);
  const rawPort = authority.slice(hostEnd);
  if (rawHost === "" || rawHost === "[]") throw refuse("it has no host");
  if (rawPort !== "" && !/^:[1-9]\d{0,4}$/.test(rawPort)) throw refuse("its port is not a number from 1 to 65535");

  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw refuse("it is not a URL");
  }
  const host = url.hostname;
  const literal = host.startsWith("[") ? host.slice(1, -1) : isIPv4(host) ? host : undefined;
  if (literal !== undefined) {
    const reason = policy.refuse(literal);
    if (reason !== undefined) throw refuse(`its host ${host} is ${reason}`);
    const sameAddress = bracketed
      ? rawHost.endsWith("]") && ipaddr.IPv6.isValid(rawHost.slice(1, -1)) && ipaddr.IPv6.parse(rawHost.slice(1, -1)).toString() === ipaddr.IPv6.parse(literal).toString()
      : rawHost === host;
    if (!sameAddress) throw refuse(`its host is not written in normal form (write ${host})`);
  } else {
    if (rawHost.toLowerCase() !== host) throw refuse(`its host is not written in normal form (write ${host})`);
    const labels = host.split(".");
    if (host.length > 253 || !labels.every((label) => LABEL.test(label))) throw refuse(`its host ${host} is not a DNS name (lowercase letters, digits and hyphens in dot-separated labels, no trailing dot)`);
    if (!policy.privateNames && (labels.length < 2 || PRIVATE_SUFFIXES.includes(labels[labels.length - 1]))) {
      throw refuse(`its host ${host} is a name that only resolves inside a network`);
    }
  }

  const segments = rawPath.split("/").slice(1);
  for (const [index, segment] of segments.entries()) {
    if (segment === "" && index < segments.length - 1) throw refuse("its path has an empty segment (//)");
    if (segment === "." || segment === "..") throw refuse("its path has a . or .. segment");
    if (ENCODED_TRICK.test(segment)) throw refuse("its path percent-encodes a dot, slash, backslash or control character");
    if (!PATH_SEGMENT.test(segment.replace(/%[0-9a-f]{2}/gi, ""))) throw refuse("its path has characters a URL path does not");
  }
  if (url.pathname !== (rawPath || "/")) throw refuse("its path is not in normal form");
  return url;
}

// ---------------------------------------------------------------------------------------------------
// The dispatcher
// ---------------------------------------------------------------------------------------------------

/** `policy.lookup`, refusing a name if any address it resolves to is refused; returns only checked addresses. */
function guardedLookup(policy: OutboundPolicy): LookupFunction {
  return (hostname, options, callback) => {
    policy.lookup(hostname, { ...options, all: true }, (error, resolved) => {
      if (error) {
        callback(error, "", 0);
        return;
      }
      const addresses = resolved as LookupAddress[];
      if (addresses.length === 0) {
        callback(Object.assign(new Error(`${hostname} has no address`), { code: "ENOTFOUND" }), "", 0);
        return;
      }
      for (const { address } of addresses) {
        const reason = policy.refuse(address);
        if (reason !== undefined) {
          callback(new EndpointRefusedError(`refused to connect to ${hostname}: it resolves to ${address}, ${reason}`), "", 0);
          return;
        }
      }
      if (options.all) callback(null, addresses);
      else callback(null, addresses[0].address, addresses[0].family);
    });
  };
}

/**
 * undici's connector with the policy in front: an IP host is checked as it is, a name is resolved
 * by `guardedLookup`, and the socket connects to what was checked (TLS keeps the name as servername).
 */
function guardedConnector(policy: OutboundPolicy): buildConnector.connector {
  const connect = buildConnector({ lookup: guardedLookup(policy) });
  return (options, callback) => {
    if (isIP(options.hostname) !== 0) {
      const reason = policy.refuse(options.hostname);
      if (reason !== undefined) {
        callback(new EndpointRefusedError(`refused to connect to ${options.hostname}: ${reason}`), null);
        return;
      }
    }
    connect(options, callback);
  };
}

/** One request to a checked endpoint URL. */
export interface OutboundRequest {
  method: "GET" | "POST";
  headers?: Record<string, string>;
  body?: string;
  /** Cuts the request and the read of its body. */
  signal?: AbortSignal;
}

/**
 * The relayer's HTTP client for endpoints that come from the chain: checked endpoint URLs, every
 * connection checked against the policy, no redirects, keep-alive pools per origin.
 *
 * @example
 * const outbound = new OutboundHttp(outboundPolicy(8453));
 * const response = await outbound.request(outbound.endpointUrl("https://provider.example/v1", "/models"), { method: "GET" });
 * const body = await readCapped(response.body, 1024 * 1024);
 */
export class OutboundHttp {
  readonly policy: OutboundPolicy;
  private readonly agent: Agent;
  /** Checked URLs (or why not) by endpoint and path: endpoints change only by a registry update. */
  private readonly urls = new Map<string, EndpointUrl | EndpointRefusedError>();

  constructor(policy: OutboundPolicy, options: { connectionsPerOrigin?: number } = {}) {
    this.policy = policy;
    this.agent = new Agent({
      connections: options.connectionsPerOrigin ?? 256,
      connect: guardedConnector(policy),
      maxResponseSize: MAX_ANY_RESPONSE_BYTES,
    });
  }

  /**
   * `endpoint` with `path` (a fixed suffix such as "/models") appended, once the endpoint passed the
   * shape check.
   *
   * @throws {EndpointRefusedError} when the endpoint's shape or host is refused.
   */
  endpointUrl(endpoint: string, path = ""): EndpointUrl {
    const key = `${path}\n${endpoint}`;
    let url = this.urls.get(key);
    if (url === undefined) {
      try {
        const base = parseEndpoint(endpoint, this.policy);
        url = (path === "" ? base : new URL(`${base.origin}${base.pathname.replace(/\/$/, "")}${path}`)) as EndpointUrl;
      } catch (error) {
        if (!(error instanceof EndpointRefusedError)) throw error;
        url = error;
      }
      if (this.urls.size >= 10_000) this.urls.clear();
      this.urls.set(key, url);
    }
    if (url instanceof EndpointRefusedError) throw url;
    return url;
  }

  /**
   * Sends one request. The body is the caller's to read (with a cap) or destroy.
   *
   * @throws {EndpointRefusedError} when the connection is refused (a resolved address) or the
   * endpoint answers a redirect, which is never followed.
   */
  async request(url: EndpointUrl, options: OutboundRequest): Promise<Dispatcher.ResponseData> {
    const response = await this.agent.request({
      origin: url.origin,
      path: url.pathname,
      method: options.method,
      headers: options.headers,
      body: options.body,
      signal: options.signal,
    });
    if (response.statusCode >= 300 && response.statusCode <= 399) {
      response.body.dump({ limit: 16 * 1024 }).catch(() => {}); // unread past that
      const location = String(response.headers.location ?? "").slice(0, 200);
      throw new EndpointRefusedError(`${url.origin} answered HTTP ${response.statusCode}${location ? ` (to ${location})` : ""}: redirects are not followed`);
    }
    return response;
  }

  /** Closes every connection, cutting requests in flight. */
  close(): Promise<void> {
    return this.agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------
// Capped reads
// ---------------------------------------------------------------------------------------------------

function tooLargeByHeader(body: Readable, headers: Dispatcher.ResponseData["headers"] | undefined, maxBytes: number): boolean {
  const declared = Number(headers?.["content-length"]);
  if (!(declared > maxBytes)) return false;
  body.on("error", () => {}).destroy();
  return true;
}

/**
 * Reads a response body to its end, at most `maxBytes`: past that (or when `headers` announce more)
 * the read stops and the body is destroyed.
 *
 * @throws {ResponseTooLargeError} when the body is longer than `maxBytes`.
 */
export function readCapped(body: Readable, maxBytes: number, headers?: Dispatcher.ResponseData["headers"]): Promise<Buffer> {
  if (tooLargeByHeader(body, headers, maxBytes)) return Promise.reject(new ResponseTooLargeError(maxBytes));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        const error = new ResponseTooLargeError(maxBytes);
        body.destroy(error);
        reject(error);
        return;
      }
      chunks.push(chunk);
    });
    body.on("end", () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
    body.on("error", reject);
    // A response cut short (timeout, client gone) closes without "end".
    body.on("close", () => {
      if (!body.readableEnded) reject(new Error("the response was cut short"));
    });
  });
}

/** The first `maxBytes` of a body as text (for error messages); the rest is dropped unread. */
export function readHead(body: Readable, maxBytes: number): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => resolve(new StringDecoder("utf8").end(Buffer.concat(chunks).subarray(0, maxBytes)));
    body.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= maxBytes) {
        body.destroy();
        done();
      }
    });
    body.on("end", done);
    body.on("close", done);
    body.on("error", done);
  });
}

/**
 * A body's text as it arrives, at most `maxBytes` in all: past that the body is destroyed.
 *
 * @throws {ResponseTooLargeError} when the body is longer than `maxBytes`.
 */
export async function* cappedText(body: Readable, maxBytes: number, headers?: Dispatcher.ResponseData["headers"]): AsyncGenerator<string> {
  if (tooLargeByHeader(body, headers, maxBytes)) throw new ResponseTooLargeError(maxBytes);
  const decoder = new StringDecoder("utf8");
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      const error = new ResponseTooLargeError(maxBytes);
      body.destroy(error);
      throw error;
    }
    yield decoder.write(chunk);
  }
  const rest = decoder.end();
  if (rest !== "") yield rest;
}
