/**
 * The public listener: a TCP server that tells TLS from plain HTTP, feeding an
 * HTTPS server whose handler proxies to the backend. `createPublicServer` wires one
 * generation's parts, each made below; what the HTTPS server does beside answering
 * requests (failed handshakes, malformed requests) is in https-events.ts.
 */
import { X509Certificate } from 'node:crypto';
import { createServer as createHTTPSServer, type Server as HTTPSServer } from 'node:https';
import { isIP, type Socket } from 'node:net';
import { createSecureContext, type SecureContext, type TLSSocket, type TlsOptions } from 'node:tls';
import { acmeEnabled } from '../acme/config.js';
import { proxyLogins } from '../auth/proxy-logins.js';
import { internalACMERoots, type ACMETrust } from '../acme/which-certificate.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Verdict } from '../health/probe.js';
import type { ProxyMetrics } from '../metrics/registry.js';
import { canonicalIP } from '../pki/sans.js';
import type { TLSMaterial } from '../pki/store.js';
import { PROFILE, secureContextOptions, serverTLSOptions } from '../tls/context.js';
import { notTLSMessage } from '../tls/failures.js';
import { keyTypesOf, servedKeyType, type ServedKey } from '../tls/served-key.js';
import type { SniffOptions } from '../tls/sniff.js';
import { drainingVerdict } from '../health/report.js';
import { clientAddressOf } from '../net/client-address.js';
import { trackForDrain, type Drainer } from './drain.js';
import { createRequestHandler } from './handler.js';
import { answerMalformedRequests, handshakeFailureLogger } from './https-events.js';
import { pathAllowlist, type PathVerdict } from './path-allowlist.js';
import { trustedPeerMatcher } from './trusted-proxies.js';
import { createReplicas, type Replicas } from './replicas.js';

/** Distinct Host values remembered; a client sending random ones only empties the cache. */
const COVERAGE_CACHE_MAX = 1024;

export interface PublicServer {
  /** Backend sockets carrying a request (active) and kept alive (idle), for rtp_upstream_sockets. */
  upstreamSockets(): { active: number; idle: number };
  /** The material served now (it changes on renewal), for rtp_certificate_expiry_timestamp_seconds. */
  material(): TLSMaterial;
  /** Where a listening socket (listener.ts) hands this server's connections. */
  target: SniffOptions;
  /** Swaps the certificate for new handshakes; live connections keep theirs. */
  setMaterial(material: TLSMaterial): void;
  /** The ACME certificate, served to clients whose SNI name it covers (tls.acme). */
  setACME(cert: { chainPEM: string; keyPEM: string }): void;
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
  /** tls.acme: where tls-alpn-01 validations (ALPN acme-tls/1) are answered. */
  onACMEValidation?: (socket: Socket) => void;
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
  const coverage = hostCoverage(material);
  const replicas = createReplicas({
    backends: config.backend,
    keepAliveMs: config.timeouts.backendKeepAliveMs,
    logger,
    healthy: options.verdict && healthOfReplicas(options.verdict),
  });
  const ownHeaders = ownHeadersOf(config);
  // The drain tracker exists once the HTTPS server does; the health path asks it later.
  let drainer: Drainer | undefined;
  const acme = acmeBySNI(config, () => current);
  const admission = optionalAdmission(config);
  const logins = proxyLogins(config, logger, metrics, {
    isTrustedProxy: admission.isTrustedProxy,
    verdict: options.verdict,
  });
  const handler = createRequestHandler({
    replicas,
    clientIdleMs: config.timeouts.clientIdleMs,
    backendIdleMs: config.timeouts.backendIdleMs,
    logger,
    metrics,
    trustBundlePEM: () => current.trustBundlePEM,
    ...(acmeEnabled(config) ? { acmeTrust: acme.trust } : {}),
    trustPage: {
      material: () => current,
      acmeCertificate: acme.certificateFor,
      ...(options.verdict ? { verdict: drainAware(options.verdict) } : {}),
    },
    coversHost: coverage.covers,
    ...(options.verdict && config.health.publicPath !== ''
      ? {
          health: {
            path: config.health.publicPath,
            verdict: drainAware(options.verdict),
            backends: config.backend,
          },
        }
      : {}),
    ownHeaders,
    ...admission,
    ...(logins ? { authenticate: logins.authenticate } : {}),
  });
  const https = createHTTPSFront(config, material, handler, acme.SNICallback);
  drainer = trackForDrain(https);
  let servedKeys = keyTypesOf(servedCertificates(current));
  watchHandshakes(https, config, logger, metrics, {
    covers: coverage.covers,
    coveredNames: () => [...current.sans.dns, ...current.sans.ips],
    ownKeys: () => servedKeys,
    acmeKeys: acme.keysFor,
  });
  answerMalformedRequests(https, logger, ownHeaders);
  return publicServerOf({
    https,
    replicas,
    drainer,
    target: {
      ...sniffTarget(https, metrics, logger),
      ...proxyProtocolOf(config, metrics, logger),
      ...(options.onACMEValidation ? { onACMEValidation: options.onACMEValidation } : {}),
    },
    material: () => current,
    closeLogins: () => logins?.close(),
    setACME: acme.set,
    setMaterial(next) {
      current = next;
      servedKeys = keyTypesOf(servedCertificates(next));
      coverage.reset(next);
      https.setSecureContext(secureContextOptions(next, config.tls.clientAuth));
    },
  });

