/**
 * Certificates are read back by two independent parsers: Node's X509Certificate
 * and the openssl CLI, the same library family clients' TLS stacks check against.
 */
import { spawnSync } from 'node:child_process';
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createCA,
  issueClientCertificate,
  issueServerCertificate,
  type IssuedCertificate,
} from './issue.js';
import type { SANs } from './sans.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const SANS: SANs = {
  dns: ['registry.lan', 'localhost'],
  ips: ['10.0.0.5', '127.0.0.1', '::1', '2001:db8::1'],
};

const tmp = mkdtempSync(join(tmpdir(), 'rtp-issue-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = join(tmp, name);
  writeFileSync(file, text, { mode: 0o600 });
  return file;
}

function openssl(...args: string[]): { ok: boolean; output: string } {
  const result = spawnSync('openssl', args, { encoding: 'utf8' });
  if (result.error) throw result.error;
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

function opensslText(certFile: string): string {
  const { ok, output } = openssl('x509', '-noout', '-text', '-in', certFile);
  expect(ok, output).toBe(true);
  return output;
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits, as openssl prints it. */
function keyIdentifierOf(key: KeyObject): string {
  const der = key.export({ type: 'pkcs1', format: 'der' });
  return createHash('sha1').update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
}

function extension(text: string, name: string): string | undefined {
  const match = new RegExp(`X509v3 ${name}:( critical)?\\s*\\n\\s+([^\\n]*)`).exec(text);
  if (!match) return undefined;
  return `${match[1] ? 'critical ' : ''}${match[2]?.trim()}`;
}

/** openssl 1.1 prints "keyid:AB:…", 3.x prints "AB:…". */
function keyId(value: string | undefined): string | undefined {
  return value?.replace(/^(critical )?(keyid:)?/, '');
}

let now: Date;
let ca: IssuedCertificate;
let caKey: KeyObject;
let caX509: X509Certificate;
let caFile: string;
let caText: string;
let leaf: IssuedCertificate;
let leafX509: X509Certificate;
let leafFile: string;
let leafText: string;
let otherCA: IssuedCertificate;
let otherCAFile: string;

beforeAll(async () => {
  now = new Date();
  ca = await createCA({
    commonName: 'registry-tls-proxy test CA',
    lifetimeMs: 3650 * DAY_MS,
    now,
  });
  caKey = createPrivateKey(ca.keyPEM);
  caX509 = new X509Certificate(ca.certPEM);
  caFile = write('ca.crt', ca.certPEM);
  caText = opensslText(caFile);
  leaf = await issueServerCertificate({
    ca: { certPEM: ca.certPEM, key: caKey },
    sans: SANS,
    lifetimeMs: 90 * DAY_MS,
    now,
  });
  leafX509 = new X509Certificate(leaf.certPEM);
  leafFile = write('server.crt', leaf.certPEM);
  write('server.key', leaf.keyPEM);
  leafText = opensslText(leafFile);
  otherCA = await createCA({
    commonName: 'registry-tls-proxy test CA',
    lifetimeMs: 30 * DAY_MS,
    now,
  });
  otherCAFile = write('other-ca.crt', otherCA.certPEM);
});

describe('createCA', () => {
  it.each<[string, () => string | undefined, string | RegExp]>([
    [
      'Basic Constraints',
      () => extension(caText, 'Basic Constraints'),
      'critical CA:TRUE, pathlen:0',
    ],
    [
      'Key Usage',
      () => extension(caText, 'Key Usage'),
      /^critical (.*, )?Certificate Sign(, .*)?$/,
    ],
    [
      'signature algorithm',
      () => /Signature Algorithm: (\S+)/.exec(caText)?.[1],
      'sha256WithRSAEncryption',
    ],
    ['key size', () => /Public-Key: \((\d+) bit\)/.exec(caText)?.[1], '3072'],
    [
      'subject',
      () => /Subject: ([^\n]*)/.exec(caText)?.[1],
      'CN = registry-tls-proxy test CA, O = registry-tls-proxy',
    ],
    [
      'issuer',
      () => /Issuer: ([^\n]*)/.exec(caText)?.[1],
      'CN = registry-tls-proxy test CA, O = registry-tls-proxy',
    ],
  ])('openssl reads the CA %s', (_what, read, expected) => {
    if (typeof expected === 'string') expect(read()).toBe(expected);
    else expect(read()).toMatch(expected);
  });

  it('has a Subject Key Identifier computed from its public key', () => {
    expect(keyId(extension(caText, 'Subject Key Identifier'))).toBe(
      keyIdentifierOf(caX509.publicKey),
    );
  });

  it('is a self-signed CA to Node', () => {
    expect(caX509.ca).toBe(true);
    expect(caX509.checkIssued(caX509)).toBe(true);
    expect(caX509.verify(caX509.publicKey)).toBe(true);
  });

  it('verifies as a trust anchor with openssl', () => {
    const { ok, output } = openssl('verify', '-x509_strict', '-CAfile', caFile, caFile);
    expect(ok, output).toBe(true);
  });

  it('is valid from an hour ago for lifetimeMs', () => {
    expect(new Date(caX509.validFrom).getTime()).toBeCloseTo(now.getTime() - 3600_000, -4);
    expect(new Date(caX509.validTo).getTime()).toBeCloseTo(now.getTime() + 3650 * DAY_MS, -4);
  });

  it('writes its key as PKCS#8 matching the certificate', () => {
    expect(ca.keyPEM).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(caKey.asymmetricKeyDetails?.modulusLength).toBe(3072);
    expect(caX509.checkPrivateKey(caKey)).toBe(true);
  });
});

describe('issueServerCertificate', () => {
  it.each<[string, string[], boolean]>([
    ['the issuing CA', [], true],
    ['strict RFC 5280 checks for a TLS server', ['-x509_strict', '-purpose', 'sslserver'], true],
    ['the name registry.lan', ['-verify_hostname', 'registry.lan'], true],
    ['the name localhost', ['-verify_hostname', 'localhost'], true],
    ['the address 10.0.0.5', ['-verify_ip', '10.0.0.5'], true],
    ['the address 127.0.0.1', ['-verify_ip', '127.0.0.1'], true],
    ['the address ::1', ['-verify_ip', '::1'], true],
    ['the address 2001:db8::1', ['-verify_ip', '2001:db8::1'], true],
    ['another name', ['-verify_hostname', 'other.example'], false],
    ['another address', ['-verify_ip', '10.0.0.6'], false],
    ['TLS client use', ['-purpose', 'sslclient'], false],
  ])('openssl verify against %s: %s', (_what, flags, expected) => {
    const { ok, output } = openssl('verify', ...flags, '-CAfile', caFile, leafFile);
    expect(ok, output).toBe(expected);
  });

  it('does not verify against another CA with the same name', () => {
    const { ok, output } = openssl('verify', '-CAfile', otherCAFile, leafFile);
    expect(ok, output).toBe(false);
  });

  it.each<[string, string, string]>([
    ['Basic Constraints', 'Basic Constraints', 'critical CA:FALSE'],
    ['Key Usage', 'Key Usage', 'critical Digital Signature, Key Encipherment'],
    ['Extended Key Usage', 'Extended Key Usage', 'TLS Web Server Authentication'],
    [
      'Subject Alternative Name',
      'Subject Alternative Name',
      'DNS:registry.lan, DNS:localhost, IP Address:10.0.0.5, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:2001:DB8:0:0:0:0:0:1',
    ],
  ])('openssl reads the leaf %s', (_what, name, expected) => {
    expect(extension(leafText, name)).toBe(expected);
  });

  it.each<[string, RegExp, string]>([
    [
      'subject (CN is the first DNS name)',
      /Subject: ([^\n]*)/,
      'CN = registry.lan, O = registry-tls-proxy',
    ],
    ['issuer', /Issuer: ([^\n]*)/, 'CN = registry-tls-proxy test CA, O = registry-tls-proxy'],
    ['key size', /Public-Key: \((\d+) bit\)/, '2048'],
    ['signature algorithm', /Signature Algorithm: (\S+)/, 'sha256WithRSAEncryption'],
  ])('openssl reads the leaf %s', (_what, pattern, expected) => {
    expect(pattern.exec(leafText)?.[1]).toBe(expected);
  });

  it("carries a Subject Key Identifier from its key and the CA's as Authority Key Identifier", () => {
    const caSKI = keyId(extension(caText, 'Subject Key Identifier'));
    const leafSKI = keyId(extension(leafText, 'Subject Key Identifier'));
    const leafAKI = keyId(extension(leafText, 'Authority Key Identifier'));
    expect(leafSKI).toMatch(/^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
    expect(leafSKI).toBe(keyIdentifierOf(leafX509.publicKey));
    expect(leafAKI).toBe(caSKI);
    expect(leafSKI).not.toBe(caSKI);
  });

  it.each<[string, (x: X509Certificate) => unknown, unknown]>([
    ['is not a CA', (x) => x.ca, false],
    ['is for TLS servers', (x) => x.keyUsage, ['1.3.6.1.5.5.7.3.1']],
    ['covers registry.lan', (x) => x.checkHost('registry.lan'), 'registry.lan'],
    ['covers localhost', (x) => x.checkHost('localhost'), 'localhost'],
    ['does not cover other.example', (x) => x.checkHost('other.example'), undefined],
    ['covers 10.0.0.5', (x) => x.checkIP('10.0.0.5'), '10.0.0.5'],
    ['covers ::1', (x) => x.checkIP('::1'), '::1'],
    ['covers 2001:db8::1', (x) => x.checkIP('2001:db8::1'), '2001:db8::1'],
    ['does not cover 10.0.0.6', (x) => x.checkIP('10.0.0.6'), undefined],
    ['was issued by the CA', (x) => x.checkIssued(caX509), true],
    ['is signed by the CA key', (x) => x.verify(caX509.publicKey), true],
    [
      'is not signed by another CA key',
      (x) => x.verify(new X509Certificate(otherCA.certPEM).publicKey),
      false,
    ],
  ])('to Node, the leaf %s', (_what, read, expected) => {
    expect(read(leafX509)).toEqual(expected);
  });

  it('is valid from an hour ago for lifetimeMs', () => {
    expect(new Date(leafX509.validFrom).getTime()).toBeCloseTo(now.getTime() - 3600_000, -4);
    expect(new Date(leafX509.validTo).getTime()).toBeCloseTo(now.getTime() + 90 * DAY_MS, -4);
  });

  it('writes its key as PKCS#8 matching the certificate', () => {
    expect(leaf.keyPEM).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const key = createPrivateKey(leaf.keyPEM);
    expect(key.asymmetricKeyType).toBe('rsa');
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(leafX509.checkPrivateKey(key)).toBe(true);
    expect(leafX509.checkPrivateKey(caKey)).toBe(false);
  });

  it('has a key openssl pairs with the certificate', () => {
    const fromKey = openssl('pkey', '-in', join(tmp, 'server.key'), '-pubout');
    const fromCert = openssl('x509', '-in', leafFile, '-noout', '-pubkey');
    expect(fromKey.ok, fromKey.output).toBe(true);
    expect(fromCert.ok, fromCert.output).toBe(true);
    expect(fromKey.output).toContain('-----BEGIN PUBLIC KEY-----');
    expect(fromKey.output).toBe(fromCert.output);
  });

  it('names an IP-only certificate after its first address', async () => {
    const ipOnly = new X509Certificate(
      (
        await issueServerCertificate({
          ca: { certPEM: ca.certPEM, key: caKey },
          sans: { dns: [], ips: ['10.0.0.5', '2001:db8::1'] },
          lifetimeMs: 90 * DAY_MS,
        })
      ).certPEM,
    );
    expect(ipOnly.subject).toContain('CN=10.0.0.5');
    expect(ipOnly.subjectAltName).toBe('IP Address:10.0.0.5, IP Address:2001:DB8:0:0:0:0:0:1');
  });
});

describe('issueClientCertificate', () => {
  let client: IssuedCertificate;
  let clientX509: X509Certificate;
  let clientFile: string;
  let clientText: string;
  beforeAll(async () => {
    client = await issueClientCertificate({
      ca: { certPEM: ca.certPEM, key: caKey },
      name: 'docker client',
      lifetimeMs: 90 * DAY_MS,
      now,
    });
    clientX509 = new X509Certificate(client.certPEM);
    clientFile = write('client.crt', client.certPEM);
    clientText = opensslText(clientFile);
  });

  it.each<[string, string[], boolean]>([
    ['strict RFC 5280 checks for a TLS client', ['-x509_strict', '-purpose', 'sslclient'], true],
    ['TLS server use', ['-purpose', 'sslserver'], false],
  ])('openssl verify against the issuing CA for %s: %s', (_what, flags, expected) => {
    const { ok, output } = openssl('verify', ...flags, '-CAfile', caFile, clientFile);
    expect(ok, output).toBe(expected);
  });

  it('does not verify against another CA with the same name', () => {
    const { ok, output } = openssl(
      'verify',
      '-purpose',
      'sslclient',
      '-CAfile',
      otherCAFile,
      clientFile,
    );
    expect(ok, output).toBe(false);
  });

  it.each<[string, string]>([
    ['Basic Constraints', 'critical CA:FALSE'],
    ['Key Usage', 'critical Digital Signature, Key Encipherment'],
    ['Extended Key Usage', 'TLS Web Client Authentication'],
  ])('openssl reads the client certificate %s', (name, expected) => {
    expect(extension(clientText, name)).toBe(expected);
  });

  it('is named after `name`, issued by the CA', () => {
    expect(/Subject: ([^\n]*)/.exec(clientText)?.[1]).toBe(
      'CN = docker client, O = registry-tls-proxy',
    );
    expect(/Issuer: ([^\n]*)/.exec(clientText)?.[1]).toBe(
      'CN = registry-tls-proxy test CA, O = registry-tls-proxy',
    );
  });

  it.each<[string, (x: X509Certificate) => unknown, unknown]>([
    ['is not a CA', (x) => x.ca, false],
    ['is for TLS clients only', (x) => x.keyUsage, ['1.3.6.1.5.5.7.3.2']],
    ['was issued by the CA', (x) => x.checkIssued(caX509), true],
    ['is signed by the CA key', (x) => x.verify(caX509.publicKey), true],
  ])('to Node, the client certificate %s', (_what, read, expected) => {
    expect(read(clientX509)).toEqual(expected);
  });

  it("carries the CA's Subject Key Identifier as Authority Key Identifier", () => {
    expect(keyId(extension(clientText, 'Authority Key Identifier'))).toBe(
      keyId(extension(caText, 'Subject Key Identifier')),
    );
    expect(keyId(extension(clientText, 'Subject Key Identifier'))).toBe(
      keyIdentifierOf(clientX509.publicKey),
    );
  });

  it('is valid from an hour ago for lifetimeMs, with a PKCS#8 key matching it', () => {
    expect(new Date(clientX509.validFrom).getTime()).toBeCloseTo(now.getTime() - 3600_000, -4);
    expect(new Date(clientX509.validTo).getTime()).toBeCloseTo(now.getTime() + 90 * DAY_MS, -4);
    expect(client.keyPEM).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const key = createPrivateKey(client.keyPEM);
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(clientX509.checkPrivateKey(key)).toBe(true);
  });
});

describe('backdating is at most a tenth of the lifetime', () => {
  it('a 30-second certificate has notBefore at most 3 s before now', async () => {
    // Whole seconds: X.509 times carry no fractions, so the bound can be checked exactly.
    const issuedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const short = new X509Certificate(
      (
        await issueServerCertificate({
          ca: { certPEM: ca.certPEM, key: caKey },
          sans: SANS,
          lifetimeMs: 30_000,
          now: issuedAt,
        })
      ).certPEM,
    );
    const notBefore = new Date(short.validFrom).getTime();
    expect(notBefore).toBeLessThanOrEqual(issuedAt.getTime());
    expect(issuedAt.getTime() - notBefore).toBeLessThanOrEqual(3000);
    expect(new Date(short.validTo).getTime()).toBe(issuedAt.getTime() + 30_000);
  });
});

describe('a leaf never outlives its CA', () => {
  // [CA lifetime in days, leaf lifetime in days, leaf issued this many days after the CA]
  it.each<[number, number, number]>([
    [30, 825, 0],
    [30, 90, 20],
    [30, 31, 0],
    [30, 10, 0],
    [30, 10, 19],
  ])('CA of %i days, leaf of %i days issued on day %i', async (caDays, leafDays, dayIssued) => {
    const caNotAfter = new Date(new X509Certificate(otherCA.certPEM).validTo).getTime();
    expect(caNotAfter).toBeCloseTo(now.getTime() + caDays * DAY_MS, -4);
    const issuedAt = new Date(now.getTime() + dayIssued * DAY_MS);
    const issued = await issueServerCertificate({
      ca: { certPEM: otherCA.certPEM, key: createPrivateKey(otherCA.keyPEM) },
      sans: SANS,
      lifetimeMs: leafDays * DAY_MS,
      now: issuedAt,
    });
    const x = new X509Certificate(issued.certPEM);
    const notAfter = new Date(x.validTo).getTime();
    expect(notAfter).toBeLessThanOrEqual(caNotAfter);
    expect(notAfter).toBeCloseTo(Math.min(issuedAt.getTime() + leafDays * DAY_MS, caNotAfter), -4);
    // openssl agrees at the moment of issue.
    const file = write(`capped-${caDays}-${leafDays}-${dayIssued}.crt`, issued.certPEM);
    const attime = String(Math.floor(issuedAt.getTime() / 1000));
    const { ok, output } = openssl('verify', '-attime', attime, '-CAfile', otherCAFile, file);
    expect(ok, output).toBe(true);
  });
});

describe('serial numbers', () => {
  it('differ between certificates and are positive 128-bit numbers', async () => {
    const key = { certPEM: ca.certPEM, key: caKey };
    const serialOf = async () =>
      new X509Certificate(
        (await issueServerCertificate({ ca: key, sans: SANS, lifetimeMs: DAY_MS })).certPEM,
      ).serialNumber;
    const serials = [
      caX509.serialNumber,
      leafX509.serialNumber,
      new X509Certificate(otherCA.certPEM).serialNumber,
      await serialOf(),
      await serialOf(),
      new X509Certificate(
        (await issueClientCertificate({ ca: key, name: 'serial client', lifetimeMs: DAY_MS }))
          .certPEM,
      ).serialNumber,
    ];
    expect(new Set(serials).size).toBe(serials.length);
    for (const serial of serials) {
      // First byte 01..7F: positive in DER, no leading zero byte, 16 bytes in all.
      expect(serial).toMatch(/^(0[1-9A-F]|[1-7][0-9A-F])[0-9A-F]{30}$/);
    }
  });

  it('as openssl prints them, match what Node reads', () => {
    const printed = /Serial Number:\s*\n\s+([0-9a-f:]+)/.exec(leafText)?.[1];
    expect(printed?.replace(/:/g, '').toUpperCase()).toBe(leafX509.serialNumber);
  });
});
