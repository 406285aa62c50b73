/**
 * Serving a brought-your-own certificate (tls.cert, tls.key, tls.ca): read the
 * files, inspect them, refuse on any error with every finding listed, and
 * serve the chain in the right order.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { PKIError } from '../errors.js';
import { createRepeatGate, type Logger } from '../log.js';
import type { Finding } from './finding.js';
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

/** A persisting warning (a certificate expiring soon) is logged when it appears, then daily. */
const WARNING_REMINDER_MS = 24 * 60 * 60 * 1000;

/**
 * The loader serve.ts re-runs every tls.checkInterval: each warning is logged once
 * per certificate (and reminded daily), not on every check.
 */
export function suppliedLoader(config: Config, logger: Logger): () => TLSMaterial {
  const gate = createRepeatGate(WARNING_REMINDER_MS);
  return () => {
    const { warnings, ...material } = loadSuppliedTLS(config);
    const fingerprint = new X509Certificate(material.serverCertPEM).fingerprint256;
    for (const w of warnings) {
      // Repeats go to debug: quiet by default, and a test can see that the checks went on.
      const level = gate.pass(`${w.code} ${fingerprint}`) ? 'warn' : 'debug';
      logger[level]({ code: w.code }, w.message);
    }
    return material;
  };
}

/** Loads and checks the supplied certificate; throws listing every error, returns warnings. */
export function loadSuppliedTLS(
  config: Config,
  now = new Date(),
): TLSMaterial & { warnings: Finding[] } {
  const { cert, key, ca } = config.tls;
  // Each file is read once: what is served is exactly the pair that was inspected,
  // even when the files are replaced meanwhile (a second read could get a new key).
  const certPEM = readFile(cert, 'tls.cert');
  const keyPEM = readFile(key, 'tls.key');
  const caPEM = ca !== '' ? readFile(ca, 'tls.ca') : undefined;
  const inspection = inspectSuppliedCertificate(
    {
      certPEM,
      keyPEM,
      certFile: cert,
      keyFile: key,
      ...(caPEM !== undefined ? { caPEM, caFile: ca } : {}),
    },
    { names: config.tls.names, now, warnBeforeMs: config.tls.certWarnBefore },
  );
  const errors = inspection.findings.filter((f) => f.severity === 'error');
  if (errors.length > 0 || !inspection.leaf) {
    throw new PKIError(
      'SUPPLIED_CERT_INVALID',
      `the supplied certificate cannot be served:\n${errors.map((e) => `  - [${e.code}] ${e.message}`).join('\n')}`,
    );
  }
  // /ca.crt serves what clients should trust: tls.ca when given, else the top of the chain.
  const chain = splitPEM(inspection.chainPEM);
  const trust = caPEM !== undefined ? splitPEM(caPEM) : chain.slice(-1);
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
    serverKeyPEM: keyPEM,
    serverNotAfter: inspection.leaf.notAfter,
    sans: inspection.leaf.sans,
    created: { ca: false, server: false },
    warnings: inspection.findings.filter((f) => f.severity === 'warning'),
  };
}

function splitPEM(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\r?\n?/g) ?? [];
}
