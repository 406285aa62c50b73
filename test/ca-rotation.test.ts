/**
 * CA rotation as an operator runs it, against a running proxy and real clients:
 * `ca rotate` → the proxy serves both CAs at /ca.crt and clients re-install the
 * bundle with the installer → `ca switch` → the proxy re-issues its certificate
 * from the new CA without a restart. Clients holding the bundle never notice;
 * a client that kept only the old CA is refused with "unknown authority".
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { httpsGet } from './helpers/https.js';
import { buildOCIImage, type OCIImage } from './helpers/oci.js';
import { runCLI, waitForOutput, type Proxy } from './helpers/processes.js';
import { skopeo } from './helpers/skopeo.js';

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const fingerprints = (pem: string) =>
  (pem.match(CERT_BLOCK) ?? []).map((c) => new X509Certificate(c).fingerprint256);

/** The fingerprint of the CA that issued the certificate a new handshake gets. */
function servedIssuer(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca }, () => {
      resolve(socket.getPeerX509Certificate()?.issuer ?? '');
      socket.end();
    });
    socket.on('error', reject);
  });
}

describe('CA rotation without breaking clients', () => {
  const env = useRegistryBehindProxy(
    'ca-rotation',
    { auth: { kind: 'none' } },
    // Polling is out of the picture: the proxy must notice `ca rotate`/`ca switch` by watching tls.dir.
    // A 10-year CA inside an 11-year warning window: the proxy must say to rotate.
    { RTP_TLS_CHECK_INTERVAL: '1h', RTP_TLS_CA_WARN_BEFORE: '11y' },
  );
  let proxy: Proxy;
  let image: OCIImage;
  let oldCA: string;
  let oldFingerprint = '';
  let nextFingerprint = '';
  let dest = '';
  const cli = (...args: string[]) => runCLI(args, { RTP_TLS_DIR: proxy.tlsDir });
  /** Holds only the CA from before the rotation, as a client that never re-ran `trust`. */
  const staleDir = () => join(env.tmp, 'stale-client');
  /** Where the installer puts the bundle for podman/skopeo (RTP_INSTALL_ROOT prefix). */
  const installRoot = () => join(env.tmp, 'install-root');
  const freshDir = () =>
    join(installRoot(), 'etc', 'containers', 'certs.d', `127.0.0.1:${proxy.port}`);
  const inspect = (certDir: string) =>
    skopeo(['inspect', '--cert-dir', certDir, '--tls-verify=true', dest]);

  beforeAll(async () => {
    proxy = env.proxy;
    oldCA = env.ca;
    oldFingerprint = new X509Certificate(oldCA).fingerprint256;
    mkdirSync(staleDir());
    writeFileSync(join(staleDir(), 'ca.crt'), oldCA);
    image = buildOCIImage(join(env.tmp, 'image'), 'v1', [512 << 10]);
    dest = `docker://127.0.0.1:${proxy.port}/rotation/app:v1`;
    const push = await skopeo([
      'copy',
      '--dest-cert-dir',
      staleDir(),
      '--dest-tls-verify=true',
      image.ref,
      dest,
    ]);
    expect(push.code, push.stderr).toBe(0);
  });

  it('warns at start-up that the CA expires soon, naming `ca rotate`', () => {
    const warning = proxy
      .logLines()
      .find((l) => String(l['msg']).startsWith('the CA expires soon'));
    expect(warning).toMatchObject({ level: 'warn', caFingerprint256: oldFingerprint });
    expect(String(warning?.['msg'])).toContain('node dist/cli.js ca rotate');
  });

  it('step 1, `ca rotate`: creates the next CA and the running proxy serves both at /ca.crt', async () => {
    const rotate = cli('ca', 'rotate');
    expect(rotate.status, rotate.stderr).toBe(0);
    nextFingerprint = /next CA SHA-256 fingerprint: ([0-9A-F:]{95})/.exec(rotate.stdout)?.[1] ?? '';
    expect(nextFingerprint).not.toBe('');
    expect(rotate.stdout).toMatch(/ca switch/);
    expect(statSync(join(proxy.tlsDir, 'ca-next.key')).mode & 0o777).toBe(0o600);

    const again = cli('ca', 'rotate');
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/already in progress.*"ca switch".*"ca rotate --cancel"/);

    await waitForOutput(proxy.child, proxy.output, /CA rotation in progress/);
    const bundle = (await httpsGet(`${proxy.origin}/ca.crt`, { ca: oldCA })).body;
    expect(fingerprints(bundle)).toEqual([oldFingerprint, nextFingerprint]);
    expect(bundle).not.toMatch(/PRIVATE KEY/);

    const show = cli('ca', 'show');
    expect(show.status, show.stderr).toBe(0);
    expect(show.stdout).toMatch(
      new RegExp(`next CA[^\\n]*\\n\\s+SHA-256 fingerprint: ${nextFingerprint}`),
    );
    const trust = cli('trust', '--address', `127.0.0.1:${proxy.port}`);
    expect(trust.status, trust.stderr).toBe(0);
    expect(trust.stdout).toContain(oldFingerprint);
    expect(trust.stdout).toContain(nextFingerprint);
    // The installer is given the CA that signs today: it re-downloads the bundle verified by it.
    expect(trust.stdout).toContain(`--fingerprint ${oldFingerprint}`);
  });

  it('clients re-install the bundle with the installer; nothing changes for anyone yet', async () => {
    const script = (await httpsGet(`${proxy.origin}/install-ca.sh`, { ca: oldCA })).body;
    const install = spawnSync(
      'sh',
      ['-s', '--', '--fingerprint', oldFingerprint, '--client', 'containers'],
      {
        input: script,
        encoding: 'utf8',
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', RTP_INSTALL_ROOT: installRoot() },
      },
    );
    expect(install.status, install.stderr).toBe(0);
    const installed = readFileSync(join(freshDir(), 'ca.crt'), 'utf8');
    expect(fingerprints(installed)).toEqual([oldFingerprint, nextFingerprint]);

    for (const dir of [freshDir(), staleDir()]) {
      const result = await inspect(dir);
      expect(result.code, result.stderr).toBe(0);
    }
  });

  it('step 2, `ca switch`: the proxy re-issues from the new CA without a restart; bundle holders keep working', async () => {
    const before = proxy
      .logLines()
      .filter((l) => l['msg'] === 'swapped in a new server certificate');
    const pid = proxy.child.pid;
    const swtch = cli('ca', 'switch');
    expect(swtch.status, swtch.stderr).toBe(0);
    expect(swtch.stdout).toContain(`CA ${nextFingerprint} now signs`);
    expect(new X509Certificate(readFileSync(join(proxy.tlsDir, 'ca.crt'))).fingerprint256).toBe(
      nextFingerprint,
    );
    expect(
      new X509Certificate(readFileSync(join(proxy.tlsDir, 'ca-previous.crt'))).fingerprint256,
    ).toBe(oldFingerprint);
    expect(existsSync(join(proxy.tlsDir, 'ca-next.crt'))).toBe(false);

    await waitForOutput(proxy.child, proxy.output, /"reason":"it was signed by another CA"/);
    const after = proxy
      .logLines()
      .filter((l) => l['msg'] === 'swapped in a new server certificate');
    expect(after.length).toBe(before.length + 1);
    expect(proxy.child.pid).toBe(pid);
    expect(proxy.child.exitCode).toBeNull();

    const newCA = readFileSync(join(proxy.tlsDir, 'ca.crt'), 'utf8');
    expect(await servedIssuer(proxy.port, newCA)).toBe(new X509Certificate(newCA).subject);
    const bundle = (await httpsGet(`${proxy.origin}/ca.crt`, { ca: newCA })).body;
    expect(fingerprints(bundle)).toEqual([nextFingerprint]);

    // The client that re-ran the installer pulls as before.
    const pulled = await skopeo([
      'copy',
      '--src-cert-dir',
      freshDir(),
      '--src-tls-verify=true',
      dest,
      `dir:${join(env.tmp, 'pulled')}`,
    ]);
    expect(pulled.code, pulled.stderr).toBe(0);
  });

  it('a client that kept only the old CA is refused, naming the cause', async () => {
    const result = await inspect(staleDir());
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/certificate signed by unknown authority/);
    // …and the proxy's log says which client and what to do.
    await waitForOutput(proxy.child, proxy.output, /"reason":"untrusted_ca"/);
    const line = proxy.logLines().find((l) => l['reason'] === 'untrusted_ca');
    expect(line?.['client']).toBe('127.0.0.1');
    expect(String(line?.['msg'])).toContain(
      `node dist/cli.js trust --address 127.0.0.1:${proxy.port}`,
    );
  });

  it('`ca switch --back` undoes the switch; the proxy follows again', async () => {
    const back = cli('ca', 'switch', '--back');
    expect(back.status, back.stderr).toBe(0);
    expect(new X509Certificate(readFileSync(join(proxy.tlsDir, 'ca.crt'))).fingerprint256).toBe(
      oldFingerprint,
    );
    await waitForOutput(
      proxy.child,
      proxy.output,
      /"reason":"it was signed by another CA"[\s\S]*"reason":"it was signed by another CA"/,
    );
    expect(await servedIssuer(proxy.port, oldCA)).toBe(new X509Certificate(oldCA).subject);
    const result = await inspect(staleDir());
    expect(result.code, result.stderr).toBe(0);
    const cancel = cli('ca', 'rotate', '--cancel');
    expect(cancel.status, cancel.stderr).toBe(0);
    expect(cancel.stdout).toContain(`dropped the next CA ${nextFingerprint}`);
  });
});
