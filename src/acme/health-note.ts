/**
 * What /readyz (and the public health path) add while the ACME certificate has not
 * arrived: the proxy is ready (it serves our own CA's certificate), but clients that
 * trust only public CAs will fail, and the reason says so. Read from tls.dir, so a
 * cluster's primary, which orders nothing itself, says the same as its workers.
 */
import type { Config } from '../config/schema.js';
import type { Verdict } from '../health/probe.js';
import { acmeEnabled, acmeNames } from './config.js';
import { acmeDir, readACMECertificate } from './store.js';
import { commandName } from '../command-name.js';

const CACHE_MS = 1000;

export function acmeVerdictNote(): (verdict: Verdict, config: Config) => Verdict {
  let cached: { at: number; dir: string; arrived: boolean } | undefined;
  return (verdict, config) => {
    if (!acmeEnabled(config)) return verdict;
    const dir = acmeDir(config.tls.dir);
    if (!cached || cached.dir !== dir || Date.now() - cached.at > CACHE_MS) {
      cached = { at: Date.now(), dir, arrived: readACMECertificate(dir) !== undefined };
    }
    if (cached.arrived) return verdict;
    return {
      ...verdict,
      reason: `${verdict.reason}; serving our own CA's certificate: the ACME certificate for ${acmeNames(config).join(', ')} has not arrived yet (see ${commandName()} acme status)`,
    };
  };
}
