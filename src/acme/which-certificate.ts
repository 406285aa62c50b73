/**
 * Which client gets which certificate with tls.acme, in words for the start-up log and
 * `ca show`: names the ACME certificate covers get it by SNI (publicly trusted, or
 * trusted through the internal ACME server's root); clients by IP address or without
 * SNI get our own CA's.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { issuedBy, oneLine, splitPEMCertificates } from '../pki/chain.js';
import { matchesDNSName } from '../pki/inspect.js';
import { pemBundle } from '../pki/store.js';
import { acmeEnabled, acmeNames } from './config.js';
import { acmeDir, readACMECertificate } from './store.js';

/** What a client by one of the ACME names must install. */
export function acmeTrustNote(config: Config): string {
  return config.tls.acme.caBundle === ''
    ? 'publicly trusted: nothing to install on clients'
    : `issued by an internal ACME server: clients by name trust its issuing root, from tls.acme.caBundle (${config.tls.acme.caBundle}), which /ca.crt and /install-ca.sh by name serve`;
}

/** The start-up line on who gets which certificate; nothing without tls.acme. */
export function logACMEPlan(config: Config, logger: Logger, ips?: readonly string[]): void {
  if (!acmeEnabled(config)) return;
  const names = acmeNames(config);
  logger.info(
    { acmeNames: names, ...(ips ? { ips } : {}) },
    `certificates by SNI: ${names.join(', ')} get the ACME certificate (${acmeTrustNote(config)}); clients by IP address or without SNI get our own CA's`,
  );
}

/** Whether clients that come by `host` get the ACME certificate: one of its names, or under one of its wildcards. */
export function acmeServesHost(config: Config, host: string): boolean {
  if (!acmeEnabled(config) || isIP(host) !== 0) return false;
  return acmeNames(config).some((name) => matchesDNSName(name, host));
}

/** What clients by an ACME name install with an internal ACME server (tls.acme.caBundle). */
export interface InternalACMERoots {
  pem: string;
  fingerprints: string[];
  /**
   * Whether these certificates anchor the served ACME chain (one of them is in it or
   * signed its top). False: none of caBundle's does (or there is no chain yet), and
   * all of caBundle is given, which may not verify the certificate clients get.
   */
  anchored: boolean;
}

/**
 * What a client by an ACME name trusts with an internal ACME server: the certificates
 * of tls.acme.caBundle that anchor `chainPEM`, the ACME chain served. caBundle is what
 * verifies the ACME server's own HTTPS; step-ca, Vault and EJBCA serve that under the
 * root they issue from, pebble does not (its issuing root is at /roots/0), so a bundle
 * may hold both, and only the issuing root is the client's to install.
 */
export function internalACMERoots(config: Config, chainPEM?: string): InternalACMERoots {
  const file = config.tls.acme.caBundle;
  const { certs } = splitPEMCertificates(readFileSync(file, 'utf8'), file);
  const chain = chainPEM ? splitPEMCertificates(chainPEM, 'the ACME chain').certs : [];
  const anchors = certs.filter((root) =>
    chain.some(
      (c) => c.x509.fingerprint256 === root.x509.fingerprint256 || issuedBy(c.x509, root.x509),
    ),
  );
  const chosen = anchors.length > 0 ? anchors : certs;
  return {
    pem: pemBundle(chosen.map((c) => c.x509.toString())),
    fingerprints: chosen.map((c) => c.x509.fingerprint256),
    anchored: anchors.length > 0,
  };
}

/**
 * For the line saying the ACME certificate is served: with an internal ACME server,
 * what clients by name install and its fingerprints (those `trust --address NAME:PORT`
 * prints and /install-ca.sh pins), or a warning when caBundle has no root for it.
 */
export function clientTrustNote(
  config: Config,
  chainPEM: string,
): { fields: Record<string, unknown>; text: string; warning?: string } {
  if (config.tls.acme.caBundle === '') return { fields: {}, text: '' };
  let roots: InternalACMERoots;
  try {
    roots = internalACMERoots(config, chainPEM);
  } catch (err) {
    const warning = `cannot read tls.acme.caBundle (${(err as Error).message}): clients by name are given our own CA at /ca.crt, which does not verify the ACME certificate; restore the file`;
    return { fields: {}, text: '', warning };
  }
  const fingerprints = roots.fingerprints.join(', ');
  return {
    fields: { clientsByNameTrust: roots.fingerprints },
    text: `; clients by name trust the internal ACME server's root, SHA-256 ${fingerprints} (/install-ca.sh by name installs it)`,
    ...(roots.anchored ? {} : { warning: unanchoredWarning(config, chainPEM) }),
  };
}

/** Why the roots do not verify the ACME chain (internalACMERoots().anchored false), and what to do. */
export function unanchoredWarning(config: Config, chainPEM: string): string {
  const top = splitPEMCertificates(chainPEM, 'the ACME chain').certs.at(-1)?.x509;
  const issuer = top ? oneLine(top.issuer) : 'unknown';
  return `none of the certificates in tls.acme.caBundle (${config.tls.acme.caBundle}) signed the ACME certificate's chain (its top was issued by "${issuer}"): /ca.crt and /install-ca.sh give clients by name all of caBundle, which does not verify it; add the ACME server's issuing root to caBundle (pebble: https://MANAGEMENT/roots/0; step-ca: its root_ca.crt)`;
}

/**
 * What a client by a name the ACME certificate is served for installs: nothing
 * (publicly trusted), or the internal ACME server's roots (/ca.crt serves them).
 */
export type ACMETrust = { kind: 'public' } | { kind: 'internal'; pem: string };

/** Lines for `ca show`; [] without ACME. */
export function acmeShowLines(config: Config): string[] {
  if (!acmeEnabled(config)) return [];
  const cert = readACMECertificate(acmeDir(config.tls.dir));
  const names = acmeNames(config).join(', ');
  return [
    `ACME certificate (by SNI for ${names}; ${acmeTrustNote(config)})`,
    ...(cert
      ? [
          `  serial: ${cert.leaf.serialNumber}`,
          `  issuer: ${cert.leaf.issuer.replace(/\n/g, ', ')}`,
          `  expires: ${cert.notAfter.toISOString()}`,
          `  DNS names: ${cert.names.join(', ')}`,
        ]
      : [
          "  none yet: ordered at start; our own CA's certificate is served for these names meanwhile",
        ]),
    'clients by IP address or without SNI get the server certificate above, from our own CA',
  ];
}
