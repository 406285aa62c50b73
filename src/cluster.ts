/**
 * `workers` > 1: a primary process forks that many workers (node:cluster). They
 * share the public port (the primary hands out connections in turn), the
 * certificates in tls.dir (made once by the primary before forking; renewed by
 * whichever worker gets the directory lock first) and the TLS session-ticket keys
 * (so a client resumes its session whichever worker it reaches). The primary runs
 * the admin listener: /readyz from its own probe of the backend, /metrics summed
 * over the workers. A worker that dies is replaced.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { Config } from './config/schema.js';
import { RTPError } from './errors.js';
import { monitorBackend } from './health/monitor.js';
import type { Logger } from './log.js';
import { clusterMetricsSource } from './metrics/cluster.js';
import { certificateSource } from './pki/source.js';
import { startAdmin, type RunningProxy } from './serve.js';

/** Session-ticket keys travel to workers in their environment (readable by the same user only; not RTP_*, which is configuration). */
export const TICKET_KEYS_ENV = 'REGISTRY_TLS_PROXY_TICKET_KEYS';
const RESTART_DELAY_MS = 1000;
const STOP_GRACE_MS = 10_000;

/** How many processes `workers` asks for on this machine. */
export function workerCount(config: Config): number {
  return config.workers === 0 ? availableParallelism() : config.workers;
}

/** In a worker: the ticket keys its primary gave it. */
export function workerTicketKeys(): Buffer {
  const hex = process.env[TICKET_KEYS_ENV] ?? '';
  if (!/^[0-9a-f]{96}$/.test(hex)) {
    throw new RTPError('CLUSTER_KEYS', `a cluster worker started without ${TICKET_KEYS_ENV}`);
  }
  return Buffer.from(hex, 'hex');
}

export async function runPrimary(
  config: Config,
  logger: Logger,
  count: number,
): Promise<RunningProxy> {
  // Certificates first, once: workers then find them instead of all waiting on the lock.
  const material = await certificateSource(config, logger).load();
  if (material.created.ca) logger.info({ dir: config.tls.dir }, 'created a new CA');
  if (material.created.server) {
    logger.info({ reason: material.created.reason }, 'issued a new server certificate');
  }
  const ticketKeys = randomBytes(48).toString('hex');
  let stopping = false;
  const workers = new Set<Worker>();
  const fork = () => {
    const worker = cluster.fork({ [TICKET_KEYS_ENV]: ticketKeys });
    workers.add(worker);
    worker.on('exit', (code, signal) => {
      workers.delete(worker);
      if (stopping) return;
      logger.error(
        { worker: worker.id, pid: worker.process.pid, code, signal },
        `a worker exited unexpectedly; starting another in ${RESTART_DELAY_MS} ms`,
      );
      setTimeout(() => {
        if (!stopping) fork();
      }, RESTART_DELAY_MS).unref();
    });
  };
  // A worker that cannot start (bad port, bad certificate) says why and exits; so do we.
  const firstStart = new Promise<void>((resolve, reject) => {
    let listening = 0;
    cluster.on('listening', () => {
      if (++listening === count) resolve();
    });
    cluster.on('exit', (_worker, code) => {
      if (listening < count && code !== 0) {
        reject(new RTPError('WORKER_FAILED', 'a worker failed to start; see its message above'));
      }
    });
  });
  for (let i = 0; i < count; i++) fork();
  try {
    await firstStart;
  } catch (err) {
    stopping = true;
    for (const w of workers) w.process.kill('SIGTERM');
    throw err;
  }

  const health = monitorBackend(config, logger);
  const admin = await startAdmin(
    config,
    logger,
    clusterMetricsSource(),
    health.current,
    '/metrics summed over the workers',
  );
  logger.info({ workers: count }, `${count} workers serve the public port`);

  return {
    async close() {
      stopping = true;
      health.stop();
      await Promise.all([
        admin?.close(),
        ...[...workers].map(
          (w) =>
            new Promise<void>((resolve) => {
              const kill = setTimeout(() => w.process.kill('SIGKILL'), STOP_GRACE_MS);
              w.once('exit', () => {
                clearTimeout(kill);
                resolve();
              });
              w.process.kill('SIGTERM');
            }),
        ),
      ]);
    },
  };
}
