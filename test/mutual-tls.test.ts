/**
 * Mutual TLS (tls.clientAuth) with skopeo: a client certificate from
 * `registry-tls-proxy issue-client`, used from its certs.d-style directory,
 * pushes and pulls; without one, or with one from another CA, the handshake is
 * refused and the proxy logs who and why. Client certificates survive a CA
 * rotation (the previous CA stays accepted).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { buildOCIImage, readBlob, type OCIImage } from './helpers/oci.js';
import { runCLI, waitForOutput, type Proxy } from './helpers/processes.js';
import { skopeo } from './helpers/skopeo.js';

describe('mutual TLS with client certificates from issue-client', () => {
  const env = useRegistryBehindProxy(
    'mutual-tls',
    { auth: { kind: 'none' } },
    { RTP_TLS_CLIENT_AUTH: 'true', RTP_TLS_CHECK_INTERVAL: '1s' },
  );
  let proxy: Proxy;
  let image: OCIImage;
  let dest = '';
  const cli = (...args: string[]) =>
    runCLI(args, { RTP_TLS_DIR: proxy.tlsDir, RTP_TLS_CLIENT_AUTH: 'true' });
  const clientDir = (name: string) => join(env.tmp, 'clients', name);
  const inspect = (certDir: string) =>
    skopeo(['inspect', '--cert-dir', certDir, '--tls-verify=true', dest]);

  beforeAll(() => {
    proxy = env.proxy;
    image = buildOCIImage(join(env.tmp, 'image'), 'v1', [2 << 20, 300_000]);
    dest = `docker://127.0.0.1:${proxy.port}/mtls/app:v1`;
  });

  it('issue-client writes client.cert, client.key (0600) and ca.crt, and never overwrites them', () => {
    const issued = cli('issue-client', 'ci-runner-1', '--out', clientDir('ci-runner-1'));
    expect(issued.status, issued.stderr).toBe(0);
    expect(issued.stdout).toContain('/etc/docker/certs.d/');
    expect(issued.stdout).not.toMatch(/tls\.clientAuth is off/);
    const dir = clientDir('ci-runner-1');
    expect(readdirSync(dir).sort()).toEqual(['ca.crt', 'client.cert', 'client.key']);
    expect(statSync(join(dir, 'client.key')).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(readFileSync(join(dir, 'client.cert')));
    expect(cert.subject).toContain('CN=ci-runner-1');
    expect(cert.checkIssued(new X509Certificate(env.ca))).toBe(true);
    expect(readFileSync(join(dir, 'ca.crt'), 'utf8')).toBe(env.ca.replace(/\r\n/g, '\n'));

    const before = readFileSync(join(dir, 'client.key'), 'utf8');
    const again = cli('issue-client', 'ci-runner-1', '--out', dir);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/already exist.*never overwritten/);
    expect(readFileSync(join(dir, 'client.key'), 'utf8')).toBe(before);
  });

  it('skopeo with the issued certificate pushes and pulls back byte-identical', async () => {
    const push = await skopeo([
      'copy',
      '--dest-cert-dir',
      clientDir('ci-runner-1'),
      '--dest-tls-verify=true',
      image.ref,
      dest,
    ]);
    expect(push.code, push.stderr).toBe(0);
    const pulled = join(env.tmp, 'pulled');
    const pull = await skopeo([
      'copy',
      '--src-cert-dir',
      clientDir('ci-runner-1'),
      '--src-tls-verify=true',
      dest,
      `dir:${pulled}`,
    ]);
    expect(pull.code, pull.stderr).toBe(0);
    const layout = image.ref.slice(4, image.ref.lastIndexOf(':'));
    for (const digest of image.layerDigests) {
      expect(readBlob(pulled, digest, 'dir').equals(readBlob(layout, digest, 'oci'))).toBe(true);
    }
  });

  it('without a client certificate the handshake is refused, and the log names the client', async () => {
    const onlyCA = clientDir('no-cert');
    mkdirSync(onlyCA, { recursive: true });
    copyFileSync(join(clientDir('ci-runner-1'), 'ca.crt'), join(onlyCA, 'ca.crt'));
    const result = await inspect(onlyCA);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(
      /tls: certificate required|tls: bad certificate|handshake failure/,
    );
    await waitForOutput(proxy.child, proxy.output, /"reason":"client_cert_missing"/);
    const line = proxy.logLines().find((l) => l['reason'] === 'client_cert_missing');
    expect(line).toMatchObject({ level: 'warn', client: '127.0.0.1' });
    expect(String(line?.['msg'])).toContain('node dist/cli.js issue-client');
  });

  it('a certificate from another CA is refused, and the log says why', async () => {
    const foreign = clientDir('foreign');
    mkdirSync(foreign, { recursive: true });
    copyFileSync(join(clientDir('ci-runner-1'), 'ca.crt'), join(foreign, 'ca.crt'));
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1'],
        ...['-subj', '/CN=intruder', '-addext', 'extendedKeyUsage=clientAuth'],
        ...['-keyout', join(foreign, 'client.key'), '-out', join(foreign, 'client.cert')],
      ],
      { stdio: 'ignore' },
    );
    // Go clients send only a certificate whose issuer the server names: this one counts as none.
    const missingBefore = proxy.logLines().filter((l) => l['reason'] === 'client_cert_missing');
    const result = await inspect(foreign);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(
      /tls: certificate required|tls: bad certificate|handshake failure/,
    );
    const missingAfter = proxy.logLines().filter((l) => l['reason'] === 'client_cert_missing');
    expect(missingAfter.length).toBeGreaterThan(missingBefore.length);
    // curl sends it anyway: Node checks its signer after the handshake and closes the connection.
    const curl = spawnSync(
      'curl',
      [
        ...['-sS', '--cacert', join(foreign, 'ca.crt')],
        ...['--cert', join(foreign, 'client.cert'), '--key', join(foreign, 'client.key')],
        `${proxy.origin}/v2/`,
      ],
      { encoding: 'utf8' },
    );
    expect(curl.status).not.toBe(0);
    expect(curl.stdout).toBe('');
    await waitForOutput(proxy.child, proxy.output, /"reason":"client_cert_rejected"/);
    const line = proxy.logLines().find((l) => l['reason'] === 'client_cert_rejected');
    expect(line).toMatchObject({ level: 'warn', client: '127.0.0.1' });
    expect(String(line?.['msg'])).toMatch(/signed by this proxy's CA/);
  });

  it('client certificates keep working across a CA rotation', async () => {
    expect(cli('ca', 'rotate').status).toBe(0);
    const swtch = cli('ca', 'switch');
    expect(swtch.status, swtch.stderr).toBe(0);
    await waitForOutput(proxy.child, proxy.output, /"reason":"it was signed by another CA"/);
    // The old client still trusts only the old CA: give it the new bundle, keep its certificate.
    const dir = clientDir('ci-runner-1');
    copyFileSync(join(proxy.tlsDir, 'ca.crt'), join(dir, 'ca.crt'));
    const old = await inspect(dir);
    expect(old.code, old.stderr).toBe(0);
    // A certificate issued now comes from the new CA, and works too.
    const issued = cli('issue-client', 'ci-runner-2', '--out', clientDir('ci-runner-2'));
    expect(issued.status, issued.stderr).toBe(0);
    const fresh = await inspect(clientDir('ci-runner-2'));
    expect(fresh.code, fresh.stderr).toBe(0);
  });
});
