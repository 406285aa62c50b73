/**
 * What the proxy answers itself on the public port, never asking the registry: the
 * CA bundle (`/ca.crt`), the fingerprint-checking installer (`/install-ca.sh`) and
 * the cached backend verdict for balancers (health.publicPath). They answer whatever
 * allowedPaths says (a client fetches the CA before it can trust anything), and they
 * pass only the framing checks of admit.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { publicVerdictBody } from '../health/report.js';
import type { Verdict } from '../health/probe.js';
import { formatHostPort, parseHostHeader, withDefaultPort } from '../net/address.js';
import type { ACMETrust } from '../acme/which-certificate.js';
import { installerScript } from '../trust/installer-script.js';
import { sendRegistryError } from './registry-error.js';

export interface OwnEndpoint {
  path: string;
  /** Other methods on this path go to the registry like any request. */
  methods: readonly string[];
  /** Answers the request; returns the body bytes sent. */
  serve(req: IncomingMessage, res: ServerResponse): number;
}

export interface OwnEndpointOptions {
  /** The CA bundle served at GET /ca.crt (public information): during a rotation, both CAs. */
  trustBundlePEM: () => string;
  /** health.publicPath and the cached backend verdict; absent when turned off. */
  health?: { path: string; verdict: () => Verdict; backend: string } | undefined;
  /** Headers on every response of ours (Strict-Transport-Security). */
  ownHeaders: Readonly<Record<string, string>>;
  /**
   * With tls.acme: what clients by this host install when it is served the ACME
   * certificate (nothing, or the internal ACME server's roots); undefined: our own CA.
   */
  acmeTrust?: ((host: string) => ACMETrust | undefined) | undefined;
}

const READ = ['GET', 'HEAD'] as const;

/** The table, by path: one lookup per request. */
export function ownEndpoints(opts: OwnEndpointOptions): ReadonlyMap<string, OwnEndpoint> {
  const { ownHeaders } = opts;
  const table: OwnEndpoint[] = [
    {
      path: '/ca.crt',
      methods: READ,
      // By a name served an internal ACME server's certificate, that server's roots:
      // what the installer, fetching /ca.crt by the same name, must pin and install.
      serve: (req, res) => {
        const trust = trustFor(req, opts.acmeTrust);
        const pem = trust?.kind === 'internal' ? trust.pem : opts.trustBundlePEM();
        return serveCACertificate(res, pem, ownHeaders);
      },
    },
    {
      path: '/install-ca.sh',
      methods: READ,
      serve: (req, res) => serveInstaller(req, res, ownHeaders, opts.acmeTrust),
    },
  ];
  const health = opts.health;
  if (health) {
    table.push({
      path: health.path,
      methods: READ,
      serve: (_req, res) =>
        serveHealth(res, publicVerdictBody(health.verdict(), health.backend), ownHeaders),
    });
  }
  return new Map(table.map((endpoint) => [endpoint.path, endpoint]));
}

/** The endpoint that answers this request, if the proxy answers it itself. */
export function findOwnEndpoint(
  table: ReadonlyMap<string, OwnEndpoint>,
  path: string,
  method: string | undefined,
): OwnEndpoint | undefined {
  const endpoint = table.get(path);
  return endpoint && method !== undefined && endpoint.methods.includes(method)
    ? endpoint
    : undefined;
}

/** Answers with a small complete body; returns the body bytes sent. */
function sendSmall(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: string,
): number {
  const head = res.req.method === 'HEAD';
  res.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) });
  res.end(head ? undefined : body);
  return head ? 0 : Buffer.byteLength(body);
}

function serveCACertificate(
  res: ServerResponse,
  pem: string,
  ownHeaders: Readonly<Record<string, string>>,
): number {
  return sendSmall(
    res,
    200,
    {
      ...ownHeaders,
      'content-type': 'application/x-pem-file',
      'content-disposition': 'inline; filename="ca.crt"',
      'cache-control': 'no-cache',
    },
    pem,
  );
}

/** The backend verdict as a simple balancer reads it: 200 healthy, 503 not, with the reason. */
function serveHealth(
  res: ServerResponse,
  body: Record<string, unknown>,
  ownHeaders: Readonly<Record<string, string>>,
): number {
  return sendSmall(
    res,
    body['status'] === 'ok' ? 200 : 503,
    { ...ownHeaders, 'content-type': 'application/json', 'cache-control': 'no-store' },
    `${JSON.stringify(body)}\n`,
  );
}

/** What a client that came by this request's Host installs for it with tls.acme (undefined: our CA). */
function trustFor(
  req: IncomingMessage,
  acmeTrust: OwnEndpointOptions['acmeTrust'],
): ACMETrust | undefined {
  const host = parseHostHeader(req.headers.host ?? '')?.host;
  return host === undefined ? undefined : acmeTrust?.(host);
}

/** The fingerprint-checking installer, defaulting to the host:port this client used. */
function serveInstaller(
  req: IncomingMessage,
  res: ServerResponse,
  ownHeaders: Readonly<Record<string, string>>,
  acmeTrust: OwnEndpointOptions['acmeTrust'],
): number {
  const port = req.socket.localPort ?? 443;
  const host = req.headers.host ?? defaultHost(req.socket.localAddress, port);
  let script: string;
  try {
    const hostPort = withDefaultPort(host, port);
    const trust = trustFor(req, acmeTrust);
    script =
      trust?.kind === 'public'
        ? nothingToInstallScript(hostPort)
        : installerScript(
            hostPort,
            trust ? "the internal ACME server's root (tls.acme.caBundle)" : undefined,
          );
  } catch {
    return sendRegistryError(
      res,
      { status: 400, code: 'UNSUPPORTED', message: 'the Host header is not a host[:port]' },
      ownHeaders,
    );
  }
  return sendSmall(
    res,
    200,
    {
      ...ownHeaders,
      'content-type': 'text/x-shellscript; charset=utf-8',
      'cache-control': 'no-cache',
    },
    script,
  );
}

/** For a name served the ACME certificate: clients already trust it. */
function nothingToInstallScript(hostPort: string): string {
  return [
    '#!/bin/sh',
    `# registry-tls-proxy: ${hostPort} is served a publicly trusted certificate (ACME)`,
    `echo '${hostPort}: publicly trusted: nothing to install on clients'`,
    'exit 0',
    '',
  ].join('\n');
}

/** The Host a request without one meant: the address it came in on. */
export function defaultHost(address: string | undefined, port: number | undefined): string {
  return formatHostPort(address ?? 'localhost', port ?? 443);
}
