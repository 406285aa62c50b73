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

/** Who held a lock, as its file says. */
export interface LockHolder {
  pid?: number;
  host?: string;
  created?: string;
}

export interface HeldLock {
  /** The replica whose stale lock this one replaced, and how long it had been silent. */
  tookOver?: LockHolder & { silentMs: number };
  release(): void;
}

/** Takes the lock at `path`, or undefined when a live replica holds it. Never waits. */
export function tryLock(path: string, staleMs = LOCK_STALE_MS): HeldLock | undefined {
  const token = randomUUID();
  let tookOver: HeldLock['tookOver'];
  if (!create(path, token)) {
    const silentMs = silentFor(path);
    if (silentMs <= staleMs) return undefined;
    // Renamed away, not deleted: of two replicas that both saw it stale, one rename wins.
    const away = `${path}.stale-${token}`;
    try {
      renameSync(path, away);
      tookOver = { ...readHolder(away), silentMs };
      unlinkSync(away);
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
    ...(tookOver ? { tookOver } : {}),
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

/** How long since the holder last refreshed the lock; Infinity when it is gone (released meanwhile: try again). */
function silentFor(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return Infinity;
  }
}

function readHolder(path: string): LockHolder {
  try {
    const { pid, host, created } = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
    return { ...(pid ? { pid } : {}), ...(host ? { host } : {}), ...(created ? { created } : {}) };
  } catch {
    return {}; // cut short by the crash that left it
  }
}
