import { describe, expect, it } from 'vitest';
import { trustedPeerMatcher } from './trusted-proxies.js';

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
