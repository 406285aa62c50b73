/**
 * The TLS directory: the CA and the server certificate with their keys,
 * created on first start and reused afterwards. Keys are written 0600 in a
 * 0700 directory; every file is written to a temporary name and renamed so a
 * reader never sees half a file; creation happens under a lock file so that
 * replicas sharing one directory never each make their own CA.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { PKIError } from '../errors.js';
import { createCA, issueServerCertificate } from './issue.js';
import { canonicalIP, missingSANs, type SANs } from './sans.js';

export const FILES = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  serverCert: 'server.crt',
  serverKey: 'server.key',
} as const;

/** Re-issue a server certificate once less than this share of its life is left. */
const RENEW_REMAINING_FRACTION = 1 / 3;
const LOCK_STALE_MS = 60_000;
const LOCK_WAIT_MS = 120_000;

export interface TLSMaterial {
  caCertPEM: string;
  caFingerprint256: string;
  caNotAfter: Date;
  serverCertPEM: string;
  /** The chain to serve when it is not leaf + our CA (a supplied certificate's full chain). */
  servedChainPEM?: string;
  serverKeyPEM: string;
  serverNotAfter: Date;
  sans: SANs;
  /** What happened on this start, for the log. */
  created: { ca: boolean; server: boolean; reason?: string };
}

export interface StoreOptions {
  dir: string;
  sans: SANs;
  certLifetimeMs: number;
  caLifetimeMs: number;
  now?: Date;
}

/** Loads the CA and server certificate from `dir`, creating or re-issuing what is missing or stale. */
export async function loadOrCreateTLS(opts: StoreOptions): Promise<TLSMaterial> {
  ensurePrivateDir(opts.dir);
  const paths = {
    caCert: join(opts.dir, FILES.caCert),
    caKey: join(opts.dir, FILES.caKey),
    serverCert: join(opts.dir, FILES.serverCert),
    serverKey: join(opts.dir, FILES.serverKey),
  };
  const now = opts.now ?? new Date();
  let createdCA = false;
  if (!existsSync(paths.caCert) || !existsSync(paths.caKey)) {
    createdCA = await withLock(opts.dir, async () => {
      if (existsSync(paths.caCert) && existsSync(paths.caKey)) return false; // another replica won
      const ca = await createCA({
        commonName: `registry-tls-proxy CA (${hostname()}, ${now.toISOString().slice(0, 10)})`,
        lifetimeMs: opts.caLifetimeMs,
        now,
      });
      writePrivate(paths.caKey, ca.keyPEM);
      writePublic(paths.caCert, ca.certPEM);
      return true;
    });
  }
  const caCertPEM = readText(paths.caCert, 'CA certificate');
  const caKey = readKey(paths.caKey, 'CA key');
  const caCert = parseCertificate(caCertPEM, paths.caCert);
  if (!caCert.checkPrivateKey(caKey)) {
    throw new PKIError(
      'CA_KEY_MISMATCH',
      `loading CA: ${paths.caKey} does not belong to ${paths.caCert}; restore the matching pair from backup, or move both away to create a new CA (clients must then trust the new ca.crt)`,
    );
  }

  let reason = staleServerReason(paths, caCert, opts.sans, now);
  let createdServer = false;
  if (reason) {
    createdServer = await withLock(opts.dir, async () => {
      reason = staleServerReason(paths, caCert, opts.sans, now);
      if (!reason) return false;
      const leaf = await issueServerCertificate({
        ca: { certPEM: caCertPEM, key: caKey },
        sans: opts.sans,
        lifetimeMs: opts.certLifetimeMs,
        now,
      });
      writePrivate(paths.serverKey, leaf.keyPEM);
      writePublic(paths.serverCert, leaf.certPEM);
      return true;
    });
  }
  const serverCertPEM = readText(paths.serverCert, 'server certificate');
  const serverCert = parseCertificate(serverCertPEM, paths.serverCert);
  return {
    caCertPEM,
    caFingerprint256: caCert.fingerprint256,
    caNotAfter: new Date(caCert.validTo),
    serverCertPEM,
    serverKeyPEM: readText(paths.serverKey, 'server key'),
    serverNotAfter: new Date(serverCert.validTo),
    sans: certificateSANs(serverCert),
    created: { ca: createdCA, server: createdServer, ...(reason ? { reason } : {}) },
  };
}

