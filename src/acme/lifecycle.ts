/**
 * The ACME certificate while the proxy runs: served from tls.dir at start when one is
 * there, ordered at start when not (our own CA's certificate is served meanwhile),
 * renewed when due (a timer set for the renewal time, so a renewal is not up to
 * tls.checkInterval late), retried with backoff after failures, never dropped. Every
 * replica runs this; one orders (attempt.ts), the rest pick the result up from the
 * shared directory within a second (a file watch) or at the next check.
 */
import { join } from 'node:path';
import type { Counter } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { watchFiles } from '../tls/file-watch.js';
import { attemptOrder } from './attempt.js';
import { acmeNames } from './config.js';
import { clientTrustNote } from './which-certificate.js';
import { renewBeforeFits, renewalTime } from './renewal-time.js';
import {
  ACME_FILES,
  ensureACMEDir,
  readACMECertificate,
  readState,
  type ACMECertificate,
} from './store.js';

/** While another replica holds the order lock, look again this often. */
const LOCKED_RECHECK_MS = 3_000;
/** setTimeout's limit (about 24.8 days): a longer delay would fire at once, an order loop. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface ACMEManager {
  current(): ACMECertificate | undefined;
  /** When an order last succeeded (any replica's), for rtp_acme_last_success_timestamp_seconds. */
  lastSuccess(): Date | undefined;
  stop(): void;
}

export interface ACMEOptions {
  config: Config;
  logger: Logger;
  /** A certificate to serve from now on (the first one, or a renewal). */
  onCertificate: (cert: ACMECertificate) => void;
  orders: Counter<'result'>;
  /** The certificate the caller already serves (read from tls.dir before it listened). */
  initial?: ACMECertificate;
  /**
   * In a cluster, this worker's id: its lines say which worker serves what, and the
   * primary, not each worker, says once that none has arrived yet (logWaitingForACME).
   */
  worker?: number;
}

/** The warning while no ACME certificate is stored: once per process, or once per cluster (by its primary). */
export function logWaitingForACME(
  logger: Logger,
  names: readonly string[],
  workers?: number,
): void {
  const who = workers === undefined ? '' : ` (the ${workers} workers share one order)`;
  logger.warn(
    { names },
    `no ACME certificate for ${names.join(', ')} yet: serving our own CA's certificate until it arrives${who}`,
  );
}

export function startACME(opts: ACMEOptions): ACMEManager {
  const { config, logger } = opts;
  const dir = ensureACMEDir(config.tls.dir);
  const names = acmeNames(config);
  let current: ACMECertificate | undefined;
  const who = opts.worker === undefined ? '' : `worker ${opts.worker}: `;
  let stopped = false;
  let running = false;
  let timer: NodeJS.Timeout | undefined;

  const serving = (stored: ACMECertificate) => logServing(config, logger, who, stored);
  const pickUp = () => {
    const stored = readACMECertificate(dir);
    if (!stored || stored.leaf.serialNumber === current?.leaf.serialNumber) return;
    current = stored;
    opts.onCertificate(stored);
    serving(stored);
  };
  const later = (ms: number) => {
    clearTimeout(timer);
    if (stopped) return;
    timer = setTimeout(() => void tick(), Math.min(MAX_TIMER_MS, Math.max(0, ms)));
    timer.unref();
  };
  /** What to do after a tick: the backoff or lock recheck it chose, else the renewal time. */
  const untilRenewal = () =>
    current
      ? renewalTime(current, config.tls.acme.renewBefore).getTime() - Date.now()
      : config.tls.checkInterval;
  const tick = async () => {
    if (running || stopped) return;
    running = true;
    let nextMs: number | undefined;
    try {
      pickUp();
      const retryAt = Date.parse(readState(dir).retryAt ?? '');
      const result =
        retryAt > Date.now()
          ? { kind: 'backoff' as const }
          : await attemptOrder(config, dir, logger);
      if (result.kind === 'backoff') {
        nextMs = retryAt - Date.now();
      } else if (result.kind === 'ordered') {
        opts.orders.inc({ result: 'success' });
        pickUp();
      } else if (result.kind === 'failed') {
        opts.orders.inc({ result: 'failure' });
        nextMs = result.retryAt.getTime() - Date.now();
      } else if (result.kind === 'locked') {
        logger.debug(
          { recheckMs: LOCKED_RECHECK_MS },
          'ACME: another replica holds the order lock; its certificate arrives through tls.dir',
        );
        nextMs = LOCKED_RECHECK_MS;
      }
    } catch (err) {
      // tls.dir unwritable and the like: logged, looked at again at the next check.
      logger.error({ err }, 'ACME: checking the certificate failed; still serving the current one');
      nextMs = config.tls.checkInterval;
    } finally {
      running = false;
    }
    later(nextMs ?? untilRenewal());
  };

  if (opts.initial) {
    current = opts.initial;
    serving(opts.initial);
  }
  pickUp();
  if (!current && opts.worker === undefined) logWaitingForACME(logger, names);
  const interval = setInterval(() => void tick(), config.tls.checkInterval);
  interval.unref();
  const watch = watchFiles([join(dir, ACME_FILES.chain)], () => pickUp());
  void tick();
  return {
    current: () => current,
    lastSuccess() {
      const at = readState(dir).lastSuccessAt;
      return at ? new Date(at) : undefined;
    },
    stop() {
      stopped = true;
      clearInterval(interval);
      clearTimeout(timer);
      watch.close();
    },
  };
}

/** The line saying which certificate is served now, with what clients install and when it renews. */
function logServing(config: Config, logger: Logger, who: string, stored: ACMECertificate): void {
  const renewBefore = config.tls.acme.renewBefore;
  const trust = clientTrustNote(config, stored.chainPEM);
  const renewAt = renewalTime(stored, renewBefore);
  logger.info(
    {
      names: stored.names,
      serial: stored.leaf.serialNumber,
      issuer: stored.leaf.issuer.replace(/\n/g, ', '),
      notAfter: stored.notAfter.toISOString(),
      renewAt: renewAt.toISOString(),
      ...trust.fields,
    },
    `${who}serving the ACME certificate for ${stored.names.join(', ')} (by SNI)${trust.text}; clients by IP address or without SNI keep our own CA's`,
  );
  if (trust.warning) logger.warn({ caBundle: config.tls.acme.caBundle }, trust.warning);
  // A renewBefore as long as the lifetime would make every new certificate due at once.
  if (renewBefore > 0 && !renewBeforeFits(stored, renewBefore)) {
    logger.warn(
      { renewBeforeMs: renewBefore, notBefore: stored.notBefore.toISOString(), renewAt },
      `tls.acme.renewBefore is not shorter than the certificate's lifetime: renewing when a third of it is left (${renewAt.toISOString()}) instead; set renewBefore below the lifetime`,
    );
  }
}
