/**
 * CA rotation without breaking clients, in two steps an operator runs:
 *
 *   ca rotate   creates the next CA (ca-next.*). Proxies serve both CAs at /ca.crt
 *               and clients re-run `trust`; docker and containers read every *.crt of
 *               their certs.d directory, so a bundle of two is trusted as two CAs.
 *   ca switch   makes the next CA the active one. The old one becomes ca-previous.*
 *               (client certificates it signed stay accepted); proxies notice the new
 *               CA at their next check and re-issue their server certificate from it.
 *
 * `ca rotate --cancel` drops a pending next CA; `ca switch --back` undoes a switch.
 * Every step renames files under the directory lock, so replicas never see a CA
 * without its key for longer than they wait for that lock.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { RTPError } from '../errors.js';
import type { KeyType } from './issue.js';
import { FILES, readCASet, withLock, writeNewCA } from './store.js';

export interface CASummary {
  fingerprint256: string;
  notAfter: Date;
}

function summary(cert: X509Certificate): CASummary {
  return { fingerprint256: cert.fingerprint256, notAfter: new Date(cert.validTo) };
}

/** Creates ca-next.crt/.key; refuses when a rotation is already pending. */
export async function startRotation(opts: {
  dir: string;
  caLifetimeMs: number;
  keyType?: KeyType;
  now?: Date;
}): Promise<{ active: CASummary; next: CASummary }> {
  return withLock(opts.dir, async () => {
    const { active } = await readCASetUnlocked(opts.dir);
    if (existsSync(join(opts.dir, FILES.nextCACert))) {
      const pending = (await readCASetUnlocked(opts.dir)).next;
      throw new RTPError(
        'ROTATION_PENDING',
        `a CA rotation is already in progress (next CA ${pending?.cert.fingerprint256 ?? FILES.nextCACert}); finish it with "ca switch" or drop it with "ca rotate --cancel"`,
      );
    }
    const next = await writeNewCA(opts.dir, FILES.nextCACert, FILES.nextCAKey, opts);
    return { active: summary(active.cert), next: summary(next) };
  });
}

/** Removes a pending next CA (before `ca switch`). */
export async function cancelRotation(dir: string): Promise<CASummary> {
  return withLock(dir, async () => {
    const { next } = await readCASetUnlocked(dir);
    if (!next) throw noRotation();
    removeIfPresent(join(dir, FILES.nextCACert));
    removeIfPresent(join(dir, FILES.nextCAKey));
    return summary(next.cert);
  });
}

/**
 * `forward`: next → active, active → previous. `back` (undo): previous → active,
 * active → next, so that clients keep trusting both while the operator sorts things out.
 */
export async function switchCA(
  dir: string,
  direction: 'forward' | 'back' = 'forward',
): Promise<{ active: CASummary; retired: CASummary }> {
  return withLock(dir, async () => {
    const set = await readCASetUnlocked(dir);
    const [incoming, outgoing] =
      direction === 'forward'
        ? [
            { cert: FILES.nextCACert, key: FILES.nextCAKey, ca: set.next },
            { cert: FILES.previousCACert, key: FILES.previousCAKey },
          ]
        : [
            { cert: FILES.previousCACert, key: FILES.previousCAKey, ca: set.previous },
            { cert: FILES.nextCACert, key: FILES.nextCAKey },
          ];
    if (!incoming.ca) {
      throw direction === 'forward'
        ? noRotation()
        : new RTPError(
            'NO_PREVIOUS_CA',
            `there is no ${FILES.previousCACert} to switch back to; "ca switch --back" undoes a "ca switch"`,
          );
    }
    if (direction === 'back' && set.next) {
      throw new RTPError(
        'ROTATION_PENDING',
        `a next CA is pending; drop it with "ca rotate --cancel" before switching back`,
      );
    }
    if (!existsSync(join(dir, incoming.key))) {
      throw new RTPError(
        'CA_KEY_MISSING',
        `${join(dir, incoming.key)} is missing: the CA in ${incoming.cert} cannot sign without it; restore it from backup`,
      );
    }
    // Active out first, then the incoming pair in, key before certificate: a reader that
    // sees ca.crt also finds its key, or waits on the lock (store.ts readCASet).
    renameSync(join(dir, FILES.caCert), join(dir, outgoing.cert));
    renameSync(join(dir, FILES.caKey), join(dir, outgoing.key));
    renameSync(join(dir, incoming.key), join(dir, FILES.caKey));
    renameSync(join(dir, incoming.cert), join(dir, FILES.caCert));
    return { active: summary(incoming.ca.cert), retired: summary(set.active.cert) };
  });
}

/** readCASet for callers already holding the lock (readCASet would wait for it). */
function readCASetUnlocked(dir: string) {
  return readCASet(dir, { holdingLock: true });
}

function noRotation(): RTPError {
  return new RTPError(
    'NO_ROTATION',
    `no CA rotation is in progress (no ${FILES.nextCACert}); start one with "ca rotate"`,
  );
}

function removeIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
