/**
 * One try at getting the ACME certificate into tls.dir, as any replica (or the
 * `acme renew` command) makes it: take the order lock or leave it to the replica that
 * holds it, check again under the lock, order, store the result and the outcome.
 */
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { challengeAnswers, likelyFix } from './challenges.js';
import { acmeNames, directoryURL } from './config.js';
import { tryLock } from './lock.js';
import { OrderError, orderCertificate } from './order.js';
import { backoffMs, orderReason } from './renewal-time.js';
import {
  ACME_FILES,
  readACMECertificate,
  readState,
  writeACMECertificate,
  writeState,
  type ACMECertificate,
} from './store.js';

export type AttemptResult =
  | { kind: 'ordered'; cert: ACMECertificate; reason: string }
  | { kind: 'not-needed' }
  /** Another replica holds the order lock: its result arrives through tls.dir. */
  | { kind: 'locked' }
  | { kind: 'failed'; error: OrderError; retryAt: Date };

export async function attemptOrder(
  config: Config,
  dir: string,
  logger: Logger,
  opts: { force?: boolean } = {},
): Promise<AttemptResult> {
  const names = acmeNames(config);
  const renewBefore = config.tls.acme.renewBefore;
  const due = () =>
    opts.force ? 'a renewal was forced' : orderReason(readACMECertificate(dir), names, renewBefore);
  if (due() === undefined) return { kind: 'not-needed' };
  const lock = tryLock(join(dir, ACME_FILES.lock));
  if (!lock) return { kind: 'locked' };
  if (lock.tookOver) {
    const { pid, host, silentMs } = lock.tookOver;
    logger.warn(
      { holder: { pid, host }, silentMs: Math.round(silentMs) },
      `ACME: took over the order lock from ${host ?? '?'} pid ${pid ?? '?'}, silent for ${Math.round(silentMs / 1000)} s (it crashed or hung mid-order)`,
    );
  }
  const answers = challengeAnswers(config, dir, logger);
  try {
    // Under the lock: the replica that held it before may have just stored a fresh one.
    const reason = due();
    if (reason === undefined) return { kind: 'not-needed' };
    logger.info(
      { names, directory: directoryURL(config.tls.acme.directory), reason },
      `ACME: ordering a certificate (${reason})`,
    );
    const { chainPEM, keyPEM } = await orderCertificate({ config, dir, logger, answers });
    writeACMECertificate(dir, chainPEM, keyPEM);
    const cert = readACMECertificate(dir);
    if (!cert) throw new Error('the certificate the CA sent does not match its key');
    writeState(dir, {
      directory: directoryURL(config.tls.acme.directory),
      lastSuccessAt: new Date().toISOString(),
      failures: 0,
    });
    return { kind: 'ordered', cert, reason };
  } catch (err) {
    const error =
      err instanceof OrderError
        ? err
        : new OrderError(String((err as Error)?.message ?? err), undefined, { cause: err });
    const previous = readState(dir);
    const failures = (previous.failures ?? 0) + 1;
    const retryAt = new Date(Date.now() + backoffMs(failures, error.problem));
    const fix = likelyFix(answers.used(), config);
    writeState(dir, {
      ...previous,
      lastError: `${error.message} (likely fix: ${fix})`,
      lastErrorAt: new Date().toISOString(),
      retryAt: retryAt.toISOString(),
      failures,
    });
    logger.error(
      {
        names,
        caSays: error.message,
        ...(error.problem?.type ? { caProblem: error.problem.type } : {}),
        likelyFix: fix,
        failures,
        retryAt: retryAt.toISOString(),
      },
      `ACME order failed: ${error.message}; likely fix: ${fix}; still serving the current certificate, retrying at ${retryAt.toISOString()}`,
    );
    return { kind: 'failed', error, retryAt };
  } finally {
    lock.release();
  }
}
