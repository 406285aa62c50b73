/**
 * Serving a brought-your-own certificate (tls.cert, tls.key, tls.ca): read the
 * files, inspect them, refuse on any error with every finding listed, and
 * serve the chain in the right order.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { PKIError } from '../errors.js';
import type { Logger } from '../log.js';
import { inspectSuppliedCertificate } from './inspect.js';
import { pemBundle, type TLSMaterial } from './store.js';

function readFile(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new PKIError('TLS_FILE_UNREADABLE', `${key} ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Loads and checks the supplied certificate; throws listing every error, logs warnings. */
export function loadSuppliedTLS(config: Config, logger: Logger, now = new Date()): TLSMaterial {
  const { cert, key, ca } = config.tls;
  const inspection = inspectSuppliedCertificate(
    {
      certPEM: readFile(cert, 'tls.cert'),
      keyPEM: readFile(key, 'tls.key'),
      certFile: cert,
      keyFile: key,
      ...(ca !== '' ? { caPEM: readFile(ca, 'tls.ca'), caFile: ca } : {}),
    },
    { names: config.tls.names, now, warnBeforeMs: config.tls.certWarnBefore },
  );
  const errors = inspection.findings.filter((f) => f.severity === 'error');
  for (const w of inspection.findings.filter((f) => f.severity === 'warning')) {
    logger.warn({ code: w.code }, w.message);
  }
  if (errors.length > 0 || !inspection.leaf) {
    throw new PKIError(
      'SUPPLIED_CERT_INVALID',
      `the supplied certificate cannot be served:\n${errors.map((e) => `  - [${e.code}] ${e.message}`).join('\n')}`,
    );
  }
  // /ca.crt serves what clients should trust: tls.ca when given, else the top of the chain.
  const chain = splitPEM(inspection.chainPEM);
  const trust = ca !== '' ? splitPEM(readFile(ca, 'tls.ca')) : chain.slice(-1);
  const trustPEM = pemBundle(trust);
  const top = new X509Certificate(trustPEM);
  return {
    caCertPEM: trustPEM,
    caFingerprint256: top.fingerprint256,
    trustBundlePEM: trustPEM,
    trustFingerprints: trust.map((pem) => new X509Certificate(pem).fingerprint256),
    caNotAfter: new Date(top.validTo),
    serverCertPEM: chain[0] ?? '',
    servedChainPEM: inspection.chainPEM,
    serverKeyPEM: readFile(key, 'tls.key'),
    serverNotAfter: inspection.leaf.notAfter,
    sans: inspection.leaf.sans,
    created: { ca: false, server: false },
  };
}

function splitPEM(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\r?\n?/g) ?? [];
}
