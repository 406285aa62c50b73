/**
 * The trust page (GET /_proxy/trust) and the CA in DER (GET /ca.cer), from what the
 * proxy serves now: the page's HTML is in trust/page.ts. Like /ca.crt and
 * /install-ca.sh, a client by a name served the ACME certificate is told what that
 * needs (nothing, or the internal ACME server's root).
 */
import { X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Verdict } from '../health/probe.js';
import { parseHostHeader } from '../net/address.js';
import { certificateSANs, type TLSMaterial } from '../pki/store.js';
import { splitCertificates } from '../trust/layout.js';
import {
  TRUST_PAGE_CSP,
  trustPageHTML,
  type PageTrust,
  type TrustPageView,
} from '../trust/page.js';
import type { ACMETrust } from '../acme/which-certificate.js';
import { refuseHost, requestHostPort, sendSmall, trustFor } from './own-response.js';

export interface TrustPageSource {
  /** The material served now (it changes on renewal and CA rotation). */
  material: () => TLSMaterial;
  /** With tls.acme: the ACME certificate, when it is what a client by `host` is served. */
  acmeCertificate?: ((host: string) => X509Certificate | undefined) | undefined;
  /** The cached backend verdict (the health monitor's; never a probe per request). */
  verdict?: (() => Verdict) | undefined;
}

/** What these endpoints take of own-endpoints.ts's options (which extend it). */
export interface TrustEndpointOptions {
  /** Headers on every response of ours (Strict-Transport-Security). */
  ownHeaders: Readonly<Record<string, string>>;
  /** With tls.acme: what clients by this host install (see OwnEndpointOptions). */
  acmeTrust?: ((host: string) => ACMETrust | undefined) | undefined;
  trustPage: TrustPageSource;
}

/** The page for the host:port this client used. */
export function serveTrustPage(
  req: IncomingMessage,
  res: ServerResponse,
  opts: TrustEndpointOptions,
): number {
  const hostPort = requestHostPort(req);
  if (hostPort === undefined) return refuseHost(res, opts.ownHeaders);
  const page = trustPageHTML(pageView(req, hostPort, opts));
  return sendSmall(
    res,
    200,
    {
      ...opts.ownHeaders,
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': TRUST_PAGE_CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-cache',
    },
    page,
  );
}

/**
 * One CA certificate in DER, which Windows opens with a double-click. DER holds one
 * certificate, so during a rotation it is the CA that signs the served certificate
 * (the page says so); by an internal ACME server's name, the first of its roots.
 */
export function serveCADER(
  req: IncomingMessage,
  res: ServerResponse,
  opts: TrustEndpointOptions,
): number {
  const trust = trustFor(req, opts.acmeTrust);
  const pem =
    trust?.kind === 'internal' ? (splitCertificates(trust.pem)[0] ?? '') : signingCA(opts);
  return sendSmall(
    res,
    200,
    {
      ...opts.ownHeaders,
      'content-type': 'application/pkix-cert',
      'content-disposition': 'attachment; filename="ca.cer"',
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-cache',
    },
    new X509Certificate(pem).raw,
  );
}

/** Our CA that signs the served certificate (caCertPEM may be a supplied tls.ca bundle: its first). */
function signingCA(opts: TrustEndpointOptions): string {
  return splitCertificates(opts.trustPage.material().caCertPEM)[0] ?? '';
}

/** What the page shows to a client by this request's Host. */
function pageView(
  req: IncomingMessage,
  hostPort: string,
  opts: TrustEndpointOptions,
): TrustPageView {
  const source = opts.trustPage;
  const material = source.material();
  const host = parseHostHeader(req.headers.host ?? '')?.host;
  const acmeLeaf = host === undefined ? undefined : source.acmeCertificate?.(host);
  const acmeTrust = trustFor(req, opts.acmeTrust);
  const certificate = acmeLeaf
    ? { names: sanList(acmeLeaf), notAfter: new Date(acmeLeaf.validTo) }
    : { names: [...material.sans.dns, ...material.sans.ips], notAfter: material.serverNotAfter };
  const verdict = source.verdict?.();
  return {
    hostPort,
    trust: pageTrust(material, acmeTrust),
    certificate,
    registry: verdict && {
      status: verdict.draining ? 'draining' : verdict.status,
      checkedAt: verdict.checkedAt,
    },
    now: new Date(),
  };
}

function pageTrust(material: TLSMaterial, acme: ReturnType<typeof trustFor>): PageTrust {
  if (acme?.kind === 'public') return { kind: 'public' };
  if (acme?.kind === 'internal') {
    const fingerprints = splitCertificates(acme.pem).map(
      (p) => new X509Certificate(p).fingerprint256,
    );
    return { kind: 'internal', fingerprints };
  }
  // The signing CA first: it is what ca.cer holds and the installer pins.
  const signing = material.caFingerprint256;
  const others = material.trustFingerprints.filter((fp) => fp !== signing);
  return { kind: 'ours', fingerprints: [signing, ...others] };
}

function sanList(cert: X509Certificate): string[] {
  const sans = certificateSANs(cert);
  return [...sans.dns, ...sans.ips];
}
