/**
 * `registry-tls-proxy acme status` and `acme renew [--force]`. Renew orders from this
 * process; a running proxy (or any replica on the same tls.dir) answers the CA's
 * challenges from the shared directory and picks the new certificate up within a
 * second, so a renewal needs no restart.
 */
import { X509Certificate } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { RTPError } from '../errors.js';
import { createLogger } from '../log.js';
import { attemptOrder } from './attempt.js';
import { acmeEnabled, acmeNames, directoryURL, effectiveChallenges } from './config.js';
import { renewalTime } from './renewal-time.js';
import { acmeDir, ensureACMEDir, readACMECertificate, readAccount, readState } from './store.js';

function requireACME(config: Config): void {
  if (!acmeEnabled(config)) {
    throw new RTPError(
      'USAGE',
      'tls.acme.directory is not set: ACME is off in this configuration (see config/default.yaml, tls.acme)',
    );
  }
}

export function acmeStatus(config: Config): string {
  requireACME(config);
  const dir = acmeDir(config.tls.dir);
  const account = readAccount(dir);
  const cert = readACMECertificate(dir);
  const state = readState(dir);
  const lines = [
    `directory:    ${directoryURL(config.tls.acme.directory)}`,
    `account:      ${account.url ?? '(none yet: created with the first order)'}`,
    `names:        ${acmeNames(config).join(', ')} (by SNI; clients by IP address get our own CA's certificate)`,
    `challenges:   ${effectiveChallenges(config).join(', ')}`,
  ];
  if (cert) {
    lines.push(
      `certificate:  serial ${cert.leaf.serialNumber}, issued by ${issuerCN(cert.leaf)}, for ${cert.names.join(', ')}`,
      `expires:      ${cert.notAfter.toISOString()}`,
      `next renewal: ${renewalTime(cert, config.tls.acme.renewBefore).toISOString()}`,
    );
  } else {
    lines.push(`certificate:  none yet (our own CA's certificate is served meanwhile)`);
  }
  lines.push(`last success: ${state.lastSuccessAt ?? 'never'}`);
  if (state.lastError) {
    lines.push(`last error:   ${state.lastErrorAt ?? ''} ${state.lastError}`);
    if (state.retryAt)
      lines.push(`next attempt: ${state.retryAt} (backoff, ${state.failures ?? 0} failures)`);
  }
  return lines.join('\n') + '\n';
}

export async function acmeRenew(config: Config, force: boolean): Promise<string> {
  requireACME(config);
  const dir = ensureACMEDir(config.tls.dir);
  const logger = createLogger(config.log.level === 'info' ? 'warn' : config.log.level);
  const result = await attemptOrder(config, dir, logger, { force });
  switch (result.kind) {
    case 'ordered':
      return `renewed: serial ${result.cert.leaf.serialNumber}, expires ${result.cert.notAfter.toISOString()}; running proxies on ${config.tls.dir} pick it up within seconds\n`;
    case 'not-needed':
      return 'not due yet (see acme status for the next renewal); --force renews anyway\n';
    case 'locked':
      throw new RTPError(
        'ACME_LOCKED',
        'another process holds the ACME order lock; try again in a few seconds',
      );
    case 'failed':
      throw new RTPError('ACME_FAILED', `renewal failed: ${result.error.message}`);
  }
}

function issuerCN(cert: X509Certificate): string {
  return /CN=([^\n,]+)/.exec(cert.issuer)?.[1] ?? cert.issuer;
}
