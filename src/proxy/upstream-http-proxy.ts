/**
 * http-proxy as an Upstream, with guards against 1.18.1's known defects:
 *  - no keep-alive without an agent → a keep-alive agent is passed in;
 *  - client aborts do not abort upstream → the exchange aborts the call when its response closes early;
 *  - `Trailer:` crashes the process → hop-by-hop headers (Trailer among them) are stripped (forward.ts);
 *  - `xfwd` appends to client values → X-Forwarded-* are set by headers.ts, overwriting;
 *  - `proxyReq` is skipped for `Expect: 100-continue` → headers are set before proxying;
 *  - hop-by-hop headers are forwarded both ways → stripped both ways (forward.ts, respond.ts);
 *  - an 'error' event without a listener crashes the process → one listener, for every request.
 */
import type { Agent, ClientRequest } from 'node:http';
import httpProxy from 'http-proxy';
import { backendTimeout } from '../net/errno.js';
import { exchangeOf, type BackendCall } from './exchange.js';
import type { Upstream } from './upstream.js';

export function httpProxyUpstream(backend: URL, agent: Agent): Upstream {
  const proxy = httpProxy.createProxyServer({
    target: backend.origin,
    agent,
    selfHandleResponse: true,
    xfwd: false,
    changeOrigin: false,
    ws: false,
  });
  proxy.on('error', (err, _req, res) => {
    const ex = res && 'writeHead' in res ? exchangeOf(res) : undefined;
    ex?.onError(err as NodeJS.ErrnoException, false);
  });
  proxy.on('proxyReq', (proxyReq, _req, res) => {
    exchangeOf(res)?.forwarded(new ProxiedCall(proxyReq));
  });
  proxy.on('proxyRes', (proxyRes, _req, res) => {
    const ex = exchangeOf(res);
    if (!ex) return;
    ex.answerStarted();
    if (
      !ex.answerHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, { ...proxyRes.headers })
    ) {
      proxyRes.destroy();
      return;
    }
    proxyRes.on('data', (chunk: Buffer) => {
      ex.bytesOut += chunk.length;
    });
    const backendAborted = () => ex.backendAborted();
    proxyRes.on('aborted', backendAborted);
    proxyRes.on('error', backendAborted);
    proxyRes.pipe(res);
  });
  return {
    send(ex) {
      try {
        // Failures arrive at the 'error' listener above.
        proxy.web(ex.req, ex.res);
      } catch (err) {
        ex.onError(err as NodeJS.ErrnoException, false);
      }
    },
  };
}

/** http-proxy's request to the backend, as the exchange controls it. */
class ProxiedCall implements BackendCall {
  constructor(private readonly request: ClientRequest) {}

  abort(): void {
    this.request.destroy();
  }

  setIdleTimeout(ms: number): void {
    if (ms === 0) {
      this.request.setTimeout(0);
      return;
    }
    const request = this.request;
    request.setTimeout(ms, () => request.destroy(backendTimeout(ms)));
  }
}
