/**
 * ECDSA P-256 server certificates by default, with the RSA one beside it for clients
 * that offer no ECDSA: each real client gets the key type it asks for, verifies it
 * against the CA alone, and rtp_tls_handshakes_total{certificate} says which it got.
 * An install whose server.crt is RSA (before this) moves to ECDSA on its next start
 * and says why; tls.keyType: ecdsa makes an ECDSA CA, with ECDSA alone.
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { buildOCIImage } from './helpers/oci.js';
import { fetchScrape, sampleSum } from './helpers/prometheus.js';
import { createRegistry, startProxy, tempDir } from './helpers/processes.js';
import { skopeoPull, skopeoPush } from './helpers/skopeo.js';
import { createCA, issueServerCertificate } from '../src/pki/issue.js';

const USER = 'keys';
const PASSWORD = 'key-types-pa55';

function run(command: string, args: string[], input = ''): Promise<string> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { timeout: 20_000 }, (_err, stdout, stderr) =>
      resolve(stdout + stderr),
    );
    child.stdin?.end(input);
  });
}

/** openssl s_client's one-screen summary of a handshake, verified against `caFile` only. */
const sClient = (port: number, caFile: string, extra: string[]) =>
  run(
    'openssl',
    [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-CAfile',
      caFile,
      '-verify_return_error',
      '-brief',
      ...extra,
    ],
    'Q\n',
  );

