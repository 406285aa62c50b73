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
import { join, resolve } from 'node:path';
import { PKIError } from '../errors.js';
import { createCA, type KeyType } from './issue.js';
import { canonicalIP, type SANs } from './sans.js';

export const FILES = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  /** A CA rotation in progress: created by `ca rotate`, trusted by clients, not signing yet. */
  nextCACert: 'ca-next.crt',
  nextCAKey: 'ca-next.key',
  /** The CA before the last `ca switch`: still accepted for client certificates (mutual TLS). */
  previousCACert: 'ca-previous.crt',
  previousCAKey: 'ca-previous.key',
  /** ECDSA P-256: the certificate every client that offers ECDSA gets. */
  serverCert: 'server.crt',
  serverKey: 'server.key',
  /** RSA-2048, beside it while the CA is RSA: for clients that offer no ECDSA. */
  serverRSACert: 'server-rsa.crt',
  serverRSAKey: 'server-rsa.key',
} as const;

const LOCK_FILE = '.lock';
const LOCK_STALE_MS = 60_000;
const LOCK_WAIT_MS = 120_000;

export interface TLSMaterial {
  /** The CA that signs the served certificate (for a supplied certificate: the top of its chain). */
  caCertPEM: string;
  caFingerprint256: string;
  caNotAfter: Date;
  /**
   * What clients should trust, served at GET /ca.crt: the signing CA, then the next
   * CA while a rotation is in progress. Fingerprints in the same order.
   */
  trustBundlePEM: string;
  trustFingerprints: string[];
  /** CAs whose client certificates are accepted (tls.clientAuth): active, next, previous. */
  clientCAsPEM?: string;
  serverCertPEM: string;
  /** The chain to serve when it is not leaf + our CA (a supplied certificate's full chain). */
  servedChainPEM?: string;
  serverKeyPEM: string;
  /**
   * A second certificate for the same names with another key type, served from the
   * same context (OpenSSL picks by what the client offers): the RSA one beside the
   * ECDSA one, while the CA is RSA.
   */
  fallback?: { certPEM: string; keyPEM: string };
  serverNotAfter: Date;
  sans: SANs;
  /** What happened on this start, for the log. */
  created: { ca: boolean; server: boolean; reason?: string };
}

export interface StoreOptions {
  dir: string;
  /** tls.caDir, resolved: the CAs come from there, read-only; undefined = from `dir`. */
  caDir?: string | undefined;
  sans: SANs;
  certLifetimeMs: number;
  caLifetimeMs: number;
  /** tls.keyType: the key of a CA made here (default rsa). */
  caKeyType?: KeyType;
  now?: Date;
}

export interface StoredCA {
  certPEM: string;
  cert: X509Certificate;
}

/** The CAs in a TLS directory. */
export interface CASet {
  /** Signs server (and client) certificates. */
  active: StoredCA & { key: KeyObject };
  /** Created by `ca rotate`: clients are given it to trust; it signs once `ca switch` runs. */
  next?: StoredCA;
  /** The CA before the last switch: client certificates it signed are still accepted. */
  previous?: StoredCA;
}

/** Creates the CA when `dir` has none (under the lock, so that replicas share one), then reads all CAs. */
export async function loadOrCreateCA(opts: {
  dir: string;
  caLifetimeMs: number;
  keyType?: KeyType | undefined;
  now?: Date;
}): Promise<CASet & { created: boolean }> {
  ensurePrivateDir(opts.dir);
  const cert = join(opts.dir, FILES.caCert);
  const key = join(opts.dir, FILES.caKey);
  let created = false;
  if (!existsSync(cert) || !existsSync(key)) {
    created = await withLock(opts.dir, async () => {
      if (existsSync(cert) && existsSync(key)) return false; // another replica won
      await writeNewCA(opts.dir, FILES.caCert, FILES.caKey, opts);
      return true;
    });
  }
  return { ...(await readCASet(opts.dir)), created };
}

/** Creates a CA and writes it to `certName`/`keyName` in `dir` (key first: the certificate marks it complete). */
export async function writeNewCA(
  dir: string,
  certName: string,
  keyName: string,
  opts: { caLifetimeMs: number; keyType?: KeyType | undefined; now?: Date },
): Promise<X509Certificate> {
  const now = opts.now ?? new Date();
  const ca = await createCA({
    commonName: `registry-tls-proxy CA (${hostname()}, ${now.toISOString().slice(0, 10)})`,
    lifetimeMs: opts.caLifetimeMs,
    keyType: opts.keyType ?? 'rsa',
    now,
  });
  writePrivate(join(dir, keyName), ca.keyPEM);
  writePublic(join(dir, certName), ca.certPEM);
  return new X509Certificate(ca.certPEM);
}

/**
 * Reads the CAs of `dir` under the directory lock: a `ca switch` renames several
 * files, and a reader must see all of them from before it or all from after it
 * (never the old certificate with the new key, or the old active CA beside itself
 * as previous). Callers that already hold the lock say so.
 */
export async function readCASet(
  dir: string,
  opts: { holdingLock?: boolean; readOnly?: boolean } = {},
): Promise<CASet> {
  if (opts.holdingLock) return readCASetOnce(dir);
  if (opts.readOnly) return readCASetReadOnly(dir);
  if (!existsSync(dir)) {
    throw new PKIError(
      'CA_MISSING',
      `tls.dir ${dir} does not exist; start the proxy once (it creates the CA) or point tls.dir / RTP_TLS_DIR at its directory`,
    );
  }
  return withLock(dir, async () => readCASetOnce(dir));
}

