/**
 * What the backend is told about the request, and what the client is told
 * about the response. The proxy sets X-Forwarded-* itself, overwriting anything
 * the client sent: the registry builds its Location URLs from them
 * (registry/api/v2/urls.go), so a client-controlled value could steer them.
 * http-proxy's `xfwd` appends instead and keeps a client's X-Forwarded-Host.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { canonicalIP } from '../pki/sans.js';

/** RFC 9110 §7.6.1 plus the ones proxies must not pass on (RFC 2616 §13.5.1). */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];

/** Client-supplied forwarding headers that never reach the backend. */
const CLIENT_FORWARDING = [
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-ssl',
  'x-real-ip',
];

export interface ForwardingFacts {
  /** The client's address as the socket reports it. */
  clientAddress: string | undefined;
  /** The Host the client used (host[:port]), passed through unchanged. */
  host: string;
  /** The public port the client connected to. */
  port: number;
}

/**
 * Rewrites `headers` in place into what the backend receives: hop-by-hop
 * headers (and those named in Connection) removed, `Expect` removed (Node has
 * already answered 100-continue to the client), forwarding headers overwritten.
 * Mutating the incoming headers is deliberate: http-proxy copies them, and its
 * `proxyReq` hook is skipped for `Expect: 100-continue` requests.
 */
export function prepareRequestHeaders(headers: IncomingHttpHeaders, facts: ForwardingFacts): void {
  stripHopByHop(headers);
  delete headers['expect'];
  for (const name of CLIENT_FORWARDING) delete headers[name];
  const client = facts.clientAddress ? canonicalIP(facts.clientAddress) : undefined;
  if (client) {
    headers['x-forwarded-for'] = client;
    headers['x-real-ip'] = client;
  }
  headers['x-forwarded-proto'] = 'https';
  headers['x-forwarded-host'] = facts.host;
  headers['x-forwarded-port'] = String(facts.port);
  headers.host = facts.host;
}

/** Removes hop-by-hop headers, including any the Connection header names. */
export function stripHopByHop(headers: IncomingHttpHeaders | OutgoingHttpHeaders): void {
  const connection = headers['connection'];
  if (typeof connection === 'string') {
    for (const token of connection.split(',')) {
      const name = token.trim().toLowerCase();
      // Framing and routing stay: a client must not strip them by naming them here.
      if (name !== '' && name !== 'host' && name !== 'content-length') delete headers[name];
    }
  }
  for (const name of HOP_BY_HOP) delete headers[name];
}
