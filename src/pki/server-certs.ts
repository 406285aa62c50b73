/**
 * The server certificates in the TLS directory, issued from the active CA on first
 * start and again when they no longer fit (another CA, names missing, a third of
 * their life left): ECDSA P-256 (server.crt), and RSA-2048 beside it (server-rsa.crt)
 * while the CA is RSA, for clients that offer no ECDSA. Replicas sharing the
 * directory issue under its lock, so only one of them does.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PKIError } from '../errors.js';
import { issueServerCertificate, type KeyType } from './issue.js';
import { missingSANs, type SANs } from './sans.js';
import {
  certificateSANs,
  clientCABundle,
  ensurePrivateDir,
  FILES,
  loadOrCreateCA,
  parseCertificate,
  readCASet,
  readText,
  trustBundle,
  withLock,
  writePrivate,
  writePublic,
  type CASet,
  type StoreOptions,
  type TLSMaterial,
} from './store.js';

/** Re-issue a server certificate once less than this share of its life is left. */
const RENEW_REMAINING_FRACTION = 1 / 3;

export async function loadOrCreateTLS(opts: StoreOptions): Promise<TLSMaterial> {
  const now = opts.now ?? new Date();
  const { caDir } = opts;
  if (caDir) ensurePrivateDir(opts.dir);
  const cas = caDir
    ? { ...(await readCASet(caDir, { readOnly: true })), created: false }
    : await loadOrCreateCA({
        dir: opts.dir,
        caLifetimeMs: opts.caLifetimeMs,
        keyType: opts.caKeyType,
        now,
      });
  let ca = cas.active;
  let reason = staleServerReason(opts.dir, ca.cert, opts.sans, now);
  let createdServer = false;
  if (reason) {
    createdServer = await withLock(opts.dir, async () => {
      // Under the lock: a replica may have renewed, or a `ca switch` changed the CA, meanwhile.
      ca = (await readCASet(caDir ?? opts.dir, caDir ? { readOnly: true } : { holdingLock: true }))
        .active;
      reason = staleServerReason(opts.dir, ca.cert, opts.sans, now);
      if (!reason) return false;
      await issueServerCertificates(opts, ca, now);
      return true;
    });
  }
  const [primary, fallback] = readLeaves(opts.dir);
  // The CA that signed what is served (after a concurrent switch, it may not be `cas.active`).
  const signer = [cas.active, cas.next, cas.previous, ca].find(
    (c) => c !== undefined && primary.cert.verify(c.cert.publicKey),
  );
  if (!signer) {
    throw new PKIError(
      'SERVER_CERT_FOREIGN',
      `${primary.paths.cert} was not signed by any CA in ${caDir ?? opts.dir}; delete server.crt and server.key to have it re-issued`,
    );
  }
  const trust = trustBundle(cas);
  const servesFallback = fallback !== undefined && fallback.cert.verify(signer.cert.publicKey);
  return {
    caCertPEM: signer.certPEM,
    caFingerprint256: signer.cert.fingerprint256,
    caNotAfter: new Date(signer.cert.validTo),
    trustBundlePEM: trust.pem,
    trustFingerprints: trust.fingerprints,
    clientCAsPEM: clientCABundle(cas),
    serverCertPEM: primary.certPEM,
    serverKeyPEM: primary.keyPEM,
    ...(servesFallback ? { fallback: { certPEM: fallback.certPEM, keyPEM: fallback.keyPEM } } : {}),
    serverNotAfter: new Date(primary.cert.validTo),
    sans: certificateSANs(primary.cert),
    created: { ca: cas.created, server: createdServer, ...(reason ? { reason } : {}) },
  };
}

interface LeafFiles {
  cert: string;
  key: string;
  keyType: KeyType;
}

