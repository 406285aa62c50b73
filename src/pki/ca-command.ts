/**
 * `registry-tls-proxy ca show|export`: what the proxy's CA and server
 * certificate are, and a backup of the CA (certificate and key, 0600).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { RTPError } from '../errors.js';
import { FILES, certificateSANs } from './store.js';

function read(dir: string, name: string): string {
  const file = join(dir, name);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new RTPError(
      'CA_MISSING',
      `reading ${file}: ${(err as Error).message}; start the proxy once (it creates the CA) or point tls.dir / RTP_TLS_DIR at its directory`,
      { cause: err },
    );
  }
}

/** PEM, fingerprint and expiry of the CA, then the server certificate's serial, expiry and SANs. */
export function showCA(config: Config): string {
  const dir = resolve(config.tls.dir);
  const caPEM = read(dir, FILES.caCert);
  const ca = new X509Certificate(caPEM);
  const lines = [
    `CA ${ca.subject.replace(/\n/g, ', ')}`,
    `  SHA-256 fingerprint: ${ca.fingerprint256}`,
    `  expires: ${new Date(ca.validTo).toISOString()}`,
  ];
  try {
    const leaf = new X509Certificate(readFileSync(join(dir, FILES.serverCert)));
    const sans = certificateSANs(leaf);
    lines.push(
      'server certificate',
      `  serial: ${leaf.serialNumber}`,
      `  expires: ${new Date(leaf.validTo).toISOString()}`,
      `  DNS names: ${sans.dns.join(', ')}`,
      `  IP addresses: ${sans.ips.join(', ')}`,
    );
  } catch {
    lines.push('server certificate: none yet (issued on the next start)');
  }
  return `${lines.join('\n')}\n\n${caPEM.replace(/\r\n/g, '\n')}`;
}

/** Writes the CA certificate and key to `out` (0600), refusing to overwrite. */
export function exportCA(config: Config, out: string): string {
  const dir = resolve(config.tls.dir);
  const bundle = read(dir, FILES.caCert) + read(dir, FILES.caKey);
  try {
    writeFileSync(out, bundle, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    throw new RTPError(
      'CA_EXPORT_FAILED',
      `writing ${out}: ${(err as Error).message}; choose a new file (existing files are never overwritten)`,
      { cause: err },
    );
  }
  return `wrote the CA certificate and private key to ${out} (mode 0600); keep it offline\n`;
}
