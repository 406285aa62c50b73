/**
 * Two replicas sharing one tls.dir, against a real pebble: exactly one orders (the
 * lock), both serve the result; pebble validates http-01 only at replica B's
 * listener, so B answers challenges it did not create; `acme renew --force` from a
 * third process (which listens nowhere) works the same way, and both replicas serve
 * the new certificate within seconds.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACME_NAME,
  acmeCLI,
  peerCertificate,
  setUpACME,
  type ACMESetup,
} from './helpers/acme-setup.js';
import { eventually } from './helpers/eventually.js';
import { freePort, tempDir, type Proxy } from './helpers/processes.js';

const lines = (proxy: Proxy, pattern: RegExp) =>
  proxy.logLines().filter((l) => pattern.test(String(l['msg'])));

describe('two replicas on one tls.dir', () => {
  const tmp = tempDir('acme-replicas');
  const tlsDir = join(tmp.path, 'tls');
  let acme: ACMESetup;
  let a: Proxy;
  let b: Proxy;
  let bHTTP01: number;
  beforeAll(async () => {
    bHTTP01 = await freePort();
    acme = await setUpACME(tmp.path, {}, bHTTP01);
    const env = { RTP_TLS_ACME_CHALLENGES: 'http-01' };
    // B first: the CA validates at B's http-01 listener, which must be up before any
    // order (else the first order fails and a second follows, after the backoff).
    b = await acme.start(
      tlsDir,
      { ...env, RTP_TLS_ACME_HTTP01_LISTEN: `127.0.0.1:${bHTTP01}` },
      await freePort(),
    );
    a = await acme.start(tlsDir, env);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await acme?.close();
    tmp.remove();
  });

  it('orders once; both serve the certificate, answered by whichever replica the CA reached', async () => {
    for (const proxy of [a, b]) {
      await eventually(
        'both replicas to serve the ACME certificate',
        () => lines(proxy, /^serving the ACME certificate/)[0],
        { timeoutMs: 60_000, intervalMs: 200 },
      );
    }
    const orders = [...lines(a, /^ACME: ordering/), ...lines(b, /^ACME: ordering/)];
    const failed = [...lines(a, /^ACME order failed/), ...lines(b, /^ACME order failed/)];
    expect(failed).toEqual([]);
    expect(orders).toHaveLength(1);
    const root = await acme.pebble.root();
    const [fromA, fromB] = await Promise.all(
      [a, b].map((p) => peerCertificate(p.port, root, ACME_NAME)),
    );
    expect(fromA?.serialNumber).toBe(fromB?.serialNumber);
    expect(fromA?.issuer.CN).toMatch(/^Pebble Intermediate CA/);
  });

  it('acme renew --force from another process: both replicas serve the new certificate within seconds', async () => {
    const root = await acme.pebble.root();
    const before = (await peerCertificate(a.port, root, ACME_NAME)).serialNumber;
    const renew = await acmeCLI(['renew', '--force'], {
      ...acme.env({ RTP_TLS_ACME_CHALLENGES: 'http-01' }),
      RTP_TLS_DIR: tlsDir,
    });
    expect(renew.stderr).toBe('');
    expect(renew.code).toBe(0);
    const serial = /serial ([0-9A-F]+)/.exec(renew.stdout)?.[1];
    expect(serial).toBeDefined();
    expect(serial).not.toBe(before);
    for (const proxy of [a, b]) {
      await eventually(
        'the renewed certificate on new handshakes',
        async () => (await peerCertificate(proxy.port, root, ACME_NAME)).serialNumber === serial,
        { timeoutMs: 5_000, intervalMs: 100 },
      );
    }
    const status = await acmeCLI(['status'], { ...acme.env(), RTP_TLS_DIR: tlsDir });
    expect(status.stdout).toMatch(
      new RegExp(`certificate: +serial ${serial}, issued by Pebble Intermediate CA`),
    );
    expect(status.stdout).toMatch(/account: +https:\/\/127\.0\.0\.1:\d+\/my-account\//);
  });
});