/** The server certificates `ca` signs: ECDSA, and RSA beside it while the CA is RSA. */
function leafFiles(dir: string, ca: X509Certificate): LeafFiles[] {
  const ecdsa = { cert: join(dir, FILES.serverCert), key: join(dir, FILES.serverKey) };
  const rsa = { cert: join(dir, FILES.serverRSACert), key: join(dir, FILES.serverRSAKey) };
  return ca.publicKey.asymmetricKeyType === 'rsa'
    ? [
        { ...ecdsa, keyType: 'ecdsa' },
        { ...rsa, keyType: 'rsa' },
      ]
    : [{ ...ecdsa, keyType: 'ecdsa' }];
}

/** Issues every server certificate `ca` signs (each key before its certificate). */
async function issueServerCertificates(
  opts: StoreOptions,
  ca: CASet['active'],
  now: Date,
): Promise<void> {
  const leaves = leafFiles(opts.dir, ca.cert);
  // server.crt last: replicas watch it, and it marks the whole set complete.
  for (const files of [...leaves].reverse()) {
    const leaf = await issueServerCertificate({
      ca: { certPEM: ca.certPEM, key: ca.key },
      sans: opts.sans,
      lifetimeMs: opts.certLifetimeMs,
      keyType: files.keyType,
      now,
    });
    writePrivate(files.key, leaf.keyPEM);
    writePublic(files.cert, leaf.certPEM);
  }
  if (leaves.length === 1) {
    // An ECDSA CA: an RSA certificate left from an RSA one would only mislead.
    for (const name of [FILES.serverRSACert, FILES.serverRSAKey]) {
      rmSync(join(opts.dir, name), { force: true });
    }
  }
}

interface StoredLeaf {
  paths: { cert: string; key: string };
  cert: X509Certificate;
  certPEM: string;
  keyPEM: string;
}

/** server.crt, and server-rsa.crt where it is stored. */
function readLeaves(dir: string): [StoredLeaf, StoredLeaf | undefined] {
  const read = (cert: string, key: string, what: string): StoredLeaf => {
    const certPEM = readText(cert, what);
    return {
      paths: { cert, key },
      cert: parseCertificate(certPEM, cert),
      certPEM,
      keyPEM: readText(key, `${what} key`),
    };
  };
  const rsaCert = join(dir, FILES.serverRSACert);
  return [
    read(join(dir, FILES.serverCert), join(dir, FILES.serverKey), 'server certificate'),
    existsSync(rsaCert)
      ? read(rsaCert, join(dir, FILES.serverRSAKey), 'RSA server certificate')
      : undefined,
  ];
}

/** Why the stored server certificates cannot be used as they are, or undefined when they can. */
function staleServerReason(
  dir: string,
  caCert: X509Certificate,
  sans: SANs,
  now: Date,
): string | undefined {
  for (const files of leafFiles(dir, caCert)) {
    const why = staleLeafReason(files, caCert, sans, now);
    if (why) return files.keyType === 'rsa' ? `its RSA companion: ${why}` : why;
  }
  return undefined;
}

function staleLeafReason(
  files: LeafFiles,
  caCert: X509Certificate,
  sans: SANs,
  now: Date,
): string | undefined {
  if (!existsSync(files.cert) || !existsSync(files.key)) return 'none stored yet';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(files.cert));
    if (!cert.checkPrivateKey(createPrivateKey(readFileSync(files.key)))) {
      return 'its key does not match';
    }
  } catch {
    return 'the stored files do not parse';
  }
  const held = cert.publicKey.asymmetricKeyType === 'ec' ? 'ecdsa' : 'rsa';
  if (held !== files.keyType) {
    return files.keyType === 'ecdsa'
      ? 'it has an RSA key: the server certificate is ECDSA P-256 now (faster handshakes), with an RSA one beside it for clients that offer no ECDSA'
      : 'it has no RSA key';
  }
  if (!cert.verify(caCert.publicKey)) return 'it was signed by another CA';
  const from = new Date(cert.validFrom).getTime();
  const to = new Date(cert.validTo).getTime();
  if (to - now.getTime() < (to - from) * RENEW_REMAINING_FRACTION) return 'it expires soon';
  const missing = missingSANs(sans, certificateSANs(cert));
  if (missing.length > 0) return `it does not cover ${missing.join(', ')}`;
  return undefined;
}
