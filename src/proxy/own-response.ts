/**
 * What the own endpoints (own-endpoints.ts, trust-endpoints.ts) share: a small complete
 * answer, the host:port the client used, and what a client by that host must trust.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ACMETrust } from '../acme/which-certificate.js';
import { formatHostPort, parseHostHeader, withDefaultPort } from '../net/address.js';
import { assertHostPort } from '../trust/layout.js';
import { sendRegistryError } from './registry-error.js';

/** Answers with a small complete body (none for HEAD); returns the body bytes sent. */
export function sendSmall(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: string | Buffer,
): number {
  const head = res.req.method === 'HEAD';
  const length = Buffer.byteLength(body);
  res.writeHead(status, { ...headers, 'content-length': String(length) });
  res.end(head ? undefined : body);
  return head ? 0 : length;
}

/**
 * The host:port this client used: its Host (the port added when it names none), else
 * the address it came in on; undefined when the Host is not a host[:port] (a value
 * that must never reach a shell command or a page).
 */
export function requestHostPort(req: IncomingMessage): string | undefined {
  const port = req.socket.localPort ?? 443;
  const host = req.headers.host ?? defaultHost(req.socket.localAddress, port);
  try {
    return assertHostPort(withDefaultPort(host, port));
  } catch {
    return undefined;
  }
}

/** The answer when requestHostPort found none; returns the body bytes sent. */
export function refuseHost(
  res: ServerResponse,
  ownHeaders: Readonly<Record<string, string>>,
): number {
  return sendRegistryError(
    res,
    { status: 400, code: 'UNSUPPORTED', message: 'the Host header is not a host[:port]' },
    ownHeaders,
  );
}

/** The Host a request without one meant: the address it came in on. */
export function defaultHost(address: string | undefined, port: number | undefined): string {
  return formatHostPort(address ?? 'localhost', port ?? 443);
}

/** With tls.acme, what a client that came by this request's Host installs (undefined: our CA). */
export function trustFor(
  req: IncomingMessage,
  acmeTrust: ((host: string) => ACMETrust | undefined) | undefined,
): ACMETrust | undefined {
  const host = parseHostHeader(req.headers.host ?? '')?.host;
  return host === undefined ? undefined : acmeTrust?.(host);
}
