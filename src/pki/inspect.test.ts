/**
 * Every certificate here is made by the openssl CLI, the way users make theirs
 * (a root, an intermediate, leaves with -extfile snippets), and the verdicts are
 * checked against `openssl verify` where it has an opinion.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FINDING_CODES, type Finding } from './finding.js';
import { inspectSuppliedCertificate, matchesDNSName, type Inspection } from './inspect.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const NAMES = ['registry.example.com', '10.0.0.5'];

const tmp = mkdtempSync(join(tmpdir(), 'rtp-inspect-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const file = (name: string): string => join(tmp, name);
const read = (name: string): string => readFileSync(file(name), 'utf8');
const x509 = (name: string): X509Certificate => new X509Certificate(read(name));

function openssl(...args: string[]): string {
  return execFileSync('openssl', args, { cwd: tmp, encoding: 'utf8', stdio: 'pipe' });
}

const CA_EXT = [
  'basicConstraints=critical,CA:TRUE',
  'keyUsage=critical,keyCertSign,cRLSign',
  'subjectKeyIdentifier=hash',
];
function leafExt(opts: { san?: string; eku?: string; ca?: boolean } = {}): string[] {
  return [
    `basicConstraints=critical,CA:${opts.ca ? 'TRUE' : 'FALSE'}`,
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${opts.eku ?? 'serverAuth'}`,
    ...(opts.san === ''
      ? []
      : [`subjectAltName=${opts.san ?? 'DNS:registry.example.com,IP:10.0.0.5'}`]),
    'subjectKeyIdentifier=hash',
  ];
}

interface IssueOptions {
  subject: string;
  ext: string[];
  /** Fixture name of the signing CA; self-signed without. */
  issuer?: string;
  days?: number;
  /** Exact validity (YYYYMMDDHHMMSSZ), through `openssl ca`: openssl 3.0's x509 lacks -not_before. */
  dates?: [start: string, end: string];
}

