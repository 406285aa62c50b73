/**
 * Binding a listening socket, for the public port (proxy/listener.ts) and the admin
 * listener alike: at the bottom, so that admin/ need not import proxy/.
 */
import type { Server as HTTPServer } from 'node:http';
import type { AddressInfo, Server } from 'node:net';

/** `server.listen` as a promise: the bound address, or the error (EADDRINUSE, EACCES). */
export function listenOn(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/**
 * A plain-HTTP listener of our own (admin, http-01) on `listen`, as `{listen, close}`;
 * close drops keep-alive connections at once (nothing there is worth draining).
 */
export function plainListener(
  server: HTTPServer,
  address: { host: string; port: number },
): { listen(): Promise<AddressInfo>; close(): Promise<void> } {
  return {
    listen: () => listenOn(server, address.host, address.port),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
