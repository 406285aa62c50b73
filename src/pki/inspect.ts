/**
 * Checks a brought-your-own certificate (an ACME client's, a corporate CA's) before
 * the proxy serves it, so that every x509 error a client would hit is reported at
 * start-up instead, naming the file and the fix. Every problem is reported, not the
 * first. Client errors are quoted as Go's crypto/x509 words them: Docker, containerd,
 * skopeo and the registry itself are Go programs.
 */
import { createPrivateKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import {
  chainFindings,
  describe,
  hasCABasicConstraint,
  isSelfSigned,
  matchesKey,
  oneLine,
  parseRoots,
  pickLeaf,
  servedChain,
  splitPEMCertificates,
  uniqueCertificates,
  walkChain,
  type SourcedCertificate,
} from './chain.js';
import type { Finding, FindingCode } from './finding.js';
import { canonicalIP, type SANs } from './sans.js';
import { certificateSANs } from './store.js';

export interface SuppliedCertificate {
  certPEM: string;
  keyPEM: string;
  /** optional extra chain/CA bundle (tls.ca) */
  caPEM?: string;
  /** file names for messages */
  certFile: string;
  keyFile: string;
  caFile?: string;
}

export interface InspectOptions {
  /** tls.names: DNS names and IPs clients use; each must be covered by a SAN */
  names: readonly string[];
  now: Date;
  /** warn when less than this remains */
  warnBeforeMs: number;
  /** trust anchors besides the supplied chain; default: Node's tls.rootCertificates */
  roots?: readonly string[];
}

export interface Inspection {
  findings: Finding[];
  /** the chain to serve: leaf first, then intermediates in order (the root may be omitted) */
  chainPEM: string;
  leaf:
    | {
        subject: string;
        sans: { dns: string[]; ips: string[] };
        notBefore: Date;
        notAfter: Date;
        fingerprint256: string;
      }
    | undefined;
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';
const EKU_NAMES: Readonly<Record<string, string>> = {
  [SERVER_AUTH]: 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
};
const RELOAD_HINT = 'the proxy reloads replaced files without a restart';
const VALIDITY_ERROR = 'x509: certificate has expired or is not yet valid';

/**
 * Parses and checks the supplied certificate, key and chain.
 *
 * @example
 * const { findings, chainPEM } = inspectSuppliedCertificate(
 *   { certPEM, keyPEM, certFile: '/etc/rtp/fullchain.pem', keyFile: '/etc/rtp/key.pem' },
 *   { names: ['registry.example.com', '10.0.0.5'], now: new Date(), warnBeforeMs: 14 * DAY_MS },
 * );
 * // findings: [] when every client can verify it; chainPEM: leaf, then intermediates
 */
export function inspectSuppliedCertificate(
  input: SuppliedCertificate,
  opts: InspectOptions,
): Inspection {
  const findings: Finding[] = [];
  const certContext = `tls.cert ${input.certFile}`;
  const supplied = uniqueCertificates(readCertificates(input.certPEM, certContext, findings));
  const extra =
    input.caPEM === undefined
      ? []
      : readCertificates(input.caPEM, `tls.ca ${input.caFile ?? '(inline)'}`, findings);
  const key = readKey(input.keyPEM, input.keyFile, findings);
  const leaf = pickLeaf(supplied, key);
  if (!leaf) return { findings, chainPEM: '', leaf: undefined };

  if (key && !matchesKey(leaf.x509, key)) {
    const owner = [...supplied, ...extra].find((c) => matchesKey(c.x509, key));
    const whose = owner ? ` (it is the key of ${describe(owner.x509)}, also in the files)` : '';
    findings.push(
      error(
        'KEY_MISMATCH',
        `tls.key ${input.keyFile}: does not match tls.cert ${input.certFile} (${describe(leaf.x509)})${whose}; use the key that was generated with this certificate`,
      ),
    );
  }
  const walk = walkChain(leaf, uniqueCertificates([...supplied, ...extra]), parseRoots(opts.roots));
  findings.push(...chainFindings(walk, supplied));
  const sans = certificateSANs(leaf.x509);
  checkNames(leaf, sans, opts.names, findings);
  // Clients check usage and dates up to the anchor; what the file has beyond it they never use.
  const verified = walk.path.slice(0, (walk.anchoredAt ?? walk.path.length - 1) + 1);
  checkUsage(verified, findings);
  for (const cert of verified) checkValidity(cert, cert === leaf, opts, findings);

  return {
    findings,
    chainPEM: servedChain(walk)
      .map((c) => c.x509.toString())
      .join(''),
    leaf: {
      subject: oneLine(leaf.x509.subject),
      sans,
      notBefore: new Date(leaf.x509.validFrom),
      notAfter: new Date(leaf.x509.validTo),
      fingerprint256: leaf.x509.fingerprint256,
    },
  };
}

function readCertificates(pem: string, context: string, findings: Finding[]): SourcedCertificate[] {
  const { certs, errors } = splitPEMCertificates(pem, context);
  for (const reason of errors) {
    findings.push(
      error('PARSE_ERROR', `${context}: ${reason}; replace it with the file your CA issued`),
    );
  }
  if (certs.length === 0 && errors.length === 0) {
    const swapped = /PRIVATE KEY-----/.test(pem)
      ? ' (it holds a private key: are the files swapped?)'
      : '';
    findings.push(
      error(
        'PARSE_ERROR',
        `${context}: no PEM certificate ("-----BEGIN CERTIFICATE-----") found${swapped}; point it at the PEM certificate file`,
      ),
    );
  }
  return certs;
}

function readKey(pem: string, file: string, findings: Finding[]): KeyObject | undefined {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    const fix = /ENCRYPTED/.test(pem)
      ? 'the key is encrypted; store it without a passphrase (openssl pkey -in key.pem -out plain.pem)'
      : /BEGIN CERTIFICATE/.test(pem) && !/PRIVATE KEY/.test(pem)
        ? 'it holds a certificate: are tls.cert and tls.key swapped?'
        : 'point tls.key at the PEM private key ("-----BEGIN PRIVATE KEY-----") made with the certificate';
    findings.push(
      error(
        'PARSE_ERROR',
        `tls.key ${file}: does not parse as a private key (${(err as Error).message}); ${fix}`,
      ),
    );
    return undefined;
  }
}

/** Go's matching: IPs only against iPAddress SANs, names against dNSName SANs. */
function checkNames(
  leaf: SourcedCertificate,
  sans: SANs,
  names: readonly string[],
  findings: Finding[],
) {
  for (const raw of names) {
    const name = raw.trim();
    if (name === '') continue;
    const ip = isIP(name) !== 0;
    const covered = ip
      ? sans.ips.some((san) => canonicalIP(san) === canonicalIP(name))
      : sans.dns.some((san) => matchesDNSName(san, name));
    if (covered) continue;
    const asDNS =
      ip && sans.dns.includes(name)
        ? ` (${name} is there as a DNS SAN, which clients ignore for addresses)`
        : '';
    findings.push(
      error(
        'NAME_NOT_COVERED',
        `${leaf.source}: clients using ${name} will get "${hostnameError(leaf.x509, sans, name)}"${asDNS}; reissue the certificate with ${name} as ${ip ? 'an IP' : 'a DNS'} SAN, or remove it from tls.names`,
      ),
    );
  }
}

/**
 * A dNSName SAN covers `host` exactly (case-insensitively) or by a left-most `*` label
 * standing for exactly one label (RFC 6125 §6.4.3, as Go and browsers apply it).
 */
export function matchesDNSName(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, '');
  const h = host.toLowerCase().replace(/\.$/, '');
  if (p === h) return true;
  if (!p.startsWith('*.')) return false;
  const dot = h.indexOf('.');
  return dot > 0 && h.slice(dot + 1) === p.slice(2);
}