/**
 * Where the CAs are: tls.caDir when set (read-only: no lock file, nothing created or
 * written there), else tls.dir.
 */
export function caHome(tls: { dir: string; caDir: string }): { dir: string; readOnly: boolean } {
  return tls.caDir !== ''
    ? { dir: resolve(tls.caDir), readOnly: true }
    : { dir: resolve(tls.dir), readOnly: false };
}

/** The CAs of `config` (tls.caDir or tls.dir). */
export function readConfiguredCAs(tls: { dir: string; caDir: string }): Promise<CASet> {
  const home = caHome(tls);
  return readCASet(home.dir, { readOnly: home.readOnly });
}

/**
 * The CAs of a directory someone else writes, without a lock. A Kubernetes Secret is
 * swapped whole (its `..data` link), but reading ca.crt and then ca.key can straddle
 * a swap and find a pair that does not match: read once more before calling it so.
 */
function readCASetReadOnly(dir: string): CASet {
  try {
    return readCASetOnce(dir);
  } catch (err) {
    if (!(err instanceof PKIError) || err.code !== 'CA_KEY_MISMATCH') throw err;
    return readCASetOnce(dir);
  }
}

function readCASetOnce(dir: string): CASet {
  const certPath = join(dir, FILES.caCert);
  const keyPath = join(dir, FILES.caKey);
  if (!existsSync(certPath)) {
    throw new PKIError(
      'CA_MISSING',
      `${certPath} does not exist; start the proxy once (it creates the CA) or point tls.dir / RTP_TLS_DIR at its directory`,
    );
  }
  const certPEM = readText(certPath, 'CA certificate');
  const key = readKey(keyPath, 'CA key');
  const cert = parseCertificate(certPEM, certPath);
  if (!cert.checkPrivateKey(key)) {
    throw new PKIError(
      'CA_KEY_MISMATCH',
      `loading CA: ${keyPath} does not belong to ${certPath}; restore the matching pair from backup, or move both away to create a new CA (clients must then trust the new ca.crt)`,
    );
  }
  const next = readOptionalCA(join(dir, FILES.nextCACert));
  const previous = readOptionalCA(join(dir, FILES.previousCACert));
  return {
    active: { certPEM, cert, key },
    ...(next ? { next } : {}),
    ...(previous ? { previous } : {}),
  };
}

function readOptionalCA(path: string): StoredCA | undefined {
  let certPEM: string;
  try {
    certPEM = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PKIError('TLS_FILE_UNREADABLE', `reading ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return { certPEM, cert: parseCertificate(certPEM, path) };
}

/** One PEM after another, LF line ends, each ending in a newline. */
export function pemBundle(pems: readonly string[]): string {
  return pems.map((p) => p.replace(/\r\n/g, '\n').trimEnd() + '\n').join('');
}

/** What clients trust (active CA, then the next one during a rotation), with fingerprints. */
export function trustBundle(set: CASet): { pem: string; fingerprints: string[] } {
  const cas = set.next ? [set.active, set.next] : [set.active];
  return {
    pem: pemBundle(cas.map((c) => c.certPEM)),
    fingerprints: cas.map((c) => c.cert.fingerprint256),
  };
}

/** The CAs whose client certificates tls.clientAuth accepts: active, next, previous. */
export function clientCABundle(set: CASet): string {
  return pemBundle([set.active, set.next, set.previous].flatMap((c) => (c ? [c.certPEM] : [])));
}

/** Loads the CAs and server certificate from `dir`, creating or re-issuing what is missing or stale. */
/** The DNS and IP SANs of a certificate as Node reports them. */
export function certificateSANs(cert: X509Certificate): SANs {
  const sans: SANs = { dns: [], ips: [] };
  for (const part of (cert.subjectAltName ?? '').split(', ')) {
    if (part.startsWith('DNS:')) sans.dns.push(part.slice(4));
    else if (part.startsWith('IP Address:')) sans.ips.push(canonicalIP(part.slice(11)));
  }
  return sans;
}

export function ensurePrivateDir(dir: string): void {
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

export function writePrivate(path: string, data: string): void {
  writeAtomic(path, data, 0o600);
}

/** Certificates, with Unix line ends (forge writes CRLF), so the file and /ca.crt are byte-identical. */
export function writePublic(path: string, data: string): void {
  writeAtomic(path, data.replace(/\r\n/g, '\n'), 0o644);
}

function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode, flag: 'wx' });
  chmodSync(tmp, mode); // the umask may have narrowed it; never widened beyond `mode`
  renameSync(tmp, path);
}

export function readText(path: string, what: string): string {
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

export function parseCertificate(pem: string, path: string): X509Certificate {
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
export async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(dir, LOCK_FILE);
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx', 0o600));
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw new PKIError(
          'TLS_DIR_MISSING',
          `tls.dir ${dir} does not exist; start the proxy once (it creates the CA) or point tls.dir / RTP_TLS_DIR at its directory`,
          { cause: err },
        );
      }
      if (code !== 'EEXIST') {
        throw new PKIError(
          'TLS_DIR_INVALID',
          `locking ${lock}: ${(err as Error).message}; run as the user that owns tls.dir`,
          { cause: err },
        );
      }
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
