import { describe, expect, it } from 'vitest';
import { parseNetwork, trustedPeerMatcher } from './trusted-proxies.js';

describe('parseNetwork', () => {
  it.each<[string, ReturnType<typeof parseNetwork>]>([
    ['10.0.0.7', { address: '10.0.0.7', prefix: 32, family: 'ipv4' }],
    ['10.0.0.0/8', { address: '10.0.0.0', prefix: 8, family: 'ipv4' }],
    ['::1', { address: '::1', prefix: 128, family: 'ipv6' }],
    ['fd00::/8', { address: 'fd00::', prefix: 8, family: 'ipv6' }],
    ['0.0.0.0/0', { address: '0.0.0.0', prefix: 0, family: 'ipv4' }],
    ['10.0.0.0/33', undefined],
    ['fd00::/129', undefined],
    ['10.0.0.0/', undefined],
    ['10.0.0.0/8/8', undefined],
    ['10.0.0.0/+8', undefined],
    ['lb.example', undefined],
    ['10.0.0.256', undefined],
    ['fe80::1%eth0', undefined],
    ['', undefined],
  ])('%j → %j', (entry, expected) => {
    expect(parseNetwork(entry)).toEqual(expected);
  });
});

describe('trustedPeerMatcher', () => {
  const trusted = trustedPeerMatcher(['10.0.0.0/8', '192.0.2.7', 'fd00::/8']);
  it.each<[string, boolean]>([
    ['10.1.2.3', true],
    ['192.0.2.7', true],
    ['192.0.2.8', false],
    ['11.0.0.1', false],
    // A dual-stack listener reports IPv4 peers IPv4-mapped.
    ['::ffff:10.0.0.1', true],
    ['::ffff:11.0.0.1', false],
    ['fd12::1', true],
    ['fe80::1', false],
    ['not an address', false],
  ])('%s trusted: %s', (address, expected) => {
    expect(trusted(address)).toBe(expected);
  });
});
