import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { acmeServesHost } from '../acme/which-certificate.js';
import { DEFAULTS, type Config } from '../config/schema.js';
import { createCA, issueServerCertificate } from '../pki/issue.js';
import { coverageWarning, parseTrustArgs, runTrust } from './command.js';

const DAY_MS = 24 * 60 * 60 * 1000;
let certPEM = '';

beforeAll(async () => {
  const ca = await createCA({ commonName: 'trust command test CA', lifetimeMs: DAY_MS });
  const authority = { certPEM: ca.certPEM, key: createPrivateKey(ca.keyPEM) };
  const sans = { dns: ['vm', 'localhost'], ips: ['127.0.0.1', '::1'] };
  certPEM = (await issueServerCertificate({ ca: authority, sans, lifetimeMs: DAY_MS })).certPEM;
  expect(new X509Certificate(certPEM).subjectAltName).toContain('DNS:vm');
});

describe('trust --address warns when the name is not on the served certificate', () => {
  it.each([['vm:5443'], ['localhost:5443'], ['127.0.0.1:5443'], ['[::1]:5443']])(
    '%s is covered: no warning',
    (address) => {
      expect(coverageWarning(certPEM, address, false)).toBeUndefined();
    },
  );

  it('registry.lan:5443 is not: the warning names it and tls.names', () => {
    const warning = coverageWarning(certPEM, 'registry.lan:5443', false);
    expect(warning).toMatch(/^warning: registry\.lan is not covered .*DNS:vm/);
    expect(warning).toContain('add registry.lan to tls.names');
  });

  it('a supplied certificate cannot be fixed with tls.names', () => {
    expect(coverageWarning(certPEM, '10.0.0.9:5443', true)).toContain('supplied in tls.cert');
  });
});

describe('trust --address for names the ACME certificate covers', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'trust-acme-'));
  const acmeConfig = (caBundle = ''): Config => ({
    ...DEFAULTS,
    tls: {
      ...DEFAULTS.tls,
      dir: join(tmp, 'tls'),
      names: ['registry.example.com', '*.apps.example.com', '127.0.0.1'],
      acme: { ...DEFAULTS.tls.acme, directory: 'letsencrypt', agreeToTerms: true, caBundle },
    },
  });
  const run = async (config: Config, address: string, install = false) => {
    let text = '';
    await runTrust(config, { address, install, clients: ['docker'] }, (t) => (text += t));
    return text;
  };

  it.each([
    ['registry.example.com', true],
    ['REGISTRY.example.com.', true],
    ['a.apps.example.com', true],
    ['a.b.apps.example.com', false],
    ['apps.example.com', false],
    ['127.0.0.1', false],
    ['other.example.com', false],
  ])('%s is served the ACME certificate: %s', (host, expected) => {
    expect(acmeServesHost(acmeConfig(), host)).toBe(expected);
  });

  it('publicly trusted: says there is nothing to install, and installs nothing', async () => {
    const text = await run(acmeConfig(), 'registry.example.com:443', true);
    expect(text).toContain('publicly trusted: nothing to install on clients (nothing installed)');
    expect(text).not.toMatch(/wrote|ran /);
  });

  it("an internal ACME server: the report is for its root (tls.acme.caBundle), not our CA's", async () => {
    const bundle = join(tmp, 'internal-root.pem');
    writeFileSync(bundle, certPEM);
    const text = await run(acmeConfig(bundle), 'registry.example.com:443');
    expect(text).toContain(new X509Certificate(certPEM).fingerprint256);
    expect(text).toContain('registry.example.com:443');
  });
});

describe('trust --client', () => {
  const parse = (...client: string[]) =>
    parseTrustArgs(['--address', 'registry.lan:5443', ...client]);

  it.each([
    [[], 'all', undefined],
    [['--client', 'all'], 'all', undefined],
    [['--client', 'docker,containerd'], ['docker', 'containerd'], undefined],
    [['--client', 'macos'], 'all', 'macos'],
    [['--client', 'windows'], 'all', 'windows'],
    [['--client', 'kubernetes'], 'all', 'kubernetes'],
  ])('%j → clients %j, platform %s', (args, clients, platform) => {
    const parsed = parse(...(args as string[]));
    expect(parsed.clients).toEqual(clients);
    expect(parsed.platform).toBe(platform);
  });

  it.each([['macos,docker'], ['linux'], ['']])('--client %j: says what it takes', (value) => {
    expect(() => parse('--client', value)).toThrow(
      /--client takes docker, containerd, containers, system or all .* or one of macos, windows, kubernetes/,
    );
  });

  it('--install with a platform of elsewhere: says to leave it out', () => {
    expect(() => parse('--client', 'macos', '--install')).toThrow(
      /--client macos prints what to run on the Mac: leave out --install/,
    );
  });
});
