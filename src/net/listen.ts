/**
 * Binding a listening socket, for the public port (proxy/listener.ts) and the admin
 * listener alike: at the bottom, so that admin/ need not import proxy/.
 */
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
