/**
 * Draining an HTTPS server without dropping a request a client has a right to see
 * answered. Node's closeIdleConnections() counts a connection that has finished its
 * TLS handshake but not yet sent its first request as idle, and a drain that ends as
 * soon as no response is in flight abandons connections still in their handshake. In
 * a SIGHUP reload of a cluster both happen all the time: the primary hands the old
 * workers connections until they stop accepting, and those clients saw ECONNRESET.
 *
 * So connections are told apart:
 *  - served and idle (a keep-alive connection between requests): closed once it has
 *    been quiet for SERVED_QUIET_MS, at once if it already was. nginx closes them all at
 *    once, but a client in the middle of a sequence (a push: POST, PATCH, PUT back to
 *    back) may have its next request on the wire by then, and nobody retries a PATCH or
 *    PUT on a reused connection (Go's transport, Node's agent): it failed. A connection
 *    that asks again within the quiet time is answered with `Connection: close` instead,
 *    which ends it without that race;
 *  - fresh (handshaking, or handshaken and no request yet): get FRESH_GRACE_MS to send
 *    their first request, which is answered with `Connection: close`;
 *  - busy (a response in flight): finish, with `Connection: close`.
 * The drain ends when nothing is left, or cuts what is left at the deadline.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as HTTPSServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

/** How long a fresh connection may take to send its first request once a drain began. */
export const FRESH_GRACE_MS = 2000;
/**
 * How long a served keep-alive connection must have been idle before a drain closes it:
 * long enough that a client in a sequence of requests has sent its next one.
 */
export const SERVED_QUIET_MS = 500;
/** How often a drain looks for connections to close and checks whether it is done. */
const DRAIN_SWEEP_MS = 50;

interface ConnectionState {
  /** At least one request arrived on it. */
  served: boolean;
  /** Responses on it not yet finished. */
  busy: number;
  /** When it became idle: its handshake finished, or (served) its last response ended. */
  idleSince: number;
}

export interface Drainer {
  /** Responses not yet finished or abandoned. */
  inFlight(): number;
  draining(): boolean;
  /**
   * Starts the drain (once); resolves with how many responses were cut at the deadline.
   * `pending` counts connections accepted elsewhere that may still be handed to this
   * server (a listener still sniffing their first byte); they get FRESH_GRACE_MS too.
   * `closed` runs once, when the drain has ended.
   */
  drain(deadlineMs: number, closed: () => void, pending?: () => number): Promise<{ cut: number }>;
}

export function trackForDrain(https: HTTPSServer): Drainer {
  /** Raw TCP sockets handed to the server, from accept until closed (handshake included). */
  const raw = new Set<Socket>();
  const connections = new Map<TLSSocket, ConnectionState>();
  const active = new Set<ServerResponse>();
  let draining = false;
  let drained: Promise<{ cut: number }> | undefined;

  https.on('connection', (socket: Socket) => {
    raw.add(socket);
    socket.once('close', () => raw.delete(socket));
  });
  https.on('secureConnection', (socket: TLSSocket) => {
    connections.set(socket, { served: false, busy: 0, idleSince: Date.now() });
    socket.once('close', () => connections.delete(socket));
  });
  // Before the request handler, which may answer at once: during a drain every answer says close.
  https.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    active.add(res);
    if (draining) res.setHeader('connection', 'close');
    const state = connections.get(req.socket as TLSSocket);
    if (state) {
      state.served = true;
      state.busy++;
    }
    res.once('close', () => {
      active.delete(res);
      if (state && --state.busy === 0) state.idleSince = Date.now();
    });
  });

  return {
    inFlight: () => active.size,
    draining: () => draining,
    drain(deadlineMs, closed, pending = () => 0) {
      drained ??= new Promise((resolve) => {
        draining = true;
        const started = Date.now();
        for (const res of active) if (!res.headersSent) res.setHeader('connection', 'close');
        const sweep = () => {
          const now = Date.now();
          const graceOver = now - started >= FRESH_GRACE_MS;
          for (const [socket, state] of connections) {
            if (state.busy > 0) continue;
            const quiet = state.served
              ? now - state.idleSince >= SERVED_QUIET_MS
              : now - Math.max(state.idleSince, started) >= FRESH_GRACE_MS;
            if (quiet) socket.destroy();
          }
          const waiting = connections.size > 0 || (!graceOver && (raw.size > 0 || pending() > 0));
          if (active.size === 0 && !waiting) finish(0);
        };
        const timer = setInterval(sweep, DRAIN_SWEEP_MS);
        const deadline = setTimeout(() => finish(active.size), deadlineMs);
        function finish(cut: number): void {
          clearInterval(timer);
          clearTimeout(deadline);
          https.closeAllConnections();
          for (const socket of raw) socket.destroy(); // still in their handshake
          closed();
          resolve({ cut });
        }
        sweep();
      });
      return drained;
    },
  };
}
