/**
 * Who the client is, in one place. Normally the TCP peer; behind a TCP balancer that
 * sends a PROXY protocol header (proxyProtocol), the address in that header. Every
 * log line, X-Forwarded-For and trustedProxies decision asks here, never
 * `socket.remoteAddress`, so that none of them names the balancer instead.
 */
import type { Socket } from 'node:net';

/** Set on the raw TCP socket when its PROXY header was read (tls/sniff.ts). */
const fromHeader = new WeakMap<Socket, string>();

export function setClientAddress(socket: Socket, address: string): void {
  fromHeader.set(socket, address);
}

/**
 * The client's address for a raw socket or the TLS socket over it (a request's
 * `req.socket`). The TLS socket's `_parent` is the TCP socket the listener accepted;
 * its address also survives Node closing the TLS socket itself (a rejected client
 * certificate), when the TLS socket no longer knows its peer.
 */
export function clientAddressOf(socket: Socket | undefined | null): string | undefined {
  if (!socket) return undefined;
  const parent = (socket as { _parent?: Socket | null })._parent ?? undefined;
  return (
    fromHeader.get(socket) ??
    (parent && fromHeader.get(parent)) ??
    socket.remoteAddress ??
    parent?.remoteAddress
  );
}
