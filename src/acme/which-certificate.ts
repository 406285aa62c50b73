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
import { splitPEMCertificates } from '../pki/chain.js';
import { matchesDNSName } from '../pki/inspect.js';
import { pemBundle } from '../pki/store.js';
import { acmeEnabled, acmeNames } from './config.js';
import { acmeDir, readACMECertificate } from './store.js';

/** What a client by one of the ACME names must install. */
export function acmeTrustNote(config: Config): string {
  return config.tls.acme.caBundle === ''
    ? 'publicly trusted: nothing to install on clients'
    : `issued by an internal ACME server: clients trust its root (the one behind tls.acme.caBundle, ${config.tls.acme.caBundle}, if it is the same CA)`;
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

/**
 * What a client by an ACME name trusts with an internal ACME server: the certificates of
 * tls.acme.caBundle (step-ca, Vault and EJBCA serve ACME under the root they issue from).
 */
export function internalACMERoots(config: Config): { pem: string; fingerprints: string[] } {
  const file = config.tls.acme.caBundle;
  const { certs } = splitPEMCertificates(readFileSync(file, 'utf8'), file);
  return {
    pem: pemBundle(certs.map((c) => c.x509.toString())),
    fingerprints: certs.map((c) => c.x509.fingerprint256),
  };
}

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