/** HostnameError.Error() of https://github.com/golang/go/blob/master/src/crypto/x509/verify.go */
function hostnameError(cert: X509Certificate, sans: SANs, host: string): string {
  const commonName = /^CN=(.*)$/m.exec(cert.subject)?.[1];
  if (cert.subjectAltName === undefined && commonName && matchesDNSName(commonName, host)) {
    return 'x509: certificate relies on legacy Common Name field, use SANs instead';
  }
  const ip = isIP(host) !== 0;
  if (ip && sans.ips.length === 0) {
    return `x509: cannot validate certificate for ${host} because it doesn't contain any IP SANs`;
  }
  const valid = ip ? sans.ips : sans.dns;
  if (valid.length === 0) {
    return `x509: certificate is not valid for any names, but wanted to match ${host}`;
  }
  return `x509: certificate is valid for ${valid.join(', ')}, not ${host}`;
}

/** Go checks extendedKeyUsage along the whole chain: a CA restricted to clientAuth breaks it too. */
function checkUsage(verified: readonly SourcedCertificate[], findings: Finding[]) {
  const leaf = verified[0]!;
  if (hasCABasicConstraint(leaf.x509)) {
    // Go clients (Docker) ignore CA:TRUE on a leaf, so a self-signed one trusted directly
    // works there and is only a warning; Firefox refuses it either way.
    findings.push({
      severity: isSelfSigned(leaf.x509) ? 'warning' : 'error',
      code: 'LEAF_IS_CA',
      message: `${leaf.source}: the server certificate has basicConstraints CA:TRUE; browsers refuse a CA certificate as a server's (Firefox: MOZILLA_PKIX_ERROR_CA_CERT_USED_AS_END_ENTITY); reissue it with basicConstraints=critical,CA:FALSE`,
    });
  }
  for (const cert of verified) {
    const usages = cert.x509.keyUsage; // Node names the extendedKeyUsage OIDs "keyUsage"
    if (!usages || usages.includes(SERVER_AUTH) || usages.includes(ANY_EXTENDED_KEY_USAGE)) {
      continue;
    }
    const which = cert === leaf ? 'the certificate' : `the CA certificate ${describe(cert.x509)}`;
    const fix =
      cert === leaf
        ? 'reissue it for TLS servers (extendedKeyUsage=serverAuth)'
        : 'ask the CA for a chain meant for TLS servers';
    findings.push(
      error(
        'NOT_SERVER_AUTH',
        `${cert.source}: ${which} allows only ${usages.map((o) => EKU_NAMES[o] ?? o).join(', ')}, not serverAuth; clients will get "x509: certificate specifies an incompatible key usage"; ${fix}`,
      ),
    );
  }
}

