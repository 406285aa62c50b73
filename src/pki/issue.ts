/**
 * Certificate issuance: node-forge lays out the X.509 structures; Node's native
 * crypto generates the keys and signs (certificate-der.ts: forge's model holds RSA
 * keys only, and its pure-JS RSA is slow for 3072-bit keys). Profile follows
 * mkcert's cert.go: a CA with pathlen 0, leaves with serverAuth, SKI from the public
 * key, AKI from the CA's SKI.
 */
import {
  createPublicKey,
  generateKeyPair,
  randomBytes,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import forge from 'node-forge';
import {
  keyIdentifier,
  signCertificate,
  subjectKeyIdentifierExtension,
} from './certificate-der.js';
import type { KeyType } from '../config/schema.js';
import type { SANs } from './sans.js';

const { pki } = forge;

export type { KeyType };
export const CA_KEY_BITS = 3072;
export const LEAF_KEY_BITS = 2048;
export const EC_CURVE = 'prime256v1';
/** Issue certificates slightly in the past so that clients with a lagging clock accept them. */
const BACKDATE_MS = 60 * 60 * 1000;
/** …but never by more than a tenth of the lifetime, so renewal at 2/3 of life stays meaningful. */
const BACKDATE_SHARE = 0.1;
const ORGANIZATION = 'registry-tls-proxy';

export interface IssuedCertificate {
  certPEM: string;
  keyPEM: string;
}

export interface CertificateAuthority {
  certPEM: string;
  key: KeyObject;
}

/** A new self-signed CA able to sign leaves only (pathlen 0). */
export async function createCA(opts: {
  commonName: string;
  lifetimeMs: number;
  now?: Date;
  keyType?: KeyType;
}): Promise<IssuedCertificate> {
  const { publicKey, privateKey } = await generateKey(opts.keyType ?? 'rsa', CA_KEY_BITS);
  const cert = pki.createCertificate();
  setValidity(cert, opts.now ?? new Date(), opts.lifetimeMs);
  cert.serialNumber = randomSerial();
  const name = [
    { name: 'commonName', value: opts.commonName },
    { name: 'organizationName', value: ORGANIZATION },
  ];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    subjectKeyIdentifierExtension(publicKey),
  ]);
  const certPEM = signCertificate({ cert, subjectKey: publicKey, signerKey: privateKey });
  return { certPEM, keyPEM: exportKey(privateKey) };
}

/** A server certificate for `sans`, signed by `ca`; never outlives the CA. */
export function issueServerCertificate(opts: {
  ca: CertificateAuthority;
  sans: SANs;
  lifetimeMs: number;
  now?: Date;
  keyType?: KeyType;
}): Promise<IssuedCertificate> {
  const commonName = opts.sans.dns[0] ?? opts.sans.ips[0] ?? 'registry-tls-proxy';
  return issueLeaf(opts, commonName, { serverAuth: true }, [
    {
      name: 'subjectAltName',
      altNames: [
        ...opts.sans.dns.map((value) => ({ type: 2, value })),
        ...opts.sans.ips.map((ip) => ({ type: 7, ip })),
      ],
    },
  ]);
}

/** A client certificate for mutual TLS (docker's client.cert), signed by `ca`. */
export function issueClientCertificate(opts: {
  ca: CertificateAuthority;
  name: string;
  lifetimeMs: number;
  now?: Date;
}): Promise<IssuedCertificate> {
  return issueLeaf(opts, opts.name, { clientAuth: true }, []);
}

async function issueLeaf(
  opts: { ca: CertificateAuthority; lifetimeMs: number; now?: Date; keyType?: KeyType },
  commonName: string,
  usage: { serverAuth?: boolean; clientAuth?: boolean },
  extra: object[],
): Promise<IssuedCertificate> {
  const keyType = opts.keyType ?? 'rsa';
  const { publicKey, privateKey } = await generateKey(keyType, LEAF_KEY_BITS);
  const cert = pki.createCertificate();
  setValidity(cert, opts.now ?? new Date(), opts.lifetimeMs);
  const caNotAfter = new Date(new X509Certificate(opts.ca.certPEM).validTo);
  if (cert.validity.notAfter > caNotAfter) cert.validity.notAfter = caNotAfter;
  cert.serialNumber = randomSerial();
  cert.setSubject([
    { name: 'commonName', value: commonName },
    { name: 'organizationName', value: ORGANIZATION },
  ]);
  const caKeyId = keyIdentifier(createPublicKey(opts.ca.certPEM));
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    // An RSA key may also encrypt (TLS 1.2 RSA key exchange, which our ciphers never
    // pick, and some verifiers expect it); an EC key only signs (RFC 5480 §3).
    {
      name: 'keyUsage',
      digitalSignature: true,
      keyEncipherment: keyType === 'rsa',
      critical: true,
    },
    { name: 'extKeyUsage', ...usage },
    ...extra,
    subjectKeyIdentifierExtension(publicKey),
    { name: 'authorityKeyIdentifier', keyIdentifier: forge.util.hexToBytes(caKeyId) },
  ]);
  const certPEM = signCertificate({
    cert,
    subjectKey: publicKey,
    signerKey: opts.ca.key,
    issuerPEM: opts.ca.certPEM,
  });
  return { certPEM, keyPEM: exportKey(privateKey) };
}

/** Off the event loop: renewal happens while the proxy is serving. */
function generateKey(
  keyType: KeyType,
  rsaBits: number,
): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, publicKey: KeyObject, privateKey: KeyObject) =>
      err ? reject(err) : resolve({ publicKey, privateKey });
    if (keyType === 'ecdsa') generateKeyPair('ec', { namedCurve: EC_CURVE }, done);
    else generateKeyPair('rsa', { modulusLength: rsaBits, publicExponent: 0x10001 }, done);
  });
}

function exportKey(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function setValidity(cert: forge.pki.Certificate, now: Date, lifetimeMs: number): void {
  const backdate = Math.min(BACKDATE_MS, lifetimeMs * BACKDATE_SHARE);
  cert.validity.notBefore = new Date(now.getTime() - backdate);
  cert.validity.notAfter = new Date(now.getTime() + lifetimeMs);
}

/** 128 random bits, positive (RFC 5280 §4.1.2.2), never starting with a zero byte. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 1) & 0x7f) | 0x01;
  return bytes.toString('hex');
}