  /** The public health path answers 503 "draining" once a drain begins, so balancers move on. */
  function drainAware(verdict: () => Verdict): () => Verdict {
    return () => (drainer?.draining() ? drainingVerdict(verdict()) : verdict());
  }
}

/** Counts handshakes, and logs and counts each failed one with its reason. */
function watchHandshakes(
  https: HTTPSServer,
  config: Config,
  logger: Logger,
  metrics: ProxyMetrics,
  names: {
    covers: (host: string) => boolean;
    coveredNames: () => string[];
    /** Key types of our own context's certificates. */
    ownKeys: () => ReadonlySet<ServedKey>;
    /** Those of the ACME certificate, when a client by this SNI name gets it. */
    acmeKeys: (servername: string | false | null | undefined) => ReadonlySet<ServedKey> | undefined;
  },
): void {
  const { covers, coveredNames, ownKeys, acmeKeys } = names;
  https.on('secureConnection', (socket: TLSSocket) => {
    const certificate = servedKeyType(socket, acmeKeys(socket.servername) ?? ownKeys());
    metrics.handshakes.inc({ certificate });
  });
  const supplied = config.tls.cert !== '';
  // Our own CA's certificate alone, and ECDSA: what tls.keyType: ecdsa gives.
  const ownECDSAOnly = (servername: string | false | null | undefined) => {
    const keys = ownKeys();
    return !supplied && !acmeKeys(servername) && keys.size === 1 && keys.has('ecdsa');
  };
  https.on(
    'tlsClientError',
    handshakeFailureLogger({ logger, metrics, covers, coveredNames, supplied, ownECDSAOnly }),
  );
}

/**
 * With tls.acme, the certificate by SNI: a name the ACME certificate covers gets it
 * (publicly trusted); every other client (by IP address, no SNI, another name) gets
 * the default context, our own CA's certificate, as without ACME.
 */
