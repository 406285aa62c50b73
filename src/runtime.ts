/**
 * The process runtime: what lives as long as the process, whichever way it serves
 * the public port. It owns the admin listener (/healthz, /readyz, /metrics), the
 * backend monitor that /readyz reads, and the bookkeeping of drain (SIGTERM) and
 * reload (SIGHUP). What serves the port plugs in as a ServingPart: generations of
 * servers in this process (runtime-generations.ts), or a set of workers (cluster.ts);
 * the part keeps the process's one metrics registry (or, in a cluster's primary, the
 * workers' sum).
 *
 * One code path for both modes, so that they cannot differ: a reload that a drain
 * interrupts stops everything it started (its generation, its monitor, its admin
 * listener), and the drain waits for that.
 */
import { createAdminServer, type AdminServer, type MetricsSource } from './admin/server.js';
import type { Config } from './config/schema.js';
import { RTPError } from './errors.js';
import { monitorBackend, type HealthMonitor } from './health/monitor.js';
import { drainingVerdict } from './health/report.js';
import type { Logger } from './log.js';
import { acmeVerdictNote } from './acme/health-note.js';

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

/** What serves one configuration: servers in this process, or a set of workers. */
export interface Generation {
  readonly config: Config;
  /**
   * Finishes what it serves within `deadlineMs` and cuts what is left; resolves with
   * how many requests were cut (0 where its workers count and log that themselves).
   * Also ends a generation that never took over (a reload that failed).
   */
  retire(deadlineMs: number): Promise<number>;
}

export interface ServingPart<G extends Generation> {
  /** What the admin listener serves at /metrics, for the life of the process. */
  readonly metrics: MetricsSource;
  /**
   * Starts serving `config`, reading the backend's state from `health`. At start-up it
   * takes the port; on reload it stands beside the current generation until `promote`.
   * Throws, having stopped what it started, when it cannot serve.
   */
  start(config: Config, health: HealthMonitor): Promise<G>;
  /** `next` takes the traffic from now on; the runtime retires `previous` next. */
  promote(next: G, previous?: G): void;
  /** Stops taking new connections: the first step of a drain. */
  stopAccepting(): void;
  /** What the drain's first line says is in flight ("3 requests in flight"). */
  inFlight(): { fields: Record<string, unknown>; summary: string };
}

export interface RuntimeOptions<G extends Generation> {
  config: Config;
  logger: Logger;
  part: ServingPart<G>;
  /** A cluster worker has no admin listener and is reloaded by its primary, not by SIGHUP. */
  role: 'single' | 'primary' | 'worker';
  /** Runs once the drain has ended (a worker reports its last counts to its primary). */
  afterDrain?: () => Promise<void>;
}

