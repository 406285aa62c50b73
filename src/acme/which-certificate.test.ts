import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS, type Config } from '../config/schema.js';
import { createCA, issueServerCertificate, type IssuedCertificate } from '../pki/issue.js';
import { clientTrustNote, internalACMERoots } from './which-certificate.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const tmp = mkdtempSync(join(tmpdir(), 'rtp-acme-roots-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** pebble's shape: the ACME server's HTTPS under one CA, what it issues under another. */
let httpsCA: IssuedCertificate;
let issuingRoot: IssuedCertificate;
let chainPEM = '';
const fp = (c: IssuedCertificate) => new X509Certificate(c.certPEM).fingerprint256;

beforeAll(async () => {
  httpsCA = await createCA({ commonName: 'ACME server HTTPS CA', lifetimeMs: DAY_MS });
  issuingRoot = await createCA({ commonName: 'ACME issuing root', lifetimeMs: DAY_MS });
  const leaf = await issueServerCertificate({
    ca: { certPEM: issuingRoot.certPEM, key: createPrivateKey(issuingRoot.keyPEM) },
    sans: { dns: ['registry.internal'], ips: [] },
    lifetimeMs: DAY_MS,
  });
  chainPEM = leaf.certPEM;
});

function configWith(...bundle: IssuedCertificate[]): Config {
  const file = join(tmp, `bundle-${bundle.length}-${Math.random()}.pem`);
  writeFileSync(file, bundle.map((c) => c.certPEM).join(''));
  return {
    ...DEFAULTS,
    tls: { ...DEFAULTS.tls, acme: { ...DEFAULTS.tls.acme, caBundle: file } },
  };
}

describe('which tls.acme.caBundle certificates clients by name install', () => {
  it('only those that anchor the served chain (the issuing root, not the HTTPS CA)', () => {
    const roots = internalACMERoots(configWith(httpsCA, issuingRoot), chainPEM);
    expect(roots).toMatchObject({ anchored: true, fingerprints: [fp(issuingRoot)] });
    expect(roots.pem).not.toContain(httpsCA.certPEM.trim().split('\n')[1]);
  });

  it('all of caBundle when none anchors it, and the start-up line warns', () => {
    const config = configWith(httpsCA);
    expect(internalACMERoots(config, chainPEM)).toMatchObject({
      anchored: false,
      fingerprints: [fp(httpsCA)],
    });
    const note = clientTrustNote(config, chainPEM);
    expect(note.warning).toMatch(
      /none of the certificates in tls\.acme\.caBundle .* signed the ACME certificate's chain .*"CN=ACME issuing root[^"]*".*add the ACME server's issuing root to caBundle/,
    );
  });

  it('all of caBundle before any ACME certificate exists', () => {
    const roots = internalACMERoots(configWith(httpsCA, issuingRoot));
    expect(roots).toMatchObject({ anchored: false, fingerprints: [fp(httpsCA), fp(issuingRoot)] });
  });

  it('the start-up line gives the fingerprints trust --address prints', () => {
    const note = clientTrustNote(configWith(httpsCA, issuingRoot), chainPEM);
    expect(note.warning).toBeUndefined();
    expect(note.fields).toEqual({ clientsByNameTrust: [fp(issuingRoot)] });
    expect(note.text).toContain(`SHA-256 ${fp(issuingRoot)}`);
  });
});