/** Writes NAME.key and NAME.crt: a P-256 key, a CSR, then the certificate. */
function issue(name: string, opts: IssueOptions): void {
  const ext = [...opts.ext, ...(opts.issuer ? ['authorityKeyIdentifier=keyid:always'] : [])];
  writeFileSync(file(`${name}.ext`), `${ext.join('\n')}\n`);
  // prettier-ignore
  openssl(
    'req', '-config', 'req.cnf', '-new', '-nodes', '-subj', opts.subject,
    '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-keyout', `${name}.key`, '-out', `${name}.csr`,
  );
  const common = ['-in', `${name}.csr`, '-out', `${name}.crt`, '-extfile', `${name}.ext`];
  if (!opts.issuer) {
    openssl('x509', '-req', ...common, '-key', `${name}.key`, '-days', `${opts.days ?? 90}`);
  } else if (opts.dates) {
    const [start, end] = opts.dates;
    // prettier-ignore
    openssl(
      'ca', '-batch', '-notext', '-config', 'ca.cnf', ...common,
      '-cert', `${opts.issuer}.crt`, '-keyfile', `${opts.issuer}.key`,
      '-startdate', start, '-enddate', end,
    );
  } else {
    // prettier-ignore
    openssl(
      'x509', '-req', ...common, '-days', `${opts.days ?? 90}`,
      '-CA', `${opts.issuer}.crt`, '-CAkey', `${opts.issuer}.key`,
      '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    );
  }
}

beforeAll(() => {
  // Minimal configs so the system openssl.cnf (and its default extensions) play no part.
  writeFileSync(file('req.cnf'), '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = x\n');
  mkdirSync(file('ca-db'));
  writeFileSync(file('ca-db/index.txt'), '');
  writeFileSync(file('ca-db/serial'), '1000\n');
  writeFileSync(
    file('ca.cnf'),
    [
      '[ca]',
      'default_ca = test',
      '[test]',
      `database = ${file('ca-db/index.txt')}`,
      `new_certs_dir = ${file('ca-db')}`,
      `serial = ${file('ca-db/serial')}`,
      'default_md = sha256',
      'policy = any',
      'unique_subject = no',
      '[any]',
      'commonName = supplied',
      '',
    ].join('\n'),
  );

  issue('root', { subject: '/CN=Test Root CA', ext: CA_EXT, days: 3650 });
  issue('int', { subject: '/CN=Test Intermediate CA', ext: CA_EXT, issuer: 'root', days: 1825 });
  const byInt = { issuer: 'int', subject: '/CN=registry.example.com' };
  issue('leaf', { ...byInt, ext: leafExt() });
  issue('dns-ip', { ...byInt, ext: leafExt({ san: 'DNS:registry.example.com,DNS:10.0.0.5' }) });
  issue('wildcard', { ...byInt, ext: leafExt({ san: 'DNS:*.example.com' }) });
  issue('no-san', { ...byInt, ext: leafExt({ san: '' }) });
  issue('ca-leaf', { ...byInt, ext: leafExt({ ca: true }) });
  issue('client-only', { ...byInt, ext: leafExt({ eku: 'clientAuth' }) });
  issue('expired', { ...byInt, ext: leafExt(), dates: ['20200101000000Z', '20210101000000Z'] });
  issue('future', { ...byInt, ext: leafExt(), dates: ['20990101000000Z', '21000101000000Z'] });
  issue('self-signed', { subject: '/CN=registry.example.com', ext: leafExt() });
  // What `openssl req -x509` with Debian's default openssl.cnf makes: a self-signed CA:TRUE.
  issue('quick', { subject: '/CN=registry.example.com', ext: leafExt({ ca: true }) });

  const clientCA = [...CA_EXT, 'extendedKeyUsage=clientAuth'];
  issue('client-int', { subject: '/CN=Client-only CA', ext: clientCA, issuer: 'root' });
  issue('under-client-int', { ...byInt, issuer: 'client-int', ext: leafExt() });
  // Valid for 30 days, signing a leaf valid for 90: openssl x509 does not clamp.
  issue('short-int', { subject: '/CN=Short-lived CA', ext: CA_EXT, issuer: 'root', days: 30 });
  issue('under-short-int', { ...byInt, issuer: 'short-int', ext: leafExt() });

  // Same name and key identifier as the real intermediate, another key: only the signature tells.
  const ski = /([0-9A-F]{2}(:[0-9A-F]{2})+)/.exec(
    openssl('x509', '-in', 'int.crt', '-noout', '-ext', 'subjectKeyIdentifier'),
  )![1]!;
  const impostorExt = [...CA_EXT.slice(0, 2), `subjectKeyIdentifier=${ski.replace(/:/g, '')}`];
  issue('impostor', { subject: '/CN=Test Intermediate CA', ext: impostorExt, issuer: 'root' });

  openssl('ecparam', '-genkey', '-name', 'prime256v1', '-noout', '-out', 'other.key'); // SEC1 PEM
  openssl('pkey', '-in', 'leaf.key', '-aes256', '-passout', 'pass:secret', '-out', 'locked.key');
  writeFileSync(file('garbage.txt'), 'this is not PEM\n');
  const body = read('leaf.crt').split('\n').slice(1, -2).join('\n');
  writeFileSync(
    file('corrupt.crt'),
    `-----BEGIN CERTIFICATE-----\n${body.slice(0, 200)}\n-----END CERTIFICATE-----\n`,
  );
});

interface Case {
  /** Files concatenated into tls.cert, as `cat a b > fullchain.pem` would. */
  cert: string[];
  key?: string;
  ca?: string[];
  /** Fixture names of trust anchors; 'node' for Node's bundled roots. Default: the test root. */
  roots?: string[] | 'node';
  names?: string[];
  now?: () => Date;
  warnBeforeMs?: number;
}

function inspect(c: Case): Inspection {
  const certFile = file(`${c.cert.join('+')}.pem`);
  writeFileSync(certFile, c.cert.map(read).join(''));
  const keyFile = file(c.key ?? 'leaf.key');
  const caFile = c.ca && file(`${c.ca.join('+')}.ca.pem`);
  if (caFile) writeFileSync(caFile, c.ca!.map(read).join(''));
  const roots = c.roots ?? ['root.crt'];
  const result = inspectSuppliedCertificate(
    {
      certPEM: readFileSync(certFile, 'utf8'),
      keyPEM: readFileSync(keyFile, 'utf8'),
      certFile,
      keyFile,
      ...(caFile ? { caPEM: readFileSync(caFile, 'utf8'), caFile } : {}),
    },
    {
      names: c.names ?? NAMES,
      now: c.now?.() ?? new Date(),
      warnBeforeMs: c.warnBeforeMs ?? 14 * DAY_MS,
      ...(roots === 'node' ? {} : { roots: roots.map(read) }),
    },
  );
  for (const f of result.findings) {
    // Context first, naming the file; a known code; no template holes.
    expect(f.message).toMatch(/^tls\.(cert|key|ca) \/\S+: /);
    expect(FINDING_CODES).toContain(f.code);
    expect(f.message).not.toMatch(/undefined|\[object/);
  }
  return result;
}

/** [severity, code, ...phrases every finding with that code must contain between them] */
type Expected = [Finding['severity'], string, ...string[]];

function expectFindings(findings: readonly Finding[], expected: readonly Expected[]): void {
  const got = findings.map((f) => `${f.severity} ${f.code}`).sort();
  expect(got, JSON.stringify(findings, null, 2)).toEqual(
    expected.map(([s, c]) => `${s} ${c}`).sort(),
  );
  for (const [severity, code, ...phrases] of expected) {
    const text = findings
      .filter((f) => f.severity === severity && f.code === code)
      .map((f) => f.message)
      .join('\n');
    for (const phrase of phrases) expect(text).toContain(phrase);
  }
}

/** The subjects of a PEM bundle, in order. */
function subjects(pem: string): string[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map(
    (block) => new X509Certificate(block).subject,
  );
}

const LEAF = 'CN=registry.example.com';
const INT = 'CN=Test Intermediate CA';
const FULLCHAIN = '(fullchain.cer / fullchain.pem, not example.com.cer / cert.pem)';

describe('inspectSuppliedCertificate: the chain', () => {
  it.each<[string, Case, Expected[], string[]]>([
    ['a full chain whose root is trusted', { cert: ['leaf.crt', 'int.crt'] }, [], [LEAF, INT]],
    [
      'the leaf without its intermediate',
      { cert: ['leaf.crt'] },
      [
        [
          'error',
          'CHAIN_INCOMPLETE',
          'serve the full chain',
          FULLCHAIN,
          `issued by "${INT}"`,
          'x509: certificate signed by unknown authority',
        ],
      ],
      [LEAF],
    ],
    [
      'an impostor intermediate: right name and key identifier, wrong key',
      { cert: ['leaf.crt', 'impostor.crt'] },
      [['error', 'CHAIN_INCOMPLETE', `issued by "${INT}", which is in neither`]],
      [LEAF],
    ],
    ['the intermediate in tls.ca', { cert: ['leaf.crt'], ca: ['int.crt'] }, [], [LEAF, INT]],
    [
      'an intermediate whose issuer is neither supplied nor trusted',
      { cert: ['leaf.crt', 'int.crt'], roots: [] },
      [
        [
          'error',
          'CHAIN_INCOMPLETE',
          'serve the full chain',
          FULLCHAIN,
          `the chain ends at "${INT}"`,
          'issued by "CN=Test Root CA"',
          'private root',
        ],
      ],
      [LEAF, INT],
    ],
    [
      "a private CA, checked against Node's bundled roots",
      { cert: ['leaf.crt', 'int.crt'], roots: 'node' },
      [['error', 'CHAIN_INCOMPLETE', 'serve the full chain', 'is not a trusted root']],
      [LEAF, INT],
    ],
    [
      'a private root in tls.ca, not served',
      { cert: ['leaf.crt', 'int.crt'], ca: ['root.crt'], roots: [] },
      [],
      [LEAF, INT],
    ],
    [
      'the root in the file too, not served',
      { cert: ['leaf.crt', 'int.crt', 'root.crt'] },
      [],
      [LEAF, INT],
    ],
    [
      'the chain reversed',
      { cert: ['int.crt', 'leaf.crt'] },
      [
        [
          'warning',
          'CHAIN_ORDER',
          `the file has "${INT}", "${LEAF}"`,
          `serves "${LEAF}", "${INT}" instead`,
          'reorder the file',
        ],
      ],
      [LEAF, INT],
    ],
    [
      'the leaf first, the rest out of order',
      { cert: ['leaf.crt', 'root.crt', 'int.crt'] },
      [['warning', 'CHAIN_ORDER', 'not in chain order', `serves "${LEAF}", "${INT}" instead`]],
      [LEAF, INT],
    ],
    [
      'a certificate outside the chain',
      { cert: ['leaf.crt', 'int.crt', 'short-int.crt'] },
      [['warning', 'CHAIN_EXTRA', '"CN=Short-lived CA" is not in the chain', 'not served']],
      [LEAF, INT],
    ],
    [
      'a self-signed certificate',
      { cert: ['self-signed.crt'], key: 'self-signed.key', roots: [] },
      [],
      [LEAF],
    ],
  ])('%s', (_name, c, expected, served) => {
    const { findings, chainPEM } = inspect(c);
    expectFindings(findings, expected);
    expect(subjects(chainPEM)).toEqual(served);
  });

  it('serves exactly the certificates openssl made, leaf first', () => {
    const { chainPEM, leaf } = inspect({ cert: ['int.crt', 'leaf.crt'] });
    expect(chainPEM).toBe(read('leaf.crt') + read('int.crt'));
    expect(leaf).toEqual({
      subject: LEAF,
      sans: { dns: ['registry.example.com'], ips: ['10.0.0.5'] },
      notBefore: new Date(x509('leaf.crt').validFrom),
      notAfter: new Date(x509('leaf.crt').validTo),
      fingerprint256: x509('leaf.crt').fingerprint256,
    });
  });
});

describe('inspectSuppliedCertificate: files and keys', () => {
  it.each<[string, Case, Expected[]]>([
    [
      'a key from another certificate',
      { cert: ['leaf.crt', 'int.crt'], key: 'other.key' },
      [
        [
          'error',
          'KEY_MISMATCH',
          `tls.key ${file('other.key')}: does not match tls.cert`,
          'use the key that was generated with this certificate',
        ],
      ],
    ],
    [
      'a cert file without PEM',
      { cert: ['garbage.txt'] },
      [['error', 'PARSE_ERROR', `tls.cert ${file('garbage.txt.pem')}: no PEM certificate`]],
    ],
    [
      'a damaged PEM block',
      { cert: ['corrupt.crt'] },
      [['error', 'PARSE_ERROR', 'certificate #1 of 1 does not parse']],
    ],
    [
      'a key file without a key',
      { cert: ['leaf.crt', 'int.crt'], key: 'garbage.txt' },
      [['error', 'PARSE_ERROR', `tls.key ${file('garbage.txt')}: does not parse as a private key`]],
    ],
    [
      'an encrypted key',
      { cert: ['leaf.crt', 'int.crt'], key: 'locked.key' },
      [['error', 'PARSE_ERROR', 'tls.key', 'encrypted', 'without a passphrase']],
    ],
    [
      'cert and key swapped',
      { cert: ['leaf.key'], key: 'leaf.crt' },
      [
        ['error', 'PARSE_ERROR', 'tls.cert', 'holds a private key'],
        ['error', 'PARSE_ERROR', 'tls.key', 'are tls.cert and tls.key swapped?'],
      ],
    ],
    [
      'a tls.ca without certificates',
      { cert: ['leaf.crt', 'int.crt'], ca: ['garbage.txt'] },
      [['error', 'PARSE_ERROR', 'tls.ca', 'no PEM certificate']],
    ],
  ])('%s', (_name, c, expected) => {
    expectFindings(inspect(c).findings, expected);
  });

  it('reports no leaf and serves nothing when tls.cert does not parse', () => {
    const result = inspect({ cert: ['garbage.txt'] });
    expect(result.leaf).toBeUndefined();
    expect(result.chainPEM).toBe('');
  });
});

describe('inspectSuppliedCertificate: names', () => {
  const ip = (host: string) =>
    `x509: cannot validate certificate for ${host} because it doesn't contain any IP SANs`;
  it.each<[string, string, Expected[]]>([
    ['registry.example.com', 'leaf', []],
    ['REGISTRY.Example.COM', 'leaf', []],
    ['registry.example.com.', 'leaf', []],
    ['10.0.0.5', 'leaf', []],
    ['::ffff:10.0.0.5', 'leaf', []],
    [
      '10.0.0.6',
      'leaf',
      [
        [
          'error',
          'NAME_NOT_COVERED',
          'clients using 10.0.0.6 will get "x509: certificate is valid for 10.0.0.5, not 10.0.0.6"',
          'reissue the certificate with 10.0.0.6 as an IP SAN, or remove it from tls.names',
        ],
      ],
    ],
    [
      'other.example.com',
      'leaf',
      [
        [
          'error',
          'NAME_NOT_COVERED',
          '"x509: certificate is valid for registry.example.com, not other.example.com"',
          'other.example.com as a DNS SAN',
        ],
      ],
    ],
    [
      '10.0.0.5',
      'dns-ip',
      [['error', 'NAME_NOT_COVERED', ip('10.0.0.5'), 'is there as a DNS SAN', 'as an IP SAN']],
    ],
    ['a.example.com', 'wildcard', []],
    ['A.Example.com', 'wildcard', []],
    [
      'example.com',
      'wildcard',
      [['error', 'NAME_NOT_COVERED', 'valid for *.example.com, not example.com']],
    ],
    [
      'a.b.example.com',
      'wildcard',
      [['error', 'NAME_NOT_COVERED', 'valid for *.example.com, not a.b.example.com']],
    ],
    ['10.0.0.5', 'wildcard', [['error', 'NAME_NOT_COVERED', ip('10.0.0.5')]]],
    [
      'registry.example.com',
      'no-san',
      [
        [
          'error',
          'NAME_NOT_COVERED',
          'x509: certificate relies on legacy Common Name field, use SANs instead',
        ],
      ],
    ],
    [
      'other.example.com',
      'no-san',
      [
        [
          'error',
          'NAME_NOT_COVERED',
          'x509: certificate is not valid for any names, but wanted to match other.example.com',
        ],
      ],
    ],
  ])('%s against %s.crt', (name, leaf, expected) => {
    const { findings } = inspect({
      cert: [`${leaf}.crt`, 'int.crt'],
      key: `${leaf}.key`,
      names: [name],
    });
    expectFindings(findings, expected);
  });

  it('reports every uncovered name at once', () => {
    const { findings } = inspect({
      cert: ['leaf.crt', 'int.crt'],
      names: ['a.example', '10.0.0.7', ...NAMES],
    });
    expect(findings.map((f) => f.message.match(/clients using (\S+)/)?.[1])).toEqual([
      'a.example',
      '10.0.0.7',
    ]);
  });

  it.each<[string, string, boolean]>([
    ['*.example.com', 'a.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'a.b.example.com', false],
    ['*.example.com', '.example.com', false],
    ['a.*.example.com', 'a.b.example.com', false],
    ['*.Example.COM.', 'x.example.com', true],
  ])('matchesDNSName(%s, %s) is %s', (pattern, host, expected) => {
    expect(matchesDNSName(pattern, host)).toBe(expected);
  });
});

describe('inspectSuppliedCertificate: usage', () => {
  it.each<[string, Case, Expected[]]>([
    [
      'a leaf with CA:TRUE',
      { cert: ['ca-leaf.crt', 'int.crt'], key: 'ca-leaf.key' },
      [
        [
          'error',
          'LEAF_IS_CA',
          'CA:TRUE',
          'MOZILLA_PKIX_ERROR_CA_CERT_USED_AS_END_ENTITY',
          'reissue it with basicConstraints=critical,CA:FALSE',
        ],
      ],
    ],
    [
      'a self-signed quick test certificate with CA:TRUE (Go clients accept it)',
      { cert: ['quick.crt'], key: 'quick.key', roots: [] },
      [['warning', 'LEAF_IS_CA', 'CA:TRUE']],
    ],
    [
      'a clientAuth-only leaf',
      { cert: ['client-only.crt', 'int.crt'], key: 'client-only.key' },
      [
        [
          'error',
          'NOT_SERVER_AUTH',
          'allows only clientAuth, not serverAuth',
          'x509: certificate specifies an incompatible key usage',
          'extendedKeyUsage=serverAuth',
        ],
      ],
    ],
    [
      'an intermediate restricted to clientAuth',
      { cert: ['under-client-int.crt', 'client-int.crt'], key: 'under-client-int.key' },
      [
        [
          'error',
          'NOT_SERVER_AUTH',
          'the CA certificate "CN=Client-only CA" allows only clientAuth',
          'incompatible key usage',
        ],
      ],
    ],
  ])('%s', (_name, c, expected) => {
    expectFindings(inspect(c).findings, expected);
  });
});

describe('inspectSuppliedCertificate: validity', () => {
  const notAfter = (name: string) => new Date(x509(name).validTo).getTime();
  const RENEW = 'renew it; the proxy reloads replaced files without a restart';
  it.each<[string, Case, Expected[]]>([
    [
      'an expired leaf',
      { cert: ['expired.crt', 'int.crt'], key: 'expired.key' },
      [
        [
          'error',
          'EXPIRED',
          'the certificate expired on 2021-01-01T00:00:00Z',
          'x509: certificate has expired or is not yet valid',
          RENEW,
        ],
      ],
    ],
    [
      'a leaf valid from 2099',
      { cert: ['future.crt', 'int.crt'], key: 'future.key' },
      [['error', 'NOT_YET_VALID', 'not valid before 2099-01-01T00:00:00Z', 'check the clocks']],
    ],
    [
      'a leaf with 3 days left',
      { cert: ['leaf.crt', 'int.crt'], now: () => new Date(notAfter('leaf.crt') - 3 * DAY_MS) },
      [['warning', 'EXPIRING_SOON', 'expires on', 'in 3 days', RENEW]],
    ],
    [
      'a leaf with 20 days left',
      { cert: ['leaf.crt', 'int.crt'], now: () => new Date(notAfter('leaf.crt') - 20 * DAY_MS) },
      [],
    ],
    [
      'a leaf at its last hours',
      { cert: ['leaf.crt', 'int.crt'], now: () => new Date(notAfter('leaf.crt') - 5 * 3_600_000) },
      [['warning', 'EXPIRING_SOON', 'in 5 hours']],
    ],
    [
      'an expired intermediate under a valid leaf',
      {
        cert: ['under-short-int.crt', 'short-int.crt'],
        key: 'under-short-int.key',
        now: () => new Date(Date.now() + 60 * DAY_MS),
      },
      [
        [
          'error',
          'EXPIRED',
          `tls.cert ${file('under-short-int.crt+short-int.crt.pem')}: the CA certificate "CN=Short-lived CA" expired on`,
          'fullchain.pem',
        ],
      ],
    ],
  ])('%s', (_name, c, expected) => {
    expectFindings(inspect(c).findings, expected);
  });
});

describe('agreement with openssl verify', () => {
  /** openssl verify -purpose sslserver, trusting the test root, given the chain after the leaf. */
  function opensslVerifies(cert: string[], check: string[]): boolean {
    const [leaf, ...rest] = cert;
    const untrusted = file('untrusted.pem');
    writeFileSync(untrusted, rest.map(read).join(''));
    const args = ['verify', '-purpose', 'sslserver', '-CAfile', 'root.crt', ...check];
    if (rest.length > 0) args.push('-untrusted', untrusted);
    return spawnSync('openssl', [...args, leaf!], { cwd: tmp }).status === 0;
  }

  it.each<[string, string[], string[], boolean]>([
    ['a full chain', ['leaf.crt', 'int.crt'], [], true],
    ['the leaf alone', ['leaf.crt'], [], false],
    ['an impostor intermediate', ['leaf.crt', 'impostor.crt'], [], false],
    ['an IP SAN', ['leaf.crt', 'int.crt'], ['-verify_ip', '10.0.0.5'], true],
    ['a missing IP SAN', ['leaf.crt', 'int.crt'], ['-verify_ip', '10.0.0.6'], false],
    ['an IP as a DNS SAN', ['dns-ip.crt', 'int.crt'], ['-verify_ip', '10.0.0.5'], false],
    [
      'a wildcard, one label',
      ['wildcard.crt', 'int.crt'],
      ['-verify_hostname', 'a.example.com'],
      true,
    ],
    [
      'a wildcard, two labels',
      ['wildcard.crt', 'int.crt'],
      ['-verify_hostname', 'a.b.example.com'],
      false,
    ],
    ['a clientAuth-only leaf', ['client-only.crt', 'int.crt'], [], false],
    ['an expired leaf', ['expired.crt', 'int.crt'], [], false],
    ['a leaf not yet valid', ['future.crt', 'int.crt'], [], false],
  ])('%s', (_name, cert, check, verifies) => {
    const name = check[1];
    const { findings } = inspect({
      cert,
      key: cert[0]!.replace('.crt', '.key'),
      names: name ? [name] : [],
    });
    const errors = findings.filter((f) => f.severity === 'error');
    expect(opensslVerifies(cert, check)).toBe(verifies);
    expect(errors.length === 0, JSON.stringify(errors)).toBe(verifies);
  });
});
