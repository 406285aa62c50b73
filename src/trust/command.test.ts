import { X509Certificate, createPrivateKey } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCA, issueServerCertificate } from '../pki/issue.js';
import { coverageWarning } from './command.js';

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
