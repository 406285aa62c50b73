/**
 * What a SIGHUP reload keeps, in one process and in a cluster (the process runtime,
 * src/runtime.ts, serves both):
 *  - the metrics: rtp_requests_total never goes down across reloads, and counts the
 *    requests that finish on the previous configuration after one (each reload used to
 *    build a new registry and reset every counter; a cluster lost its old workers');
 *  - a drain that interrupts a reload stops what the reload started: the new admin
 *    listener is closed (one process used to leave it open, a cluster closed it).
 * What 1,000 reloads do to memory: reload-memory.test.ts (it runs alone).
 */
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpsGet } from './helpers/https.js';
import {
  createRegistry,
  freePort,
  isAlive,
  readCA,
  startProxy,
  tempDir,
  tryConnect,
  waitForOutput,
  type Proxy,
  type Registry,
} from './helpers/processes.js';
import { eventually } from './helpers/eventually.js';
import { fetchScrape, promtool, sampleSum } from './helpers/prometheus.js';
import { pushBlobDirect } from './helpers/registry-api.js';
import { reloadCounter } from './helpers/reloads.js';
import { getSlowly, repeatedBlob } from './helpers/slow-transfer.js';

const MIB = 1 << 20;

const metricsURL = (proxy: Proxy) => `http://127.0.0.1:${proxy.adminPort}/metrics`;
const requestsTotal = async (proxy: Proxy) =>
  sampleSum(await fetchScrape(metricsURL(proxy)), 'rtp_requests_total');

describe.each([
  ['one process', '1', 10],
  ['a cluster of two workers', '2', 3],
])('SIGHUP keeps every count, %s', (_name, workers, reloads) => {
  const tmp = tempDir('reload-metrics');
  const file = join(tmp.path, 'proxy.yaml');
  const blob = repeatedBlob(24);
  let registry: Registry;
  let proxy: Proxy;
  let ca: string;
  beforeAll(async () => {
    registry = await createRegistry({ auth: { kind: 'none' } }, tmp.path);
    await registry.start();
    await pushBlobDirect(registry.url, 'reload/big', {
      data: Buffer.concat(Array(blob.mib).fill(blob.chunk)),
      digest: blob.digest,
    });
    writeFileSync(file, `backend: ${registry.url}\n`);
    proxy = await startProxy({
      tlsDir: join(tmp.path, 'tls'),
      args: ['--config', file],
      env: { RTP_WORKERS: workers },
    });
    // A cluster's primary opens the admin listener after its workers listen: the public
    // port answering does not mean /metrics does yet.
    await waitForOutput(proxy.child, proxy.output, /"msg":"admin listener /);
    ca = readCA(proxy);
  });
  afterAll(async () => {
    await proxy?.stop();
    await registry?.stop();
    tmp.remove();
  });

  it('counts every request, those finishing on the previous configuration too, and never goes down', async () => {
    const counter = reloadCounter(proxy);
    let made = 0;
    const seen: number[] = [];
    const ping = async () => {
      expect((await httpsGet(`${proxy.origin}/v2/`, { ca, timeoutMs: 5000 })).status).toBe(200);
      made++;
    };
    // A download begun before the first reload, finishing after it on the old configuration.
    const download = getSlowly(`${proxy.origin}/v2/reload/big/blobs/${blob.digest}`, ca, 100);
    // Awaited below; if an assertion fails first, its rejection (the proxy stopped under it)
    // must not surface as an unhandled rejection that hides that failure.
    download.done.catch(() => undefined);
    await eventually('the download to begin', async () =>
      download.received() >= MIB ? true : undefined,
    );
    for (let round = 0; round < reloads; round++) {
      for (let i = 0; i < 5; i++) await ping();
      seen.push(await requestsTotal(proxy));
      await counter.reload();
      if (round === 0) expect(download.received()).toBeLessThan(blob.mib * MIB); // still under way
      seen.push(await requestsTotal(proxy));
    }
    expect(await download.done).toEqual({
      status: 200,
      digest: blob.digest,
      bytes: blob.mib * MIB,
    });
    made++;
    // The old configuration's servers (or workers) finish and report once the download ends.
    const total = await eventually('every request counted', async () => {
      const n = await requestsTotal(proxy);
      seen.push(n);
      return n === made ? n : undefined;
    });
    expect(total).toBe(made);
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i], `scrape ${i} of ${JSON.stringify(seen)}`).toBeGreaterThanOrEqual(
        seen[i - 1] as number,
      );
    }
    const scrape = await fetchScrape(metricsURL(proxy));
    expect(
      sampleSum(scrape, 'rtp_requests_total', { operation: 'blob_get', status_class: '2xx' }),
    ).toBe(1);
    expect(sampleSum(scrape, 'rtp_sent_bytes_total', { operation: 'blob_get' })).toBe(
      blob.mib * MIB,
    );
  });

  it('serves a scrape that promtool lints clean after the reloads', async () => {
    const text = await (await fetch(metricsURL(proxy))).text();
    expect(text).toMatch(/^rtp_nodejs_active_handles_all \d+$/m);
    const result = promtool(['check', 'metrics'], text);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });
});

