/**
 * Certificate issuance: node-forge builds the X.509 structures; Node's native
 * crypto generates the keys and makes the RSA signature (forge's pure-JS RSA is
 * slow for 3072-bit keys). Profile follows mkcert's cert.go: a CA with
 * pathlen 0, leaves with serverAuth, SKI from the public key, AKI from the CA's SKI.
 */
import {
  constants,
  generateKeyPair,
  privateEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import forge from 'node-forge';
import type { SANs } from './sans.js';

const { pki } = forge;

export const CA_KEY_BITS = 3072;
export const LEAF_KEY_BITS = 2048;
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
}): Promise<IssuedCertificate> {
  const { publicKey, privateKey } = await generateRSA(CA_KEY_BITS);
  const cert = pki.createCertificate();
  cert.publicKey = pki.publicKeyFromPem(
    publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  );
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
    { name: 'subjectKeyIdentifier' },
  ]);
  signWith(cert, privateKey);
  return { certPEM: pki.certificateToPem(cert), keyPEM: exportKey(privateKey) };
}

/** A server certificate for `sans`, signed by `ca`; never outlives the CA. */
export function issueServerCertificate(opts: {
  ca: CertificateAuthority;
  sans: SANs;
  lifetimeMs: number;
  now?: Date;
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
  opts: { ca: CertificateAuthority; lifetimeMs: number; now?: Date },
  commonName: string,
  usage: { serverAuth?: boolean; clientAuth?: boolean },
  extra: object[],
): Promise<IssuedCertificate> {
  const caCert = pki.certificateFromPem(opts.ca.certPEM);
  const { publicKey, privateKey } = await generateRSA(LEAF_KEY_BITS);
  const cert = pki.createCertificate();
  cert.publicKey = pki.publicKeyFromPem(
    publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  );
  setValidity(cert, opts.now ?? new Date(), opts.lifetimeMs);
  if (cert.validity.notAfter > caCert.validity.notAfter) {
    cert.validity.notAfter = caCert.validity.notAfter;
  }
  cert.serialNumber = randomSerial();
  cert.setSubject([
    { name: 'commonName', value: commonName },
    { name: 'organizationName', value: ORGANIZATION },
  ]);
  cert.setIssuer(caCert.subject.attributes);
  const caKeyId = caCert.generateSubjectKeyIdentifier().getBytes();
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', ...usage },
    ...extra,
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caKeyId },
  ]);
  signWith(cert, opts.ca.key);
  return { certPEM: pki.certificateToPem(cert), keyPEM: exportKey(privateKey) };
}

/** Off the event loop: renewal happens while the proxy is serving. */
function generateRSA(bits: number): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  return new Promise((resolve, reject) =>
    generateKeyPair(
      'rsa',
      { modulusLength: bits, publicExponent: 0x10001 },
      (err, publicKey, privateKey) => (err ? reject(err) : resolve({ publicKey, privateKey })),
    ),
  );
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

/** DER prefix of a SHA-256 DigestInfo (RFC 8017 §9.2, note 1). */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/**
 * sha256WithRSAEncryption by Node's OpenSSL: forge computes the digest of the
 * TBSCertificate and hands it to `key.sign(md)`; we answer with an RSASSA-PKCS1-v1_5
 * signature over that digest.
 */
function signWith(cert: forge.pki.Certificate, key: KeyObject): void {
  const nativeSigner = {
    sign(md: forge.md.MessageDigest): string {
      const digest = Buffer.from(md.digest().getBytes(), 'binary');
      const signature = privateEncrypt(
        { key, padding: constants.RSA_PKCS1_PADDING },
        Buffer.concat([SHA256_DIGEST_INFO, digest]),
      );
      return signature.toString('binary');
    },
  };
  cert.sign(nativeSigner as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
}
