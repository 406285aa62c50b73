/**
 * The public listener: a TCP server that tells TLS from plain HTTP, feeding an
 * HTTPS server whose handler proxies to the backend.
 */
import { X509Certificate } from 'node:crypto';
import type { Agent } from 'node:http';
import { createServer as createHTTPSServer, type Server as HTTPSServer } from 'node:https';
import { isIP, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Verdict } from '../health/probe.js';
import type { ProxyMetrics } from '../metrics/registry.js';
import { canonicalIP } from '../pki/sans.js';
import type { TLSMaterial } from '../pki/store.js';
import { secureContextOptions, serverTLSOptions } from '../tls/context.js';
import { classifyTLSFailure, notTLSMessage } from '../tls/failures.js';
import type { SniffOptions } from '../tls/sniff.js';
import { drainingVerdict } from '../health/report.js';
import { unbracketHost } from '../net/address.js';
import { backendAgent } from '../net/backend-keepalive.js';
import { trackForDrain } from './drain.js';
import { createRequestHandler } from './handler.js';
import { pathAllowlist } from './path-allowlist.js';
import { trustedPeerMatcher } from './trusted-proxies.js';
import { RelayPool } from './relay-pool.js';
import { rawRegistryError } from './registry-error.js';

/** Distinct Host values remembered; a client sending random ones only empties the cache. */
const COVERAGE_CACHE_MAX = 1024;
/** Idle keep-alive sockets kept per backend; more than any realistic burst of parallel layer transfers. */
const UPSTREAM_MAX_FREE_SOCKETS = 256;
/**
 * Idle relay sockets kept: each holds its 256 KiB read buffer, so 32 cost 8 MiB; a
 * burst beyond them opens new connections, which on a local network costs little.
 */
const RELAY_MAX_IDLE_SOCKETS = 32;

export interface PublicServer {
  agent: Agent;
  /** Backend sockets carrying a request (active) and kept alive (idle), for rtp_upstream_sockets. */
  upstreamSockets(): { active: number; idle: number };
  /** The material served now (it changes on renewal), for rtp_certificate_expiry_timestamp_seconds. */
  material(): TLSMaterial;
  /** Where a listening socket (listener.ts) hands this server's connections. */
  target: SniffOptions;
  /** Swaps the certificate for new handshakes; live connections keep theirs. */
  setMaterial(material: TLSMaterial): void;
  /** The keys that encrypt TLS session tickets (48 bytes), shared by a cluster's workers. */
  setTicketKeys(keys: Buffer): void;
  /** Requests being answered now. */
  inFlight(): number;
  /**
   * Finishes the requests in flight, each answered with `Connection: close`, closes
   * idle keep-alive connections, gives connections that have not sent a request yet a
   * short grace (drain.ts); after `deadlineMs` cuts what is left. Resolves with how many
   * requests were cut. Stop the listener first; `pending` counts the connections it
   * accepted that may still arrive. Calling it again returns the first drain.
   */
  drain(deadlineMs: number, pending?: () => number): Promise<{ cut: number }>;
}

export interface PublicServerOptions {
  /** The process's metrics (one registry for the life of the process: runtime.ts). */
  metrics: ProxyMetrics;
  /** The cached backend verdict (health monitoring), for the public health path. */
  verdict?: () => Verdict;
}

