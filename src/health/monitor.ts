/**
 * Probes the backend every health.interval and keeps the verdict, so that
 * load balancers' probes (of /readyz, the public health path) read a cached
 * answer and never hammer the registry. Transitions are logged once.
 */
import type { Config } from '../config/schema.js';
import { backendAgent } from '../net/backend-keepalive.js';
import type { Logger } from '../log.js';
import { BOTH_LOGINS, probeBackend, type ProbeOptions, type Verdict } from './probe.js';
import { combineVerdicts } from './replicas.js';

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
    /** One of several replicas: a change of healthy says it left or rejoined the rotation. */
    inRotation?: boolean;
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
  let wasHealthy: boolean | undefined;
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
      const message = opts.inRotation
        ? `${next.reason}${rotationNote(next.healthy, wasHealthy)}`
        : next.reason;
      // Healthy with both logins on (the registry's and the proxy's) still wants an operator's eye.
      if (next.healthy && !next.reason.endsWith(BOTH_LOGINS)) opts.logger.info(fields, message);
      else opts.logger.warn(fields, message);
      previousStatus = key;
    }
    wasHealthy = next.healthy;
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

/** What a replica's change of verdict means for the requests it gets. */
function rotationNote(healthy: boolean, wasHealthy: boolean | undefined): string {
  if (healthy === wasHealthy) return '';
  if (healthy) return wasHealthy === undefined ? '' : '; replica back in rotation';
  return wasHealthy === undefined
    ? '; replica kept out of rotation'
    : '; replica taken out of rotation';
}

/**
 * The monitor of `config`'s backend (each replica on its own one-socket keep-alive
 * agent); its verdict is healthy while any replica is. Combined when a probe ends, not
 * when read: every request reads it to route (src/proxy/replicas.ts).
 */
export function monitorBackend(
  config: Config,
  logger: Logger,
  logTransitions = true,
): HealthMonitor {
  const each = config.backend.map((backend) => {
    const agent = backendAgent(config.timeouts.backendKeepAliveMs, { maxSockets: 1 });
    const monitor = startHealthMonitor({
      backend: new URL(backend),
      timeoutMs: config.health.timeout,
      allowAnonymous: config.health.allowAnonymous,
      proxyLogins: config.auth.htpasswd !== '',
      agent,
      intervalMs: config.health.interval,
      logger,
      logTransitions,
      inRotation: config.backend.length > 1,
      onVerdict: () => combine(),
    });
    return { backend, monitor, agent };
  });
  let combined: Verdict;
  const combine = () =>
    (combined = combineVerdicts(
      each.map(({ backend, monitor }) => ({ backend, verdict: monitor.current() })),
    ));
  combine();
  return {
    current: () => combined,
    ready: Promise.all(each.map(({ monitor }) => monitor.ready)).then(() => combined),
    // A reload replaces the monitor: its kept-alive sockets go with it, not at the backend's leisure.
    stop() {
      for (const { monitor, agent } of each) {
        monitor.stop();
        agent.destroy();
      }
    },
  };
}
