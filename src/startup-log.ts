/**
 * The start-up lines that tell an operator what to do next: which certificate is
 * served, and the command that makes a client trust this proxy, for each address a
 * client could use. Said once per start: by the process that serves alone, or by a
 * cluster's primary for all its workers.
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { commandName } from './command-name.js';
import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import { formatHostPort, parseHostPort } from './net/address.js';
import { canonicalIP, readMachineIdentity } from './pki/sans.js';
import { FILES, caHome } from './pki/store.js';
import type { TLSMaterial } from './pki/store.js';
import { installerOneLiner } from './trust/one-liners.js';
import { TRUST_PAGE_PATH } from './trust/page.js';

/** More addresses than this make the line hard to read; `trust --address` covers the rest. */
const MAX_ADDRESSES_SHOWN = 4;

export function logCertificate(config: Config, material: TLSMaterial, logger: Logger): void {
  logger.info(
    {
      dns: material.sans.dns,
      ips: material.sans.ips,
      notAfter: material.serverNotAfter.toISOString(),
      serial: new X509Certificate(material.serverCertPEM).serialNumber,
      caNotAfter: material.caNotAfter.toISOString(),
    },
    'serving certificate',
  );
  if (material.trustFingerprints.length > 1) {
    logger.info(
      { caFingerprints: material.trustFingerprints },
      `CA rotation in progress: /ca.crt serves the current and the next CA; when every client trusts both, run "${commandName()} ca switch"`,
    );
  }
  if (config.tls.clientAuth) {
    logger.info(
      { clientCAs: splitCount(material.clientCAsPEM) },
      `mutual TLS: clients need a certificate from "${commandName()} issue-client NAME"`,
    );
  }
}

/**
 * The line that tells an operator how clients come to trust this proxy: the installer
 * one-liner (it checks the CA's fingerprint) per address, tls.names first.
 */
export function logServing(
  config: Config,
  material: TLSMaterial,
  port: number,
  logger: Logger,
): void {
  const listenHost = parseHostPort(config.listen)?.host ?? '0.0.0.0';
  const { shown, more } = clientAddresses(config, port, readMachineIdentity().addresses);
  const first = shown[0] as string;
  const fingerprint = material.caFingerprint256;
  const hint =
    config.tls.names.length === 0 ? '; tls.names (RTP_TLS_NAMES) sets the name shown first' : '';
  const others = more > 0 ? `; ${more} more: ${commandName()} trust --address HOST:${port}` : '';
  logger.info(
    {
      address: formatHostPort(listenHost, port),
      backend: config.backend.length === 1 ? config.backend[0] : config.backend,
      caFingerprint256: fingerprint,
      ...(material.trustFingerprints.length > 1
        ? { nextCAFingerprint256: material.trustFingerprints[1] }
        : {}),
      caFile: join(caHome(config.tls).dir, FILES.caCert),
      trustOnClient: shown.map((hostPort) => installerOneLiner('linux', hostPort, fingerprint)),
      // macOS, Windows, Kubernetes and browsers: the page has a tab for each.
      trustPage: `https://${first}${TRUST_PAGE_PATH}`,
    },
    `proxying https://${first} to ${config.backend.join(', ')}; to trust it, run on a client the trustOnClient command for the address that client uses, or open https://${first}${TRUST_PAGE_PATH} (every client kind)${hint}${others}`,
  );
}

/**
 * The host:port pairs clients could use, best first: tls.names, then the address the
 * proxy listens on or, when it listens on every address, this machine's non-loopback,
 * non-link-local ones (IPv6 only when it listens on `::`). Loopback when nothing else.
 *
 * @example clientAddresses({ tls: { names: ['registry.lan'] }, listen: '0.0.0.0:5443' }, 5443, ['10.0.0.5'])
 * // → { shown: ['registry.lan:5443', '10.0.0.5:5443'], more: 0 }
 */
export function clientAddresses(
  config: Pick<Config, 'listen'> & { tls: Pick<Config['tls'], 'names'> },
  port: number,
  machineAddresses: readonly string[],
): { shown: string[]; more: number } {
  const listenHost = parseHostPort(config.listen)?.host ?? '0.0.0.0';
  const anyAddress = listenHost === '' || listenHost === '0.0.0.0' || listenHost === '::';
  const hosts = [...config.tls.names];
  if (!anyAddress) hosts.push(listenHost);
  else {
    hosts.push(
      ...machineAddresses.filter(
        (a) =>
          !/^169\.254\./.test(a) && !/^fe[89ab]/i.test(a) && (listenHost === '::' || isIP(a) === 4),
      ),
    );
  }
  const seen = new Set<string>();
  const unique = hosts.filter((h) => {
    const key = isIP(h) ? canonicalIP(h) : h.toLowerCase();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  if (unique.length === 0) unique.push(listenHost === '::' ? '::1' : '127.0.0.1');
  const keep = Math.max(MAX_ADDRESSES_SHOWN, config.tls.names.length);
  return {
    shown: unique.slice(0, keep).map((h) => formatHostPort(h, port)),
    more: Math.max(0, unique.length - keep),
  };
}

function splitCount(pem: string | undefined): number {
  return pem?.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
}
