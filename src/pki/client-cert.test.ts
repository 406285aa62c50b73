/**
 * `issue-client`: its arguments, and the three files it writes for a mutual-TLS client,
 * read back with Node's X509Certificate and `openssl verify` against the CA in tls.dir.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS, type Config } from '../config/schema.js';
import { CLIENT_FILES, issueClient, parseIssueClientArgs } from './client-cert.js';
import { startRotation } from './rotation.js';
import { FILES, loadOrCreateCA, readCASet, trustBundle } from './store.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const TIMEOUT_MS = 60_000;
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const SERVER_AUTH_OID = '1.3.6.1.5.5.7.3.1';
const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const fingerprints = (pem: string) =>
  (pem.match(CERT_BLOCK) ?? []).map((c) => new X509Certificate(c).fingerprint256);

function errorOf(fn: () => unknown): { code?: string; message?: string } {
  try {
    fn();
  } catch (err) {
    return err as { code?: string; message?: string };
  }
  throw new Error('expected an error');
}

describe('parseIssueClientArgs', () => {
  it('defaults to client-certs/NAME and a lifetime of 365 days', () => {
    expect(parseIssueClientArgs(['ci-runner-1'])).toEqual({
      name: 'ci-runner-1',
      out: join('client-certs', 'ci-runner-1'),
      lifetimeMs: 365 * DAY_MS,
    });
  });

  it.each([
    [['ci', '--out', '/tmp/ci-certs', '--lifetime', '90d']],
    [['--lifetime', '90d', '--out', '/tmp/ci-certs', 'ci']],
  ])('takes --out and --lifetime, before or after the name: %j', (args) => {
    expect(parseIssueClientArgs(args)).toEqual({
      name: 'ci',
      out: '/tmp/ci-certs',
      lifetimeMs: 90 * DAY_MS,
    });
  });

  it('accepts a 64-character name made of every allowed character', () => {
    const name = `a1._@-${'x'.repeat(58)}`;
    expect(parseIssueClientArgs([name]).name).toBe(name);
  });

  it.each([['../x'], [''], ['a b'], ['x'.repeat(65)], ['.hidden'], ['a/b'], ['ä']])(
    'refuses the name %j with USAGE',
    (name) => {
      const err = errorOf(() => parseIssueClientArgs([name]));
      expect(err.code).toBe('USAGE');
      expect(err.message).toContain(`client name ${JSON.stringify(name)}`);
    },
  );

  it.each([
    ['no name', [], "needs the client's NAME"],
    ['only flags', ['--out', 'dir'], "needs the client's NAME"],
    ['an unknown flag', ['ci', '--force'], 'unexpected argument "--force"'],
    ['two names', ['ci', 'other'], 'unexpected argument "other"'],
    ['--out without a directory', ['ci', '--out'], '--out needs a directory'],
    ['--lifetime without a value', ['ci', '--lifetime'], '--lifetime takes a duration'],
    ['--lifetime not a duration', ['ci', '--lifetime', 'soon'], 'got "soon"'],
    ['--lifetime without a unit', ['ci', '--lifetime', '90'], 'got "90"'],
    ['--lifetime under a minute', ['ci', '--lifetime', '30s'], 'got "30s"'],
  ])('%s → USAGE', (_what, args, says) => {
    const err = errorOf(() => parseIssueClientArgs(args));
    expect(err.code).toBe('USAGE');
    expect(err.message).toContain(says);
  });
});

describe('issueClient', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'rtp-client-cert-test-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const tlsDir = join(tmp, 'tls');
  const configWith = (clientAuth: boolean): Config => {
    const config = structuredClone(DEFAULTS);
    config.tls.dir = tlsDir;
    config.tls.clientAuth = clientAuth;
    return config;
  };
  const read = (dir: string, name: string) => readFileSync(join(dir, name), 'utf8');
  const mode = (dir: string, name: string) => statSync(join(dir, name)).mode & 0o777;

  let out = '';
  let output = '';
  let issuedAt = 0;

  beforeAll(async () => {
    // Before the proxy ever ran: refused, nothing created (a stray CA would be useless).
    const refused = await issueClient(
      configWith(false),
      parseIssueClientArgs(['early', '--out', join(tmp, 'early')]),
    ).then(
      () => ({}) as { code?: string; message?: string },
      (e: unknown) => e as { code?: string; message?: string },
    );
    expect(refused).toMatchObject({ code: 'CA_MISSING' });
    expect(refused.message).toMatch(/start the proxy once/);
    expect(existsSync(tlsDir)).toBe(false);
    expect(existsSync(join(tmp, 'early'))).toBe(false);

    await loadOrCreateCA({ dir: tlsDir, caLifetimeMs: DEFAULTS.tls.caLifetime });
    out = join(tmp, 'ci-runner');
    issuedAt = Date.now();
    output = await issueClient(
      configWith(false),
      parseIssueClientArgs(['ci-runner', '--out', out, '--lifetime', '90d']),
    );
  }, TIMEOUT_MS);

  it('writes client.cert (0644), client.key (0600) and ca.crt into --out', () => {
    expect(readdirSync(out).sort()).toEqual(
      [CLIENT_FILES.cert, CLIENT_FILES.key, CLIENT_FILES.ca].sort(),
    );
    expect(mode(out, CLIENT_FILES.cert)).toBe(0o644);
    expect(mode(out, CLIENT_FILES.key)).toBe(0o600);
    expect(mode(out, CLIENT_FILES.ca)).toBe(0o644);
    const cert = new X509Certificate(read(out, CLIENT_FILES.cert));
    expect(cert.checkPrivateKey(createPrivateKey(read(out, CLIENT_FILES.key)))).toBe(true);
  });

  it('issues a client-authentication certificate for NAME, signed by the CA of tls.dir', () => {
    const cert = new X509Certificate(read(out, CLIENT_FILES.cert));
    const ca = new X509Certificate(read(tlsDir, FILES.caCert));
    expect(cert.subject.split('\n')).toContain('CN=ci-runner');
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toContain(CLIENT_AUTH_OID);
    expect(cert.keyUsage).not.toContain(SERVER_AUTH_OID);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkIssued(ca)).toBe(true);

    const text = execFileSync('openssl', ['x509', '-noout', '-text', '-in', CLIENT_FILES.cert], {
      cwd: out,
      encoding: 'utf8',
    });
    expect(text).toMatch(/X509v3 Extended Key Usage:\s*\n\s*TLS Web Client Authentication\n/);
    // What a TLS server checks: chain to the CA, and the purpose.
    const verify = spawnSync(
      'openssl',
      ['verify', '-CAfile', join(tlsDir, FILES.caCert), '-purpose', 'sslclient', CLIENT_FILES.cert],
      { cwd: out, encoding: 'utf8' },
    );
    expect(`${verify.stdout}${verify.stderr}`).toBe(`${CLIENT_FILES.cert}: OK\n`);
  });

  it('expires at the end of --lifetime', () => {
    const cert = new X509Certificate(read(out, CLIENT_FILES.cert));
    const notAfter = new Date(cert.validTo).getTime();
    // validTo has a resolution of one second.
    expect(notAfter).toBeGreaterThan(issuedAt + 90 * DAY_MS - 60_000);
    expect(notAfter).toBeLessThanOrEqual(Date.now() + 90 * DAY_MS);
    expect(output).toContain(`expires: ${new Date(notAfter).toISOString()}`);
  });

  it('ca.crt is the trust bundle of tls.dir', async () => {
    const bundle = trustBundle(await readCASet(tlsDir));
    expect(read(out, CLIENT_FILES.ca)).toBe(bundle.pem);
    expect(fingerprints(read(out, CLIENT_FILES.ca))).toEqual([
      new X509Certificate(read(tlsDir, FILES.caCert)).fingerprint256,
    ]);
  });

  it('says where the files go and that tls.clientAuth is off', () => {
    const ca = new X509Certificate(read(tlsDir, FILES.caCert));
    expect(output).toContain(`signed by CA ${ca.fingerprint256}`);
    expect(output).toContain('/etc/docker/certs.d/HOST:PORT/');
    expect(output).toContain('/etc/containers/certs.d/HOST:PORT/');
    for (const name of Object.values(CLIENT_FILES)) {
      expect(output).toContain(`wrote ${join(out, name)}`);
    }
    expect(output).toContain('tls.clientAuth is off');
  });

  it('never overwrites: a second run into the same directory fails with CLIENT_CERT_EXISTS', async () => {
    const before = Object.fromEntries(
      Object.values(CLIENT_FILES).map((name) => [name, read(out, name)]),
    );
    const error = await issueClient(
      configWith(false),
      parseIssueClientArgs(['other-runner', '--out', out]),
    ).then(
      () => ({}) as { code?: string; message?: string },
      (e: unknown) => e as { code?: string; message?: string },
    );
    expect(error).toMatchObject({ code: 'CLIENT_CERT_EXISTS' });
    expect(error.message).toContain(join(out, CLIENT_FILES.cert));
    const after = Object.fromEntries(
      Object.values(CLIENT_FILES).map((name) => [name, read(out, name)]),
    );
    expect(after).toEqual(before);
    expect(readdirSync(out)).toHaveLength(3);
  });

  it(
    'during a CA rotation: ca.crt holds both CAs, the certificate is signed by the active one, and with tls.clientAuth on there is no note',
    async () => {
      const { active, next } = await startRotation({
        dir: tlsDir,
        caLifetimeMs: DEFAULTS.tls.caLifetime,
      });
      const rotatingOut = join(tmp, 'during-rotation');

      const text = await issueClient(
        configWith(true),
        parseIssueClientArgs(['builder', '--out', rotatingOut]),
      );

      expect(fingerprints(read(rotatingOut, CLIENT_FILES.ca))).toEqual([
        active.fingerprint256,
        next.fingerprint256,
      ]);
      const cert = new X509Certificate(read(rotatingOut, CLIENT_FILES.cert));
      expect(cert.verify(new X509Certificate(read(tlsDir, FILES.caCert)).publicKey)).toBe(true);
      expect(cert.verify(new X509Certificate(read(tlsDir, FILES.nextCACert)).publicKey)).toBe(
        false,
      );
      const notAfter = new Date(cert.validTo).getTime();
      expect(Math.abs(notAfter - (Date.now() + 365 * DAY_MS))).toBeLessThan(60_000);
      expect(text).toContain('/etc/docker/certs.d');
      expect(text).not.toContain('tls.clientAuth is off');
    },
    TIMEOUT_MS,
  );
});
