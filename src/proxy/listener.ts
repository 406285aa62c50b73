/**
 * The public listening socket, apart from the HTTPS server behind it: a SIGHUP
 * reload builds a new server (new configuration) and points the socket at it,
 * with no moment at which connections are refused, while the old server
 * finishes its requests; a drain closes the socket first.
 */
import type { AddressInfo } from 'node:net';
import { parseHostPort } from '../net/address.js';
import { listenOn } from '../net/listen.js';
import { createSniffingServer, type SniffOptions } from '../tls/sniff.js';

export interface PublicListener {
  /** Where new connections go from now on. */
  route(target: SniffOptions): void;
  listen(): Promise<AddressInfo>;
  /**
   * Closes the listening socket at once (new connections are refused; in a cluster the
   * primary stops handing this worker connections). Open connections are not touched.
   */
  stopAccepting(): void;
  /** Accepted connections not yet handed to a server (their first byte has not arrived). */
  sniffing(): number;
}

export function createPublicListener(listen: string, initial: SniffOptions): PublicListener {
  let target = initial;
  const { server, sniffing } = createSniffingServer(() => target);
  const { host, port } = parseHostPort(listen) ?? { host: '0.0.0.0', port: 5443 };
  return {
    route(next) {
      target = next;
    },
    listen: () => listenOn(server, host, port),
    stopAccepting() {
      if (server.listening) server.close();
    },
    sniffing,
  };
}
