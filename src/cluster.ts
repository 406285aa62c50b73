/**
 * `workers` > 1: a primary process forks that many workers (node:cluster). They
 * share the public port (the primary hands out connections in turn), the
 * certificates in tls.dir (made once by the primary before forking; renewed by
 * whichever worker gets the directory lock first) and the TLS session-ticket keys
 * (so a client resumes its session whichever worker it reaches). The primary runs
 * the admin listener: /readyz from its own probe of the backend, /metrics summed
 * over the workers. A worker that dies is replaced.
 *
 * Lifecycle (nginx's model): on SIGTERM the primary tells every worker to drain and
 * exits when they have; on SIGHUP it forks a fresh set of workers with the new
 * configuration, and once they all listen, drains the old set.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { acmeEnabled, acmeNames } from './acme/config.js';
import { logWaitingForACME } from './acme/lifecycle.js';
import { acmeDir, readACMECertificate } from './acme/store.js';
import { logACMEPlan } from './acme/which-certificate.js';
import { deepFreeze } from './config/load.js';
import type { Config } from './config/schema.js';
import { RTPError } from './errors.js';
import type { Logger } from './log.js';
import { workersMetricsSum } from './metrics/cluster.js';
import { loadCertificates } from './runtime-generations.js';
import type { TLSMaterial } from './pki/store.js';
import { startRuntime, type Generation, type RunningProxy, type ServingPart } from './runtime.js';
import { logCertificate, logServing } from './startup-log.js';
import { sendToWorker } from './cluster-send.js';

/** Session-ticket keys travel to workers in their environment (readable by the same user only; not RTP_*, which is configuration). */
export const TICKET_KEYS_ENV = 'REGISTRY_TLS_PROXY_TICKET_KEYS';
/** The configuration the primary validated, as JSON: a worker never reads a file the primary did not check. */
export const CONFIG_ENV = 'REGISTRY_TLS_PROXY_CONFIG';
/**
 * The primary's "drain now" to a worker. A message, not a signal: Ctrl-C already
 * signals the whole process group, and a second signal means "exit at once".
 */
export const DRAIN_MESSAGE = 'registry-tls-proxy:drain';
/**
 * A drained worker's "may I exit?", and the primary's yes. Node's primary hands a
 * connection to a worker with a message and forgets it until the worker answers; a
 * worker that exits with such a message unread leaves the client hanging on a
 * connection nobody serves. The worker closed its server before asking, so the
 * primary has stopped choosing it; any hand-over sent before the question is read
 * (and refused, so the primary gives it to another worker) before the answer.
 */
export const EXIT_REQUEST = 'registry-tls-proxy:may-exit';
const EXIT_GRANTED = 'registry-tls-proxy:exit';
/**
 * A worker that cannot start tells its primary why, and the primary alone says it: two
 * workers failing on the same busy port each printed the same line.
 */
const START_FAILED = 'registry-tls-proxy:start-failed';
interface StartFailure {
  kind: typeof START_FAILED;
  code: string;
  message: string;
}
/** How long a worker waits for that answer (its primary may be gone). */
const EXIT_ANSWER_MS = 2000;
const RESTART_DELAY_MS = 1000;
/** A worker gets the drain deadline plus this to exit before SIGKILL. */
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

/** In a worker that has drained: resolves once no connection can still be on its way to it. */
export function leaveCluster(): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected || !process.send) return resolve();
    const done = () => {
      clearTimeout(timer);
      process.off('message', onMessage);
      process.off('disconnect', done);
      resolve();
    };
    const onMessage = (message: unknown) => {
      if (message === EXIT_GRANTED) done();
    };
    const timer = setTimeout(done, EXIT_ANSWER_MS);
    process.on('message', onMessage);
    process.once('disconnect', done);
    process.send(EXIT_REQUEST, undefined, {}, (err) => {
      if (err) done();
    });
  });
}

/**
 * In a worker: a primary that exits while this worker is still writing to it (the listen
 * request of a worker still starting when another failed to listen) fails that write with
 * EPIPE, which Node emits on `cluster.worker`; with no listener it is thrown, and its stack
 * trace follows the primary's own message. Nothing is lost: Node exits the worker on the
 * disconnect that follows.
 */
export function toleratePrimaryGone(logger: Logger): void {
  cluster.worker?.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'ERR_IPC_CHANNEL_CLOSED') return;
    logger.error({ err }, 'the channel to the primary failed');
  });
}

/** In a worker that cannot start: hands its reason to the primary, which says it once for the cluster. */
export function reportStartFailure(err: RTPError): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected || !process.send) return resolve();
    const failure: StartFailure = { kind: START_FAILED, code: err.code, message: err.message };
    process.send(failure, undefined, {}, () => resolve());
  });
}

function isStartFailure(message: unknown): message is StartFailure {
  return (message as StartFailure | null)?.kind === START_FAILED;
}

/** In a worker: the configuration its primary validated. */
export function workerConfig(): Config {
  const json = process.env[CONFIG_ENV];
  if (json === undefined) {
    throw new RTPError('CLUSTER_CONFIG', `a cluster worker started without ${CONFIG_ENV}`);
  }
  return deepFreeze(JSON.parse(json) as Config);
}

/** The workers serving one configuration. */
interface WorkerSet extends Generation {
  readonly workers: Set<Worker>;
  /** The certificates the primary made or found before forking them. */
  material?: TLSMaterial;
  /** The port they listen on (the one in `listen`, or the one the first of them was given). */
  port?: number;
}

