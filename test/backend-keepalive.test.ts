/**
 * Idle connections to the backend are closed by the proxy before the backend would close
 * them: a backend closing a connection just as the proxy sends an upload on it fails that
 * upload (502), and an upload cannot be retried. Against the real registry (it announces
 * no keep-alive timeout: `timeouts.backendKeepAliveMs` governs) and a Node backend (it
 * announces `Keep-Alive: timeout=3`: the proxy closes a second earlier), on both paths
 * (the relay: manifests and blobs; http-proxy: the rest).
 */
import type { Socket } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { useFakeBackendBehindProxy } from './helpers/fake-backend.js';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { httpsGet } from './helpers/https.js';
import type { Proxy } from './helpers/processes.js';
import { plainRequest } from './helpers/registry-api.js';

/** Paths served by each way to the backend (handler.ts RELAYED). */
const PATHS = { relay: '/v2/ka/app/manifests/latest', httpProxy: '/v2/_catalog' };

describe('idle connections to the registry', () => {
  const env = useRegistryBehindProxy(
    'backend-keepalive',
    { auth: { kind: 'none' } },
    { RTP_TIMEOUTS_BACKEND_KEEP_ALIVE_MS: '1500' },
  );
  let proxy: Proxy;
  let ca: string;
  beforeAll(() => {
    ({ proxy, ca } = env);
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
    await eventually('the idle backend sockets to close', async () => (await idleSockets()) === 0);
    const closedAfter = Date.now() - answeredAt;
    expect(closedAfter).toBeGreaterThanOrEqual(1400);
    expect(closedAfter).toBeLessThan(3500);
    expect(await statuses()).toEqual([404, 200]);
    expect(await idleSockets()).toBe(2);
  });
});

describe('idle connections to a backend announcing Keep-Alive: timeout=3', () => {
  /** Per backend connection: the path it served last, when it answered, how it ended. */
  const served = new Map<Socket, { path: string; answeredAt: number; ended?: string }>();
  // The proxy keeps the default backendKeepAliveMs (4 s), longer than the backend's 3 s.
  const env = useFakeBackendBehindProxy(
    'backend-keepalive-hint',
    (req, res) => {
      const entry = { path: req.url ?? '', answeredAt: 0 };
      served.set(req.socket, entry);
      res.on('finish', () => (entry.answeredAt = Date.now()));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' });
      res.end('{}');
    },
    {
      configure: (backend) => {
        backend.keepAliveTimeout = 3000; // Node announces it: Keep-Alive: timeout=3
        backend.on('connection', (socket: Socket) => {
          // 'end' first: the proxy closed it; 'close' alone: the backend's own timer did.
          const ended = (by: string) => () => {
            const entry = served.get(socket);
            if (entry) entry.ended ??= `by the ${by} after ${Date.now() - entry.answeredAt} ms`;
          };
          socket.once('end', ended('proxy'));
          socket.once('close', ended('backend'));
        });
      },
    },
  );
  let proxy: Proxy;
  let ca: string;
  beforeAll(() => {
    ({ proxy, ca } = env);
  });

  it.each(Object.entries(PATHS))('are closed by the proxy a second early (%s)', async (_, path) => {
    expect((await httpsGet(proxy.origin + path, { ca })).status).toBe(200);
    const entry = () => [...served.values()].find((e) => e.path === path);
    const how = await eventually(
      `the backend connection that served ${path} to end`,
      () => entry()?.ended,
    );
    const ended = /^by the (proxy|backend) after (\d+) ms$/.exec(how);
    expect(ended?.[1], how).toBe('proxy');
    expect(Number(ended?.[2])).toBeGreaterThanOrEqual(1800);
    expect(Number(ended?.[2])).toBeLessThan(2900);
  });
});
