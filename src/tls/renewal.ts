/**
 * Keeps the served certificate current while the proxy runs: every
 * tls.checkInterval it re-reads the machine's addresses and the TLS directory
 * and re-issues when a third of the certificate's life is left, when an
 * address appears, or when a replica sharing the directory renewed first.
 * A new certificate is swapped in with setSecureContext: live connections
 * (a multi-GB pull in progress) keep theirs, new handshakes get the new one.
 */
import { X509Certificate } from 'node:crypto';
import { createRepeatGate, type Logger } from '../log.js';
import type { TLSMaterial } from '../pki/store.js';
import { watchFiles } from './file-watch.js';

const ERROR_REMINDER_MS = 60 * 60 * 1000;

export interface RenewalOptions {
  /** Loads (and where needed issues) the material to serve; a throw keeps the current one. */
  load: () => Promise<TLSMaterial>;
  checkIntervalMs: number;
  logger: Logger;
  initial: TLSMaterial;
  swap: (material: TLSMaterial) => void;
  /**
   * Files whose replacement triggers a check at once, however it is replaced (see
   * file-watch.ts). Polling stays, for changes inotify cannot see (another host
   * writing a shared volume).
   */
  watch?: readonly string[];
}

/** Never more than one watch-triggered check per this: our own writes (a re-issued server.crt) come back as events. */
const WATCH_MIN_SPACING_MS = 2000;
/**
 * After a failed check (a half-written pair: the new certificate, the old key),
 * try again after 1 s, 2 s, 4 s… up to a minute, however long tls.checkInterval is.
 */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 60_000;

export function startRenewal(opts: RenewalOptions): { stop(): void } {
  let current = opts.initial;
  let running = false;
  let again = false;
  let retryMs = 0;
  let lastCheck = 0;
  const errors = createRepeatGate(ERROR_REMINDER_MS);
  const soon = earliestTimer(() => void check());
  const check = async () => {
    if (running) {
      again = true; // a slow key generation must not stack up checks, nor swallow a change
      return;
    }
    running = true;
    lastCheck = Date.now();
    try {
      const next = await opts.load();
      errors.reset();
      retryMs = 0;
      if (changed(current, next)) {
        opts.swap(next);
        logSwap(opts.logger, current, next);
        current = next;
      }
    } catch (err) {
      // Once per distinct problem (and hourly while it lasts), not on every check.
      const level = errors.pass(String((err as Error)?.message)) ? 'error' : 'debug';
      opts.logger[level](
        { err },
        'certificate check failed; still serving the current certificate',
      );
      retryMs = Math.min(retryMs === 0 ? RETRY_FIRST_MS : retryMs * 2, RETRY_MAX_MS);
      if (retryMs < opts.checkIntervalMs) soon.at(Date.now() + retryMs);
    } finally {
      running = false;
      watcher.refresh();
      if (again) {
        again = false;
        soon.at(lastCheck + WATCH_MIN_SPACING_MS);
      }
    }
  };
  const timer = setInterval(() => void check(), opts.checkIntervalMs);
  timer.unref();
  const watcher = watchFiles(opts.watch ?? [], () => soon.at(lastCheck + WATCH_MIN_SPACING_MS));
  return {
    stop: () => {
      clearInterval(timer);
      soon.cancel();
      watcher.close();
    },
  };
}

function changed(current: TLSMaterial, next: TLSMaterial): boolean {
  return (
    next.serverCertPEM !== current.serverCertPEM ||
    next.trustBundlePEM !== current.trustBundlePEM ||
    next.clientCAsPEM !== current.clientCAsPEM
  );
}

function logSwap(logger: Logger, current: TLSMaterial, next: TLSMaterial): void {
  if (next.trustBundlePEM !== current.trustBundlePEM) {
    logger.info(
      { caFingerprints: next.trustFingerprints },
      next.trustFingerprints.length > 1
        ? 'CA rotation in progress: /ca.crt now serves the current and the next CA; have clients trust it again'
        : 'the CA bundle changed: /ca.crt now serves one CA',
    );
  }
  if (next.serverCertPEM !== current.serverCertPEM) {
    logger.info(
      {
        reason: next.created.server ? next.created.reason : 'the stored certificate changed',
        serial: new X509Certificate(next.serverCertPEM).serialNumber,
        notAfter: next.serverNotAfter.toISOString(),
        dns: next.sans.dns,
        ips: next.sans.ips,
      },
      'swapped in a new server certificate',
    );
  }
}

/** One pending timer; asking for an earlier time moves it, a later one is ignored. */
function earliestTimer(fire: () => void): { at(timeMs: number): void; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  let dueMs = Infinity;
  const cancel = () => {
    clearTimeout(timer);
    timer = undefined;
    dueMs = Infinity;
  };
  return {
    at(timeMs) {
      if (timer !== undefined && dueMs <= timeMs) return;
      cancel();
      dueMs = timeMs;
      timer = setTimeout(
        () => {
          cancel();
          fire();
        },
        Math.max(0, timeMs - Date.now()),
      );
      timer.unref();
    },
    cancel,
  };
}
