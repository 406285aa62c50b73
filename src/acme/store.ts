/**
 * ACME state in tls.dir/acme (0700; keys 0600), shared by replicas: the account key
 * and URL (reused across restarts and orders), the certificate (full chain) and its
 * key, the outcome of the last order (for `acme status`, the health reason and
 * metrics), and the challenge answers, so that whichever replica the CA reaches
 * answers them (certmagic keeps them in its shared storage for the same reason).
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { splitPEMCertificates } from '../pki/chain.js';
import { certificateSANs, ensurePrivateDir, pemBundle, writePrivate } from '../pki/store.js';

export const ACME_FILES = {
  accountKey: 'account.key',
  account: 'account.json',
  chain: 'cert.pem',
  key: 'cert.key',
  state: 'state.json',
  lock: 'order.lock',
  http01: 'http-01',
  tlsALPN: 'tls-alpn-01',
} as const;

/** The certificate an order brought, as it is served. */
export interface ACMECertificate {
  chainPEM: string;
  keyPEM: string;
  leaf: X509Certificate;
  notBefore: Date;
  notAfter: Date;
  /** Its DNS SANs. */
  names: string[];
}

/** What the last orders did; written by the replica that ordered. */
export interface ACMEState {
  directory?: string;
  lastSuccessAt?: string;
  lastError?: string;
  lastErrorAt?: string;
  /** When the next attempt is due after a failure (backoff). */
  retryAt?: string;
  failures?: number;
}

export function acmeDir(tlsDir: string): string {
  return join(resolve(tlsDir), 'acme');
}

export function ensureACMEDir(tlsDir: string): string {
  const dir = acmeDir(tlsDir);
  ensurePrivateDir(resolve(tlsDir));
  ensurePrivateDir(dir);
  ensurePrivateDir(join(dir, ACME_FILES.http01));
  ensurePrivateDir(join(dir, ACME_FILES.tlsALPN));
  return dir;
}

/** The stored certificate, or undefined when there is none (or it is half written). */
export function readACMECertificate(dir: string): ACMECertificate | undefined {
  let chainPEM: string;
  let keyPEM: string;
  try {
    chainPEM = readFileSync(join(dir, ACME_FILES.chain), 'utf8');
    keyPEM = readFileSync(join(dir, ACME_FILES.key), 'utf8');
    const leaf = new X509Certificate(chainPEM);
    if (!leaf.checkPrivateKey(createPrivateKey(keyPEM))) return undefined; // between the two renames
    const names = certificateSANs(leaf).dns;
    return {
      chainPEM,
      keyPEM,
      leaf,
      notBefore: new Date(leaf.validFrom),
      notAfter: new Date(leaf.validTo),
      names,
    };
  } catch {
    return undefined;
  }
}

/** Key first, then the chain: a reader pairs them only when they match (see above). */
export function writeACMECertificate(dir: string, chainPEM: string, keyPEM: string): void {
  writePrivate(join(dir, ACME_FILES.key), keyPEM);
  const { certs } = splitPEMCertificates(chainPEM, 'the ACME order');
  writePrivate(join(dir, ACME_FILES.chain), pemBundle(certs.map((c) => c.x509.toString())));
}

export function readState(dir: string): ACMEState {
  try {
    return JSON.parse(readFileSync(join(dir, ACME_FILES.state), 'utf8')) as ACMEState;
  } catch {
    return {};
  }
}

export function writeState(dir: string, state: ACMEState): void {
  writePrivate(join(dir, ACME_FILES.state), JSON.stringify(state, null, 2) + '\n');
}

export function readAccount(dir: string): { keyPEM?: string; url?: string; directory?: string } {
  const keyFile = join(dir, ACME_FILES.accountKey);
  const keyPEM = existsSync(keyFile) ? readFileSync(keyFile, 'utf8') : undefined;
  try {
    const account = JSON.parse(readFileSync(join(dir, ACME_FILES.account), 'utf8')) as {
      url?: string;
      directory?: string;
    };
    return { ...(keyPEM ? { keyPEM } : {}), ...account };
  } catch {
    return keyPEM ? { keyPEM } : {};
  }
}

export function writeAccountKey(dir: string, keyPEM: string): void {
  writePrivate(join(dir, ACME_FILES.accountKey), keyPEM);
}

export function writeAccount(dir: string, account: { url: string; directory: string }): void {
  writePrivate(join(dir, ACME_FILES.account), JSON.stringify(account, null, 2) + '\n');
}

/** Tokens and identifiers become file names: only what ACME allows in them (base64url, DNS). */
const SAFE_NAME = /^[A-Za-z0-9._*-]{1,255}$/;

export function challengeFile(dir: string, kind: 'http01' | 'tlsALPN', name: string) {
  if (!SAFE_NAME.test(name) || name.startsWith('.')) return undefined;
  return join(dir, ACME_FILES[kind], kind === 'tlsALPN' ? `${name.toLowerCase()}.pem` : name);
}

export function removeChallenge(file: string | undefined): void {
  if (file) rmSync(file, { force: true });
}
