/**
 * The one interface between the request path and the backend: a transport sends an
 * exchange's request and reports the answer to it (exchange.ts). Two stand behind
 * it — the relay (upstream-relay.ts, the fast path) and http-proxy
 * (upstream-http-proxy.ts) — and forward.ts alone chooses which serves a request.
 */
import type { Exchange } from './exchange.js';

/** The request's body framing as the client sent it; absent when it has none. */
export interface RequestBody {
  /** Content-Length; undefined when chunked. */
  length: number | undefined;
}

export interface Upstream {
  /**
   * Sends `ex`'s request (headers already prepared for the backend), hands the call to
   * `ex.forwarded`, and reports the answer to the exchange.
   */
  send(ex: Exchange, body: RequestBody | undefined): void;
}
