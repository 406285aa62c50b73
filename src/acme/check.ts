/** What `registry-tls-proxy check` says about tls.acme: the stored certificate and the last order. */
import type { Config } from '../config/schema.js';
import { acmeEnabled, acmeNames } from './config.js';
import { orderReason, renewalTime } from './renewal-time.js';
import { acmeDir, readACMECertificate, readState } from './store.js';

export function acmeCheckLines(
  config: Config,
  now: Date,
): Array<{ level: 'ok' | 'warn' | 'fail'; what: string; detail: string }> {
  if (!acmeEnabled(config)) return [];
  const dir = acmeDir(config.tls.dir);
  const cert = readACMECertificate(dir);
  const state = readState(dir);
  const names = acmeNames(config);
  const what = `ACME certificate (${names.join(', ')})`;
  const lastError =
    state.lastError && (!state.lastSuccessAt || (state.lastErrorAt ?? '') > state.lastSuccessAt)
      ? `; last order failed at ${state.lastErrorAt}: ${state.lastError}`
      : '';
  if (!cert) {
    return [
      {
        level: 'warn',
        what,
        detail: `none yet: our own CA's certificate is served for these names${lastError}`,
      },
    ];
  }
  if (cert.notAfter <= now) {
    return [{ level: 'fail', what, detail: `expired ${cert.notAfter.toISOString()}${lastError}` }];
  }
  const reason = orderReason(cert, names, config.tls.acme.renewBefore, now);
  const detail = `serial ${cert.leaf.serialNumber}, expires ${cert.notAfter.toISOString()}, next renewal ${renewalTime(cert, config.tls.acme.renewBefore).toISOString()}`;
  if (reason || lastError) {
    return [
      { level: 'warn', what, detail: `${detail}; ${reason ?? 'renewal pending'}${lastError}` },
    ];
  }
  return [{ level: 'ok', what, detail }];
}
