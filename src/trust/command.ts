/**
 * `registry-tls-proxy trust`: prints, for the address a client uses, exactly
 * what to run on that client; `--install` does it on this machine.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { acmeDir, readACMECertificate } from '../acme/store.js';
import {
  acmeServesHost,
  acmeTrustNote,
  internalACMERoots,
  unanchoredWarning,
} from '../acme/which-certificate.js';
import type { Config } from '../config/schema.js';
import { RTPError } from '../errors.js';
import { parseHostHeader } from '../net/address.js';
import { canonicalIP } from '../pki/sans.js';
import { FILES } from '../pki/store.js';
import { loadSuppliedTLS } from '../pki/supplied.js';
import { configuredTrustBundle } from '../pki/trust-bundle.js';
import { installTrust, presentClients } from './install.js';
import { formatTrustReport, type TrustTarget } from './instructions.js';
import { CLIENT_KINDS, type ClientKind } from './layout.js';
import { OTHER_PLATFORMS, formatPlatformReport, type OtherPlatform } from './platform-report.js';

export interface TrustArgs {
  /** host:port as clients write it, e.g. registry.lan:5443 */
  address: string;
  install: boolean;
  /** 'all' (the default): every client in the report; with --install, those found here. */
  clients: ClientKind[] | 'all';
  /** --client macos|windows|kubernetes: that platform's command (or DaemonSet) instead. */
  platform?: OtherPlatform;
}

const CLIENT_CHOICES = `${CLIENT_KINDS.join(', ')} or all (a list: docker,containerd), or one of ${OTHER_PLATFORMS.join(', ')}`;

/** Parses `--address HOST:PORT [--install] [--client docker,containers,…|macos|windows|kubernetes]`. */
export function parseTrustArgs(args: readonly string[]): TrustArgs {
  let address: string | undefined;
  let install = false;
  let clients: ClientKind[] | 'all' = 'all';
  let platform: OtherPlatform | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--address') address = args[++i];
    else if (arg === '--install') install = true;
    else if (arg === '--client') {
      const value = args[++i] ?? '';
      if ((OTHER_PLATFORMS as readonly string[]).includes(value)) {
        platform = value as OtherPlatform;
        continue;
      }
      const list = value.split(',').filter((c) => c !== '');
      const bad = list.filter(
        (c) => c !== 'all' && !(CLIENT_KINDS as readonly string[]).includes(c),
      );
      if (list.length === 0 || bad.length > 0) {
        throw new RTPError(
          'USAGE',
          `--client takes ${CLIENT_CHOICES}, got ${JSON.stringify(value)}`,
        );
      }
      clients = list.includes('all') ? 'all' : (list as ClientKind[]);
    } else throw new RTPError('USAGE', `trust: unknown argument ${JSON.stringify(arg)}`);
  }
  if (!address) {
    throw new RTPError(
      'USAGE',
      'trust needs --address HOST:PORT, the address clients use (e.g. registry.lan:5443)',
    );
  }
  if (platform && install) {
    throw new RTPError(
      'USAGE',
      `--install installs on this machine; --client ${platform} prints what to run ${platform === 'kubernetes' ? 'with kubectl' : `on the ${platform === 'macos' ? 'Mac' : 'Windows machine'}`}: leave out --install`,
    );
  }
  return { address, install, clients, ...(platform ? { platform } : {}) };
}

/** The trust target for this proxy: its CA bundle (both CAs during a rotation, signing CA first). */
export async function localTrustTarget(config: Config, hostPort: string): Promise<TrustTarget> {
  const { pem, fingerprints } = await configuredTrustBundle(config);
  return { hostPort, caBundlePEM: pem, fingerprints };
}

