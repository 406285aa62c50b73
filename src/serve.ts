/**
 * `registry-tls-proxy serve`: certificates, the public listener, the admin
 * listener, and the start-up log lines that tell an operator what to do next.
 */
import { X509Certificate } from 'node:crypto';
import { join, resolve } from 'node:path';
import { createAdminServer, type AdminServer, type MetricsSource } from './admin/server.js';
import { parseHostPort, type Config } from './config/schema.js';
import { monitorBackend, type HealthMonitor } from './health/monitor.js';
import { drainingVerdict } from './health/report.js';
import type { Verdict } from './health/probe.js';
import { exposeToClusterMetrics } from './metrics/cluster.js';
import { RTPError } from './errors.js';
import type { Logger } from './log.js';
import { readMachineIdentity } from './pki/sans.js';
import { certificateSource } from './pki/source.js';
import { FILES } from './pki/store.js';
import { createPublicListener, type PublicListener } from './proxy/listener.js';
import { createPublicServer, type PublicServer } from './proxy/server.js';
import type { TLSMaterial } from './pki/store.js';
import { startRenewal } from './tls/renewal.js';

export interface RunningProxy {
  /**
   * SIGTERM: stop accepting connections at once, let the requests in flight finish
   * within timeouts.drainMs, cut what is left (logged), close the rest.
   */
  drain(): Promise<void>;
  /**
   * SIGHUP: serve `next` from now on without dropping a connection; the previous
   * configuration's requests finish as in a drain. Throws (still serving the current
   * configuration) when `next` cannot be served: a bad certificate, a busy port.
   */
  reload(next: Config): Promise<void>;
}

/** How this process serves: alone, or as one worker of a cluster (cluster.ts). */
export type ServeRole = { kind: 'single' } | { kind: 'worker'; ticketKeys: Buffer };

/** Everything that serves one configuration; a reload starts another beside it. */
interface Generation {
  config: Config;
  pub: PublicServer;
  health: HealthMonitor;
  renewal: { stop(): void };
}

export async function serve(
  config: Config,
  logger: Logger,
  role: ServeRole = { kind: 'single' },
): Promise<RunningProxy> {
  const { generation, material } = await startGeneration(config, logger, role);
  let current = generation;
  logCertificate(config, material, logger);
  let listener = createPublicListener(config.listen, current.pub.target);
  const address = await listenOrExplain(() => listener.listen(), config.listen, 'listen');
  let draining = false;
  // Readiness and metrics follow whichever generation is current.
  const verdict = () =>
    draining ? drainingVerdict(current.health.current()) : current.health.current();
  const metrics: MetricsSource = {
    metrics: () => current.pub.metrics.registry.metrics(),
    get contentType() {
      return current.pub.metrics.registry.contentType;
    },
  };
  // In a cluster the admin listener is the primary's.
  let admin =
    role.kind === 'single'
      ? await startAdmin(config, logger, metrics, verdict, '/metrics')
      : undefined;
  logServing(config, material, address.port, logger);

  /** Previous generations finishing their requests after a reload. */
  const retiring = new Set<Promise<number>>();
  let drained: Promise<void> | undefined;

  return {
    drain() {
      drained ??= (async () => {
        draining = true;
        listener.stopAccepting();
        const drainMs = current.config.timeouts.drainMs;
        const deadline = new Date(Date.now() + drainMs).toISOString();
        const inFlight = current.pub.inFlight();
        logger.info(
          { inFlight, deadline, drainMs },
          `draining: ${inFlight} requests in flight, deadline ${deadline}`,
        );
        // Connections the listener accepted before it closed still arrive, and are answered.
        const [cut] = await Promise.all([retire(current, drainMs, listener.sniffing), ...retiring]);
        if (cut) {
          logger.warn(
            { cut, drainMs },
            `drain deadline passed: cut ${cut} request${cut === 1 ? '' : 's'} still in flight`,
          );
        }
        await admin?.close();
        logger.info('drained, exiting');
      })();
      return drained;
    },

    async reload(next) {
      if (role.kind !== 'single') {
        throw new RTPError('RELOAD_UNSUPPORTED', 'a cluster worker is reloaded by its primary');
      }
      if (draining) throw new RTPError('RELOAD_DRAINING', 'draining: nothing to reload');
      const previous = current;
      const fresh = (await startGeneration(next, logger, role)).generation;
      let moved: { listener?: PublicListener; admin?: AdminServer | undefined } = {};
      try {
        // Ready before it takes traffic: its first probe decides /readyz.
        await fresh.health.ready;
        if (next.listen !== previous.config.listen) {
          const fresher = createPublicListener(next.listen, fresh.pub.target);
          moved.listener = fresher;
          await listenOrExplain(() => fresher.listen(), next.listen, 'listen');
        }
        if (next.admin.listen !== previous.config.admin.listen) {
          moved.admin = await startAdmin(next, logger, metrics, verdict, '/metrics');
        }
        if (draining) throw new RTPError('RELOAD_DRAINING', 'a drain began during the reload');
      } catch (err) {
        moved.listener?.stopAccepting();
        void retire(fresh, 0);
        throw err;
      }
      current = fresh;
      if (moved.listener) {
        listener.stopAccepting();
        listener = moved.listener;
      } else {
        listener.route(fresh.pub.target);
      }
      if ('admin' in moved) {
        void admin?.close();
        admin = moved.admin;
      }
      logger.level = next.log.level;
      const done = retire(previous, next.timeouts.drainMs).then((cut) => {
        if (cut) {
          logger.warn(
            { cut, drainMs: next.timeouts.drainMs },
            `the previous configuration's drain deadline passed: cut ${cut} request${cut === 1 ? '' : 's'}`,
          );
        }
        return cut;
      });
      retiring.add(done);
      void done.finally(() => retiring.delete(done));
      moved = {};
    },
  };
}

/** Certificates, backend monitor and public server for one configuration. */
async function startGeneration(
  config: Config,
  logger: Logger,
  role: ServeRole,
): Promise<{ generation: Generation; material: TLSMaterial }> {
  const source = certificateSource(config, logger);
  const load = () => source.load();
  const material = await loadCertificates(config, logger, source);
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
  return { generation: { config, pub, health, renewal }, material };
}

/**
 * The first load of the certificates (creating the CA and the server certificate when
 * missing), saying what it created. A cluster primary calls it once before forking.
 */
export async function loadCertificates(
  config: Config,
  logger: Logger,
  source = certificateSource(config, logger),
): Promise<TLSMaterial> {
  const material = await source.load();
  if (material.created.ca) logger.info({ dir: resolve(config.tls.dir) }, 'created a new CA');
  if (material.created.server) {
    logger.info({ reason: material.created.reason }, 'issued a new server certificate');
  }
  return material;
}

/** Drains a generation's public server and stops its timers; resolves with the requests cut. */
async function retire(
  generation: Generation,
  deadlineMs: number,
  pending?: () => number,
): Promise<number> {
  const { cut } = await generation.pub.drain(deadlineMs, pending);
  generation.renewal.stop();
  generation.health.stop();
  return cut;
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
  const certsDir = `/etc/docker/certs.d/${hostPort}`;
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
      trustOnClient:
        `mkdir -p ${certsDir} && curl -fsSk https://${hostPort}/ca.crt -o ${certsDir}/ca.crt` +
        ` && openssl x509 -noout -fingerprint -sha256 -in ${certsDir}/ca.crt` +
        ` # the fingerprint must read ${material.caFingerprint256}`,
    },
    `proxying https://${hostPort} to ${config.backend}; clients trust the CA at https://${hostPort}/ca.crt`,
  );
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
