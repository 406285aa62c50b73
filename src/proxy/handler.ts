/**
 * The request path: public endpoints, forwarding headers, http-proxy to the
 * backend, registry-aware response rewriting, and the guards against
 * http-proxy 1.18.1's known defects (see REGISTRY-NOTES.md):
 *  - no keep-alive without an agent → we pass a keep-alive agent;
 *  - client aborts do not abort upstream → we destroy the upstream request on `res` close;
 *  - `Trailer:` crashes the process → hop-by-hop headers (Trailer among them) are stripped;
 *  - `xfwd` appends to client values → we set X-Forwarded-* ourselves, overwriting;
 *  - `proxyReq` is skipped for `Expect: 100-continue` → headers are set before proxying;
 *  - hop-by-hop headers are forwarded both ways → stripped both ways.
 */
import type {
  Agent,
  ClientRequest,
  IncomingMessage,
  OutgoingHttpHeaders,
  ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import httpProxy from 'http-proxy';
import type { Logger } from '../log.js';
import type { ProxyMetrics } from '../metrics/registry.js';
import { parseHostHeader } from '../net/address.js';
import { backendTimeout, connectionFailure } from '../net/errno.js';
import { firstValue, prepareRequestHeaders, stripHopByHop } from './headers.js';
import {
  API_VERSION,
  API_VERSION_HEADER,
  sendRegistryError,
  upstreamFailure,
  type RegistryErrorSpec,
} from './registry-error.js';
import type { PathVerdict } from './path-allowlist.js';
import { requestProblem } from './request-checks.js';
import type { Verdict } from '../health/probe.js';
import { classifyOperation, type Operation } from '../metrics/operation.js';
import { defaultHost, serveCACertificate, serveHealth, serveInstaller } from './own-endpoints.js';
import { relay, type UpstreamPool } from './relay.js';
import { rewriteAuthenticate, rewriteLocation, type RewriteContext } from './rewrite.js';

export interface HandlerOptions {
  backend: URL;
  agent: Agent;
  /** Keep-alive connections for the fast path (blob bodies). */
  pool: UpstreamPool;
  clientIdleMs: number;
  backendIdleMs: number;
  logger: Logger;
  metrics: ProxyMetrics;
  /** The CA bundle served at GET /ca.crt (public information): during a rotation, both CAs. */
  trustBundlePEM: () => string;
  /** Whether the served certificate covers a Host (name or IP, no port). */
  coversHost: (host: string) => boolean;
  /** health.publicPath and the cached backend verdict; absent when turned off. */
  health?: { path: string; verdict: () => Verdict };
  /** The Strict-Transport-Security value for every response; absent when turned off. */
  hsts?: string;
  /** Whether a peer is a trusted proxy (trustedProxies); absent when none is. */
  isTrustedProxy?: (address: string) => boolean;
  /** The allowedPaths check; absent when every path is allowed. */
  allowedPath?: (path: string) => PathVerdict;
}

/** Per-request state, kept on the response so that http-proxy's events can find it. */
interface Exchange {
  started: bigint;
  path: string;
  /** Classified once: it routes the request and labels its metrics. */
  operation: Operation;
  isV2: boolean;
  rewrite: RewriteContext;
  upstream?: ClientRequest;
  /** The fast path's way to drop its backend connection. */
  abortUpstream?: () => void;
  bytesIn: number;
  bytesOut: number;
  error?: string;
}

const exchanges = new WeakMap<ServerResponse, Exchange>();
/**
 * Connections whose request was refused for its framing: what Node parsed after it
 * (a request hidden in its body) is never served; the connection closes after the 400.
 */
const refusedConnections = new WeakSet<Socket>();

export function createRequestHandler(opts: HandlerOptions) {
  /** Headers on every response of ours: HSTS. */
  const ownHeaders: Record<string, string> = opts.hsts
    ? { 'strict-transport-security': opts.hsts }
    : {};
  const fail = (res: ServerResponse, spec: RegistryErrorSpec) =>
    sendRegistryError(res, spec, ownHeaders);
  const proxy = httpProxy.createProxyServer({
    target: opts.backend.origin,
    agent: opts.agent,
    selfHandleResponse: true,
    xfwd: false,
    changeOrigin: false,
    ws: false,
  });
  const backendLabel = opts.backend.origin;

  // Without a listener, an 'error' event would crash the process.
  proxy.on('error', (err, req, res) => {
    if (res && 'writeHead' in res) onUpstreamError(err as NodeJS.ErrnoException, req, res);
  });

  proxy.on('proxyReq', (proxyReq, _req, res) => {
    const ex = exchanges.get(res);
    if (!ex) return;
    ex.upstream = proxyReq;
    if (res.destroyed || ex.error === 'client aborted') {
      proxyReq.destroy();
      return;
    }
    // Waiting for the backend's answer: its silence counts, not the client's.
    proxyReq.setTimeout(opts.backendIdleMs, () =>
      proxyReq.destroy(backendTimeout(opts.backendIdleMs)),
    );
  });

  proxy.on('proxyRes', (proxyRes, req, res) => {
    const ex = exchanges.get(res);
    if (!ex) return;
    // From here on the client's idleness governs (a slow reader is not a slow backend).
    ex.upstream?.setTimeout(0);
    req.socket.setTimeout(opts.clientIdleMs);
    const headers = clientHeaders({ ...proxyRes.headers }, ex);
    if (!writeClientHead(res, ex, proxyRes.statusCode ?? 502, proxyRes.statusMessage, headers)) {
      proxyRes.destroy();
      return;
    }
    proxyRes.on('data', (chunk: Buffer) => {
      ex.bytesOut += chunk.length;
    });
    // A backend that dies mid-body must not look like a complete (truncated) response.
    const backendAborted = () => {
      ex.error ??= 'backend aborted the response';
      res.destroy();
    };
    proxyRes.on('aborted', backendAborted);
    proxyRes.on('error', backendAborted);
    proxyRes.pipe(res);
  });

  /**
   * Sends the backend's (rewritten) head to the client; false when Node refuses it
   * (invalid characters from the backend), after answering 502 in its place.
   */
  function writeClientHead(
    res: ServerResponse,
    ex: Exchange,
    status: number,
    statusMessage: string | undefined,
    headers: OutgoingHttpHeaders,
  ): boolean {
    try {
      res.writeHead(status, statusMessage, headers);
      return true;
    } catch (err) {
      opts.logger.warn(
        { err, path: ex.path },
        'backend sent response headers Node refuses to send on',
      );
      fail(res, {
        status: 502,
        code: 'UNAVAILABLE',
        message: 'the registry behind this proxy sent an invalid response',
      });
      return false;
    }
  }

  /** What the client is told about the backend's response head: hop-by-hop gone, URLs rewritten. */
  function clientHeaders<H extends OutgoingHttpHeaders>(headers: H, ex: Exchange): H {
    stripHopByHop(headers);
    if (typeof headers['location'] === 'string') {
      (headers as OutgoingHttpHeaders)['location'] = rewriteLocation(
        headers['location'],
        ex.rewrite,
      );
    }
    // Node joins repeated challenges into one string (RFC 9110 §11.6.1 allows a list).
    const challenge = headers['www-authenticate'];
    if (typeof challenge === 'string') {
      (headers as OutgoingHttpHeaders)['www-authenticate'] = rewriteAuthenticate(
        challenge,
        ex.rewrite,
      );
    } else if (Array.isArray(challenge)) {
      (headers as OutgoingHttpHeaders)['www-authenticate'] = challenge.map((c) =>
        rewriteAuthenticate(String(c), ex.rewrite),
      );
    }
    if (ex.isV2 && headers[API_VERSION_HEADER] === undefined) {
      (headers as OutgoingHttpHeaders)[API_VERSION_HEADER] = API_VERSION;
    }
    if (opts.hsts) (headers as OutgoingHttpHeaders)['strict-transport-security'] = opts.hsts;
    return headers;
  }

  /** Blob bodies over the fast path (relay.ts): same headers, same errors, no per-chunk copies. */
  function relayExchange(
    req: IncomingMessage,
    res: ServerResponse,
    ex: Exchange,
    body: { length: number | undefined } | undefined,
  ): void {
    const control = relay(
      opts.pool,
      {
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        headers: req.headers,
        ...(body ? { body: { stream: req, length: body.length } } : {}),
        backendIdleMs: opts.backendIdleMs,
      },
      {
        onHead(head) {
          // From here on the client's idleness governs (a slow reader is not a slow backend).
          req.socket.setTimeout(opts.clientIdleMs);
          const headers = clientHeaders(head.headers, ex);
          if (!writeClientHead(res, ex, head.status, head.statusMessage, headers)) control.abort();
        },
        onBody(bytes, done) {
          if (res.destroyed) return done(new Error('client gone'));
          ex.bytesOut += bytes.length;
          res.write(bytes, done);
        },
        onEnd() {
          if (!res.writableEnded) res.end();
        },
        onError(err, headSent) {
          if (ex.error === 'client aborted') return;
          if (headSent) {
            // A backend that dies mid-body must not look like a complete (truncated) response.
            ex.error ??= 'backend aborted the response';
            res.destroy();
            return;
          }
          onUpstreamError(err, req, res);
        },
      },
    );
    ex.abortUpstream = () => control.abort();
  }

  function onUpstreamError(err: NodeJS.ErrnoException, req: IncomingMessage, res: ServerResponse) {
    const ex = exchanges.get(res);
    if (ex?.error === 'client aborted') return;
    const failure = connectionFailure(err);
    if (ex) ex.error = failure.reason;
    opts.metrics.upstreamErrors.inc({ kind: failure.label });
    opts.logger.warn(
      {
        backend: backendLabel,
        err: { code: err.code, message: err.message },
        path: ex?.path,
        method: req.method,
      },
      'backend request failed',
    );
    fail(res, upstreamFailure(failure));
  }

  return function handleRequest(req: IncomingMessage, res: ServerResponse): void {
    try {
      proxyRequest(req, res);
    } catch (err) {
      // A bug of ours on some input must cost one request, never the process.
      opts.logger.error(
        { err, method: req.method, path: req.url?.split('?', 1)[0] },
        'internal error',
      );
      fail(res, { status: 500, code: 'UNKNOWN', message: 'internal proxy error' });
    }
  };

  /** Answers a request the proxy refuses before anything of it is forwarded. */
  function refuse(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    spec: RegistryErrorSpec,
    reason: string,
  ): void {
    const started = process.hrtime.bigint();
    fail(res, spec);
    logRequest(opts, req, res, { started, path, bytesIn: 0, bytesOut: 0, error: reason });
  }

  function proxyRequest(req: IncomingMessage, res: ServerResponse): void {
    // A request Node parsed out of a refused request's body: never served (see refusedConnections).
    if (refusedConnections.has(req.socket)) return;
    const url = req.url ?? '/';
    const path = url.split('?', 1)[0] ?? '/';
    const problem = requestProblem(req);
    if (problem) {
      refusedConnections.add(req.socket);
      const spec = { status: problem.status, code: 'UNSUPPORTED', message: problem.message };
      refuse(req, res, path.slice(0, 200), { ...spec, close: true }, 'malformed request');
      return;
    }
    if (path === '/ca.crt' && (req.method === 'GET' || req.method === 'HEAD')) {
      const bytesOut = serveCACertificate(res, opts.trustBundlePEM(), ownHeaders);
      logRequest(opts, req, res, { started: process.hrtime.bigint(), path, bytesIn: 0, bytesOut });
      return;
    }
    if (path === '/install-ca.sh' && (req.method === 'GET' || req.method === 'HEAD')) {
      const bytesOut = serveInstaller(req, res, ownHeaders);
      logRequest(opts, req, res, { started: process.hrtime.bigint(), path, bytesIn: 0, bytesOut });
      return;
    }
    if (
      opts.health &&
      path === opts.health.path &&
      (req.method === 'GET' || req.method === 'HEAD')
    ) {
      const bytesOut = serveHealth(res, opts.health.verdict(), ownHeaders);
      logRequest(opts, req, res, { started: process.hrtime.bigint(), path, bytesIn: 0, bytesOut });
      return;
    }
    const verdict = opts.allowedPath?.(path);
    if (verdict === 'unsafe') {
      refuse(req, res, path, AMBIGUOUS_PATH, 'ambiguous path');
      return;
    }
    if (verdict === 'outside') {
      refuse(req, res, path, PATH_NOT_ALLOWED, 'path not allowed');
      return;
    }
    const socket = req.socket;
    // Node resets the socket timer between keep-alive requests; every request starts on the client's idle limit.
    socket.setTimeout(opts.clientIdleMs);
    const host = req.headers.host ?? defaultHost(socket.localAddress, socket.localPort);
    const isV2 = path === '/v2' || path.startsWith('/v2/');
    const ex: Exchange = {
      started: process.hrtime.bigint(),
      path,
      operation: classifyOperation(req.method, path),
      isV2,
      rewrite: { backend: opts.backend, publicHost: host, publicPort: socket.localPort ?? 443 },
      bytesIn: 0,
      bytesOut: 0,
    };
    exchanges.set(res, ex);
    res.on('close', () => {
      if (!res.writableFinished) {
        // The client went away (or we cut it): stop the upstream request too.
        ex.error ??= 'client aborted';
        ex.upstream?.destroy();
        ex.abortUpstream?.();
      }
      logRequest(opts, req, res, ex);
    });
    const hostHeader = parseHostHeader(host);
    if (!hostHeader) {
      ex.error = 'bad host header';
      fail(res, {
        status: 400,
        code: 'UNSUPPORTED',
        message: `the Host header ${JSON.stringify(host.slice(0, 100))} is not a host[:port]`,
      });
      return;
    }
    if (!opts.coversHost(hostHeader.host)) opts.metrics.hostNotCovered.inc();
    const body = requestBody(req);
    prepareRequestHeaders(req.headers, {
      clientAddress: socket.remoteAddress,
      host,
      port: socket.localPort ?? 443,
      isTrustedProxy: opts.isTrustedProxy,
    });
    if (opts.isTrustedProxy) publicAddressFromTrustedProxy(req, ex.rewrite);
    // The request body is in; until the backend answers, its timer is the one that counts.
    req.once('end', () => {
      if (!res.headersSent) socket.setTimeout(0);
    });
    req.on('data', (chunk: Buffer) => {
      ex.bytesIn += chunk.length;
    });
    if (RELAYED.has(ex.operation)) {
      relayExchange(req, res, ex, body);
      return;
    }
    try {
      proxy.web(req, res, {}, (err) => onUpstreamError(err as NodeJS.ErrnoException, req, res));
    } catch (err) {
      onUpstreamError(err as NodeJS.ErrnoException, req, res);
    }
  }
}

/**
 * The hot paths of pushes and pulls take the relay: blob bodies (bytes are the cost)
 * and the version check, manifest and blob GET/HEAD (requests are). Measured per manifest GET against a
 * fast backend: 146 µs of proxy CPU through the relay, 175 through http-proxy.
 */
const RELAYED = new Set<Operation>([
  'ping', // GET /v2/: every client's first request on every connection
  'blob_get',
  'blob_head',
  'manifest_get',
  'manifest_head',
  'upload_chunk',
  'upload_complete',
]);

/** The request's body framing as the client sent it (read before hop-by-hop headers go). */
function requestBody(req: IncomingMessage): { length: number | undefined } | undefined {
  if (/chunked/i.test(req.headers['transfer-encoding'] ?? '')) return { length: undefined };
  const length = Number(req.headers['content-length'] ?? 0);
  return length > 0 ? { length } : undefined;
}

const AMBIGUOUS_PATH: RegistryErrorSpec = {
  status: 400,
  code: 'UNSUPPORTED',
  message:
    "the path contains '%', '\\', ';', '#', an empty or a dot segment, which registry clients never send",
};
const PATH_NOT_ALLOWED: RegistryErrorSpec = {
  status: 403,
  code: 'DENIED',
  message: 'this path is not served by this proxy',
};

/**
 * Behind a trusted balancer, the address clients use is its X-Forwarded-Host (the
 * registry builds its URLs from it too): Location rewrites must point there, not at
 * this proxy's Host, or a push would leave the balancer mid-upload.
 */
function publicAddressFromTrustedProxy(req: IncomingMessage, rewrite: RewriteContext): void {
  const host = firstValue(req.headers['x-forwarded-host']);
  if (!host || host === rewrite.publicHost) return;
  const parsed = parseHostHeader(host);
  if (!parsed) return;
  rewrite.publicHost = host;
  const port = parsed.port ?? firstValue(req.headers['x-forwarded-port']);
  rewrite.publicPort = Number(port) || (req.headers['x-forwarded-proto'] === 'http' ? 80 : 443);
}

const requestLoggers = new WeakMap<Logger, Logger>();

/**
 * Request lines skip pino's redaction (it walked every key of every line: 10 µs of the
 * ~100 µs a proxied manifest GET costs; 3.7 without). They hold only the fields built in
 * logRequest — method, path without query, status, sizes, time, client address — and
 * never a header, so there is nothing to redact.
 */
function requestLogger(logger: Logger): Logger {
  let child = requestLoggers.get(logger);
  if (!child) {
    child = logger.child({}, { redact: { paths: [], censor: '' } });
    requestLoggers.set(logger, child);
  }
  return child;
}

function logRequest(
  opts: HandlerOptions,
  req: IncomingMessage,
  res: ServerResponse,
  ex: Pick<Exchange, 'started' | 'path' | 'bytesIn'> & Partial<Exchange>,
): void {
  const status = res.headersSent ? res.statusCode : 0;
  const operation = ex.operation ?? classifyOperation(req.method, ex.path);
  const seconds = Number(process.hrtime.bigint() - ex.started) / 1e9;
  opts.metrics.requests.inc({
    operation,
    status_class: status === 0 ? 'none' : `${Math.floor(status / 100)}xx`,
  });
  opts.metrics.duration.observe({ operation }, seconds);
  if (ex.bytesIn > 0) opts.metrics.receivedBytes.inc({ operation }, ex.bytesIn);
  if (ex.bytesOut) opts.metrics.sentBytes.inc({ operation }, ex.bytesOut);
  requestLogger(opts.logger).info(
    {
      method: req.method,
      path: ex.path,
      status,
      bytesIn: ex.bytesIn,
      bytesOut: ex.bytesOut ?? 0,
      durationMs: seconds * 1000,
      client: req.socket.remoteAddress,
      ...(ex.error ? { error: ex.error } : {}),
    },
    'request',
  );
}
