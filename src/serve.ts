/**
 * `registry-tls-proxy serve` in a process that serves the public port itself (alone,
 * or as a cluster worker): the process runtime (runtime.ts) with generations of
 * servers in this process (runtime-generations.ts); alone, it says the start-up lines
 * (startup-log.ts) too.
 */
import { logACMEPlan } from './acme/which-certificate.js';
import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import { answerPrimaryMetrics } from './metrics/cluster.js';
import { generationsInThisProcess, type ServeRole } from './runtime-generations.js';
import { startRuntime, type RunningProxy } from './runtime.js';
import { logCertificate, logServing } from './startup-log.js';

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
  // A cluster's primary says these once for all its workers (cluster.ts).
  if (role.kind === 'single') {
    logCertificate(config, first.material, logger);
    logACMEPlan(config, logger, first.material.sans.ips);
    logServing(config, first.material, first.port ?? 0, logger);
  }
  return running;
}
