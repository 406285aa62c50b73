/**
 * Renewal under load, against a real pebble: while skopeo pulls in a loop (by name,
 * trusting only pebble's root), the certificate is renewed twice (`acme renew
 * --force`: renewal by the clock is test/acme-renewal-timer.test.ts).
 * No pull fails, and new handshakes see each new serial.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
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
import { buildOCIImage } from './helpers/oci.js';
import { tempDir, type Proxy } from './helpers/processes.js';
import { skopeo, type SkopeoResult } from './helpers/skopeo.js';

describe('ACME renewal while clients pull', () => {
  const tmp = tempDir('acme-renewal');
  const tlsDir = join(tmp.path, 'tls');
  const certDir = join(tmp.path, 'pebble-root');
  const env = { RTP_TLS_ACME_CHALLENGES: 'tls-alpn-01' };
  let acme: ACMESetup;
  let proxy: Proxy;
  beforeAll(async () => {
    acme = await setUpACME(tmp.path);
    proxy = await acme.start(tlsDir, env);
    await eventually(
      'the first ACME certificate',
      () => proxy.logLines().find((l) => /^serving the ACME certificate/.test(String(l['msg']))),
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    mkdirSync(certDir);
    writeFileSync(join(certDir, 'ca.crt'), await acme.pebble.root());
  });
  afterAll(async () => {
    await proxy?.stop();
    await acme?.close();
    tmp.remove();
  });

  it('renews twice during a pull loop: no pull fails, new handshakes get the new serial', async () => {
    const image = buildOCIImage(join(tmp.path, 'image'), 'v1', [2 << 20, 300_000]);
    const ref = `docker://${ACME_NAME}:${acme.proxyPort}/acme/app:v1`;
    const push = await skopeo(
      ['copy', '--dest-cert-dir', certDir, '--dest-tls-verify=true', image.ref, ref],
      120_000,
      acme.hosts,
    );
    expect(push.code).toBe(0);

    const results: SkopeoResult[] = [];
    let stop = false;
    const loop = (async () => {
      for (let i = 0; !stop; i++) {
        const out = join(tmp.path, `pulled-${i}`);
        const args = [
          'copy',
          '--src-cert-dir',
          certDir,
          '--src-tls-verify=true',
          ref,
          `dir:${out}`,
        ];
        results.push(await skopeo(args, 120_000, acme.hosts));
        rmSync(out, { recursive: true, force: true });
      }
    })();

    const root = await acme.pebble.root();
    const serials = [(await peerCertificate(acme.proxyPort, root, ACME_NAME)).serialNumber];
    for (const round of [1, 2]) {
      await eventually(
        `a pull to finish before renewal ${round}`,
        () => results.length >= round * 2,
        {
          timeoutMs: 60_000,
          intervalMs: 100,
        },
      );
      const renew = await acmeCLI(['renew', '--force'], { ...acme.env(env), RTP_TLS_DIR: tlsDir });
      expect(renew.code, renew.stderr).toBe(0);
      const serial = /serial ([0-9A-F]+)/.exec(renew.stdout)?.[1] as string;
      expect(serials).not.toContain(serial);
      await eventually(
        `renewal ${round}'s serial on new handshakes`,
        async () =>
          (await peerCertificate(acme.proxyPort, root, ACME_NAME)).serialNumber === serial,
        { timeoutMs: 5_000, intervalMs: 100 },
      );
      serials.push(serial);
    }
    const pulled = results.length;
    await eventually('one more pull after the last renewal', () => results.length > pulled, {
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    stop = true;
    await loop;
    expect(results.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    expect(results.length).toBeGreaterThanOrEqual(5);
    expect(new Set(serials).size).toBe(3);
  });
});