export async function runTrust(
  config: Config,
  args: TrustArgs,
  out: (text: string) => void,
): Promise<void> {
  const host = hostOfAddress(args.address);
  const byACME = acmeServesHost(config, host);
  if (byACME && config.tls.acme.caBundle === '') {
    out(
      // As a YAML comment for kubernetes: the output is piped into kubectl apply.
      `${args.platform === 'kubernetes' ? '# ' : ''}${host} is served the ACME certificate: ${acmeTrustNote(config)}` +
        `${args.install ? ' (nothing installed)' : ''}; clients that come by IP address trust the proxy's own CA: trust --address IP:PORT\n`,
    );
    return;
  }
  // An internal ACME server: clients by its names trust its root, not our CA.
  const internal = byACME ? internalRootsTarget(config) : undefined;
  if (internal?.warning) out(`warning: ${internal.warning}\n`);
  const target = internal
    ? {
        hostPort: args.address,
        caBundlePEM: internal.caBundlePEM,
        fingerprints: internal.fingerprints,
      }
    : await localTrustTarget(config, args.address);
  const served = byACME ? undefined : servedCertificatePEM(config);
  const warning = served && coverageWarning(served, args.address, config.tls.cert !== '');
  if (args.platform) {
    out(formatPlatformReport(args.platform, target, warning ? [warning] : []));
    return;
  }
  if (warning) out(`${warning}\n`);
  if (!args.install) {
    out(formatTrustReport(target));
    return;
  }
  let kinds = args.clients;
  if (kinds === 'all') {
    // As install-ca.sh does: the clients found here, and a word on the others.
    const { present, skipped } = presentClients();
    for (const { kind, reason } of skipped) out(`skipped ${kind}: ${reason}\n`);
    if (present.length === 0) {
      throw new RTPError(
        'TRUST_NO_CLIENT',
        'trust --install: found no client on this host; name it with --client docker,containerd,containers,system',
      );
    }
    kinds = present;
  }
  const { written, ran } = installTrust(target, { kinds });
  for (const file of written) out(`wrote ${file}\n`);
  for (const command of ran) out(`ran ${command}\n`);
  out(`trusted CA ${target.fingerprints.join(' and ')} for ${args.address}\n`);
}

/**
 * The roots of tls.acme.caBundle that anchor the ACME certificate in tls.dir: the same
 * ones /ca.crt serves by name and the start-up log prints (which-certificate.ts).
 */
function internalRootsTarget(config: Config): {
  caBundlePEM: string;
  fingerprints: string[];
  warning?: string;
} {
  const stored = readACMECertificate(acmeDir(config.tls.dir));
  const { pem, fingerprints, anchored } = internalACMERoots(config, stored?.chainPEM);
  const warning = !stored
    ? `no ACME certificate in ${config.tls.dir} yet: these are all the certificates of tls.acme.caBundle, not yet checked against the certificate the CA issues; until it arrives, clients by name get our own CA's (trust --address IP:PORT installs that)`
    : anchored
      ? undefined
      : unanchoredWarning(config, stored.chainPEM);
  return { caBundlePEM: pem, fingerprints, ...(warning ? { warning } : {}) };
}

/** HOST of HOST:PORT or [IPv6]:PORT. */
function hostOfAddress(address: string): string {
  return parseHostHeader(address)?.host ?? address;
}

/** The certificate the proxy serves: the supplied one, or tls.dir's (none before the first start). */
function servedCertificatePEM(config: Config): string | undefined {
  if (config.tls.cert !== '') return loadSuppliedTLS(config).serverCertPEM;
  const file = join(resolve(config.tls.dir), FILES.serverCert);
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}

/**
 * A warning when the host of `address` (HOST:PORT) is not on the served certificate:
 * trusting the CA does not help a client that verifies the name (Go: "certificate is
 * valid for vm, localhost, not registry.lan").
 */
export function coverageWarning(
  certPEM: string,
  address: string,
  supplied: boolean,
): string | undefined {
  const host = hostOfAddress(address);
  const cert = new X509Certificate(certPEM);
  const covered = isIP(host)
    ? cert.checkIP(canonicalIP(host)) !== undefined
    : cert.checkHost(host) !== undefined;
  if (covered) return undefined;
  const fix = supplied
    ? `the certificate is the one supplied in tls.cert: replace it with one that names ${host}`
    : `add ${host} to tls.names (RTP_TLS_NAMES) and reload or restart the proxy, which then issues a certificate that covers it`;
  return `warning: ${host} is not covered by the certificate the proxy serves (${cert.subjectAltName ?? 'no SANs'}); clients that verify it refuse it even once they trust the CA: ${fix}`;
}
