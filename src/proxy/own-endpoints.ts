/**
 * What the proxy answers itself on the public port, never asking the registry: the
 * CA bundle (`/ca.crt`), the fingerprint-checking installer (`/install-ca.sh`) and
 * the cached backend verdict for balancers (health.publicPath).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { verdictBody } from '../health/report.js';
import { formatHostPort, withDefaultPort } from '../net/address.js';
import type { Verdict } from '../health/probe.js';
import { installerScript } from '../trust/installer-script.js';
import { sendRegistryError } from './registry-error.js';

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

export function serveCACertificate(
  res: ServerResponse,
  pem: string,
  ownHeaders: Record<string, string>,
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
export function serveHealth(
  res: ServerResponse,
  verdict: Verdict,
  ownHeaders: Record<string, string>,
): number {
  return sendSmall(
    res,
    verdict.healthy ? 200 : 503,
    { ...ownHeaders, 'content-type': 'application/json', 'cache-control': 'no-store' },
    `${JSON.stringify(verdictBody(verdict))}\n`,
  );
}

/** The fingerprint-checking installer, defaulting to the host:port this client used. */
export function serveInstaller(
  req: IncomingMessage,
  res: ServerResponse,
  ownHeaders: Record<string, string>,
): number {
  const port = req.socket.localPort ?? 443;
  const host = req.headers.host ?? defaultHost(req.socket.localAddress, port);
  let script: string;
  try {
    script = installerScript(withDefaultPort(host, port));
  } catch {
    sendRegistryError(
      res,
      { status: 400, code: 'UNSUPPORTED', message: 'the Host header is not a host[:port]' },
      ownHeaders,
    );
    return 0;
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

/** The Host a request without one meant: the address it came in on. */
export function defaultHost(address: string | undefined, port: number | undefined): string {
  return formatHostPort(address ?? 'localhost', port ?? 443);
}
