/**
 * tls.acme as the rest of the ACME code reads it: the directory URL behind a
 * shortcut, the names to order, the challenges this configuration can answer, and
 * the start-up checks that need more than one key (load.ts reports them with every
 * other problem).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConfigProblem } from '../errors.js';
import { ACME_CHALLENGES, type Config } from '../config/schema.js';
import { dnsConfigProblems, type DnsConfig } from './dns/index.js';

export type ChallengeType = (typeof ACME_CHALLENGES)[number];

/** acme-client's own `directory` table, written out: importing it would load acme-client (client-module.ts). */
const SHORTCUTS: Readonly<Record<string, string>> = {
  letsencrypt: 'https://acme-v02.api.letsencrypt.org/directory',
  'letsencrypt-staging': 'https://acme-staging-v02.api.letsencrypt.org/directory',
  zerossl: 'https://acme.zerossl.com/v2/DV90',
};

export function acmeEnabled(config: Config): boolean {
  return config.tls.acme.directory !== '';
}

/** @example directoryURL('letsencrypt') // → 'https://acme-v02.api.letsencrypt.org/directory' */
export function directoryURL(directory: string): string {
  return SHORTCUTS[directory] ?? directory;
}

/** tls.acme.names, or the DNS names (not the IPs) of tls.names. */
export function acmeNames(config: Config): string[] {
  const names = config.tls.acme.names;
  return names.length > 0 ? [...names] : config.tls.names.filter((n) => isIP(n) === 0);
}

export function dnsConfigOf(config: Config): DnsConfig {
  const { rfc2136, command } = config.tls.acme.dns;
  return {
    ...(rfc2136.server !== '' ? { rfc2136: { ...rfc2136 } } : {}),
    ...(command !== '' ? { command } : {}),
  };
}

function dnsConfigured(config: Config): boolean {
  const dns = dnsConfigOf(config);
  return dns.rfc2136 !== undefined || dns.command !== undefined;
}

/** tls.acme.challenges, or (when empty) every challenge this configuration can answer. */
export function effectiveChallenges(config: Config): ChallengeType[] {
  const chosen = config.tls.acme.challenges as ChallengeType[];
  if (chosen.length > 0) return [...chosen];
  return ACME_CHALLENGES.filter(
    (c) =>
      c === 'tls-alpn-01' ||
      (c === 'http-01' && config.tls.acme.http01Listen !== '') ||
      (c === 'dns-01' && dnsConfigured(config)),
  );
}

/** What is wrong with tls.acme as a whole; [] when ACME is off or fine. */
export function acmeConfigProblems(config: Config): ConfigProblem[] {
  const acme = config.tls.acme;
  if (!acmeEnabled(config)) return [];
  const problems: ConfigProblem[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  if (!acme.agreeToTerms) {
    add(
      'tls.acme.agreeToTerms',
      `must be true: read the CA's terms of service (${directoryURL(acme.directory)} links them) and set agreeToTerms: true`,
    );
  }
  const names = acmeNames(config);
  if (names.length === 0) {
    add(
      'tls.acme.names',
      'no DNS names to order: list them in tls.acme.names or tls.names (IP addresses cannot get a public certificate)',
    );
  }
  const challenges = effectiveChallenges(config);
  if (challenges.includes('http-01') && acme.http01Listen === '') {
    add(
      'tls.acme.http01Listen',
      'http-01 is chosen but has nowhere to listen: set it to the address the CA reaches as port 80, e.g. 0.0.0.0:80',
    );
  }
  if (challenges.includes('dns-01')) {
    if (!dnsConfigured(config)) {
      add(
        'tls.acme.dns',
        'dns-01 is chosen but has no way to write TXT records: set tls.acme.dns.rfc2136 (server, keyName, keySecret) or tls.acme.dns.command',
      );
    } else {
      for (const message of dnsConfigProblems(dnsConfigOf(config), 'tls.acme.dns')) {
        add('tls.acme.dns', message);
      }
    }
  }
  const wildcards = names.filter((n) => n.startsWith('*.'));
  if (wildcards.length > 0 && !challenges.includes('dns-01')) {
    add(
      'tls.acme.names',
      `${wildcards.join(', ')}: wildcard names are only issued by dns-01; configure tls.acme.dns or list the names one by one`,
    );
  }
  if ((acme.eab.kid === '') !== (acme.eab.hmacKey === '')) {
    add(
      acme.eab.kid === '' ? 'tls.acme.eab.kid' : 'tls.acme.eab.hmacKey',
      'tls.acme.eab.kid and hmacKey go together: copy both from the CA (ZeroSSL: Developer → EAB credentials)',
    );
  }
  if (acme.caBundle !== '') {
    const problem = caBundleProblem(acme.caBundle);
    if (problem) add('tls.acme.caBundle', problem);
  }
  return problems;
}

function caBundleProblem(file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)}); point it at the PEM of the CA that signed the ACME server's HTTPS certificate`;
  }
  return text.includes('-----BEGIN CERTIFICATE-----')
    ? undefined
    : `${file} holds no PEM certificate; point it at the PEM of the CA that signed the ACME server's HTTPS certificate`;
}
