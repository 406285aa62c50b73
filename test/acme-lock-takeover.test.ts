/**
 * A replica killed mid-order, against a real pebble: replica A takes the order lock
 * in the shared tls.dir and asks pebble to validate http-01 at a port that accepts
 * and never answers, so A is still waiting on the CA, holding the lock, when it is
 * killed (SIGKILL: no clean-up). Replica B, running meanwhile, leaves the lock alone
 * while it is fresh, takes it over once A has not refreshed it for LOCK_STALE_MS,
 * says so, and gets the certificate by tls-alpn-01 at its own port.
 */
import { readFileSync, statSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_STALE_MS } from '../src/acme/lock.js';
import { ACME_NAME, peerCertificate, setUpACME, type ACMESetup } from './helpers/acme-setup.js';
import { eventually } from './helpers/eventually.js';
import { freePort, tempDir, type Proxy } from './helpers/processes.js';

/** B looks at a held lock every 3 s (lifecycle.ts); then one order, about a second here. */
const TAKEOVER_SLACK_MS = 3_000 + 5_000;

const lines = (proxy: Proxy, pattern: RegExp) =>
  proxy.logLines().filter((l) => pattern.test(String(l['msg'])));

describe('a replica killed while it holds the ACME order lock', () => {
  const tmp = tempDir('acme-takeover');
  const tlsDir = join(tmp.path, 'tls');
  const lockFile = join(tlsDir, 'acme', 'order.lock');
  // pebble's http-01 validation connects here and waits: A's order cannot finish.
  const held: Socket[] = [];
  const silent: Server = createServer((socket) => void held.push(socket));
  let acme: ACMESetup;
  let a: Proxy;
  let b: Proxy | undefined;
  beforeAll(async () => {
    const silentPort = await freePort();
    await new Promise<void>((r) => silent.listen(silentPort, '127.0.0.1', r));
    acme = await setUpACME(tmp.path, {}, silentPort);
    a = await acme.start(
      tlsDir,
      {
        RTP_TLS_ACME_CHALLENGES: 'http-01',
        RTP_TLS_ACME_HTTP01_LISTEN: `127.0.0.1:${await freePort()}`,
      },
      await freePort(),
    );
  });
  afterAll(async () => {
    await a?.stop('SIGKILL');
    await b?.stop();
    for (const s of held) s.destroy();
    silent.close();
    await acme?.close();
    tmp.remove();
  });

  it('B takes the lock over once it is stale, says whose it was, and gets the certificate', async () => {
    await eventually('pebble validating for A (A waits, holding the lock)', () => held.length > 0, {
      timeoutMs: 30_000,
      intervalMs: 50,
    });
    const holder = () => JSON.parse(readFileSync(lockFile, 'utf8')) as { pid: number };
    expect(holder().pid).toBe(a.child.pid);

    b = await acme.start(tlsDir, {
      RTP_TLS_ACME_CHALLENGES: 'tls-alpn-01',
      RTP_TLS_ACME_HTTP01_LISTEN: `127.0.0.1:${await freePort()}`,
    });
    // A is alive: B leaves the lock alone (it looks at start, then every 3 s).
    const proxyB = b;
    await eventually(
      'B to find the lock held twice',
      () => lines(proxyB, /^ACME: another replica holds the order lock/).length >= 2,
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    expect(lines(b, /^ACME: (ordering|took over)/)).toEqual([]);
    expect(holder().pid).toBe(a.child.pid);

    await a.stop('SIGKILL');
    const killedAt = Date.now();
    const lastRefresh = statSync(lockFile).mtimeMs;
    expect(holder().pid).toBe(a.child.pid); // left behind

    const served = await eventually(
      'B to serve the ACME certificate',
      () => lines(proxyB, /^serving the ACME certificate/)[0],
      { timeoutMs: LOCK_STALE_MS + TAKEOVER_SLACK_MS + 10_000, intervalMs: 100 },
    );
    const servedAt = Date.parse(String(served['time']));
    const [takeover] = lines(b, /^ACME: took over the order lock/);
    expect(takeover?.['holder']).toMatchObject({ pid: a.child.pid });
    expect(Number(takeover?.['silentMs'])).toBeGreaterThan(LOCK_STALE_MS);
    // Not before A's lock went stale, and soon after.
    expect(Date.parse(String(takeover?.['time']))).toBeGreaterThanOrEqual(
      lastRefresh + LOCK_STALE_MS,
    );
    expect(servedAt - killedAt).toBeLessThan(LOCK_STALE_MS + TAKEOVER_SLACK_MS);
    console.log(
      `killed A ${killedAt - lastRefresh} ms after its last refresh; B took over ${Date.parse(String(takeover?.['time'])) - killedAt} ms and served ${servedAt - killedAt} ms after the kill`,
    );
    expect(lines(b, /^ACME order failed/)).toEqual([]);

    const root = await acme.pebble.root();
    const cert = await peerCertificate(b.port, root, ACME_NAME);
    expect(cert.serialNumber).toBe(served['serial']);
    expect(cert.issuer.CN).toMatch(/^Pebble Intermediate CA/);
  });
});
