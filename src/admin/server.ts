/**
 * The admin listener: operational endpoints, plain HTTP, loopback by default,
 * never on the public port.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { plainListener } from '../net/listen.js';
import { parseHostPort } from '../net/address.js';
import type { Verdict } from '../health/probe.js';
import { verdictBody } from '../health/report.js';

export interface AdminServer {
  listen(): Promise<AddressInfo>;
  close(): Promise<void>;
}

/** A prom-client Registry, or the cluster primary's aggregate of its workers' registries. */
export interface MetricsSource {
  metrics(): Promise<string>;
  contentType: string;
}

export function createAdminServer(
  listen: string,
  metrics: MetricsSource,
  verdict: () => Verdict,
): AdminServer {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res
        .writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' })
        .end('method not allowed\n');
      return;
    }
    if (path === '/healthz') {
      // Liveness: this process answers. The backend's state is /readyz's business.
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}\n');
      return;
    }
    if (path === '/readyz') {
      // Readiness: the cached verdict of the backend probe (401 with a challenge = healthy).
      const v = verdict();
      res
        .writeHead(v.healthy ? 200 : 503, {
          'content-type': 'application/json',
          'cache-control': 'no-store',
        })
        .end(`${JSON.stringify(verdictBody(v))}\n`);
      return;
    }
    if (path === '/metrics') {
      metrics.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        (err: Error) =>
          res
            .writeHead(500, { 'content-type': 'text/plain' })
            .end(`metrics failed: ${err.message}\n`),
      );
      return;
    }
    res
      .writeHead(404, { 'content-type': 'text/plain' })
      .end('not found; try /healthz, /readyz or /metrics\n');
  });
  return plainListener(server, parseHostPort(listen) ?? { host: '127.0.0.1', port: 5480 });
}
