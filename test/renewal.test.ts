/**
 * Renewal under load: with a 15-second certificate lifetime, skopeo keeps
 * pulling and a slow client keeps downloading a layer across at least two
 * renewals. Nothing fails, the slow download arrives intact on its original
 * connection, and new handshakes see the newest certificate.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { buildOCIImage, readBlob, type OCIImage } from './helpers/oci.js';
import type { Proxy } from './helpers/processes.js';
import { skopeo } from './helpers/skopeo.js';

const swaps = (proxy: Proxy) =>
  proxy.logLines().filter((l) => l['msg'] === 'swapped in a new server certificate');

function servedSerial(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.on('error', reject);
  });
}

/** Downloads a blob reading slowly (about 2.5 MiB/s), returning its sha256 digest. */
function slowDownload(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
      const hash = createHash('sha256');
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        res.pause();
        setTimeout(() => res.resume(), (chunk.length / (2.5 * 1024 * 1024)) * 1000);
      });
      res.on('end', () => resolve('sha256:' + hash.digest('hex')));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('certificate renewal under load', () => {
  const env = useRegistryBehindProxy(
    'renewal',
    { auth: { kind: 'none' } },
    { RTP_TLS_CERT_LIFETIME: '15s', RTP_TLS_CHECK_INTERVAL: '1s', RTP_LOG_LEVEL: 'info' },
  );
  const tmp = { path: env.tmp };
  let proxy: Proxy;
  let image: OCIImage;
  let ca: string;
  const certDir = join(tmp.path, 'certs');

  beforeAll(async () => {
    ({ proxy, ca } = env);
    mkdirSync(certDir);
    writeFileSync(join(certDir, 'ca.crt'), ca);
    image = buildOCIImage(join(tmp.path, 'image'), 'v1', [48 << 20]);
    const push = await skopeo([
      'copy',
      '--dest-cert-dir',
      certDir,
      image.ref,
      `docker://127.0.0.1:${proxy.port}/load/big:v1`,
    ]);
    expect(push.code, push.stderr).toBe(0);
  });

  it('keeps every transfer working across two renewals and serves the new certificate', async () => {
    const layer = image.layerDigests[0] as string;
    const slow = slowDownload(`${proxy.origin}/v2/load/big/blobs/${layer}`, ca);
    const failures: string[] = [];
    let pulls = 0;
    const puller = async (n: number) => {
      while (swaps(proxy).length < 2) {
        const out = join(tmp.path, `pull-${n}-${pulls++}`);
        const r = await skopeo([
          'copy',
          '--src-cert-dir',
          certDir,
          `docker://127.0.0.1:${proxy.port}/load/big:v1`,
          `dir:${out}`,
        ]);
        if (r.code !== 0) failures.push(r.stderr);
      }
    };
    await Promise.race([
      Promise.all([puller(1), puller(2)]),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('no second renewal within 60 s')), 60_000),
      ),
    ]);
    expect(failures).toEqual([]);
    expect(pulls).toBeGreaterThan(2);
    const layout = image.ref.slice(4, image.ref.lastIndexOf(':'));
    const expected =
      'sha256:' +
      createHash('sha256')
        .update(readBlob(layout, layer, 'oci'))
        .digest('hex');
    expect(await slow).toBe(expected);
    const latest = swaps(proxy).pop();
    expect(await servedSerial(proxy.port, ca)).toBe(latest?.['serial']);
  });
});
