import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dnsConfigProblems, parseDNSServer, type DnsConfig } from './index.js';

const P = 'tls.acme.dns';
const SECRET = 'q3+vPy0nJ5RkRg6tq6ew4UYV0pS6n+xw0xEJvM+Aq0k=';
const GOOD = {
  server: '127.0.0.1:53',
  keyName: 'acme-key',
  keyAlgorithm: 'hmac-sha256',
  keySecret: SECRET,
};

const tmp = mkdtempSync(join(tmpdir(), 'rtp-dns-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('dnsConfigProblems', () => {
  it('neither rfc2136 nor command is one problem that names both', () => {
    expect(dnsConfigProblems({}, P)).toEqual([
      "tls.acme.dns: dns-01 needs tls.acme.dns.rfc2136 (dynamic updates with a TSIG key) or tls.acme.dns.command (a hook script for your DNS provider's API)",
    ]);
  });

  it("a schema's empty defaults choose nothing", () => {
    const empty: DnsConfig = {
      rfc2136: { server: '', keyName: '', keyAlgorithm: 'hmac-sha256', keySecret: '' },
      command: '',
    };
    expect(dnsConfigProblems(empty, P)).toHaveLength(1);
    expect(dnsConfigProblems(empty, P)[0]).toContain('dns-01 needs');
  });

  it('lists every problem of a bad rfc2136 block at once, and never quotes the secret', () => {
    const problems = dnsConfigProblems(
      {
        rfc2136: {
          server: 'dns:99999',
          keyName: 'bad key',
          keyAlgorithm: 'hmac-sha3',
          keySecret: 'not base64!',
        },
      },
      P,
    );
    expect(problems).toEqual([
      `${P}.rfc2136.server must be the zone's primary DNS server as host or host:port (port 53 by default, IPv6 in brackets: [2001:db8::53]:53)`,
      `${P}.rfc2136.keyName must be the TSIG key's name, as in named.conf's key "NAME" { … }`,
      `${P}.rfc2136.keyAlgorithm must be one of hmac-sha256, hmac-sha512, hmac-sha384, hmac-sha224, hmac-sha1, hmac-md5 (the key's algorithm in named.conf)`,
      `${P}.rfc2136.keySecret must be base64 (the secret from tsig-keygen's key.conf)`,
    ]);
    expect(problems.join('\n')).not.toContain('not base64!');
  });

  it('a missing secret says where it comes from', () => {
    expect(dnsConfigProblems({ rfc2136: { ...GOOD, keySecret: '' } }, P)).toEqual([
      `${P}.rfc2136.keySecret is missing: set the secret from tsig-keygen's key.conf`,
    ]);
  });

  it('both methods at once is a problem, listed with the others', () => {
    const problems = dnsConfigProblems(
      { rfc2136: { ...GOOD, server: '' }, command: '/bin/true' },
      P,
    );
    expect(problems).toEqual([
      `${P}: set ${P}.rfc2136 or ${P}.command, not both`,
      expect.stringContaining(`${P}.rfc2136.server must be`),
    ]);
  });

  it.each([
    ['hmac-sha256'],
    ['HMAC-SHA512.'],
    ['hmac-md5'],
    ['hmac-md5.sig-alg.reg.int.'],
    [''], // the default, hmac-sha256
  ])('accepts keyAlgorithm %j', (keyAlgorithm) => {
    expect(dnsConfigProblems({ rfc2136: { ...GOOD, keyAlgorithm } }, P)).toEqual([]);
  });

  it('an absolute command must be an executable file; other words are left to the shell', () => {
    const script = join(tmp, 'hook.sh');
    writeFileSync(script, '#!/bin/sh\n');
    chmodSync(script, 0o644);
    expect(dnsConfigProblems({ command: `${script} --zone x` }, P)).toEqual([
      `${P}.command: ${script} is not executable: chmod +x it`,
    ]);
    expect(dnsConfigProblems({ command: join(tmp, 'missing') }, P)).toEqual([
      `${P}.command: ${join(tmp, 'missing')} does not exist (ENOENT)`,
    ]);
    expect(dnsConfigProblems({ command: tmp }, P)).toEqual([`${P}.command: ${tmp} is not a file`]);
    chmodSync(script, 0o755);
    expect(dnsConfigProblems({ command: `${script} --zone x` }, P)).toEqual([]);
    expect(dnsConfigProblems({ command: 'dns-hook --zone x' }, P)).toEqual([]);
  });
});

describe('parseDNSServer', () => {
  it.each([
    ['ns1.example.com', { host: 'ns1.example.com', port: 53 }],
    ['ns1.example.com:5353', { host: 'ns1.example.com', port: 5353 }],
    ['192.0.2.53', { host: '192.0.2.53', port: 53 }],
    ['192.0.2.53:8053', { host: '192.0.2.53', port: 8053 }],
    ['2001:db8::53', { host: '2001:db8::53', port: 53 }],
    ['[2001:db8::53]', { host: '2001:db8::53', port: 53 }],
    ['[2001:db8::53]:5353', { host: '2001:db8::53', port: 5353 }],
  ])('%s', (value, expected) => {
    expect(parseDNSServer(value)).toEqual(expected);
  });

  it.each([[''], [':53'], ['ns1:0'], ['ns1:70000'], ['[ns1]:53'], ['a b']])(
    'rejects %j',
    (value) => {
      expect(parseDNSServer(value)).toBeUndefined();
    },
  );
});
