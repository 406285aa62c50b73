/**
 * Certificate chains as users supply them: PEM bundles split into certificates,
 * then ordered leaf → root by who signed whom, not by where they sit in the file,
 * and the findings about that order (CHAIN_INCOMPLETE, CHAIN_ORDER, CHAIN_EXTRA).
 * A link counts only when the names match (checkIssued, which also compares the
 * key identifiers) AND the signature verifies, so a look-alike issuer never passes.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import forge from 'node-forge';
import type { Finding } from './finding.js';

/** A certificate and where it came from, e.g. "tls.cert /etc/rtp/fullchain.pem". */
export interface SourcedCertificate {
  x509: X509Certificate;
  source: string;
}

export interface ChainWalk {
  /** The leaf, then each certificate's issuer as found among the supplied ones. */
  path: SourcedCertificate[];
  /**
   * Index in `path` of the first certificate that is self-signed or signed by a trust
   * anchor: clients stop building there. Undefined when no such certificate was reached.
   */
  anchoredAt: number | undefined;
}

const FULLCHAIN_HINT =
  'serve the full chain (fullchain.cer / fullchain.pem, not example.com.cer / cert.pem)';
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle, and a reason for each block that does not parse. */
export function splitPEMCertificates(
  text: string,
  source: string,
): { certs: SourcedCertificate[]; errors: string[] } {
  const certs: SourcedCertificate[] = [];
  const errors: string[] = [];
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  blocks.forEach((block, i) => {
    try {
      certs.push({ x509: new X509Certificate(block), source });
    } catch (err) {
      errors.push(
        `certificate #${i + 1} of ${blocks.length} does not parse (${(err as Error).message})`,
      );
    }
  });
  return { certs, errors };
}

/** True when `issuer` signed `cert`: matching names and key identifiers, and a valid signature. */
export function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false; // e.g. a signature algorithm this OpenSSL build does not know
  }
}

/**
 * Not `issuedBy(cert, cert)`: checkIssued also demands keyCertSign of the issuer, which a
 * self-signed server certificate (keyUsage digitalSignature only) rightly lacks.
 */
export function isSelfSigned(cert: X509Certificate): boolean {
  try {
    return cert.subject === cert.issuer && cert.verify(cert.publicKey);
  } catch {
    return false;
  }
}

const { asn1 } = forge;
const BASIC_CONSTRAINTS = '2.5.29.19';

/**
 * basicConstraints cA, read from the DER. Node's X509Certificate.ca is OpenSSL's
 * X509_check_ca(): false for a CA:TRUE certificate whose keyUsage lacks keyCertSign,
 * which is just the broken leaf this looks for. forge's asn1 is used, not its pki,
 * which cannot read certificates with EC keys.
 */
export function hasCABasicConstraint(cert: X509Certificate): boolean {
  if (cert.ca) return true;
  try {
    const tbs = children(asn1.fromDer(cert.raw.toString('binary')))[0];
    const tagged = children(tbs).find(
      (e) => e.tagClass === asn1.Class.CONTEXT_SPECIFIC && e.type === 3,
    );
    for (const extension of children(children(tagged)[0])) {
      const [oid, ...rest] = children(extension);
      if (oid?.type !== asn1.Type.OID || asn1.derToOid(oid.value as string) !== BASIC_CONSTRAINTS) {
        continue;
      }
      const extnValue = rest.at(-1); // after the optional critical BOOLEAN
      const [cA] = children(asn1.fromDer(extnValue?.value as string));
      return cA?.type === asn1.Type.BOOLEAN && cA.value !== '\x00';
    }
  } catch {
    // not DER forge can read: X509_check_ca's answer stands
  }
  return false;
}

function children(node: forge.asn1.Asn1 | undefined): forge.asn1.Asn1[] {
  return node && Array.isArray(node.value) ? node.value : [];
}

/** Whether `key` is the private key of `cert`; false (not a throw) for a key of another type. */
export function matchesKey(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.checkPrivateKey(key);
  } catch {
    return false;
  }
}

/**
 * Which supplied certificate is the leaf: the one the key belongs to, else the one
 * that signed none of the others (a reversed file has it last), else the first.
 */
export function pickLeaf(
  certs: readonly SourcedCertificate[],
  key: KeyObject | undefined,
): SourcedCertificate | undefined {
  const signsAnother = (c: SourcedCertificate): boolean =>
    certs.some((other) => other !== c && issuedBy(other.x509, c.x509));
  // The key finds the leaf in a file out of order; a key that matches an issuer is the wrong key.
  const byKey = key
    ? certs.find((c) => matchesKey(c.x509, key) && !c.x509.ca && !signsAnother(c))
    : undefined;
  if (byKey) return byKey;
  return certs.find((c) => !signsAnother(c)) ?? certs[0];
}

