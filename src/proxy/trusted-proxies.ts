/**
 * `trustedProxies`: the load balancers in front of this proxy whose forwarding
 * headers (X-Forwarded-For/Proto/Host/Port, Forwarded) pass on to the registry.
 * Everyone else's are overwritten (headers.ts). Matching uses node:net's BlockList,
 * built once; it also matches IPv4-mapped IPv6 peers (::ffff:10.0.0.1) against
 * IPv4 networks.
 */
import { BlockList, isIP } from 'node:net';

export interface Network {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/**
 * An address or a CIDR network; undefined when it is neither.
 *
 * @example parseNetwork('10.0.0.0/8') // → { address: '10.0.0.0', prefix: 8, family: 'ipv4' }
 */
export function parseNetwork(entry: string): Network | undefined {
  const [address = '', prefixText, extra] = entry.trim().split('/');
  if (extra !== undefined) return undefined;
  // isIP accepts a zone (fe80::1%eth0); peers are matched without one.
  const version = address.includes('%') ? 0 : isIP(address);
  if (version === 0) return undefined;
  const bits = version === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (prefix > bits) return undefined;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** The config check: every entry an address or a network, or what to write instead. */
export function checkTrustedProxies(entries: readonly string[]): string | undefined {
  const bad = entries.filter((e) => parseNetwork(e) === undefined);
  if (bad.length === 0) return undefined;
  return (
    `${bad.map((b) => JSON.stringify(b)).join(', ')} ${bad.length === 1 ? 'is' : 'are'} not an IP address or CIDR network; ` +
    'list the load balancers in front of this proxy like 10.0.0.7, 10.0.0.0/8, ::1 or fd00::/8'
  );
}

/** Whether a peer address (as the socket reports it) is one of `entries`; entries are valid. */
export function trustedPeerMatcher(entries: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const entry of entries) {
    const network = parseNetwork(entry) as Network;
    list.addSubnet(network.address, network.prefix, network.family);
  }
  return (address) => {
    const version = isIP(address);
    return version !== 0 && list.check(address, version === 4 ? 'ipv4' : 'ipv6');
  };
}