/** Starts the first generation and the admin listener; resolves with the first generation too. */
export async function startRuntime<G extends Generation>(
  opts: RuntimeOptions<G>,
): Promise<{ running: RunningProxy; first: G }> {
  const { logger, part, role } = opts;
  // A worker's monitor serves its public health path; its primary logs the transitions.
  const monitor = (config: Config) => monitorBackend(config, logger, role !== 'worker');
  let health = monitor(opts.config);
  let current: G;
  try {
    // Until the first probe ends, /readyz says "starting" (503): never ready on a guess.
    current = await part.start(opts.config, health);
  } catch (err) {
    health.stop();
    throw err;
  }
  part.promote(current);
  let draining = false;
  const acmeNote = acmeVerdictNote();
  const verdict = () =>
    acmeNote(draining ? drainingVerdict(health.current()) : health.current(), current.config);
  const admin = adminListener(role, logger, part.metrics, verdict);
  await admin.move(opts.config);
  admin.commit();

  /** Previous generations finishing their requests after a reload. */
  const retiring = new Set<Promise<number>>();
  /** The reload under way, settled (a drain waits for what it started to stop). */
  let reloading: Promise<unknown> = Promise.resolve();
  const retire = (generation: G, monitorOf: HealthMonitor, deadlineMs: number) =>
    generation.retire(deadlineMs).finally(() => monitorOf.stop());

  const reload = async (next: Config) => {
    if (role === 'worker') {
      throw new RTPError('RELOAD_UNSUPPORTED', 'a cluster worker is reloaded by its primary');
    }
    if (draining) throw new RTPError('RELOAD_DRAINING', 'draining: nothing to reload');
    const nextHealth = monitor(next);
    let fresh: G | undefined;
    try {
      await admin.move(next);
      fresh = await part.start(next, nextHealth);
      // Ready before it takes traffic: its first probe decides /readyz.
      await nextHealth.ready;
      if (draining) throw new RTPError('RELOAD_DRAINING', 'a drain began during the reload');
    } catch (err) {
      // Whatever this reload started goes; a cluster's fresh workers may hold requests already.
      await Promise.all([
        admin.abandon(),
        fresh && retire(fresh, nextHealth, next.timeouts.drainMs),
      ]);
      nextHealth.stop();
      throw err;
    }
    const previous = { generation: current, health };
    current = fresh;
    health = nextHealth;
    part.promote(fresh, previous.generation);
    admin.commit();
    logger.level = next.log.level;
    const done = retire(previous.generation, previous.health, next.timeouts.drainMs).then((cut) => {
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
  };

  let drained: Promise<void> | undefined;
  const running: RunningProxy = {
    reload(next) {
      const attempt = reload(next);
      reloading = attempt.catch(() => {});
      return attempt;
    },
    drain() {
      drained ??= (async () => {
        draining = true;
        part.stopAccepting();
        const drainMs = current.config.timeouts.drainMs;
        const deadline = new Date(Date.now() + drainMs).toISOString();
        const { fields, summary } = part.inFlight();
        logger.info({ ...fields, deadline, drainMs }, `draining: ${summary}, deadline ${deadline}`);
        const [cut] = await Promise.all([retire(current, health, drainMs), ...retiring, reloading]);
        if (cut) {
          logger.warn(
            { cut, drainMs },
            `drain deadline passed: cut ${cut} request${cut === 1 ? '' : 's'} still in flight`,
          );
        }
        await admin.close();
        await opts.afterDrain?.();
        logger.info('drained, exiting');
      })();
      return drained;
    },
  };
  return { running, first: current };
}

/**
 * The admin listener across reloads: `move` opens one on a changed admin.listen (the
 * current one keeps serving meanwhile), then `commit` closes the one it replaced, or
 * `abandon` closes the new one.
 */
function adminListener(
  role: RuntimeOptions<Generation>['role'],
  logger: Logger,
  metrics: MetricsSource,
  verdict: Parameters<typeof createAdminServer>[2],
) {
  let listen: string | undefined;
  let server: AdminServer | undefined;
  let next: { listen: string; server: AdminServer | undefined } | undefined;
  const note = role === 'primary' ? '/metrics summed over the workers' : '/metrics';
  return {
    async move(config: Config): Promise<void> {
      // In a cluster the admin listener is the primary's.
      if (role === 'worker' || config.admin.listen === listen) return;
      next = { listen: config.admin.listen, server: undefined };
      if (config.admin.listen === '') return;
      const fresh = createAdminServer(config.admin.listen, metrics, verdict);
      const address = await listenOrExplain(
        () => fresh.listen(),
        config.admin.listen,
        'admin.listen',
      );
      next.server = fresh;
      logger.info(
        { address: `${address.address}:${address.port}` },
        `admin listener (/healthz, /readyz, ${note})`,
      );
    },
    commit(): void {
      if (!next) return;
      void server?.close();
      ({ listen, server } = next);
      next = undefined;
    },
    async abandon(): Promise<void> {
      const fresh = next?.server;
      next = undefined;
      await fresh?.close();
    },
    async close(): Promise<void> {
      await Promise.all([server?.close(), this.abandon()]);
    },
  };
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
