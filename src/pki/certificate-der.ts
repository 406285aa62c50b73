/**
 * The DER of a certificate whose fields node-forge lays out but whose key forge
 * cannot hold: forge's certificate model knows RSA keys only. forge builds the
 * TBSCertificate (names, validity, serial, extensions) around a stand-in key; here
 * the stand-in's SubjectPublicKeyInfo is replaced by the real one (RSA or EC, as
 * Node exports it), the issuer by the CA's own encoded subject (so an EC CA, which
 * forge cannot parse, signs as well), and the signature is made by Node's crypto.
 */
import { createHash, sign, X509Certificate, type KeyObject } from 'node:crypto';
import forge from 'node-forge';

const { asn1, pki } = forge;
/** In node-forge since 0.x, missing from its type definitions. */
const { getTBSCertificate } = pki as unknown as {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
};

/** TBSCertificate's fields, in order (RFC 5280 §4.1); version is [0] EXPLICIT. */
const TBS = { signature: 2, issuer: 3, subject: 5, subjectPublicKeyInfo: 6 } as const;
const OID = {
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
};

/** A key forge accepts while laying out the TBS; its place is taken by the real key. */
const STAND_IN_KEY = pki.setRsaPublicKey(
  new forge.jsbn.BigInteger('3', 16),
  new forge.jsbn.BigInteger('3', 16),
);

// BIT STRINGs kept as bytes: forge would otherwise parse their contents as ASN.1.
const fromDer = asn1.fromDer as unknown as (
  der: forge.util.ByteStringBuffer,
  options: { decodeBitStrings: boolean },
) => forge.asn1.Asn1; // the options form is missing from forge's type definitions
const fromBuffer = (der: Buffer) =>
  fromDer(forge.util.createBuffer(der.toString('binary')), { decodeBitStrings: false });
const toBuffer = (node: forge.asn1.Asn1) => Buffer.from(asn1.toDer(node).getBytes(), 'binary');

/** AlgorithmIdentifier of a SHA-256 signature by `key`: RSA with NULL parameters, ECDSA with none (RFC 5758). */
function signatureAlgorithm(key: KeyObject): forge.asn1.Asn1 {
  const ec = key.asymmetricKeyType === 'ec';
  const oid = asn1.create(
    asn1.Class.UNIVERSAL,
    asn1.Type.OID,
    false,
    asn1.oidToDer(ec ? OID.ecdsaWithSHA256 : OID.sha256WithRSAEncryption).getBytes(),
  );
  const params = ec ? [] : [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, '')];
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [oid, ...params]);
}

/** The subjectPublicKey BIT STRING's bytes (after the unused-bits octet) of a public key. */
function subjectPublicKeyBits(publicKey: KeyObject): Buffer {
  const spki = fromBuffer(publicKey.export({ type: 'spki', format: 'der' }));
  const bits = (spki.value as forge.asn1.Asn1[])[1]?.value as string;
  return Buffer.from(bits, 'binary').subarray(1);
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits, as hex. */
export function keyIdentifier(publicKey: KeyObject): string {
  return createHash('sha1').update(subjectPublicKeyBits(publicKey)).digest('hex');
}

/** The issuer's encoded subject Name, taken whole from its certificate. */
function subjectOf(certPEM: string): forge.asn1.Asn1 {
  const cert = fromBuffer(new X509Certificate(certPEM).raw);
  const tbs = (cert.value as forge.asn1.Asn1[])[0] as forge.asn1.Asn1;
  return (tbs.value as forge.asn1.Asn1[])[TBS.subject] as forge.asn1.Asn1;
}

/**
 * Signs `cert` (laid out by forge, with any key or none set) for `subjectKey`, by
 * `signerKey`; `issuerPEM` is the signing CA (omit for a self-signed certificate).
 * Returns the certificate as PEM.
 */
export function signCertificate(opts: {
  cert: forge.pki.Certificate;
  subjectKey: KeyObject;
  signerKey: KeyObject;
  issuerPEM?: string;
}): string {
  const { cert, subjectKey, signerKey } = opts;
  cert.publicKey = STAND_IN_KEY;
  cert.siginfo.algorithmOid = OID.sha256WithRSAEncryption; // a stand-in too: replaced below
  const tbs = getTBSCertificate(cert);
  const fields = tbs.value as forge.asn1.Asn1[];
  fields[TBS.signature] = signatureAlgorithm(signerKey);
  if (opts.issuerPEM !== undefined) fields[TBS.issuer] = subjectOf(opts.issuerPEM);
  fields[TBS.subjectPublicKeyInfo] = fromBuffer(subjectKey.export({ type: 'spki', format: 'der' }));
  const tbsDer = toBuffer(tbs);
  // RSA: RSASSA-PKCS1-v1_5; EC: the DER ECDSA-Sig-Value X.509 wants (Node's default encoding).
  const signature = sign('sha256', tbsDer, signerKey);
  const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    signatureAlgorithm(signerKey),
    asn1.create(
      asn1.Class.UNIVERSAL,
      asn1.Type.BITSTRING,
      false,
      String.fromCharCode(0) + signature.toString('binary'),
    ),
  ]);
  return new X509Certificate(toBuffer(certificate)).toString();
}

/** A subjectKeyIdentifier extension for forge with its value set (forge would hash the stand-in). */
export function subjectKeyIdentifierExtension(publicKey: KeyObject) {
  const id = forge.util.hexToBytes(keyIdentifier(publicKey));
  return {
    name: 'subjectKeyIdentifier',
    value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, id),
  };
}
