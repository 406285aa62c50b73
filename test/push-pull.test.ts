/**
 * The walking skeleton, end to end: the real distribution registry with
 * htpasswd auth behind the proxy, skopeo pushing and pulling with strict TLS
 * verification against only the proxy's CA.
 */
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { basicAuth, httpsGet } from './helpers/https.js';
import { buildOCIImage, readBlob, type OCIImage } from './helpers/oci.js';
import type { Proxy } from './helpers/processes.js';
import { skopeo, skopeoPull, skopeoPush } from './helpers/skopeo.js';

const USER = 'alice';
const PASSWORD = 's3cret-pa55word';

describe('push and pull through the proxy with verified TLS', () => {
  const env = useRegistryBehindProxy(
    'push-pull',
    { auth: { kind: 'htpasswd', user: USER, password: PASSWORD } },
    {},
  );
  const tmp = { path: env.tmp };
  let proxy: Proxy;
  let image: OCIImage;
  let ca: string;
  const certDir = join(tmp.path, 'certs');
  const emptyCertDir = join(tmp.path, 'no-certs');

  beforeAll(async () => {
    ({ proxy, ca } = env);
    mkdirSync(certDir);
    mkdirSync(emptyCertDir);
    writeFileSync(join(certDir, 'ca.crt'), ca);
    image = buildOCIImage(join(tmp.path, 'image'), 'v1', [3 << 20, 1 << 20, 200_000]);
  });

  it('pushes a multi-layer image and pulls it back byte-identical', async () => {
    const dest = `127.0.0.1:${proxy.port}/e2e/app:v1`;
    const push = await skopeoPush(image.ref, dest, certDir, `${USER}:${PASSWORD}`);
    expect(push.stderr).toBe('');
    expect(push.code).toBe(0);

    const pulled = join(tmp.path, 'pulled');
    const pull = await skopeoPull(dest, `dir:${pulled}`, certDir, `${USER}:${PASSWORD}`);
    expect(pull.code, pull.stderr).toBe(0);
    const layout = image.ref.slice(4, image.ref.lastIndexOf(':'));
    for (const digest of image.layerDigests) {
      expect(readBlob(pulled, digest, 'dir').equals(readBlob(layout, digest, 'oci'))).toBe(true);
    }
    expect(readdirSync(pulled)).toContain('manifest.json');
  });

  it('fails with "unknown authority" when the client does not trust the CA', async () => {
    const result = await skopeo([
      'inspect',
      '--cert-dir',
      emptyCertDir,
      '--tls-verify=true',
      '--creds',
      `${USER}:${PASSWORD}`,
      `docker://127.0.0.1:${proxy.port}/e2e/app:v1`,
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/certificate signed by unknown authority/);
  });

  it('answers an upload start with a 202 Location on the public https origin', async () => {
    const res = await httpsGet(`${proxy.origin}/v2/e2e/upload/blobs/uploads/`, {
      ca,
      method: 'POST',
      headers: {
        authorization: basicAuth(USER, PASSWORD),
        // A client must not be able to steer the registry's URLs.
        'x-forwarded-host': 'evil.example:80',
        'x-forwarded-proto': 'http',
        forwarded: 'host=evil.example;proto=http',
      },
    });
    expect(res.status).toBe(202);
    const location = new URL(res.headers.location ?? '');
    expect(location.protocol).toBe('https:');
    expect(location.hostname).toBe('127.0.0.1');
    expect(location.port).toBe(String(proxy.port));
    expect(location.pathname).toMatch(/^\/v2\/e2e\/upload\/blobs\/uploads\/[0-9a-f-]+$/);
  });

  it('serves its CA at /ca.crt, identical to the one in tls.dir', async () => {
    const res = await httpsGet(`${proxy.origin}/ca.crt`, { ca });
    expect(res.status).toBe(200);
    expect(res.body).toBe(ca);
    expect(res.body).not.toMatch(/PRIVATE KEY/);
  });

  it('serves /install-ca.sh, which installs the CA only for the right fingerprint', async () => {
    const { spawnSync } = await import('node:child_process');
    const { X509Certificate } = await import('node:crypto');
    const script = (await httpsGet(`${proxy.origin}/install-ca.sh`, { ca })).body;
    const fingerprint = new X509Certificate(ca).fingerprint256;
    const root = join(tmp.path, 'install-root');
    const install = (fp: string) =>
      spawnSync('sh', ['-s', '--', '--fingerprint', fp, '--client', 'docker'], {
        input: script,
        encoding: 'utf8',
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', RTP_INSTALL_ROOT: root },
      });
    const wrong = install(fingerprint.replace(/^../, fingerprint.startsWith('00') ? '11' : '00'));
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/intercepting/);
    const right = install(fingerprint);
    expect(right.status, right.stderr).toBe(0);
    const installed = readFileSync(
      join(root, `etc/docker/certs.d/127.0.0.1:${proxy.port}/ca.crt`),
      'utf8',
    );
    expect(new X509Certificate(installed).fingerprint256).toBe(fingerprint);
  });

  it('keeps keys private on disk: directory 0700, keys 0600', () => {
    expect(statSync(proxy.tlsDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(proxy.tlsDir, 'ca.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(proxy.tlsDir, 'server.key')).mode & 0o777).toBe(0o600);
  });

  it('logs one line per request without credentials', () => {
    const lines = proxy.logLines().filter((l) => l['msg'] === 'request');
    expect(lines.length).toBeGreaterThan(5);
    const put = lines.find((l) => l['method'] === 'PUT' && l['status'] === 201);
    expect(put).toMatchObject({
      path: expect.stringMatching(/^\/v2\/e2e\/app\//),
      client: expect.any(String),
    });
    const pulls = lines.filter(
      (l) => l['method'] === 'GET' && String(l['path']).includes('/blobs/sha256:'),
    );
    expect(pulls.some((l) => (l['bytesOut'] as number) > 3 << 20)).toBe(true);
    const text = proxy.output();
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(basicAuth(USER, PASSWORD).slice(6));
    expect(text).not.toMatch(/PRIVATE KEY/);
  });
});
