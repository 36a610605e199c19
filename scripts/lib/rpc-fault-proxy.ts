/**
 * A JSON-RPC proxy in front of a chain node that injects the faults a load-balanced production RPC
 * shows, for fault-injection tests of the relayer's transaction handling:
 *
 * - `dropBroadcasts`: the next n `eth_sendRawTransaction` are answered with their hash, as if
 *   accepted, but never reach the node (a node that accepted and then lost them);
 * - `failBroadcastReplies`: the next n broadcasts reach the node, but the reply is an error (the
 *   answer was lost on the way back);
 * - `hideAfterBroadcastMs`: for this long after a transaction is broadcast, lookups of it
 *   (`eth_getTransactionByHash`, `eth_getTransactionReceipt`) answer "not found", as a node behind
 *   the balancer that has not seen it yet does (viem's TransactionNotFound);
 * - `delayReceiptsMs`: receipts are answered only this long after the transaction was broadcast.
 *
 * Everything else is forwarded unchanged. Listens on 127.0.0.1.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { keccak256, type Hex } from "viem";

export interface RpcFaults {
  dropBroadcasts: number;
  failBroadcastReplies: number;
  hideAfterBroadcastMs: number;
  delayReceiptsMs: number;
}

export interface RpcFaultProxy {
  url: string;
  /** Faults in force now; change them at any time. */
  faults: RpcFaults;
  /** Counts of what was done: broadcasts seen, dropped, replies failed, lookups hidden. */
  stats: { broadcasts: number; dropped: number; failedReplies: number; hidden: number };
  close(): Promise<void>;
}

interface RpcRequest {
  jsonrpc: "2.0";
  id: number | string | null;
  method: string;
  params?: unknown[];
}

export const NO_FAULTS: RpcFaults = { dropBroadcasts: 0, failBroadcastReplies: 0, hideAfterBroadcastMs: 0, delayReceiptsMs: 0 };

/** Starts a proxy to the node at `upstream`. */
export async function startRpcFaultProxy(upstream: string, faults: Partial<RpcFaults> = {}): Promise<RpcFaultProxy> {
  const state: RpcFaults = { ...NO_FAULTS, ...faults };
  const stats = { broadcasts: 0, dropped: 0, failedReplies: 0, hidden: 0 };
  /** When each transaction hash was last broadcast through the proxy. */
  const broadcastAt = new Map<string, number>();

  const forward = async (request: RpcRequest): Promise<unknown> => {
    const response = await fetch(upstream, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(request) });
    return response.json();
  };

  const handle = async (request: RpcRequest): Promise<unknown> => {
    const reply = (result: unknown) => ({ jsonrpc: "2.0", id: request.id, result });
    if (request.method === "eth_sendRawTransaction") {
      const hash = keccak256(request.params![0] as Hex).toLowerCase();
      stats.broadcasts++;
      broadcastAt.set(hash, Date.now());
      if (state.dropBroadcasts > 0) {
        state.dropBroadcasts--;
        stats.dropped++;
        return reply(hash);
      }
      const answer = await forward(request);
      if (state.failBroadcastReplies > 0) {
        state.failBroadcastReplies--;
        stats.failedReplies++;
        return { jsonrpc: "2.0", id: request.id, error: { code: -32603, message: "upstream request timed out" } };
      }
      return answer;
    }
    if (request.method === "eth_getTransactionByHash" || request.method === "eth_getTransactionReceipt") {
      const sentAt = broadcastAt.get(String(request.params?.[0]).toLowerCase());
      const hideFor = Math.max(state.hideAfterBroadcastMs, request.method === "eth_getTransactionReceipt" ? state.delayReceiptsMs : 0);
      if (sentAt !== undefined && Date.now() - sentAt < hideFor) {
        stats.hidden++;
        return reply(null);
      }
    }
    return forward(request);
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      void (async () => {
        let body: unknown;
        try {
          const parsed = JSON.parse(Buffer.concat(chunks).toString("utf8")) as RpcRequest | RpcRequest[];
          body = Array.isArray(parsed) ? await Promise.all(parsed.map(handle)) : await handle(parsed);
        } catch (error) {
          body = { jsonrpc: "2.0", id: null, error: { code: -32603, message: `proxy: ${(error as Error).message}` } };
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    faults: state,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
