import { describe, expect, it } from 'vitest';
import { canonicalIP, computeSANs, missingSANs, type MachineIdentity, type SANs } from './sans.js';

const BARE: MachineIdentity = { hostname: '', addresses: [] };

describe('computeSANs', () => {
  it.each<[string, string[], MachineIdentity, SANs]>([
    [
      'sorts IPs into ips and names into dns, configured first',
      ['registry.lan', '10.0.0.5'],
      { hostname: 'box', addresses: [] },
      { dns: ['registry.lan', 'box', 'localhost'], ips: ['10.0.0.5', '127.0.0.1', '::1'] },
    ],
    [
      'keeps the configured order ahead of the machine and the loopback names',
      ['z.example', '192.168.9.9', 'a.example', '2001:db8::5'],
      { hostname: 'box', addresses: ['192.168.1.9', 'fd00::2'] },
      {
        dns: ['z.example', 'a.example', 'box', 'localhost'],
        ips: ['192.168.9.9', '2001:db8::5', '127.0.0.1', '::1', '192.168.1.9', 'fd00::2'],
      },
    ],
    [
      'always carries localhost, 127.0.0.1 and ::1',
      [],
      BARE,
      { dns: ['localhost'], ips: ['127.0.0.1', '::1'] },
    ],
    [
      'lower-cases names and drops a trailing dot',
      ['Registry.Example.COM.', 'MIRROR.lan'],
      { hostname: 'BOX.', addresses: [] },
      {
        dns: ['registry.example.com', 'mirror.lan', 'box', 'localhost'],
        ips: ['127.0.0.1', '::1'],
      },
    ],
    [
      'removes duplicates, keeping the first position',
      ['registry.lan', 'REGISTRY.LAN', 'registry.lan.', 'localhost', '10.0.0.5', '10.0.0.5'],
      { hostname: 'registry.lan', addresses: ['10.0.0.5', '127.0.0.1'] },
      { dns: ['registry.lan', 'localhost'], ips: ['10.0.0.5', '127.0.0.1', '::1'] },
    ],
    [
      'writes IPv4-mapped IPv6 as IPv4 and dedupes it against the IPv4 spelling',
      ['::ffff:10.0.0.5', '10.0.0.5', '::ffff:a00:6'],
      BARE,
      { dns: ['localhost'], ips: ['10.0.0.5', '10.0.0.6', '127.0.0.1', '::1'] },
    ],
    [
      'compresses IPv6 and dedupes its spellings',
      ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1', '0:0:0:0:0:0:0:1'],
      { hostname: 'box', addresses: ['FD00:0:0:0:0:0:0:2'] },
      { dns: ['box', 'localhost'], ips: ['2001:db8::1', '::1', '127.0.0.1', 'fd00::2'] },
    ],
    [
      'trims entries and skips empty ones',
      ['  registry.lan ', '', '   ', ' 10.0.0.5'],
      BARE,
      { dns: ['registry.lan', 'localhost'], ips: ['10.0.0.5', '127.0.0.1', '::1'] },
    ],
    [
      'keeps a wildcard name as a DNS name',
      ['*.registry.lan'],
      BARE,
      { dns: ['*.registry.lan', 'localhost'], ips: ['127.0.0.1', '::1'] },
    ],
  ])('%s', (_what, configured, machine, expected) => {
    expect(computeSANs(configured, machine)).toEqual(expected);
  });

  it('does not change its input', () => {
    const configured = ['Registry.LAN.'];
    const machine = { hostname: 'BOX', addresses: ['::ffff:10.0.0.5'] };
    computeSANs(configured, machine);
    expect(configured).toEqual(['Registry.LAN.']);
    expect(machine).toEqual({ hostname: 'BOX', addresses: ['::ffff:10.0.0.5'] });
  });
});

describe('canonicalIP', () => {
  it.each<[string, string]>([
    ['10.0.0.5', '10.0.0.5'],
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['::FFFF:10.1.2.3', '10.1.2.3'],
    ['::ffff:a01:203', '10.1.2.3'],
    ['0:0:0:0:0:ffff:0a01:0203', '10.1.2.3'],
    ['::ffff:ffff:ffff', '255.255.255.255'],
    ['::ffff:0:0', '0.0.0.0'],
    ['::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['::', '::'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['FE80::ABCD', 'fe80::abcd'],
    // RFC 5952 §4.2: the first of two equally long zero runs is the one shortened.
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    // RFC 5952 §4.2.2: a single zero field is not shortened to ::.
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    // Not IPv4-mapped (::ffff:0:0/96), so it stays IPv6.
    ['::10.1.2.3', '::a01:203'],
    ['64:ff9b::10.1.2.3', '64:ff9b::a01:203'],
  ])('%s → %s', (input, expected) => {
    expect(canonicalIP(input)).toBe(expected);
  });
});

describe('missingSANs', () => {
  const want: SANs = {
    dns: ['registry.lan', 'localhost'],
    ips: ['10.0.0.5', '127.0.0.1', '::1', '2001:db8::1'],
  };

  it.each<[string, SANs, string[]]>([
    ['nothing when every SAN is there', want, []],
    [
      'nothing when the certificate spells them differently',
      {
        dns: ['REGISTRY.LAN', 'Localhost'],
        ips: ['::ffff:10.0.0.5', '127.0.0.1', '0:0:0:0:0:0:0:1', '2001:DB8:0:0:0:0:0:1'],
      },
      [],
    ],
    [
      'nothing when the certificate carries more',
      { dns: [...want.dns, 'extra.lan'], ips: [...want.ips, '10.9.9.9'] },
      [],
    ],
    [
      'names first, then addresses, in the wanted order',
      { dns: ['localhost'], ips: ['127.0.0.1'] },
      ['registry.lan', '10.0.0.5', '::1', '2001:db8::1'],
    ],
    [
      'an IP that is only a DNS SAN (clients need an iPAddress SAN)',
      { dns: ['registry.lan', 'localhost', '10.0.0.5'], ips: ['127.0.0.1', '::1', '2001:db8::1'] },
      ['10.0.0.5'],
    ],
    [
      'everything from an empty certificate',
      { dns: [], ips: [] },
      ['registry.lan', 'localhost', '10.0.0.5', '127.0.0.1', '::1', '2001:db8::1'],
    ],
  ])('reports %s', (_what, have, expected) => {
    expect(missingSANs(want, have)).toEqual(expected);
  });
});
