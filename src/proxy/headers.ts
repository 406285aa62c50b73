/**
 * What the backend is told about the request, and what the client is told
 * about the response. The proxy sets X-Forwarded-* itself, overwriting anything
 * the client sent: the registry builds its Location URLs from them
 * (registry/api/v2/urls.go), so a client-controlled value could steer them.
 * http-proxy's `xfwd` appends instead and keeps a client's X-Forwarded-Host.
 * Only a peer listed in `trustedProxies` (a load balancer in front) has its
 * values passed on, with its own address appended to X-Forwarded-For.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
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
  /** Whether an address is a trusted proxy (trustedProxies); absent when none is. */
  isTrustedProxy?: ((address: string) => boolean) | undefined;
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
  const client = facts.clientAddress ? canonicalIP(facts.clientAddress) : undefined;
  if (client && facts.isTrustedProxy?.(client)) {
    passOnFromTrustedProxy(headers, client, facts);
    return;
  }
  for (const name of CLIENT_FORWARDING) delete headers[name];
  if (client) {
    headers['x-forwarded-for'] = client;
    headers['x-real-ip'] = client;
  }
  headers['x-forwarded-proto'] = 'https';
  headers['x-forwarded-host'] = facts.host;
  headers['x-forwarded-port'] = String(facts.port);
  headers.host = facts.host;
}

/**
 * A trusted load balancer's view passes on: its X-Forwarded-For with its own
 * address appended (`client, balancer`, as nginx and HAProxy do), its
 * X-Forwarded-Proto/Host/Port and Forwarded. What it left out is filled in as
 * for any client, except X-Forwarded-Port next to its own X-Forwarded-Host: the
 * registry would add that port (ours) to the balancer's public name.
 */
function passOnFromTrustedProxy(
  headers: IncomingHttpHeaders,
  peer: string,
  facts: ForwardingFacts,
): void {
  const isTrusted = facts.isTrustedProxy as (address: string) => boolean;
  const chain = listValue(headers['x-forwarded-for']);
  headers['x-forwarded-for'] = chain ? `${chain}, ${peer}` : peer;
  headers['x-real-ip'] = originalClient(chain, peer, isTrusted);
  // The registry uses X-Forwarded-Proto verbatim: `https, http` from a chain would break its URLs.
  headers['x-forwarded-proto'] = firstValue(headers['x-forwarded-proto']) || 'https';
  if (headers['x-forwarded-host'] === undefined) {
    headers['x-forwarded-host'] = facts.host;
    headers['x-forwarded-port'] ??= String(facts.port);
  }
  delete headers['x-forwarded-prefix'];
  delete headers['x-forwarded-ssl'];
  headers.host = facts.host;
}

/**
 * The client a request comes from: its connection's client (net/client-address.ts:
 * the peer, or a PROXY header's address), or behind a trusted HTTP balancer the
 * original client its X-Forwarded-For names (what the failed-login limit counts).
 */
export function originalClientOf(
  headers: IncomingHttpHeaders,
  socketAddress: string | undefined,
  isTrustedProxy: ((address: string) => boolean) | undefined,
): string {
  const peer = socketAddress ? canonicalIP(socketAddress) : '';
  if (!isTrustedProxy || !isTrustedProxy(peer)) return peer;
  return originalClient(listValue(headers['x-forwarded-for']), peer, isTrustedProxy);
}

/** A header's value as one comma-separated list (Node keeps a few repeated headers as arrays). */
function listValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/** The first element of a comma-separated header value, trimmed. */
export function firstValue(value: string | string[] | undefined): string | undefined {
  return listValue(value)?.split(',', 1)[0]?.trim();
}

/** The right-most address in the chain that is not a trusted proxy (nginx's real_ip_recursive). */
function originalClient(
  chain: string | undefined,
  peer: string,
  isTrusted: (address: string) => boolean,
): string {
  if (!chain) return peer;
  const hops = chain.split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = (hops[i] as string).trim();
    if (isIP(hop) === 0) return peer; // not an address: nothing left to believe
    const address = canonicalIP(hop);
    if (!isTrusted(address)) return address;
  }
  return canonicalIP((hops[0] as string).trim());
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
