/**
 * Keeps the served certificate current while the proxy runs: every
 * tls.checkInterval it re-reads the machine's addresses and the TLS directory
 * and re-issues when a third of the certificate's life is left, when an
 * address appears, or when a replica sharing the directory renewed first.
 * A new certificate is swapped in with setSecureContext: live connections
 * (a multi-GB pull in progress) keep theirs, new handshakes get the new one.
 */
import { X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { createRepeatGate, type Logger } from '../log.js';
import type { TLSMaterial } from '../pki/store.js';

const ERROR_REMINDER_MS = 60 * 60 * 1000;

export interface RenewalOptions {
  /** Loads (and where needed issues) the material to serve; a throw keeps the current one. */
  load: () => Promise<TLSMaterial>;
  checkIntervalMs: number;
  logger: Logger;
  initial: TLSMaterial;
  swap: (material: TLSMaterial) => void;
  /**
   * Files whose replacement triggers a check at once (their directories are watched:
   * an atomic rename replaces the file). Polling stays, for changes inotify cannot see
   * (another host writing a shared volume).
   */
  watch?: readonly string[];
}

/** Replacing a chain and its key takes several renames: check once they are done. */
const WATCH_SETTLE_MS = 1000;
const WATCH_MIN_SPACING_MS = 2000;

export function startRenewal(opts: RenewalOptions): { stop(): void } {
  let current = opts.initial;
  let running = false;
  const errors = createRepeatGate(ERROR_REMINDER_MS);
  let lastCheck = 0;
  const check = async () => {
    if (running) return; // a slow key generation must not stack up checks
    running = true;
    lastCheck = Date.now();
    try {
      const next = await opts.load();
      errors.reset();
      const serverChanged = next.serverCertPEM !== current.serverCertPEM;
      const trustChanged = next.trustBundlePEM !== current.trustBundlePEM;
      if (!serverChanged && !trustChanged && next.clientCAsPEM === current.clientCAsPEM) return;
      opts.swap(next);
      current = next;
      if (trustChanged) {
        opts.logger.info(
          { caFingerprints: next.trustFingerprints },
          next.trustFingerprints.length > 1
            ? 'CA rotation in progress: /ca.crt now serves the current and the next CA; have clients trust it again'
            : 'the CA bundle changed: /ca.crt now serves one CA',
        );
      }
      if (serverChanged) {
        opts.logger.info(
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
    } catch (err) {
      // Once per distinct problem (and hourly while it lasts), not on every check.
      const level = errors.pass(String((err as Error)?.message)) ? 'error' : 'debug';
      opts.logger[level](
        { err },
        'certificate check failed; still serving the current certificate',
      );
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void check(), opts.checkIntervalMs);
  timer.unref();
  let settle: NodeJS.Timeout | undefined;
  const watchers = watchFiles(opts.watch ?? [], () => {
    // Our own writes (a re-issued server.crt) come back here too: never more than one
    // watch-triggered check per WATCH_MIN_SPACING_MS, so nothing can spin.
    const wait = Math.max(WATCH_SETTLE_MS, lastCheck + WATCH_MIN_SPACING_MS - Date.now());
    clearTimeout(settle);
    settle = setTimeout(() => void check(), wait);
    settle.unref();
  });
  return {
    stop: () => {
      clearInterval(timer);
      clearTimeout(settle);
      for (const w of watchers) w.close();
    },
  };
}

function watchFiles(files: readonly string[], changed: () => void): FSWatcher[] {
  const byDir = new Map<string, Set<string>>();
  for (const file of files) {
    const names = byDir.get(dirname(file)) ?? new Set<string>();
    names.add(basename(file));
    byDir.set(dirname(file), names);
  }
  const watchers: FSWatcher[] = [];
  for (const [dir, names] of byDir) {
    try {
      const watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (name === null || names.has(String(name))) changed();
      });
      watcher.on('error', () => watcher.close()); // the directory went away: polling goes on
      watchers.push(watcher);
    } catch {
      // no such directory (yet), or no inotify: polling covers it
    }
  }
  return watchers;
}
