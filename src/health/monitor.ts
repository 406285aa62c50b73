/**
 * Probes the backend every health.interval and keeps the verdict, so that
 * load balancers' probes (of /readyz, the public health path) read a cached
 * answer and never hammer the registry. Transitions are logged once.
 */
import type { Config } from '../config/schema.js';
import { backendAgent } from '../net/backend-keepalive.js';
import type { Logger } from '../log.js';
import { BOTH_LOGINS, probeBackend, type ProbeOptions, type Verdict } from './probe.js';

export interface HealthMonitor {
  /** The latest verdict (a "not probed yet" verdict before the first probe ends). */
  current(): Verdict;
  /** Resolves once the first probe has finished. */
  ready: Promise<Verdict>;
  stop(): void;
}

export function startHealthMonitor(
  opts: ProbeOptions & {
    intervalMs: number;
    logger: Logger;
    /** Log changes of verdict (default); off for cluster workers, whose primary logs them. */
    logTransitions?: boolean;
    onVerdict?: (verdict: Verdict) => void;
  },
): HealthMonitor {
  let verdict: Verdict = {
    status: 'down',
    healthy: false,
    reason: 'starting: the backend has not been probed yet',
    checkedAt: new Date(),
    durationMs: 0,
  };
  let previousStatus: string | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const runProbe = async (): Promise<Verdict> => {
    const next = await probeBackend(opts);
    if (stopped) return next;
    verdict = next;
    opts.onVerdict?.(next);
    // One line per change of verdict (and of its reason, e.g. refused → timing out), not per probe.
    const key = `${next.status} ${next.reason}`;
    if (key !== previousStatus && opts.logTransitions !== false) {
      const fields = {
        verdict: next.status,
        httpStatus: next.httpStatus,
        backend: opts.backend.origin,
      };
      // Healthy with both logins on (the registry's and the proxy's) still wants an operator's eye.
      if (next.healthy && !next.reason.endsWith(BOTH_LOGINS)) opts.logger.info(fields, next.reason);
      else opts.logger.warn(fields, next.reason);
      previousStatus = key;
    }
    return next;
  };
  const loop = () => {
    timer = setTimeout(() => {
      void runProbe().finally(() => {
        if (!stopped) loop();
      });
    }, opts.intervalMs);
    timer.unref();
  };
  const ready = runProbe().finally(() => {
    if (!stopped) loop();
  });
  return {
    current: () => verdict,
    ready,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** The monitor of `config`'s backend, on its own one-socket keep-alive agent. */
export function monitorBackend(
  config: Config,
  logger: Logger,
  logTransitions = true,
): HealthMonitor {
  const agent = backendAgent(config.timeouts.backendKeepAliveMs, { maxSockets: 1 });
  const monitor = startHealthMonitor({
    backend: new URL(config.backend),
    timeoutMs: config.health.timeout,
    allowAnonymous: config.health.allowAnonymous,
    proxyLogins: config.auth.htpasswd !== '',
    agent,
    intervalMs: config.health.interval,
    logger,
    logTransitions,
  });
  return {
    ...monitor,
    // A reload replaces the monitor: its kept-alive socket goes with it, not at the backend's leisure.
    stop() {
      monitor.stop();
      agent.destroy();
    },
  };
}
