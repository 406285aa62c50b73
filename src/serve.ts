/**
 * `registry-tls-proxy serve`: certificates, the public listener, the admin
 * listener, and the start-up log lines that tell an operator what to do next.
 */
import { X509Certificate } from 'node:crypto';
import { join, resolve } from 'node:path';
import { createAdminServer, type AdminServer, type MetricsSource } from './admin/server.js';
import { parseHostPort, type Config } from './config/schema.js';
import { monitorBackend } from './health/monitor.js';
import type { Verdict } from './health/probe.js';
import { exposeToClusterMetrics } from './metrics/cluster.js';
import { RTPError } from './errors.js';
import type { Logger } from './log.js';
import { readMachineIdentity } from './pki/sans.js';
import { certificateSource } from './pki/source.js';
import { FILES } from './pki/store.js';
import { createPublicServer } from './proxy/server.js';
import { startRenewal } from './tls/renewal.js';

export interface RunningProxy {
  close(): Promise<void>;
}

/** How this process serves: alone, or as one worker of a cluster (cluster.ts). */
export type ServeRole = { kind: 'single' } | { kind: 'worker'; ticketKeys: Buffer };

export async function serve(
  config: Config,
  logger: Logger,
  role: ServeRole = { kind: 'single' },
): Promise<RunningProxy> {
  const machine = readMachineIdentity();
  const dir = resolve(config.tls.dir);
  const source = certificateSource(config, logger);
  const load = () => source.load();
  const material = await load();
  if (material.created.ca) logger.info({ dir }, 'created a new CA');
  if (material.created.server) {
    logger.info({ reason: material.created.reason }, 'issued a new server certificate');
  }
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

  // Until the first probe ends, /readyz says "starting" (503): never ready on a guess.
  // A cluster's workers probe for their public health path; the primary logs changes.
  const health = monitorBackend(config, logger, role.kind === 'single');
  const pub = createPublicServer(config, material, logger, { verdict: health.current });
  if (role.kind === 'worker') {
    // Every worker issues and accepts the same session tickets.
    pub.setTicketKeys(role.ticketKeys);
    exposeToClusterMetrics(pub.metrics.registry);
  }
  const renewal = startRenewal({
    load,
    checkIntervalMs: config.tls.checkInterval,
    logger,
    initial: material,
    swap: (next) => pub.setMaterial(next),
    watch: source.watch,
  });
  const address = await listenOrExplain(() => pub.listen(), config.listen, 'listen');
  // In a cluster the admin listener is the primary's.
  const admin =
    role.kind === 'single'
      ? await startAdmin(config, logger, pub.metrics.registry, health.current, '/metrics')
      : undefined;

  const publicName = advertisedHost(config, machine.hostname);
  const hostPort = `${publicName}:${address.port}`;
  const certsDir = `/etc/docker/certs.d/${hostPort}`;
  logger.info(
    {
      address: `${address.address}:${address.port}`,
      backend: config.backend,
      caFingerprint256: material.caFingerprint256,
      ...(material.trustFingerprints.length > 1
        ? { nextCAFingerprint256: material.trustFingerprints[1] }
        : {}),
      caFile: join(dir, FILES.caCert),
      trustOnClient:
        `mkdir -p ${certsDir} && curl -fsSk https://${hostPort}/ca.crt -o ${certsDir}/ca.crt` +
        ` && openssl x509 -noout -fingerprint -sha256 -in ${certsDir}/ca.crt` +
        ` # the fingerprint must read ${material.caFingerprint256}`,
    },
    `proxying https://${hostPort} to ${config.backend}; clients trust the CA at https://${hostPort}/ca.crt`,
  );

  return {
    async close() {
      renewal.stop();
      health.stop();
      await Promise.all([pub.close(), admin?.close()]);
    },
  };
}

function splitCount(pem: string | undefined): number {
  return pem?.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
}

/** The admin listener, when admin.listen is set, with its start-up log line. */
export async function startAdmin(
  config: Config,
  logger: Logger,
  metrics: MetricsSource,
  verdict: () => Verdict,
  metricsNote: string,
): Promise<AdminServer | undefined> {
  if (config.admin.listen === '') return undefined;
  const admin = createAdminServer(config.admin.listen, metrics, verdict);
  const address = await listenOrExplain(() => admin.listen(), config.admin.listen, 'admin.listen');
  logger.info(
    { address: `${address.address}:${address.port}` },
    `admin listener (/healthz, /readyz, ${metricsNote})`,
  );
  return admin;
}

/** The name to show in client instructions: a configured name, the bound address, or the hostname. */
function advertisedHost(config: Config, hostname: string): string {
  const first = config.tls.names[0];
  if (first) return first.includes(':') ? `[${first}]` : first;
  const host = parseHostPort(config.listen)?.host;
  if (host && host !== '0.0.0.0' && host !== '::') return host.includes(':') ? `[${host}]` : host;
  return hostname;
}

export async function listenOrExplain<T>(
  listen: () => Promise<T>,
  value: string,
  key: string,
): Promise<T> {
  try {
    return await listen();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint =
      code === 'EADDRINUSE'
        ? 'the port is in use; stop what holds it or choose another port'
        : code === 'EACCES'
          ? 'ports below 1024 need privileges; choose a port above 1024'
          : code === 'EADDRNOTAVAIL'
            ? 'this machine has no such address'
            : (err as Error).message;
    throw new RTPError('LISTEN_FAILED', `listening on ${value} (${key}): ${hint}`, { cause: err });
  }
}
