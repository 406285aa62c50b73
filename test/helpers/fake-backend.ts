/**
 * A hand-written backend (node:http) behind the proxy's built CLI, for behaviour a
 * real registry will not produce on demand: endless bodies, silence, dying mid-body.
 */
import { readFileSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { freePort, startProxy, tempDir, type Proxy } from './processes.js';

export interface FakeBackendBehindProxy {
  readonly proxy: Proxy;
  /** The proxy's CA (PEM). */
  readonly ca: string;
  readonly backend: Server;
  readonly backendPort: number;
}

/** Registers beforeAll/afterAll hooks; read the fields inside tests. */
export function useFakeBackendBehindProxy(
  name: string,
  handler: RequestListener,
  options: { env?: Record<string, string>; configure?: (server: Server) => void } = {},
): FakeBackendBehindProxy {
  const tmp = tempDir(name);
  const backend = createServer(handler);
  options.configure?.(backend);
  let proxy: Proxy | undefined;
  let ca = '';
  let backendPort = 0;
  beforeAll(async () => {
    backendPort = await freePort();
    await new Promise<void>((r) => backend.listen(backendPort, '127.0.0.1', r));
    proxy = await startProxy({
      backend: `http://127.0.0.1:${backendPort}`,
      tlsDir: join(tmp.path, 'tls'),
      env: options.env ?? {},
    });
    ca = readFileSync(proxy.caFile, 'utf8');
  });
  afterAll(async () => {
    await proxy?.stop();
    backend.closeAllConnections();
    await new Promise((r) => backend.close(r));
    tmp.remove();
  });
  return {
    get proxy() {
      if (!proxy) throw new Error('the proxy is not started yet (use it inside a test)');
      return proxy;
    },
    get ca() {
      return ca;
    },
    backend,
    get backendPort() {
      return backendPort;
    },
  };
}