function acmeBySNI(config: Config, material: () => TLSMaterial) {
  let acme:
    | {
        context: SecureContext;
        leaf: X509Certificate;
        keys: ReadonlySet<ServedKey>;
        trust?: ACMETrust;
      }
    | undefined;
  /** Whether clients by this name get the ACME certificate now (not before it arrives). */
  const covers = (name: string) => acme?.leaf.checkHost(name) !== undefined;
  /** What clients by this name install; undefined: our own CA (not covered, or caBundle unreadable). */
  const trust = (host: string): ACMETrust | undefined => (covers(host) ? acme?.trust : undefined);
  const SNICallback = !acmeEnabled(config)
    ? undefined
    : (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) =>
        cb(null, covers(servername) ? acme?.context : undefined);
  return {
    SNICallback,
    trust,
    /** The key types served to clients by this name when they get the ACME certificate. */
    keysFor: (servername: string | false | null | undefined) =>
      servername && covers(servername) ? acme?.keys : undefined,
    /** The ACME certificate when clients by this name get it (the trust page shows its names). */
    certificateFor: (host: string) => (covers(host) ? acme?.leaf : undefined),
    set(cert: { chainPEM: string; keyPEM: string }) {
      const clientCAs = material().clientCAsPEM;
      acme = {
        context: createSecureContext({
          ...PROFILE,
          cert: cert.chainPEM,
          key: cert.keyPEM,
          // Mutual TLS holds for clients by name too: the same client CAs.
          ...(config.tls.clientAuth && clientCAs ? { ca: clientCAs } : {}),
        }),
        leaf: new X509Certificate(cert.chainPEM),
        keys: keyTypesOf([cert.chainPEM]),
        ...acmeTrustOf(config, cert.chainPEM),
      };
    },
  };
}

/** With an internal ACME server, the caBundle roots that anchor `chainPEM` (which-certificate.ts). */
function acmeTrustOf(config: Config, chainPEM: string): { trust?: ACMETrust } {
  if (config.tls.acme.caBundle === '') return { trust: { kind: 'public' } };
  try {
    return { trust: { kind: 'internal', pem: internalACMERoots(config, chainPEM).pem } };
  } catch {
    return {}; // caBundle gone since start-up: the lifecycle's log line says so
  }
}

/** The certificates of our own context: the server certificate, and its fallback. */
function servedCertificates(material: TLSMaterial): string[] {
  return [material.serverCertPEM, ...(material.fallback ? [material.fallback.certPEM] : [])];
}

/** Whether the served certificate covers a Host, remembered per Host until the certificate changes. */
function hostCoverage(material: TLSMaterial) {
  let leaf = new X509Certificate(material.serverCertPEM);
  const coverage = new Map<string, boolean>();
  return {
    covers(host: string): boolean {
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
    },
    reset(next: TLSMaterial): void {
      leaf = new X509Certificate(next.serverCertPEM);
      coverage.clear();
    },
  };
}

/** Which replicas are in rotation, from the cached verdict (one replica: its own). */
function healthOfReplicas(verdict: () => Verdict): () => boolean[] {
  // Read on every request: the flags change only with the verdict object.
  let seen: Verdict | undefined;
  let flags: boolean[] = [];
  return () => {
    const v = verdict();
    if (v !== seen) {
      seen = v;
      flags = v.replicas ? v.replicas.map((r) => r.verdict.healthy) : [v.healthy];
    }
    return flags;
  };
}

/** Headers on every response: the handler's, and those written here (malformed requests). */
function ownHeadersOf(config: Config): Readonly<Record<string, string>> {
  const hstsSeconds = Math.floor(config.tls.hstsMaxAge / 1000);
  return hstsSeconds > 0 ? { 'strict-transport-security': `max-age=${hstsSeconds}` } : {};
}

/** The admission checks that only some configurations have (trustedProxies, allowedPaths). */
function optionalAdmission(config: Config): {
  isTrustedProxy?: (address: string) => boolean;
  allowedPath?: (path: string) => PathVerdict;
} {
  const allowedPath = pathAllowlist(config.allowedPaths);
  return {
    ...(config.trustedProxies.length > 0
      ? { isTrustedProxy: trustedPeerMatcher(config.trustedProxies) }
      : {}),
    ...(allowedPath ? { allowedPath } : {}),
  };
}