function checkValidity(
  cert: SourcedCertificate,
  isLeaf: boolean,
  opts: InspectOptions,
  findings: Finding[],
) {
  const notBefore = new Date(cert.x509.validFrom);
  const notAfter = new Date(cert.x509.validTo);
  const now = opts.now.getTime();
  const which = isLeaf ? 'the certificate' : `the CA certificate ${describe(cert.x509)}`;
  const renew = isLeaf
    ? `renew it; ${RELOAD_HINT}`
    : `serve the current chain from your CA (an ACME client's fullchain.pem has it); ${RELOAD_HINT}`;
  if (notAfter.getTime() <= now) {
    findings.push(
      error(
        'EXPIRED',
        `${cert.source}: ${which} expired on ${iso(notAfter)}; clients will get "${VALIDITY_ERROR}"; ${renew}`,
      ),
    );
  } else if (notBefore.getTime() > now) {
    findings.push(
      error(
        'NOT_YET_VALID',
        `${cert.source}: ${which} is not valid before ${iso(notBefore)} (now ${iso(opts.now)}); clients will get "${VALIDITY_ERROR}"; check the clocks of this machine and of the CA, or wait until then`,
      ),
    );
  } else if (notAfter.getTime() - now < opts.warnBeforeMs) {
    findings.push(
      warning(
        'EXPIRING_SOON',
        `${cert.source}: ${which} expires on ${iso(notAfter)}, in ${inWords(notAfter.getTime() - now)}; ${renew}`,
      ),
    );
  }
}

function error(code: FindingCode, message: string): Finding {
  return { severity: 'error', code, message };
}

function warning(code: FindingCode, message: string): Finding {
  return { severity: 'warning', code, message };
}

function iso(date: Date): string {
  return date.toISOString().replace(/\.000Z$/, 'Z');
}

function inWords(ms: number): string {
  const hours = ms / 3_600_000;
  if (hours >= 48) return `${Math.floor(hours / 24)} days`;
  if (hours >= 2) return `${Math.floor(hours)} hours`;
  return `${Math.max(1, Math.floor(ms / 60_000))} minutes`;
}