export async function runPrimary(
  config: Config,
  logger: Logger,
  count = workerCount(config),
): Promise<RunningProxy> {
  const part = aSetOfWorkers(logger);
  logACMEOnce(config, logger, count);
  const { running, first } = await startRuntime({ config, logger, part, role: 'primary' });
  logger.info({ workers: count }, `${count} workers serve the public port`);
  // Once for the cluster: every worker would say the same.
  if (first.material) {
    logCertificate(config, first.material, logger);
    logServing(config, first.material, first.port ?? 0, logger);
  }
  return {
    drain: () => running.drain(),
    async reload(next) {
      await running.reload(next);
      const n = workerCount(next);
      logger.info({ workers: n }, `${n} workers with the new configuration serve the public port`);
    },
  };
}

/** The ACME start-up lines, once for the cluster: each worker would repeat them. */
function logACMEOnce(config: Config, logger: Logger, workers: number): void {
  if (!acmeEnabled(config)) return;
  logACMEPlan(config, logger);
  if (!readACMECertificate(acmeDir(config.tls.dir))) {
    logWaitingForACME(logger, acmeNames(config), workers);
  }
}

/** The serving part of a cluster's primary: a set of workers per configuration. */
function aSetOfWorkers(logger: Logger): ServingPart<WorkerSet> {
  const ticketKeys = randomBytes(48).toString('hex');
  let current: WorkerSet | undefined;
  let stopping = false;
  /** Weak: a Map kept every worker ever stopped, ~30 KiB a reload (1,000 SIGHUPs: +44 MiB). */
  const stops = new WeakMap<Worker, Promise<void>>();
  /** Workers that have listened, hence have their drain-message listener. */
  const listened = new WeakSet<Worker>();
  const metrics = workersMetricsSum((worker) => current?.workers.has(worker) ?? false);

  const fork = (set: WorkerSet): Worker => {
    const worker = cluster.fork({
      [TICKET_KEYS_ENV]: ticketKeys,
      [CONFIG_ENV]: JSON.stringify(set.config),
    });
    set.workers.add(worker);
    metrics.watch(worker);
    worker.once('listening', () => listened.add(worker));
    worker.on('message', (message) => {
      // A worker that has gone needs no answer.
      if (message === EXIT_REQUEST) sendToWorker(worker, EXIT_GRANTED);
    });
    // The worker's process errors (a failed kill) are re-emitted here: that worker's problem,
    // never the primary's end.
    worker.on('error', (err) =>
      logger.warn({ worker: worker.id, err: err.message }, 'a worker IPC error (ignored)'),
    );
    worker.on('exit', (code, signal) => {
      set.workers.delete(worker);
      if (stopping || set !== current || stops.has(worker)) return;
      logger.error(
        { worker: worker.id, pid: worker.process.pid, code, signal },
        `a worker exited unexpectedly; starting another in ${RESTART_DELAY_MS} ms`,
      );
      setTimeout(() => {
        if (!stopping && set === current) fork(set);
      }, RESTART_DELAY_MS).unref();
    });
    return worker;
  };

  /** Asks a worker to drain; SIGKILL when it outlives the deadline by STOP_GRACE_MS. */
  const stop = (worker: Worker, drainMs: number): Promise<void> => {
    let stopped = stops.get(worker);
    if (!stopped) {
      stopped = new Promise<void>((resolve) => {
        if (worker.isDead()) return resolve();
        const kill = setTimeout(() => worker.process.kill('SIGKILL'), drainMs + STOP_GRACE_MS);
        worker.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        // A worker still starting may not listen for messages yet; its SIGTERM handler
        // (installed first thing) drains it once started.
        const terminate = () => worker.process.kill('SIGTERM');
        if (listened.has(worker)) sendToWorker(worker, DRAIN_MESSAGE, terminate);
        else terminate();
      });
      stops.set(worker, stopped);
    }
    return stopped;
  };

  /** Forks `n` workers for `config`; resolves once all listen, rejects (stopping them) if one exits first. */
  const startWorkers = (config: Config, n: number): Promise<WorkerSet> => {
    const set: WorkerSet = {
      config,
      workers: new Set(),
      // The workers log their own drain and what it cut.
      retire: async (drainMs) => {
        await Promise.all([...set.workers].map((w) => stop(w, drainMs)));
        return 0;
      },
    };
    return new Promise<WorkerSet>((resolve, reject) => {
      let listening = 0;
      let failed = false;
      const fail = (err: RTPError) => {
        if (listening >= n || failed) return;
        failed = true;
        for (const w of set.workers) void stop(w, 0);
        reject(err);
      };
      for (let i = 0; i < n; i++) {
        const worker = fork(set);
        worker.once('listening', (address) => {
          set.port ??= address.port;
          if (++listening === n && !failed) resolve(set);
        });
        worker.on('message', (message) => {
          if (isStartFailure(message)) fail(new RTPError(message.code, message.message));
        });
        // After the channel closed, not at exit: every message the worker sent has arrived by then.
        worker.once('disconnect', () =>
          fail(new RTPError('WORKER_FAILED', 'a worker failed to start; see its output above')),
        );
      }
    });
  };

  return {
    metrics,
    async start(config) {
      // Certificates first, once: workers then find them instead of all waiting on the lock.
      const material = await loadCertificates(config, logger);
      // A worker that cannot start (bad port, bad certificate) tells us why and exits; we say it and exit.
      const set = await startWorkers(config, workerCount(config));
      set.material = material;
      return set;
    },
    promote(next) {
      current = next;
    },
    stopAccepting() {
      stopping = true;
    },
    inFlight() {
      const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined).length;
      return { fields: { workers }, summary: `${workers} workers finish their requests` };
    },
  };
}