/** The HTTPS server that the listening socket hands TLS connections to (it never listens itself). */
function createHTTPSFront(
  config: Config,
  material: TLSMaterial,
  handler: ReturnType<typeof createRequestHandler>,
  SNICallback: TlsOptions['SNICallback'],
): HTTPSServer {
  const https = createHTTPSServer(
    {
      ...serverTLSOptions(material, config.tls.clientAuth),
      ...(SNICallback ? { SNICallback } : {}),
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
  return https;
}

/** Where the listening socket hands connections: TLS to `https`; the rest is counted and logged. */
function sniffTarget(https: HTTPSServer, metrics: ProxyMetrics, logger: Logger): SniffOptions {
  return {
    https,
    onNotTLS: (socket, why) => {
      metrics.handshakeFailures.inc({ reason: 'not_tls' });
      logger.debug(
        { client: clientAddressOf(socket), reason: 'not_tls' },
        `TLS handshake failed: ${notTLSMessage(why)}`,
      );
    },
    onPlainHTTP: (socket) => {
      metrics.handshakeFailures.inc({ reason: 'plain_http' });
      logger.info(
        { client: clientAddressOf(socket) },
        'plain HTTP request on the HTTPS port; answered 400',
      );
    },
  };
}

/**
 * proxyProtocol: whose PROXY header is read, and what a refused one leaves behind (a
 * count, and a line naming the peer, which is the balancer or whoever posed as one).
 * Refusals are counted and logged whether proxyProtocol is on or not: a balancer
 * sending headers to a proxy not told to expect them is a misconfiguration to see.
 */
function proxyProtocolOf(config: Config, metrics: ProxyMetrics, logger: Logger) {
  const { trustedFrom, required } = config.proxyProtocol;
  const onProxyRefused: NonNullable<SniffOptions['onProxyRefused']> = (socket, reason, why) => {
    metrics.proxyProtocolRefused.inc({ reason });
    const fix =
      reason === 'untrusted'
        ? ': if this peer is your balancer, add it to proxyProtocol.trustedFrom'
        : reason === 'missing'
          ? ': turn on send-proxy-v2 at the balancer, or set proxyProtocol.required to false'
          : '';
    logger[reason === 'untrusted' ? 'info' : 'warn'](
      { peer: socket.remoteAddress, reason },
      `PROXY protocol: connection refused, ${why}${fix}`,
    );
  };
  if (trustedFrom.length === 0) return { onProxyRefused };
  return {
    onProxyRefused,
    proxyProtocol: {
      isTrusted: trustedPeerMatcher(trustedFrom),
      required,
      timeoutMs: config.timeouts.headersMs,
    },
  };
}

/** The PublicServer interface over one generation's parts. */
function publicServerOf(parts: {
  https: HTTPSServer;
  replicas: Replicas;
  drainer: Drainer;
  target: SniffOptions;
  material: () => TLSMaterial;
  setMaterial: (next: TLSMaterial) => void;
  setACME: PublicServer['setACME'];
  closeLogins: () => void;
}): PublicServer {
  const { https, replicas, drainer } = parts;
  return {
    upstreamSockets() {
      let active = 0;
      let idle = 0;
      for (const { agent, pool } of replicas.all) {
        const fast = pool.stats();
        active += countSockets(agent.sockets) + fast.active;
        idle += countSockets(agent.freeSockets) + fast.idle;
      }
      return { active, idle };
    },
    material: parts.material,
    target: parts.target,
    setTicketKeys(keys) {
      https.setTicketKeys(keys);
    },
    setMaterial: parts.setMaterial,
    setACME: parts.setACME,
    inFlight: drainer.inFlight,
    drain(deadlineMs, pending) {
      return drainer.drain(
        deadlineMs,
        () => {
          https.close(() => {}); // stops the connection checker (never listened: nothing else to close)
          replicas.destroy();
          parts.closeLogins();
        },
        pending,
      );
    },
  };
}

function countSockets(pool: NodeJS.ReadOnlyDict<unknown[]>): number {
  let n = 0;
  for (const list of Object.values(pool)) n += list?.length ?? 0;
  return n;
}
