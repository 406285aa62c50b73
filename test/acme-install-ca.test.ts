/**
 * /install-ca.sh with an internal ACME server (tls.acme.caBundle), against a real
 * pebble whose caBundle holds both its HTTPS CA and its issuing root (/roots/0), as a
 * bundle for step-ca or Vault would hold their one root: run by name the way users run
 * it, the served installer pins and installs pebble's issuing root alone (the one that
 * anchors the chain served), with the fingerprint `trust --address` and the log give;
 * skopeo then pushes and pulls by name with exactly the directory the script wrote.
 * By IP address the same script installs our own CA, as before.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACME_NAME, pushAndPullAnImage, setUpACME, type ACMESetup } from './helpers/acme-setup.js';
import { eventually } from './helpers/eventually.js';
import { httpsGet } from './helpers/https.js';
import { runCLI, tempDir, type Proxy } from './helpers/processes.js';
import { skopeo } from './helpers/skopeo.js';

const fingerprints = (pem: string) =>
  (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map(
    (block) => new X509Certificate(block).fingerprint256,
  );

describe('/install-ca.sh and the trust page with an internal ACME server', () => {
  const tmp = tempDir('acme-install-ca');
  let acme: ACMESetup;
  let proxy: Proxy;
  let issuingRoot = '';
  let ourCA = '';
  const byName = () => `${ACME_NAME}:${acme.proxyPort}`;
  const byIP = () => `127.0.0.1:${acme.proxyPort}`;
  const certsDir = (root: string, hostPort: string) =>
    join(root, 'etc', 'containers', 'certs.d', hostPort);

  /**
   * The user's one-liner, `curl -fsSk https://HOST:PORT/install-ca.sh | sh -s -- …`, with
   * an /etc/hosts that names ACME_NAME (its own mount namespace) and RTP_INSTALL_ROOT.
   */
  const runInstaller = (hostPort: string, fingerprint: string, root: string) =>
    spawnSync(
      'unshare',
      [
        '--mount',
        'sh',
        '-c',
        'mount --bind "$1" /etc/hosts && curl -fsSk "https://$2/install-ca.sh" | RTP_INSTALL_ROOT="$3" sh -s -- --fingerprint "$4" --client containers',
        'sh',
        acme.hosts,
        hostPort,
        root,
        fingerprint,
      ],
      { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } },
    );

  beforeAll(async () => {
    acme = await setUpACME(tmp.path);
    issuingRoot = await acme.pebble.root();
    const bundle = join(tmp.path, 'internal-acme-bundle.pem');
    writeFileSync(bundle, readFileSync(acme.pebble.caBundle, 'utf8') + issuingRoot);
    proxy = await acme.start(join(tmp.path, 'tls'), {
      RTP_TLS_ACME_CHALLENGES: 'tls-alpn-01',
      RTP_TLS_ACME_CA_BUNDLE: bundle,
    });
    ourCA = readFileSync(proxy.caFile, 'utf8');
    await eventually(
      'the ACME certificate to be served',
      () => proxy.logLines().find((l) => /^serving the ACME certificate/.test(String(l['msg']))),
      { timeoutMs: 60_000, intervalMs: 200 },
    );
  });
  afterAll(async () => {
    await proxy?.stop();
    await acme?.close();
    tmp.remove();
  });

  it('trust --address NAME:PORT and the log give the issuing root’s fingerprint, not the HTTPS CA’s', () => {
    const [rootFP] = fingerprints(issuingRoot);
    const [httpsFP] = fingerprints(readFileSync(acme.pebble.caBundle, 'utf8'));
    const trust = runCLI(['trust', '--address', byName()], {
      ...acme.env({ RTP_TLS_ACME_CA_BUNDLE: join(tmp.path, 'internal-acme-bundle.pem') }),
      RTP_TLS_DIR: proxy.tlsDir,
    });
    expect(trust.status, trust.stderr).toBe(0);
    expect(trust.stdout).toContain(`--fingerprint ${rootFP}`);
    expect(trust.stdout).not.toContain(httpsFP);
    expect(trust.stdout).not.toMatch(/^warning:/m);
    const served = proxy.logLines().find((l) => /^serving the ACME/.test(String(l['msg'])));
    expect(served?.['clientsByNameTrust']).toEqual([rootFP]);
    expect(served?.['msg']).toContain(`SHA-256 ${rootFP}`);
    expect(
      proxy.logLines().filter((l) => l['level'] === 'warn' && /caBundle/.test(String(l['msg']))),
    ).toEqual([]);
  });

  it('by name: refuses our CA’s fingerprint, installs the issuing root; skopeo pushes and pulls with that directory', async () => {
    const [rootFP] = fingerprints(issuingRoot);
    const refused = runInstaller(byName(), fingerprints(ourCA)[0]!, join(tmp.path, 'wrong'));
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/REFUSING .*no certificate has the fingerprint you gave/);
    expect(refused.stderr).toContain(rootFP);

    const root = join(tmp.path, 'install-by-name');
    const install = runInstaller(byName(), rootFP!, root);
    expect(install.status, install.stderr).toBe(0);
    expect(install.stdout).toMatch(/is trusted \(the internal ACME server's root/);
    const dir = certsDir(root, byName());
    expect(fingerprints(readFileSync(join(dir, 'ca.crt'), 'utf8'))).toEqual([rootFP]);

    const copied = await pushAndPullAnImage(acme, dir, tmp.path);
    expect(copied.push).toEqual({ code: 0, stderr: '' });
    expect(copied.pull).toEqual({ code: 0, stderr: '' });
    expect(copied.manifest).toContain('layers');
  });

  it('by IP address: the same installer installs our own CA, which skopeo then trusts', async () => {
    const [ourFP] = fingerprints(ourCA);
    const refused = runInstaller(byIP(), fingerprints(issuingRoot)[0]!, join(tmp.path, 'wrong-ip'));
    expect(refused.status).toBe(1);
    const root = join(tmp.path, 'install-by-ip');
    const install = runInstaller(byIP(), ourFP!, root);
    expect(install.status, install.stderr).toBe(0);
    expect(install.stdout).toMatch(/is trusted \(this registry's CA/);
    const dir = certsDir(root, byIP());
    expect(fingerprints(readFileSync(join(dir, 'ca.crt'), 'utf8'))).toEqual([ourFP]);
    const inspect = await skopeo([
      'inspect',
      '--cert-dir',
      dir,
      '--tls-verify=true',
      `docker://${byIP()}/acme/app:v1`,
    ]);
    expect(inspect.code, inspect.stderr).toBe(0);
  });

  it('the trust page and ca.cer by name give the issuing root; by IP address our own CA', async () => {
    const [rootFP] = fingerprints(issuingRoot);
    const [ourFP] = fingerprints(ourCA);
    const viaName = (path: string) =>
      httpsGet(`https://127.0.0.1:${acme.proxyPort}${path}`, {
        ca: issuingRoot,
        servername: ACME_NAME,
        headers: { host: byName() },
      });
    const page = await viaName('/_proxy/trust');
    expect(page.status).toBe(200);
    expect(page.body).toContain(`ACME root SHA-256</dt><dd><code class="fp">${rootFP}</code>`);
    expect(page.body).toContain(`--fingerprint ${rootFP}`);
    expect(page.body).toContain(`<code>${ACME_NAME}</code>`);
    expect(page.body).not.toContain(ourFP);
    // One certificate in DER: the issuing root's (the bytes themselves: trust-endpoints.test.ts).
    const cer = await viaName('/ca.cer');
    expect(cer.headers['content-type']).toBe('application/pkix-cert');
    expect(cer.headers['content-length']).toBe(String(new X509Certificate(issuingRoot).raw.length));
    const byIPPage = await httpsGet(`https://${byIP()}/_proxy/trust`, { ca: ourCA });
    expect(byIPPage.body).toContain(`CA SHA-256</dt><dd><code class="fp">${ourFP}</code>`);
    expect(byIPPage.body).not.toContain(rootFP);
  });
});