export function createPublicServer(
  config: Config,
  material: TLSMaterial,
  logger: Logger,
  options: PublicServerOptions,
): PublicServer {
  const { metrics } = options;
  let current = material;
  let leaf = new X509Certificate(material.serverCertPEM);
  /** Host → whether the served certificate covers it. */
  const coverage = new Map<string, boolean>();
  const agent = backendAgent(config.timeouts.backendKeepAliveMs, {
    maxFreeSockets: UPSTREAM_MAX_FREE_SOCKETS,
    scheduling: 'lifo',
  });
  const backend = new URL(config.backend);
  const pool = new RelayPool(
    unbracketHost(backend.hostname),
    Number(backend.port || 80),
    RELAY_MAX_IDLE_SOCKETS,
    config.timeouts.backendKeepAliveMs,
  );
  const hstsSeconds = Math.floor(config.tls.hstsMaxAge / 1000);
  /** Headers on every response: the handler's, and those server.ts writes itself (malformed requests). */
  const ownHeaders: Readonly<Record<string, string>> =
    hstsSeconds > 0 ? { 'strict-transport-security': `max-age=${hstsSeconds}` } : {};
  const allowedPath = pathAllowlist(config.allowedPaths);
  const coversHost = (host: string) => {
    // Clients use a handful of names: remember the answers (OpenSSL's check is per call).
    let covered = coverage.get(host);
    if (covered === undefined) {
      covered = isIP(host)
        ? leaf.checkIP(canonicalIP(host)) !== undefined
        : leaf.checkHost(host) !== undefined;
      if (coverage.size >= COVERAGE_CACHE_MAX) coverage.clear();
      coverage.set(host, covered);
    }
    return covered;
  };
  const handler = createRequestHandler({
    backend,
    agent,
    pool,
    clientIdleMs: config.timeouts.clientIdleMs,
    backendIdleMs: config.timeouts.backendIdleMs,
    logger,
    metrics,
    trustBundlePEM: () => current.trustBundlePEM,
    coversHost,
    ...(options.verdict && config.health.publicPath !== ''
      ? { health: { path: config.health.publicPath, verdict: drainAware(options.verdict) } }
      : {}),
    ownHeaders,
    ...(config.trustedProxies.length > 0
      ? { isTrustedProxy: trustedPeerMatcher(config.trustedProxies) }
      : {}),
    ...(allowedPath ? { allowedPath } : {}),
  });
  const https: HTTPSServer = createHTTPSServer(
    {
      ...serverTLSOptions(material, config.tls.clientAuth),
      // No deadline for a whole request: multi-GB layer pushes take as long as they take.
      requestTimeout: 0,
      headersTimeout: config.timeouts.headersMs,
      // How often headersTimeout is checked (Node: every 30 s, so a Slowloris client
      // dribbling header lines kept its socket up to 30 s past the limit).
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, config.timeouts.headersMs / 4)),
      // Node's default is 120 s: a ClientHello cut short would hold its socket that long.
      handshakeTimeout: config.timeouts.headersMs,
      keepAliveTimeout: config.timeouts.keepAliveMs,
    },
    handler,
  );
  // Node 20's https.Server starts tracking its connections on 'listening' (the list behind
  // closeIdleConnections/closeAllConnections, and the checker that enforces headersTimeout).
  // This one never listens itself (sniff.ts hands it sockets), so it would track nothing:
  // no headersTimeout (Slowloris), no closeAllConnections at a drain's end. Start it by hand.
  https.emit('listening');
  // Idle (no bytes moving) limit on client connections; see handler.ts for the per-phase switch.
  https.timeout = config.timeouts.clientIdleMs;
  const drainer = trackForDrain(https);
  https.on('secureConnection', () => metrics.handshakes.inc());
  https.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    const failure = classifyTLSFailure(err, socket, {
      trustCommand: `registry-tls-proxy trust --address ${localHostPort(socket)}`,
      covers: coversHost,
      coveredNames: [...current.sans.dns, ...current.sans.ips],
      supplied: config.tls.cert !== '',
    });
    metrics.handshakeFailures.inc({ reason: failure.reason });
    // A name the certificate lacks is the same problem whether the request got through
    // (a client that skips verification) or the handshake did not.
    if (failure.reason === 'name_not_covered') metrics.hostNotCovered.inc();
    logger[failure.routine ? 'debug' : 'warn'](
      {
        client: clientAddress(socket),
        reason: failure.reason,
        code: err.code,
        ...(failure.alert !== undefined ? { alert: failure.alert } : {}),
        ...(socket.servername ? { servername: socket.servername } : {}),
      },
      `TLS handshake failed: ${failure.message}`,
    );
  });
  https.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    logger.debug(
      { client: socket.remoteAddress, err: { code: err.code, message: err.message } },
      'bad request from client',
    );
    // As Node's default handler: answer only when no response on this connection has begun.
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) {
      socket.end(clientErrorResponse(err, ownHeaders));
      // end() flushes the answer; destroy() right away could drop it on a TLS socket.
      socket.setTimeout(1000, () => socket.destroy());
      return;
    }
    socket.destroy();
  });

  // CONNECT (authority-form) never reaches the request handler; without a listener
  // Node would drop the connection without a word.
  https.on('connect', (_req, socket: Socket) => {
    socket.end(
      rawRegistryError(
        405,
        'Method Not Allowed',
        { code: 'UNSUPPORTED', message: 'CONNECT is not allowed: this is a registry, not a proxy' },
        ownHeaders,
      ),
    );
    socket.setTimeout(1000, () => socket.destroy());
  });

  const target: SniffOptions = {
    https,
    onNotTLS: (socket, why) => {
      metrics.handshakeFailures.inc({ reason: 'not_tls' });
      logger.debug(
        { client: socket.remoteAddress, reason: 'not_tls' },
        `TLS handshake failed: ${notTLSMessage(why)}`,
      );
    },
    onPlainHTTP: (socket) => {
      metrics.handshakeFailures.inc({ reason: 'plain_http' });
      logger.info(
        { client: socket.remoteAddress },
        'plain HTTP request on the HTTPS port; answered 400',
      );
    },
  };

  return {
    agent,
    upstreamSockets() {
      const fast = pool.stats();
      return {
        active: countSockets(agent.sockets) + fast.active,
        idle: countSockets(agent.freeSockets) + fast.idle,
      };
    },
    material: () => current,
    target,
    setTicketKeys(keys) {
      https.setTicketKeys(keys);
    },
    setMaterial(next) {
      current = next;
      leaf = new X509Certificate(next.serverCertPEM);
      coverage.clear();
      https.setSecureContext(secureContextOptions(next, config.tls.clientAuth));
    },
    inFlight: drainer.inFlight,
    drain(deadlineMs, pending) {
      return drainer.drain(
        deadlineMs,
        () => {
          https.close(() => {}); // stops the connection checker (never listened: nothing else to close)
          agent.destroy();
          pool.destroy();
        },
        pending,
      );
    },
  };

  /** The public health path answers 503 "draining" once a drain begins, so balancers move on. */
  function drainAware(verdict: () => Verdict): () => Verdict {
    return () => (drainer.draining() ? drainingVerdict(verdict()) : verdict());
  }
}

