/**
 * ACME in a cluster (`workers: 2`), against a real pebble, per challenge: the two
 * workers share one order (the tls.dir lock), both serve pebble's chain by name,
 * skopeo pushes and pulls trusting only pebble's root, the primary's /readyz and
 * `acme status` say the certificate is there, and a SIGHUP reload keeps serving it
 * to every new handshake (no re-order, no moment with our own CA's certificate).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACME_NAME,
  acmeCLI,
  peerCertificate,
  pushAndPullAnImage,
  setUpACME,
  type ACMESetup,
} from './helpers/acme-setup.js';
import { eventually } from './helpers/eventually.js';
import { httpsGet } from './helpers/https.js';
import { childPids, tempDir, waitForOutput, type Proxy } from './helpers/processes.js';

const lines = (proxy: Proxy, pattern: RegExp) =>
  proxy.logLines().filter((l) => pattern.test(String(l['msg'])));

describe.each(['http-01', 'tls-alpn-01'])('ACME by %s in a cluster of two workers', (challenge) => {
  const tmp = tempDir('acme-cluster');
  const tlsDir = join(tmp.path, 'tls');
  const certDir = join(tmp.path, 'pebble-root');
  let acme: ACMESetup;
  let proxy: Proxy;
  let root = '';
  const metric = async (pattern: RegExp) => {
    const text = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
    return pattern.exec(text)?.[1];
  };
  /** A request by name, verified against pebble's root alone; says which worker answered. */
  const byName = () =>
    httpsGet(`https://127.0.0.1:${acme.proxyPort}/v2/`, {
      ca: root,
      servername: ACME_NAME,
      headers: { host: `${ACME_NAME}:${acme.proxyPort}` },
      timeoutMs: 10_000,
    });

  beforeAll(async () => {
    acme = await setUpACME(tmp.path);
    proxy = await acme.start(tlsDir, {
      RTP_TLS_ACME_CHALLENGES: challenge,
      RTP_WORKERS: '2',
      RTP_HEALTH_ALLOW_ANONYMOUS: 'true',
    });
    await waitForOutput(proxy.child, proxy.output, /2 workers serve the public port/);
    root = await acme.pebble.root();
    mkdirSync(certDir);
    writeFileSync(join(certDir, 'ca.crt'), root);
  });
  afterAll(async () => {
    await proxy?.stop();
    await acme?.close();
    tmp.remove();
  });

  it('orders once for both workers; every handshake by name gets pebble’s chain', async () => {
    expect(childPids(proxy.child.pid!)).toHaveLength(2);
    await eventually(
      'both workers to serve the ACME certificate',
      () => {
        const by = lines(proxy, /^worker \d: serving the ACME certificate/).map((l) => l['worker']);
        return new Set(by).size === 2;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    expect(lines(proxy, /^ACME order failed/)).toEqual([]);
    expect(lines(proxy, /^ACME: ordering/)).toHaveLength(1);
    expect(await metric(/^rtp_acme_orders_total\{result="success"\} (\d+)$/m)).toBe('1');
    const serials = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const cert = await peerCertificate(acme.proxyPort, root, ACME_NAME);
      expect(cert.issuer.CN).toMatch(/^Pebble Intermediate CA/);
      serials.add(cert.serialNumber);
    }
    expect(serials.size).toBe(1);
    for (let i = 0; i < 10; i++) expect((await byName()).status).toBe(200);
    const answeredBy = new Set(lines(proxy, /^request$/).map((l) => l['worker']));
    expect([...answeredBy].sort()).toEqual([1, 2]);
  });

  it('says it once, not once per worker; /readyz and `acme status` on the primary say it arrived', async () => {
    // The cluster-wide lines come from the primary alone (no worker field), once.
    const plan = lines(proxy, /^certificates by SNI/);
    expect(plan).toHaveLength(1);
    expect(plan[0]?.['worker']).toBeUndefined();
    const waiting = lines(proxy, /^no ACME certificate for registry\.acme\.test yet/);
    expect(waiting).toHaveLength(1);
    expect(waiting[0]?.['msg']).toMatch(/the 2 workers share one order/);
    expect(waiting[0]?.['worker']).toBeUndefined();
    // Per-worker lines name their worker in the message, not only in a field.
    for (const line of lines(proxy, /serving the ACME certificate/)) {
      expect(line['msg']).toMatch(new RegExp(`^worker ${String(line['worker'])}: `));
    }
    const ready = await eventually(
      '/readyz without the "not arrived" note',
      async () => {
        const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/readyz`);
        const body = JSON.parse(await res.text()) as { reason: string };
        return res.status === 200 && !/our own CA/.test(body.reason) && body;
      },
      { timeoutMs: 5_000, intervalMs: 200 },
    );
    expect(ready.reason).not.toMatch(/has not arrived/);
    const status = await acmeCLI(['status'], { ...acme.env(), RTP_TLS_DIR: tlsDir });
    expect(status.code, status.stderr).toBe(0);
    const served = (await peerCertificate(acme.proxyPort, root, ACME_NAME)).serialNumber;
    expect(status.stdout).toMatch(
      new RegExp(`certificate: +serial ${served}, issued by Pebble Intermediate CA`),
    );
    expect(status.stdout).not.toMatch(/last error/);
  });

  it('skopeo pushes and pulls by name holding only pebble’s root', async () => {
    const copied = await pushAndPullAnImage(acme, certDir, tmp.path);
    expect(copied.push).toEqual({ code: 0, stderr: '' });
    expect(copied.pull).toEqual({ code: 0, stderr: '' });
    expect(copied.manifest).toContain('layers');
  });

  it('SIGHUP: the new workers serve the same ACME certificate from their first handshake; no new order', async () => {
    const before = childPids(proxy.child.pid!);
    const serial = (await peerCertificate(acme.proxyPort, root, ACME_NAME)).serialNumber;
    const seen: string[] = [];
    const failures: string[] = [];
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        try {
          seen.push((await peerCertificate(acme.proxyPort, root, ACME_NAME)).serialNumber);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    })();
    proxy.child.kill('SIGHUP');
    await waitForOutput(proxy.child, proxy.output, /2 workers with the new configuration serve/);
    await eventually(
      'the old workers to exit',
      () => {
        const now = childPids(proxy.child.pid!);
        return now.length === 2 && now.every((pid) => !before.includes(pid));
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    stop = true;
    await loop;
    expect(failures).toEqual([]);
    expect(seen.length).toBeGreaterThan(20);
    expect(new Set(seen)).toEqual(new Set([serial]));
    expect(lines(proxy, /^ACME: ordering/)).toHaveLength(1);
    expect(await metric(/^rtp_acme_orders_total\{result="success"\} (\d+)$/m)).toBe('1');
    for (let i = 0; i < 10; i++) expect((await byName()).status).toBe(200);
    const answeredBy = new Set(lines(proxy, /^request$/).map((l) => l['worker']));
    expect([...answeredBy].sort()).toEqual([1, 2, 3, 4]);
    for (const worker of [3, 4]) {
      expect(
        lines(proxy, /^worker \d: serving the ACME certificate/).find(
          (l) => l['worker'] === worker,
        )?.['serial'],
      ).toBe(serial);
    }
    expect(lines(proxy, /^certificates by SNI|^no ACME certificate/)).toHaveLength(2);
  });
});

describe('a cluster while the ACME server is down, then back', () => {
  const tmp = tempDir('acme-cluster-down');
  const tlsDir = join(tmp.path, 'tls');
  let acme: ACMESetup;
  let proxy: Proxy;
  const readyz = async () =>
    JSON.parse(await (await fetch(`http://127.0.0.1:${proxy.adminPort}/readyz`)).text()) as {
      reason: string;
    };
  beforeAll(async () => {
    acme = await setUpACME(tmp.path);
    await acme.pebble.stop();
    proxy = await acme.start(tlsDir, {
      RTP_TLS_ACME_CHALLENGES: 'tls-alpn-01',
      RTP_WORKERS: '2',
      RTP_HEALTH_ALLOW_ANONYMOUS: 'true',
    });
    await waitForOutput(proxy.child, proxy.output, /2 workers serve the public port/);
  });
  afterAll(async () => {
    await proxy?.stop();
    await acme?.close();
    tmp.remove();
  });

  it('the primary’s /readyz and `acme status` say "not yet", then drop the note once it arrives', async () => {
    await eventually('a failed order', () => lines(proxy, /^ACME order failed/)[0], {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    const waiting = await fetch(`http://127.0.0.1:${proxy.adminPort}/readyz`);
    expect(waiting.status).toBe(200); // ready: it serves, with our own CA's certificate
    expect((await readyz()).reason).toMatch(
      /serving our own CA's certificate: the ACME certificate for registry\.acme\.test has not arrived yet/,
    );
    const before = await acmeCLI(['status'], { ...acme.env(), RTP_TLS_DIR: tlsDir });
    expect(before.stdout).toMatch(/certificate: +none yet/);
    expect(before.stdout).toMatch(/last error: /);
    await acme.pebble.start();
    await eventually(
      'both workers to serve the ACME certificate',
      () =>
        new Set(lines(proxy, /^worker \d: serving the ACME/).map((l) => l['worker'])).size === 2,
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    const root = await acme.pebble.root();
    expect((await peerCertificate(acme.proxyPort, root, ACME_NAME)).issuer.CN).toMatch(
      /^Pebble Intermediate CA/,
    );
    // The note is cached for a second at most.
    await eventually(
      '/readyz without the note',
      async () => !/own CA/.test((await readyz()).reason),
      {
        timeoutMs: 3_000,
        intervalMs: 100,
      },
    );
    const after = await acmeCLI(['status'], { ...acme.env(), RTP_TLS_DIR: tlsDir });
    expect(after.stdout).toMatch(
      /certificate: +serial [0-9A-F]+, issued by Pebble Intermediate CA/,
    );
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
    expect(metrics).toMatch(/^rtp_acme_orders_total\{result="success"\} 1$/m);
  });
});
