/**
 * Signals, as operators and orchestrators expect them:
 *  - SIGTERM / SIGINT: drain (stop accepting, finish what is in flight within
 *    timeouts.drainMs), then exit 0; a second one during the drain exits at once.
 *  - SIGHUP (single process or cluster primary): re-read the configuration the
 *    process was started with and the certificates; serve them without dropping a
 *    connection, or log every problem and keep serving the previous configuration.
 * A cluster worker drains when its primary asks (cluster.ts) and ignores SIGHUP.
 * Handlers are installed before start-up, so a SIGTERM during it drains once started
 * instead of killing the process with the signal's default action, and a SIGHUP
 * reloads once started instead of being lost.
 */
import { workerCount, DRAIN_MESSAGE, leaveCluster } from './cluster.js';
import { changedKeys } from './config/load.js';
import type { Config } from './config/schema.js';
import { ConfigError, RTPError } from './errors.js';
import type { Logger } from './log.js';
import type { RunningProxy } from './serve.js';

export type ProcessRole = 'single' | 'primary' | 'worker';

export interface Lifecycle {
  /** Resolves with the exit code once `running` has drained (or a second signal came). */
  run(running: RunningProxy): Promise<number>;
}

export function superviseSignals(opts: {
  logger: Logger;
  role: ProcessRole;
  config: Config;
  /** Loads and checks the configuration again, as at start-up; throws an RTPError listing the problems. */
  loadAgain: () => Config;
}): Lifecycle {
  const { logger, role } = opts;
  let current = opts.config;
  let running: RunningProxy | undefined;
  let stopRequested = false;
  /** A SIGHUP that came while starting: reload once started (the file may have changed since it was read). */
  let reloadRequested = false;
  let reload = () => {};
  let resolveExit: (code: number) => void = () => {};
  const exit = new Promise<number>((resolve) => (resolveExit = resolve));

  const drain = () => {
    running
      ?.drain()
      .then(() => (role === 'worker' ? leaveCluster() : undefined))
      .then(
        () => resolveExit(0),
        (err: unknown) => {
          logger.error({ err }, 'drain failed');
          resolveExit(1);
        },
      );
  };
  const stop = (why: string) => {
    if (stopRequested) {
      logger.warn({ signal: why }, `${why} during the drain: exiting now, cutting what is left`);
      resolveExit(0);
      return;
    }
    stopRequested = true;
    logger.info({ signal: why }, 'stopping');
    drain();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  if (role === 'worker') {
    process.on('message', (message) => {
      if (message === DRAIN_MESSAGE && !stopRequested) stop('the primary asked to drain');
    });
    // A worker whose primary is gone has no one to answer to (a drain already under way goes on).
    process.once('disconnect', () => {
      if (!stopRequested) stop('primary gone');
    });
    process.on('SIGHUP', () => logger.debug('SIGHUP ignored: the primary reloads the workers'));
  } else {
    let reloading = false;
    let again = false;
    const reloadOnce = async () => {
      if (!running) {
        logger.info('SIGHUP while starting: reloading once started');
        reloadRequested = true;
        return;
      }
      if (stopRequested) {
        logger.warn('SIGHUP ignored: draining');
        return;
      }
      try {
        const next = opts.loadAgain();
        if (role === 'single' && workerCount(next) !== 1) {
          logger.warn(
            { workers: next.workers },
            'workers changed: a restart is needed to run more than one process; still one process',
          );
        }
        await running.reload(next);
        const changed = changedKeys(current, next);
        current = next;
        logger.info(
          { changed },
          changed.length > 0
            ? `reloaded configuration: ${changed.join(', ')} changed`
            : 'reloaded configuration: no key changed; certificates re-read',
        );
      } catch (err) {
        if (!(err instanceof RTPError)) throw err;
        logger.error(
          {
            code: err.code,
            ...(err instanceof ConfigError ? { problems: err.problems } : {}),
          },
          `configuration reload rejected: ${err.message}; still serving the previous configuration`,
        );
      }
    };
    reload = () => {
      // One reload at a time; SIGHUPs meanwhile make one more afterwards.
      if (reloading) {
        again = true;
        return;
      }
      reloading = true;
      void (async () => {
        do {
          again = false;
          await reloadOnce();
        } while (again);
      })()
        .catch((err: unknown) => logger.error({ err }, 'reload failed unexpectedly'))
        .finally(() => (reloading = false));
    };
    process.on('SIGHUP', reload);
  }

  return {
    run(proxy) {
      running = proxy;
      // A signal came while starting.
      if (stopRequested) drain();
      else if (reloadRequested) reload();
      return exit;
    },
  };
}
