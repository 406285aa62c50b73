/**
 * The order lock of replicas sharing tls.dir: one of them orders, the others wait for
 * its result. The holder refreshes the file's time while it works, so that a lock
 * left by a crashed replica is seen as stale within seconds and taken over (the
 * pattern of certmagic's file storage). Whoever takes the lock must check again
 * whether the work is still needed: another replica may just have finished it.
 */
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';

/** A lock not refreshed for this long belongs to a replica that is gone. */
export const LOCK_STALE_MS = 10_000;
const REFRESH_MS = 2_000;

export interface HeldLock {
  release(): void;
}

/** Takes the lock at `path`, or undefined when a live replica holds it. Never waits. */
export function tryLock(path: string, staleMs = LOCK_STALE_MS): HeldLock | undefined {
  const token = randomUUID();
  if (!create(path, token)) {
    if (!isStale(path, staleMs)) return undefined;
    // Renamed away, not deleted: of two replicas that both saw it stale, one rename wins.
    try {
      renameSync(path, `${path}.stale-${token}`);
      unlinkSync(`${path}.stale-${token}`);
    } catch {
      return undefined;
    }
    if (!create(path, token)) return undefined;
  }
  const timer = setInterval(() => {
    const now = new Date();
    try {
      utimesSync(path, now, now);
    } catch {
      // gone: taken over after a stall longer than staleMs; release() notices
    }
  }, REFRESH_MS);
  timer.unref();
  return {
    release() {
      clearInterval(timer);
      try {
        // Only our own: after a takeover the file is another replica's.
        if (JSON.parse(readFileSync(path, 'utf8')).token === token) unlinkSync(path);
      } catch {
        // already gone
      }
    },
  };
}

function create(path: string, token: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  const created = new Date().toISOString();
  writeSync(fd, JSON.stringify({ token, pid: process.pid, host: hostname(), created }) + '\n');
  closeSync(fd);
  return true;
}

function isStale(path: string, staleMs: number): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs > staleMs;
  } catch {
    return true; // released meanwhile: try again
  }
}
