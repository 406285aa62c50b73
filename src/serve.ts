/**
 * `registry-tls-proxy serve` in a process that serves the public port itself (alone,
 * or as a cluster worker): the process runtime (runtime.ts) with generations of
 * servers in this process (runtime-generations.ts), and the start-up log lines that
 * tell an operator what to do next.
 */
import { X509Certificate } from 'node:crypto';
import { join, resolve } from 'node:path';
import { logACMEPlan } from './acme/which-certificate.js';
import type { Config } from './config/schema.js';
import { bracketHost, parseHostPort } from './net/address.js';
import type { Logger } from './log.js';
import { answerPrimaryMetrics } from './metrics/cluster.js';
import { readMachineIdentity } from './pki/sans.js';
import { FILES } from './pki/store.js';
import type { TLSMaterial } from './pki/store.js';
import { generationsInThisProcess, type ServeRole } from './runtime-generations.js';
import { startRuntime, type RunningProxy } from './runtime.js';
import { TRUST_PAGE_PATH } from './trust/page.js';

export type { RunningProxy } from './runtime.js';
export type { ServeRole } from './runtime-generations.js';

/** Serves the public port from this process, alone or as one worker of a cluster. */
export async function serve(
  config: Config,
  logger: Logger,
  role: ServeRole = { kind: 'single' },
): Promise<RunningProxy> {
  const part = generationsInThisProcess(logger, role);
  // A worker's counts reach the admin listener through its primary, to the last one.
  const reportToPrimary =
    role.kind === 'worker' ? answerPrimaryMetrics(part.proxyMetrics.registry) : undefined;
  const { running, first } = await startRuntime({
    config,
    logger,
    part,
    role: role.kind,
    ...(reportToPrimary ? { afterDrain: reportToPrimary.final } : {}),
  });
  logCertificate(config, first.material, logger);
  // A cluster's primary says it once for all its workers (cluster.ts).
  if (role.kind === 'single') logACMEPlan(config, logger, first.material.sans.ips);
  logServing(config, first.material, first.port ?? 0, logger);
  return running;
}

function logCertificate(config: Config, material: TLSMaterial, logger: Logger): void {
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
      'CA rotation in progress: /ca.crt serves the current and the next CA; when every client trusts both, run "registry-tls-proxy ca switch"',
    );
  }
  if (config.tls.clientAuth) {
    logger.info(
      { clientCAs: splitCount(material.clientCAsPEM) },
      'mutual TLS: clients need a certificate from "registry-tls-proxy issue-client NAME"',
    );
  }
}

/** The line that tells an operator how clients come to trust this proxy. */
function logServing(config: Config, material: TLSMaterial, port: number, logger: Logger): void {
  const machine = readMachineIdentity();
  const publicName = advertisedHost(config, machine.hostname);
  const hostPort = `${publicName}:${port}`;
  const listenHost = parseHostPort(config.listen)?.host ?? '0.0.0.0';
  logger.info(
    {
      address: `${listenHost}:${port}`,
      backend: config.backend,
      caFingerprint256: material.caFingerprint256,
      ...(material.trustFingerprints.length > 1
        ? { nextCAFingerprint256: material.trustFingerprints[1] }
        : {}),
      caFile: join(resolve(config.tls.dir), FILES.caCert),
      trustOnClient: `https://${hostPort}${TRUST_PAGE_PATH}`,
    },
    `proxying https://${hostPort} to ${config.backend}; clients trust the CA at https://${hostPort}/ca.crt`,
  );
}

function splitCount(pem: string | undefined): number {
  return pem?.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
}

/** The name to show in client instructions: a configured name, the bound address, or the hostname. */
function advertisedHost(config: Config, hostname: string): string {
  const first = config.tls.names[0];
  if (first) return bracketHost(first);
  const host = parseHostPort(config.listen)?.host;
  if (host && host !== '0.0.0.0' && host !== '::') return bracketHost(host);
  return hostname;
}
