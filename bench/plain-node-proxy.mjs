/**
 * A TLS-terminating reverse proxy written the usual way for Node.js, to measure beside
 * the proxy: Node's HTTPS server and a keep-alive http.Agent, the request piped to the
 * registry with its Host and X-Forwarded-Proto (so the registry builds its upload URLs
 * for the client, as the nginx recipe has it), the answer piped back. No log, no
 * metrics, no health, no checks, no rewriting. The bench's "plain Node proxy" rows show
 * which of the proxy's costs are Node's own (where the two cost the same) and what the
 * proxy's relay and the rest save or add.
 *
 * node plain-node-proxy.mjs HOST:PORT BACKEND_ORIGIN TLS_DIR  (env CIPHERS, CURVES)
 */
import { existsSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:https';
import { join } from 'node:path';

const [listen = '', backendOrigin = '', tlsDir = ''] = process.argv.slice(2);
const backend = new URL(backendOrigin);
const separator = listen.lastIndexOf(':');
// The proxy's certificates: ECDSA, and RSA beside it for clients that offer no ECDSA.
const names = ['server', 'server-rsa'].filter((n) => existsSync(join(tlsDir, `${n}.crt`)));
const read = (file) => readFileSync(join(tlsDir, file));
const agent = new Agent({ keepAlive: true, maxFreeSockets: 256, scheduling: 'lifo' });

const server = createServer(
  {
    cert: names.map((n) => Buffer.concat([read(`${n}.crt`), read('ca.crt')])),
    key: names.map((n) => read(`${n}.key`)),
    ...(process.env.CIPHERS ? { ciphers: process.env.CIPHERS } : {}),
    ...(process.env.CURVES ? { ecdhCurve: process.env.CURVES } : {}),
  },
  (req, res) => {
    const headers = { ...req.headers, 'x-forwarded-proto': 'https' };
    const upstream = request(
      {
        agent,
        host: backend.hostname,
        port: backend.port,
        method: req.method,
        path: req.url,
        headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  },
);
server.keepAliveTimeout = 60_000;
server.listen(Number(listen.slice(separator + 1)), listen.slice(0, separator), () => {
  console.log(`plain Node proxy on https://${listen} for ${backendOrigin}`);
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  agent.destroy();
});