describe('server certificate key types', () => {
  const env = useRegistryBehindProxy('key-types', {
    auth: { kind: 'htpasswd', user: USER, password: PASSWORD },
  });
  const handshakes = async (certificate: string) =>
    sampleSum(
      await fetchScrape(`http://127.0.0.1:${env.proxy.adminPort}/metrics`),
      'rtp_tls_handshakes_total',
      {
        certificate,
      },
    );

  it('stores an ECDSA P-256 certificate and an RSA-2048 one for the same names, both from the CA', () => {
    const dir = env.proxy.tlsDir;
    expect(
      readdirSync(dir)
        .filter((f) => f.startsWith('server'))
        .sort(),
    ).toEqual(['server-rsa.crt', 'server-rsa.key', 'server.crt', 'server.key']);
    const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
    const ecdsa = new X509Certificate(readFileSync(join(dir, 'server.crt')));
    const rsa = new X509Certificate(readFileSync(join(dir, 'server-rsa.crt')));
    expect(ecdsa.publicKey.asymmetricKeyDetails).toEqual({ namedCurve: 'prime256v1' });
    expect(rsa.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(ca.publicKey.asymmetricKeyType).toBe('rsa');
    expect(ecdsa.verify(ca.publicKey) && rsa.verify(ca.publicKey)).toBe(true);
    expect(rsa.subjectAltName).toBe(ecdsa.subjectAltName);
  });

  it('openssl and curl get ECDSA; a client offering only RSA signatures, or only RSA ciphers, gets RSA', async () => {
    const { port, caFile } = env.proxy;
    const before = { ecdsa: await handshakes('ecdsa'), rsa: await handshakes('rsa') };
    const tls13 = await sClient(port, caFile, ['-tls1_3']);
    expect(tls13).toMatch(/Signature type: ECDSA/);
    expect(tls13).toMatch(/Verification: OK/);
    const rsaOnly = await sClient(port, caFile, [
      '-tls1_3',
      '-sigalgs',
      'rsa_pss_rsae_sha256:rsa_pkcs1_sha256',
    ]);
    expect(rsaOnly).toMatch(/Signature type: RSA-PSS/);
    expect(rsaOnly).toMatch(/Verification: OK/);
    const tls12rsa = await sClient(port, caFile, [
      '-tls1_2',
      '-cipher',
      'ECDHE-RSA-AES128-GCM-SHA256',
    ]);
    expect(tls12rsa).toMatch(/Ciphersuite: ECDHE-RSA-AES128-GCM-SHA256/);
    expect(tls12rsa).toMatch(/Verification: OK/);
    const curl = await run('curl', [
      '-sv',
      '--cacert',
      caFile,
      '-o',
      '/dev/null',
      `https://127.0.0.1:${port}/v2/`,
    ]);
    expect(curl).toMatch(/SSL connection using TLSv1\.3/);
    expect(curl).toMatch(/HTTP\/1\.1 401/);
    // curl prints no key type: the count below says it got ECDSA.
    expect(await handshakes('ecdsa')).toBe(before.ecdsa + 2); // s_client, curl
    expect(await handshakes('rsa')).toBe(before.rsa + 2);
  });

  it('skopeo (Go) pushes and pulls over ECDSA', async () => {
    const certs = join(env.tmp, 'skopeo-certs');
    mkdirSync(certs);
    writeFileSync(join(certs, 'ca.crt'), env.ca);
    const before = { ecdsa: await handshakes('ecdsa'), rsa: await handshakes('rsa') };
    const image = buildOCIImage(join(env.tmp, 'image'), 'keys', [50_000]);
    const ref = `127.0.0.1:${env.proxy.port}/keys/app:1`;
    const creds = `${USER}:${PASSWORD}`;
    const push = await skopeoPush(image.ref, ref, certs, creds);
    expect(push.code, push.stderr).toBe(0);
    const pull = await skopeoPull(ref, `dir:${join(env.tmp, 'pulled')}`, certs, creds);
    expect(pull.code, pull.stderr).toBe(0);
    expect(await handshakes('ecdsa')).toBeGreaterThan(before.ecdsa);
    expect(await handshakes('rsa')).toBe(before.rsa);
  });
});

describe('an install from before ECDSA, and tls.keyType: ecdsa', () => {
  it('re-issues an RSA server.crt as ECDSA on start, keeping the CA, and says why', async () => {
    const tmp = tempDir('key-types-upgrade');
    const registry = await createRegistry(
      { auth: { kind: 'htpasswd', user: USER, password: PASSWORD } },
      tmp.path,
    );
    await registry.start();
    const dir = join(tmp.path, 'tls');
    mkdirSync(dir, { mode: 0o700 });
    const ca = await createCA({ commonName: 'older CA', lifetimeMs: 365 * 86_400_000 });
    const old = await issueServerCertificate({
      ca: { certPEM: ca.certPEM, key: createPrivateKey(ca.keyPEM) },
      sans: { dns: ['localhost'], ips: ['127.0.0.1'] },
      lifetimeMs: 30 * 86_400_000,
      keyType: 'rsa',
    });
    writeFileSync(join(dir, 'ca.key'), ca.keyPEM, { mode: 0o600 });
    writeFileSync(join(dir, 'ca.crt'), ca.certPEM);
    writeFileSync(join(dir, 'server.key'), old.keyPEM, { mode: 0o600 });
    writeFileSync(join(dir, 'server.crt'), old.certPEM);
    const proxy = await startProxy({ backend: registry.url, tlsDir: dir });
    try {
      expect(readFileSync(join(dir, 'ca.crt'), 'utf8')).toBe(ca.certPEM);
      expect(
        new X509Certificate(readFileSync(join(dir, 'server.crt'))).publicKey.asymmetricKeyType,
      ).toBe('ec');
      expect(existsSync(join(dir, 'server-rsa.crt'))).toBe(true);
      const issued = proxy.logLines().find((l) => String(l['reason'] ?? '').includes('ECDSA'));
      expect(issued?.['reason']).toMatch(/RSA key: the server certificate is ECDSA P-256 now/);
    } finally {
      await proxy.stop();
      await registry.stop();
      tmp.remove();
    }
  });

  it('tls.keyType: ecdsa makes a P-256 CA and serves ECDSA alone; an RSA-only client is refused', async () => {
    const tmp = tempDir('key-types-ecdsa');
    const registry = await createRegistry(
      { auth: { kind: 'htpasswd', user: USER, password: PASSWORD } },
      tmp.path,
    );
    await registry.start();
    const proxy = await startProxy({
      backend: registry.url,
      tlsDir: join(tmp.path, 'tls'),
      env: { RTP_TLS_KEY_TYPE: 'ecdsa' },
    });
    try {
      const ca = new X509Certificate(readFileSync(proxy.caFile));
      expect(ca.publicKey.asymmetricKeyDetails).toEqual({ namedCurve: 'prime256v1' });
      expect(
        readdirSync(proxy.tlsDir)
          .filter((f) => f.startsWith('server'))
          .sort(),
      ).toEqual(['server.crt', 'server.key']);
      const ok = await sClient(proxy.port, proxy.caFile, ['-tls1_3']);
      expect(ok).toMatch(/Signature type: ECDSA/);
      expect(ok).toMatch(/Verification: OK/);
      const refused = await sClient(proxy.port, proxy.caFile, [
        '-tls1_3',
        '-sigalgs',
        'rsa_pss_rsae_sha256',
      ]);
      expect(refused).not.toMatch(/Verification: OK/);
      // The log says why, and what to do about it.
      const said = await eventually('the refusal logged', () =>
        proxy.logLines().find((l) => String(l['msg']).includes('offers no ECDSA')),
      );
      expect(said['msg']).toMatch(
        /tls\.keyType: ecdsa.*tls\.keyType: rsa, then ca rotate and ca switch/,
      );
    } finally {
      await proxy.stop();
      await registry.stop();
      tmp.remove();
    }
  });
});
