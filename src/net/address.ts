/**
 * Addresses as they are written: `host:port`, IPv6 in brackets (`[fd00::5]:5443`,
 * RFC 3986 §3.2.2), DNS names, and CIDR networks. The one place that knows the
 * spelling; config/ validates with it, proxy/ parses Host headers with it.
 */
import { BlockList, isIP } from 'node:net';

/**
 * A host as it goes before `:port`: an IPv6 address in brackets.
 *
 * @example bracketHost('fd00::5') // → '[fd00::5]'
 */
export function bracketHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * The host without brackets, as node:net and OpenSSL take it (URL.hostname keeps them).
 *
 * @example unbracketHost('[::1]') // → '::1'
 */
export function unbracketHost(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** @example formatHostPort('fd00::5', 5443) // → '[fd00::5]:5443' */
export function formatHostPort(host: string, port: number | string): string {
  return `${bracketHost(host)}:${port}`;
}

/**
 * `host:port` or `[v6]:port` as a listen address: names and addresses are checked, an
 * empty host means every IPv4 address; undefined when malformed.
 *
 * @example parseHostPort('[::]:5443') // → { host: '::', port: 5443 }
 */
export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  if (!match) return undefined;
  const host = match[1] ?? match[2] ?? '';
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  if (match[1] !== undefined && isIP(host) !== 6) return undefined;
  if (match[2] !== undefined && host !== '' && !isIP(host) && !isDNSName(host)) return undefined;
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/** A Host header: a name or an address, IPv6 bracketed, an optional port. */
const HOST_HEADER = /^(?:([a-zA-Z0-9.-]+)|\[([0-9a-fA-F:.]+)\])(?::(\d{1,5}))?$/;

/**
 * A Host (or X-Forwarded-Host) header, split: the host without brackets, and the port
 * when it names one; undefined when it is not `host[:port]`.
 *
 * @example parseHostHeader('[::1]:5443') // → { host: '::1', port: 5443 }
 */
export function parseHostHeader(value: string): { host: string; port?: number } | undefined {
  const match = HOST_HEADER.exec(value);
  if (!match) return undefined;
  const host = (match[1] ?? match[2]) as string;
  return match[3] === undefined ? { host } : { host, port: Number(match[3]) };
}

/**
 * `host[:port]` with `port` added when it names none.
 *
 * @example withDefaultPort('registry.lan', 5443) // → 'registry.lan:5443'
 */
export function withDefaultPort(hostHeader: string, port: number): string {
  return /:\d+$/.test(hostHeader) ? hostHeader : `${hostHeader}:${port}`;
}

/** A DNS name as it may appear in a dNSName SAN (a leading `*.` wildcard allowed). */
export function isDNSName(value: string): boolean {
  if (value.length === 0 || value.length > 253) return false;
  const labels = (value.startsWith('*.') ? value.slice(2) : value).split('.');
  // An all-digit last label is a mistyped IP address (10.0.0.256), not a name.
  if (/^\d+$/.test(labels[labels.length - 1] ?? '')) return false;
  return labels.every((l) => /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(l));
}

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

/**
 * Whether an address (as a socket reports it) is in one of `networks`, built once on
 * node:net's BlockList, which also matches IPv4-mapped IPv6 peers (::ffff:10.0.0.1)
 * against IPv4 networks.
 */
export function networkMatcher(networks: readonly Network[]): (address: string) => boolean {
  const list = new BlockList();
  for (const network of networks) list.addSubnet(network.address, network.prefix, network.family);
  return (address) => {
    const version = isIP(address);
    return version !== 0 && list.check(address, version === 4 ? 'ipv4' : 'ipv6');
  };
}

/** One spelling per address: IPv6 compressed and lower case, IPv4-mapped IPv6 as IPv4. */
export function canonicalIP(address: string): string {
  // A link-local peer arrives as fe80::1%eth0; the zone names our interface, not the peer.
  const ip = address.replace(/%.*$/, '');
  if (isIP(ip) === 6) {
    const host = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
    if (mapped?.[1]) return mapped[1];
    const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
    if (hex?.[1] && hex[2]) {
      const n = (parseInt(hex[1], 16) << 16) | parseInt(hex[2], 16);
      return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
    }
    return host;
  }
  return ip;
}
