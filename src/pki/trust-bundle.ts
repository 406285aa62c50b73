/**
 * What a client must trust to verify this proxy, whichever way it gets its
 * certificate: the CA bundle of tls.caDir or tls.dir (during a rotation, both CAs), or the
 * issuer of a supplied certificate (tls.ca, else the top of the chain).
 */
import type { Config } from '../config/schema.js';
import { loadSuppliedTLS } from './supplied.js';
import { readConfiguredCAs, trustBundle } from './store.js';

export async function configuredTrustBundle(
  config: Config,
): Promise<{ pem: string; fingerprints: string[] }> {
  if (config.tls.cert !== '') {
    const m = loadSuppliedTLS(config);
    return { pem: m.trustBundlePEM, fingerprints: m.trustFingerprints };
  }
  return trustBundle(await readConfiguredCAs(config.tls));
}
