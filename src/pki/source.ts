/**
 * Where the served certificate comes from, as one `load()` that serve.ts calls at
 * start-up and the renewal loop calls on every check: the auto-issued certificate
 * from tls.dir (created, renewed, re-issued after a CA switch), or a supplied one
 * (tls.cert), plus the client CAs for tls.clientAuth. It also says when the CA is
 * about to expire — at start-up and then daily, not only when the process starts.
 */
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { createRepeatGate, type Logger } from '../log.js';
import { computeSANs, readMachineIdentity } from './sans.js';
import { FILES, caHome, clientCABundle, loadOrCreateCA, type TLSMaterial } from './store.js';
import { loadOrCreateTLS } from './server-certs.js';
import { suppliedLoader } from './supplied.js';
import { commandName } from '../command-name.js';

const DAY_MS = 86_400_000;

export interface CertificateSource {
  load(): Promise<TLSMaterial>;
  /** Files whose replacement should trigger a check at once. */
  watch: string[];
}

export function certificateSource(config: Config, logger: Logger): CertificateSource {
  const dir = resolve(config.tls.dir);
  const caHomeDir = caHome(config.tls).dir;
  const supplied = config.tls.cert !== '';
  const loadSupplied = suppliedLoader(config, logger);
  const expiryGate = createRepeatGate(DAY_MS);

  const loadMaterial = async (): Promise<TLSMaterial> => {
    if (!supplied) {
      return loadOrCreateTLS({
        dir,
        caDir: config.tls.caDir !== '' ? resolve(config.tls.caDir) : undefined,
        sans: computeSANs(config.tls.names, readMachineIdentity()),
        certLifetimeMs: config.tls.certLifetime,
        caLifetimeMs: config.tls.caLifetime,
        caKeyType: config.tls.keyType,
      });
    }
    const material = loadSupplied();
    if (!config.tls.clientAuth) return material;
    // Client certificates always come from the proxy's own CA in tls.dir.
    const cas = await loadOrCreateCA({ dir, caLifetimeMs: config.tls.caLifetime });
    return { ...material, clientCAsPEM: clientCABundle(cas) };
  };

  return {
    async load() {
      const material = await loadMaterial();
      const leftMs = material.caNotAfter.getTime() - Date.now();
      if (leftMs < config.tls.caWarnBefore && expiryGate.pass(material.caFingerprint256)) {
        const todo = supplied
          ? 'get a certificate from a CA that stays valid, and trust its CA on the clients'
          : material.trustFingerprints.length > 1
            ? `a rotation is in progress: run "${commandName()} ca switch" once every client trusts both CAs`
            : `rotate it now with "${commandName()} ca rotate"`;
        logger.warn(
          {
            caFingerprint256: material.caFingerprint256,
            caNotAfter: material.caNotAfter.toISOString(),
            daysLeft: Math.floor(leftMs / DAY_MS),
          },
          `the CA expires soon: clients will then reject this proxy; ${todo}`,
        );
      }
      return material;
    },
    watch: [
      ...(supplied ? [config.tls.cert, config.tls.key, config.tls.ca] : []),
      ...(!supplied || config.tls.clientAuth
        ? [FILES.caCert, FILES.nextCACert, FILES.previousCACert].map((f) => join(caHomeDir, f))
        : []),
      ...(!supplied ? [join(dir, FILES.serverCert)] : []),
    ]
      .filter((f) => f !== '')
      .map((f) => resolve(f)),
  };
}
