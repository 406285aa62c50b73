/**
 * forward: the request as the backend gets it (headers.ts: forwarding headers set,
 * hop-by-hop removed; behind a trusted balancer, its public address for rewrites),
 * sent to a replica (replicas.ts) through the transport that serves its operation.
 * Which replica and which transport are decided here, and only here.
 */
import { clientAddressOf } from '../net/client-address.js';
import type { IncomingMessage } from 'node:http';
import type { Operation } from '../metrics/operation.js';
import { parseHostHeader } from '../net/address.js';
import type { Exchange } from './exchange.js';
import { firstValue, prepareRequestHeaders } from './headers.js';
import { BACKEND_TIMEOUT, connectionFailure } from '../net/errno.js';
import type { Replica, Replicas } from './replicas.js';
import type { RequestBody } from './upstream.js';
import { takePin } from './upload-affinity.js';

/**
 * The hot paths of pushes and pulls take the relay: blob bodies (bytes are the cost)
 * and the version check, manifest and blob GET/HEAD (requests are). Measured per manifest GET against a
 * fast backend: 146 µs of proxy CPU through the relay, 175 through http-proxy.
 * Everything else (upload start, manifest PUT, tokens, catalog, deletes) takes
 * http-proxy, where its generality costs little.
 */
const RELAYED: ReadonlySet<Operation> = new Set<Operation>([
  'ping', // GET /v2/: every client's first request on every connection
  'blob_get',
  'blob_head',
  'manifest_get',
  'manifest_head',
  'upload_chunk',
  'upload_complete',
]);

export interface ForwardOptions {
  replicas: Replicas;
  /** Whether a peer is a trusted proxy (trustedProxies); absent when none is. */
  isTrustedProxy?: ((address: string) => boolean) | undefined;
}

export interface Forward {
  (ex: Exchange): void;
  /**
   * Sends a request whose replica failed before answering once more, to another replica:
   * a GET or HEAD whatever the failure (refused, reset, gone), any other body-less one
   * (an upload's start or completion, a delete) only when no connection was made
   * (refused, a name that does not resolve), so not one byte of it reached a registry. False when that does not apply (one replica,
   * a body, a timeout: a silent replica would make the client wait twice, or already
   * retried).
   */
  retry(ex: Exchange, err: NodeJS.ErrnoException): boolean;
}

export function createForward(opts: ForwardOptions): Forward {
  const { replicas, isTrustedProxy } = opts;
  const sendTo = (ex: Exchange, replica: Replica, body: RequestBody | undefined) => {
    ex.backend = replica.url;
    if (replicas.all.length > 1) ex.pin = replica.index;
    replica.outstanding++;
    ex.sentTo = replica; // given back when the response closes (exchange.ts)
    (RELAYED.has(ex.operation) ? replica.relay : replica.httpProxy).send(ex, body);
  };

  const forward = function forward(ex: Exchange): void {
    const req = ex.req;
    const body = requestBody(req);
    prepareRequestHeaders(req.headers, {
      clientAddress: clientAddressOf(req.socket),
      host: ex.publicHost,
      port: ex.publicPort,
      isTrustedProxy,
    });
    if (isTrustedProxy) publicAddressFromTrustedProxy(req, ex);
    ex.watchRequestBody(body !== undefined);
    // An upload's next step goes where it started; the registry never sees the number.
    const pin = takePin(req.url ?? '/');
    req.url = pin.url;
    sendTo(ex, replicas.pickPinned(pin.index), body);
  } as Forward;

  forward.retry = (ex, err) => {
    const was = ex.sentTo;
    const method = ex.req.method;
    if (!was || ex.retried || replicas.all.length < 2 || ex.clientGone) return false;
    if (requestBody(ex.req) !== undefined || err.code === BACKEND_TIMEOUT) return false;
    // Refused or unresolved: no connection was made (no other failure proves that).
    const neverSent = ['refused', 'unresolved'].includes(connectionFailure(err).kind);
    if (method !== 'GET' && method !== 'HEAD' && !neverSent) return false;
    ex.sendingDone();
    ex.retried = true;
    sendTo(ex, replicas.pick(replicas.all[was.index]), undefined);
    return true;
  };
  return forward;
}

/** The request's body framing as the client sent it (read before hop-by-hop headers go). */
function requestBody(req: IncomingMessage): RequestBody | undefined {
  if (/chunked/i.test(req.headers['transfer-encoding'] ?? '')) return { length: undefined };
  const length = Number(req.headers['content-length'] ?? 0);
  return length > 0 ? { length } : undefined;
}

/**
 * Behind a trusted balancer, the address clients use is its X-Forwarded-Host (the
 * registry builds its URLs from it too): Location rewrites must point there, not at
 * this proxy's Host, or a push would leave the balancer mid-upload.
 */
function publicAddressFromTrustedProxy(req: IncomingMessage, ex: Exchange): void {
  const host = firstValue(req.headers['x-forwarded-host']);
  if (!host || host === ex.publicHost) return;
  const parsed = parseHostHeader(host);
  if (!parsed) return;
  ex.publicHost = host;
  const port = parsed.port ?? firstValue(req.headers['x-forwarded-port']);
  ex.publicPort = Number(port) || (req.headers['x-forwarded-proto'] === 'http' ? 80 : 443);
}