/** Why the stored server certificate cannot be used as is, or undefined when it can. */
function staleServerReason(
  paths: Record<'serverCert' | 'serverKey', string>,
  caCert: X509Certificate,
  sans: SANs,
  now: Date,
): string | undefined {
  if (!existsSync(paths.serverCert) || !existsSync(paths.serverKey)) return 'none stored yet';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(paths.serverCert));
    if (!cert.checkPrivateKey(createPrivateKey(readFileSync(paths.serverKey)))) {
      return 'its key does not match';
    }
  } catch {
    return 'the stored files do not parse';
  }
  if (!cert.verify(caCert.publicKey)) return 'it was signed by another CA';
  const from = new Date(cert.validFrom).getTime();
  const to = new Date(cert.validTo).getTime();
  if (to - now.getTime() < (to - from) * RENEW_REMAINING_FRACTION) return 'it expires soon';
  const missing = missingSANs(sans, certificateSANs(cert));
  if (missing.length > 0) return `it does not cover ${missing.join(', ')}`;
  return undefined;
}

/** The DNS and IP SANs of a certificate as Node reports them. */
export function certificateSANs(cert: X509Certificate): SANs {
  const sans: SANs = { dns: [], ips: [] };
  for (const part of (cert.subjectAltName ?? '').split(', ')) {
    if (part.startsWith('DNS:')) sans.dns.push(part.slice(4));
    else if (part.startsWith('IP Address:')) sans.ips.push(canonicalIP(part.slice(11)));
  }
  return sans;
}

function ensurePrivateDir(dir: string): void {
  try {
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700);
    } else if (!statSync(dir).isDirectory()) {
      throw new PKIError(
        'TLS_DIR_INVALID',
        `tls.dir ${dir} is not a directory; point tls.dir at a directory`,
      );
    }
  } catch (err) {
    if (err instanceof PKIError) throw err;
    throw new PKIError(
      'TLS_DIR_INVALID',
      `creating tls.dir ${dir}: ${(err as Error).message}; choose a directory this user can write (tls.dir or RTP_TLS_DIR)`,
      { cause: err },
    );
  }
}

function writePrivate(path: string, data: string): void {
  writeAtomic(path, data, 0o600);
}

function writePublic(path: string, data: string): void {
  writeAtomic(path, data, 0o644);
}

function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode, flag: 'wx' });
  chmodSync(tmp, mode); // the umask may have narrowed it; never widened beyond `mode`
  renameSync(tmp, path);
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new PKIError(
      'TLS_FILE_UNREADABLE',
      `reading ${what} ${path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

function readKey(path: string, what: string): KeyObject {
  try {
    return createPrivateKey(readFileSync(path));
  } catch (err) {
    throw new PKIError(
      'TLS_FILE_UNREADABLE',
      `reading ${what} ${path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

function parseCertificate(pem: string, path: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new PKIError('TLS_FILE_INVALID', `parsing ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Runs `fn` holding `dir/.lock` (O_EXCL create). A lock older than a minute is
 * taken to be left by a crashed process and removed.
 */
async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(dir, '.lock');
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx', 0o600));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        if (Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS) unlinkSync(lock);
      } catch {
        // the holder released it meanwhile
      }
      if (Date.now() > deadline) {
        throw new PKIError(
          'TLS_DIR_LOCKED',
          `${lock} has been held for over ${LOCK_WAIT_MS / 1000}s; if no other registry-tls-proxy is starting, delete it`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    unlinkSync(lock);
  }
}
