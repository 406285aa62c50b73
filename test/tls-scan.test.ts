/**
 * testssl.sh (Debian's `testssl`) against the proxy in front of the real registry,
 * trusting the proxy's CA as a configured client would. What the scan must show:
 * no VULNERABLE or potentially VULNERABLE finding, no SSLv2/3 or TLS 1.0/1.1, no CBC
 * (or other weak) cipher, forward secrecy and AEAD for every suite offered, HSTS.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { useRegistryBehindProxy } from './helpers/fixture.js';

interface Finding {
  id: string;
  severity: string;
  finding: string;
}

describe('testssl.sh scan of the public port', () => {
  const env = useRegistryBehindProxy('tls-scan', {
    auth: { kind: 'htpasswd', user: 'scan', password: 'scan-password' },
  });
  let findings: Finding[] = [];
  const byId = (id: string) => findings.find((f) => f.id === id)?.finding;

  beforeAll(async () => {
    const json = join(env.tmp, 'testssl.json');
    // testssl's exit status is not a verdict (it is non-zero whenever a check could not run
    // or a finding is not OK); the JSON findings are what the assertions read.
    await promisify(execFile)(
      'testssl',
      [
        '--quiet',
        '--color',
        '0',
        '--warnings',
        'off',
        '--add-ca',
        env.proxy.caFile,
        '--jsonfile',
        json,
        `127.0.0.1:${env.proxy.port}`,
      ],
      { timeout: 300_000, maxBuffer: 16 << 20 },
    ).catch((err: Error & { code?: unknown; stderr?: string }) => {
      if (typeof err.code !== 'number') throw err;
      console.log(`testssl exited ${err.code}${err.stderr ? `: ${err.stderr.slice(0, 500)}` : ''}`);
    });
    findings = JSON.parse(readFileSync(json, 'utf8')) as Finding[];
    const notable = findings.filter((f) => !['OK', 'INFO'].includes(f.severity));
    console.log(
      `testssl: ${findings.length} findings; not OK/INFO:\n` +
        notable.map((f) => `  ${f.id} ${f.severity}: ${f.finding}`).join('\n'),
    );
  }, 320_000);

  it('finds nothing VULNERABLE or potentially VULNERABLE', () => {
    expect(findings.length).toBeGreaterThan(50);
    // testssl writes "not vulnerable" in lower case and the bad verdicts in upper case.
    expect(findings.filter((f) => /VULNERABLE/.test(f.finding))).toEqual([]);
    for (const id of ['heartbleed', 'CCS', 'ROBOT', 'CRIME_TLS', 'BREACH', 'POODLE_SSL']) {
      expect(byId(id), id).toMatch(/^not vulnerable/);
    }
    // Refused outright (SSL_OP_NO_RENEGOTIATION), not just rate-limited ("mitigated").
    expect(byId('secure_client_renego')).toBe('not vulnerable');
  });

  it('offers only TLS 1.2 and 1.3', () => {
    for (const id of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1']) expect(byId(id), id).toBe('not offered');
    expect(byId('TLS1_2')).toBe('offered');
    expect(byId('TLS1_3')).toMatch(/^offered/);
  });

  it('offers no CBC or weak ciphers; every suite has forward secrecy and AEAD', () => {
    for (const id of [
      'cipherlist_NULL',
      'cipherlist_aNULL',
      'cipherlist_EXPORT',
      'cipherlist_LOW',
      'cipherlist_3DES_IDEA',
      'cipherlist_AVERAGE', // testssl's "obsoleted CBC ciphers"
    ]) {
      expect(byId(id), id).toBe('not offered');
    }
    expect(byId('PFS')).toBe('offered');
    const suites = findings.filter((f) => /^cipher_x[0-9a-f]+$/.test(f.id));
    expect(suites.length).toBeGreaterThanOrEqual(4);
    for (const suite of suites) {
      expect(suite.finding, suite.id).toMatch(/\bECDH\b/);
      expect(suite.finding, suite.id).toMatch(/\b(AESGCM|ChaCha20)\b/);
      expect(suite.finding, suite.id).not.toMatch(/CBC|SHA1?\s*$/);
    }
    expect(byId('cipher_order')).toBe('server');
  });

  it('finds two certificates, ECDSA P-256 and RSA-2048, each with a chain that verifies', () => {
    expect(byId('cert_numbers')).toBe('2');
    const perCertificate = (field: string) =>
      findings
        .filter((f) => new RegExp(`^${field} <cert#\\d>$`).test(f.id))
        .map((f) => f.finding)
        .sort();
    expect(perCertificate('cert_keySize')).toEqual(['EC 256 bits', 'RSA 2048 bits']);
    expect(perCertificate('cert_chain_of_trust')).toEqual(['passed.', 'passed.']);
    expect(perCertificate('cert_trust')).toEqual(['Ok via SAN', 'Ok via SAN']);
  });

  it('sends HSTS', () => {
    // testssl reports "HSTS: not offered", or HSTS_time with the max-age when it is.
    expect(byId('HSTS')).toBeUndefined();
    expect(byId('HSTS_time')).toMatch(/^365 days \(=31536000 seconds\)/);
  });
});
