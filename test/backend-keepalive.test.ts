/**
 * Idle connections to the backend are closed by the proxy before the backend would close
 * them: a backend closing a connection just as the proxy sends an upload on it fails that
 * upload (502), and an upload cannot be retried. Against the real registry (it announces
 * no keep-alive timeout: `timeouts.backendKeepAliveMs` governs) and a Node backend (it
 * announces `Keep-Alive: timeout=3`: the proxy closes a second earlier), on both paths
 * (the relay: manifests and blobs; http-proxy: the rest).
 */
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/fake-backend.js';
import { httpsGet } from './helpers/https.js';
import { plainRequest } from './helpers/registry-api.js';
import {
  createRegistry,
  freePort,
  readCA,
  startProxy,
  tempDir,
  type Proxy,
  type Registry,
} from './helpers/processes.js';

/** Paths served by each way to the backend (handler.ts RELAYED). */
const PATHS = { relay: '/v2/ka/app/manifests/latest', httpProxy: '/v2/_catalog' };

describe('idle connections to the registry', () => {
  const tmp = tempDir('backend-keepalive');
  let registry: Registry;
  let proxy: Proxy;
  let ca: string;
  beforeAll(async () => {
    registry = await createRegistry({ auth: { kind: 'none' } }, tmp.path);
    await registry.start();
    proxy = await startProxy({
      backend: registry.url,
      tlsDir: join(tmp.path, 'tls'),
      env: { RTP_TIMEOUTS_BACKEND_KEEP_ALIVE_MS: '1500' },
    });
    ca = readCA(proxy);
  });
  afterAll(async () => {
    await proxy?.stop();
    await registry?.stop();
    tmp.remove();
  });

  const idleSockets = async () => {
    const { body } = await plainRequest(`http://127.0.0.1:${proxy.adminPort}/metrics`, 'GET');
    return Number(/^rtp_upstream_sockets\{state="idle"\} (\d+)$/m.exec(body)?.[1] ?? NaN);
  };

  it('are kept for reuse, closed after timeouts.backendKeepAliveMs, and the next requests open new ones', async () => {
    const statuses = async () =>
      Promise.all(
        Object.values(PATHS).map(
          async (path) => (await httpsGet(proxy.origin + path, { ca })).status,
        ),
      );
    expect(await statuses()).toEqual([404, 200]); // no such manifest; an empty catalog
    const answeredAt = Date.now();
    expect(await idleSockets()).toBe(2); // one per path, kept for the next request
    expect(await waitFor(async () => (await idleSockets()) === 0, 5000)).toBe(true);
    const closedAfter = Date.now() - answeredAt;
    expect(closedAfter).toBeGreaterThanOrEqual(1400);
    expect(closedAfter).toBeLessThan(3500);
    expect(await statuses()).toEqual([404, 200]);
    expect(await idleSockets()).toBe(2);
  });
});

describe('idle connections to a backend announcing Keep-Alive: timeout=3', () => {
  const tmp = tempDir('backend-keepalive-hint');
  let backend: Server;
  let proxy: Proxy;
  let ca: string;
  /** Per backend connection: the path it served last, when it answered, how it ended. */
  const served = new Map<Socket, { path: string; answeredAt: number; ended?: string }>();
  beforeAll(async () => {
    backend = createServer((req, res) => {
      const entry = { path: req.url ?? '', answeredAt: 0 };
      served.set(req.socket, entry);
      res.on('finish', () => (entry.answeredAt = Date.now()));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' });
      res.end('{}');
    });
    backend.keepAliveTimeout = 3000; // Node announces it: Keep-Alive: timeout=3
    backend.on('connection', (socket: Socket) => {
      // 'end' first: the proxy closed it; 'close' alone: the backend's own timer did.
      socket.once('end', () => {
        const entry = served.get(socket);
        if (entry) entry.ended ??= `by the proxy after ${Date.now() - entry.answeredAt} ms`;
      });
      socket.once('close', () => {
        const entry = served.get(socket);
        if (entry) entry.ended ??= `by the backend after ${Date.now() - entry.answeredAt} ms`;
      });
    });
    const port = await freePort();
    await new Promise<void>((r) => backend.listen(port, '127.0.0.1', r));
    // The default backendKeepAliveMs (4 s) is longer than the backend's 3 s.
    proxy = await startProxy({
      backend: `http://127.0.0.1:${port}`,
      tlsDir: join(tmp.path, 'tls'),
    });
    ca = readCA(proxy);
  });
  afterAll(async () => {
    await proxy?.stop();
    backend?.closeAllConnections();
    await new Promise((r) => backend?.close(r));
    tmp.remove();
  });

  it.each(Object.entries(PATHS))('are closed by the proxy a second early (%s)', async (_, path) => {
    expect((await httpsGet(proxy.origin + path, { ca })).status).toBe(200);
    const entry = () => [...served.values()].find((e) => e.path === path);
    expect(await waitFor(() => entry()?.ended !== undefined, 5000)).toBe(true);
    const ended = /^by the (proxy|backend) after (\d+) ms$/.exec(entry()?.ended ?? '');
    expect(ended?.[1], entry()?.ended).toBe('proxy');
    expect(Number(ended?.[2])).toBeGreaterThanOrEqual(1800);
    expect(Number(ended?.[2])).toBeLessThan(2900);
  });
});
