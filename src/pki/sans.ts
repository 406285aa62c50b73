/**
 * Which names and addresses the server certificate must carry. Clients that
 * reach the registry by IP need an iPAddress SAN, not a DNS SAN or the CN
 * ("x509: cannot validate certificate for 10.0.0.5 because it doesn't contain any IP SANs").
 * Hosts are sorted into DNS and IP like mkcert's cert.go does.
 */
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { canonicalIP } from '../net/address.js';

export interface SANs {
  dns: string[];
  ips: string[];
}

export interface MachineIdentity {
  hostname: string;
  /** Addresses of the machine's non-internal interfaces. */
  addresses: string[];
}

/** The loopback names every certificate carries, so local clients always verify. */
const ALWAYS = ['localhost', '127.0.0.1', '::1'];

/**
 * Configured names first (the first DNS name becomes the CN), then the machine's own.
 *
 * @example computeSANs(['registry.lan', '10.0.0.5'], { hostname: 'box', addresses: [] })
 *   // → { dns: ['registry.lan', 'box', 'localhost'], ips: ['10.0.0.5', '127.0.0.1', '::1'] }
 */
export function computeSANs(configured: readonly string[], machine: MachineIdentity): SANs {
  const dns: string[] = [];
  const ips: string[] = [];
  for (const entry of [...configured, machine.hostname, ...ALWAYS, ...machine.addresses]) {
    const value = entry.trim();
    if (value === '') continue;
    if (isIP(value)) {
      const ip = canonicalIP(value);
      if (!ips.includes(ip)) ips.push(ip);
    } else {
      const name = value.toLowerCase().replace(/\.$/, '');
      if (!dns.includes(name)) dns.push(name);
    }
  }
  return { dns, ips };
}

/** Reads the hostname and the non-internal interface addresses (link-local IPv6 left out: it needs a zone). */
export function readMachineIdentity(): MachineIdentity {
  const addresses: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const nic of list ?? []) {
      if (nic.internal) continue;
      if (nic.family === 'IPv6' && /^fe[89ab]/i.test(nic.address)) continue;
      addresses.push(nic.address);
    }
  }
  return { hostname: hostname(), addresses };
}

// Where addresses are spelt (net/address.ts); here for the SAN code that has always used it.
export { canonicalIP };

/** The SANs in `want` that `have` lacks. */
export function missingSANs(want: SANs, have: SANs): string[] {
  const dns = new Set(have.dns.map((d) => d.toLowerCase()));
  const ips = new Set(have.ips.map(canonicalIP));
  return [
    ...want.dns.filter((d) => !dns.has(d.toLowerCase())),
    ...want.ips.filter((i) => !ips.has(canonicalIP(i))),
  ];
}