/**
 * The client's address. When Node itself closes the connection (a rejected client
 * certificate), the TLS socket no longer knows its peer; the TCP socket under it,
 * whose address sniff.ts read (and so cached), still does.
 */
function clientAddress(socket: TLSSocket): string | undefined {
  return socket.remoteAddress ?? (socket as unknown as { _parent?: Socket })._parent?.remoteAddress;
}

/** The address the client connected to, as it would write it: 10.0.0.5:5443, [fd00::5]:5443. */
function localHostPort(socket: Socket): string {
  const address = (socket.localAddress ?? 'HOST').replace(/^::ffff:/, '');
  return `${address.includes(':') ? `[${address}]` : address}:${socket.localPort ?? 'PORT'}`;
}

function countSockets(pool: NodeJS.ReadOnlyDict<unknown[]>): number {
  let n = 0;
  for (const list of Object.values(pool)) n += list?.length ?? 0;
  return n;
}

/** What a client whose request Node could not parse is told, registry-style. */
function clientErrorResponse(
  err: NodeJS.ErrnoException,
  headers: Readonly<Record<string, string>>,
): string {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return rawRegistryError(
        431,
        'Request Header Fields Too Large',
        { code: 'UNSUPPORTED', message: 'request headers are too large' },
        headers,
      );
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return rawRegistryError(
        408,
        'Request Timeout',
        { code: 'UNSUPPORTED', message: 'request headers were not sent in time' },
        headers,
      );
    default:
      return rawRegistryError(
        400,
        'Bad Request',
        { code: 'UNSUPPORTED', message: 'malformed HTTP request' },
        headers,
      );
  }
}