/** One entry per certificate; where both files hold it, the first occurrence wins. */
export function uniqueCertificates(certs: readonly SourcedCertificate[]): SourcedCertificate[] {
  const seen = new Set<string>();
  return certs.filter((c) => {
    if (seen.has(c.x509.fingerprint256)) return false;
    seen.add(c.x509.fingerprint256);
    return true;
  });
}

/**
 * Follows issuers from `leaf` through `pool`. The walk goes on past the anchor so
 * that certificates the user chose to serve beyond it (a cross-signed root) are kept.
 */
export function walkChain(
  leaf: SourcedCertificate,
  pool: readonly SourcedCertificate[],
  roots: readonly X509Certificate[],
): ChainWalk {
  const path = [leaf];
  let anchoredAt: number | undefined;
  for (let current = leaf; ;) {
    const selfSigned = isSelfSigned(current.x509);
    if (anchoredAt === undefined && (selfSigned || isAnchored(current.x509, roots))) {
      anchoredAt = path.length - 1;
    }
    if (selfSigned) break;
    const issuer = pool.find((c) => !path.includes(c) && issuedBy(current.x509, c.x509));
    if (!issuer) break;
    path.push(issuer);
    current = issuer;
  }
  return { path, anchoredAt };
}

/** CHAIN_INCOMPLETE, or else CHAIN_ORDER and CHAIN_EXTRA, for the certificates of tls.cert. */
export function chainFindings(walk: ChainWalk, supplied: readonly SourcedCertificate[]): Finding[] {
  const findings: Finding[] = [];
  const leaf = walk.path[0]!;
  const last = walk.path.at(-1)!;
  if (walk.anchoredAt === undefined) {
    const where =
      last === leaf
        ? `${describe(leaf.x509)} was issued by "${oneLine(leaf.x509.issuer)}"`
        : `the chain ends at ${describe(last.x509)} (from ${last.source}), issued by "${oneLine(last.x509.issuer)}"`;
    const privateRoot =
      last === leaf ? '' : ', or add that CA certificate to tls.ca if it is a private root';
    findings.push({
      severity: 'error',
      code: 'CHAIN_INCOMPLETE',
      message: `${leaf.source}: ${where}, which is in neither tls.cert nor tls.ca and is not a trusted root; clients will get "x509: certificate signed by unknown authority"; ${FULLCHAIN_HINT}${privateRoot}`,
    });
    return findings;
  }
  const onPath = supplied.filter((c) => walk.path.includes(c));
  const inChainOrder = walk.path.filter((c) => supplied.includes(c));
  if (supplied[0] !== leaf || onPath.some((c, i) => c !== inChainOrder[i])) {
    const list = (certs: readonly SourcedCertificate[]) =>
      certs.map((c) => describe(c.x509)).join(', ');
    findings.push({
      severity: 'warning',
      code: 'CHAIN_ORDER',
      message: `${leaf.source}: the certificates are not in chain order (leaf first, then each one's issuer): the file has ${list(supplied)}; the proxy serves ${list(servedChain(walk))} instead; reorder the file so that other tools read it right`,
    });
  }
  for (const cert of supplied.filter((c) => !walk.path.includes(c))) {
    findings.push({
      severity: 'warning',
      code: 'CHAIN_EXTRA',
      message: `${cert.source}: ${describe(cert.x509)} is not in the chain of ${describe(leaf.x509)} and is not served; remove it from the file`,
    });
  }
  return findings;
}

/**
 * What to send: the path without a self-signed root at its end. Clients must hold
 * the root already; sending it only costs bytes (RFC 8446 §4.4.2).
 */
export function servedChain(walk: ChainWalk): SourcedCertificate[] {
  const last = walk.path.at(-1)!;
  return walk.path.length > 1 && isSelfSigned(last.x509) ? walk.path.slice(0, -1) : walk.path;
}

/** The certificate is a trust anchor itself, or one signed it. */
function isAnchored(cert: X509Certificate, roots: readonly X509Certificate[]): boolean {
  return roots.some((root) => root.fingerprint256 === cert.fingerprint256 || issuedBy(cert, root));
}

let nodeRoots: X509Certificate[] | undefined;

/** Parsed trust anchors; Node's bundled Mozilla roots when none are given (parsed once). */
export function parseRoots(pems: readonly string[] | undefined): X509Certificate[] {
  if (pems === undefined) {
    nodeRoots ??= parseAll(rootCertificates);
    return nodeRoots;
  }
  return parseAll(pems);
}

function parseAll(pems: readonly string[]): X509Certificate[] {
  // Roots come from code, not from the user's files; one that does not parse is skipped.
  return pems.flatMap((pem) => splitPEMCertificates(pem, 'roots').certs.map((c) => c.x509));
}

/** Node prints one attribute per line; messages want one line. */
export function oneLine(name: string): string {
  return name.split('\n').join(', ');
}

export function describe(cert: X509Certificate): string {
  return `"${oneLine(cert.subject)}"`;
}