/** A plain-HTTP backend whose answers to `holds` paths wait until `release()`; others at once. */
async function heldBackend(holds: (path: string) => boolean): Promise<{
  url: string;
  received: () => string[];
  release(): void;
  close(): Promise<void>;
}> {
  const held: Array<() => void> = [];
  const paths: string[] = [];
  let released = false;
  const answer = (res: ServerResponse) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  const server: Server = createServer((req: IncomingMessage, res) => {
    paths.push(req.url ?? '');
    if (released || !holds(req.url ?? '')) answer(res);
    else held.push(() => answer(res));
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}`,
    received: () => paths,
    release() {
      released = true;
      for (const go of held.splice(0)) go();
    },
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

describe.each([
  ['one process', '1'],
  ['a cluster of two workers', '2'],
])('a drain that interrupts a reload, %s', (_name, workers) => {
  const tmp = tempDir('reload-drain');
  const file = join(tmp.path, 'proxy.yaml');
  let before: Awaited<ReturnType<typeof heldBackend>>;
  let after: Awaited<ReturnType<typeof heldBackend>>;
  beforeAll(async () => {
    before = await heldBackend((path) => path === '/v2/held');
    after = await heldBackend(() => true);
  });
  afterAll(async () => {
    await before?.close();
    await after?.close();
    tmp.remove();
  });

  it('closes the admin listener the reload opened, and drains on the old one', async () => {
    const [adminBefore, adminAfter] = [await freePort(), await freePort()];
    const config = (backend: string, admin: number) =>
      [
        `backend: ${backend}`,
        `admin: { listen: "127.0.0.1:${admin}" }`,
        'health: { timeout: 30s, interval: 60s }',
        'timeouts: { drainMs: 30000 }',
      ].join('\n');
    writeFileSync(file, config(before.url, adminBefore));
    const proxy = await startProxy({
      tlsDir: join(tmp.path, 'tls'),
      args: ['--config', file],
      env: { RTP_WORKERS: workers },
      wrap: ['env', '-u', 'RTP_ADMIN_LISTEN'], // admin.listen from the file, so that a reload moves it
    });
    try {
      const ca = readCA(proxy);
      const exit = new Promise<number | null>((r) => proxy.child.once('exit', r));
      await eventually('the admin listener', async () =>
        (await tryConnect(adminBefore)) === 'connected' ? true : undefined,
      );
      // A request the old configuration holds: the drain waits for it.
      const inFlight = httpsGet(`${proxy.origin}/v2/held`, { ca, timeoutMs: 30_000 }).then(
        (res) => res.status,
        (err: Error) => err.message,
      );
      await eventually('the held request to reach the backend', async () =>
        before.received().includes('/v2/held') ? true : undefined,
      );

      // A reload onto a backend whose first probe does not end yet, then SIGTERM.
      writeFileSync(file, config(after.url, adminAfter));
      proxy.child.kill('SIGHUP');
      await eventually('the reload to probe the new backend', async () =>
        after.received().length > 0 ? true : undefined,
      );
      proxy.child.kill('SIGTERM');
      await waitForOutput(proxy.child, proxy.output, /"msg":"draining: /);
      after.release();
      // (A cluster's workers may still be starting: "a worker failed to start" is a rejection too.)
      await waitForOutput(proxy.child, proxy.output, /"msg":"configuration reload rejected: /);

      expect(await tryConnect(adminAfter)).toBe('ECONNREFUSED');
      const ready = await fetch(`http://127.0.0.1:${adminBefore}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ status: 'draining' });
      expect(isAlive(proxy.child.pid!)).toBe(true); // still draining: the request is held

      before.release();
      expect(await inFlight).toBe(200);
      expect(await exit).toBe(0);
    } finally {
      await proxy.stop('SIGKILL');
    }
  });
});
