/**
 * The floor for gateway overhead: a minimal Node HTTP proxy that forwards every request to one
 * target over keep-alive connections and pipes the response back. Used by `npm run bench:relayer`.
 *
 *   node scripts/lib/passthrough-proxy.ts --port 9100 --target http://127.0.0.1:9001
 */
import { Agent, createServer, request } from "node:http";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { port: { type: "string" }, target: { type: "string" } } });
if (values.port === undefined || values.target === undefined) {
  console.error("usage: passthrough-proxy.ts --port <port> --target <http://host:port>");
  process.exit(2);
}
const target = new URL(values.target);
const agent = new Agent({ keepAlive: true, maxSockets: 256 });

const server = createServer((req, res) => {
  const upstream = request(
    { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent },
    (response) => {
      res.writeHead(response.statusCode ?? 502, response.headers);
      response.pipe(res);
    },
  );
  upstream.on("error", () => {
    res.writeHead(502);
    res.end();
  });
  req.pipe(upstream);
});
server.listen(Number(values.port), "127.0.0.1", () => console.log(`passthrough on ${values.port} -> ${target.href}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
