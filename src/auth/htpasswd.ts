/**
 * Logins against the htpasswd file (auth.htpasswd): the file re-read when it
 * changes, Basic credentials checked with bcrypt, successful checks remembered.
 *
 * Docker sends its Basic credentials on every request, and one bcrypt check costs
 * tens of milliseconds at cost 10 (pure JS, bcryptjs): a 50-layer pull would spend
 * seconds of CPU proving the same password 50 times. So a success is remembered
 * for CACHE_TTL_MS under the SHA-256 of the Authorization header (never the
 * password itself), and concurrent requests with the same header share one check.
 * A change of the file forgets every remembered login.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as BcryptJS from 'bcryptjs';
import type { Logger } from '../log.js';
import { watchFiles, type FileWatch } from '../tls/file-watch.js';
import { describeProblems, readHtpasswd, type Users } from './htpasswd-file.js';

/** How long a successful check is remembered: short, so a removed user is out within minutes even without a file event. */
export const CACHE_TTL_MS = 5 * 60_000;
/** Remembered logins at most (a client sending many distinct passwords only empties the cache). */
const CACHE_MAX = 10_000;
/** The file is also compared every so often: inotify misses network filesystems. */
const POLL_MS = 5_000;
/**
 * Checked against for a user the file does not list, so that an unknown name costs as
 * long as a wrong password (no telling which names exist from the timing).
 */
const DUMMY_HASH = '$2b$10$rUEVOUViqqMR8n0w6YE6veH61.3X.H0YiqvCVVz41u.BmGWzmh7M6';

export type CheckResult = { ok: true; user: string } | { ok: false; user: string | undefined };

export interface HtpasswdLogins {
  /** The user a remembered login belongs to, without a bcrypt check; undefined when none is. */
  remembered(authorization: string): string | undefined;
  /** Checks Basic credentials (one bcrypt check, shared by concurrent identical requests). */
  check(authorization: string): Promise<CheckResult>;
  close(): void;
}

export interface HtpasswdOptions {
  file: string;
  logger: Logger;
  /** Each bcrypt check, by result: what the cache saves shows here. */
  onPasswordCheck: (result: 'ok' | 'failed') => void;
  now?: () => number;
}

/** Loads `file` (it was validated with the configuration) and watches it. */
export function htpasswdLogins(opts: HtpasswdOptions): HtpasswdLogins {
  const { file, logger } = opts;
  const now = opts.now ?? Date.now;
  const first = readHtpasswd(file);
  if (!('users' in first)) {
    throw new Error(`auth.htpasswd: ${describeProblems(file, first.problems).join('; ')}`);
  }
  // Loaded only with auth.htpasswd set: a proxy without logins does not parse its 40 KB at start.
  const bcrypt = createRequire(import.meta.url)('bcryptjs') as typeof BcryptJS;
  let users: Users = first.users;
  let text = first.text;
  /** Bumped on every change of the file: checks begun before it are not remembered. */
  let version = 0;
  const cache = new Map<string, { user: string; expires: number }>();
  const pending = new Map<string, Promise<CheckResult>>();

  const reload = () => {
    const next = readHtpasswd(file);
    if (next.text !== undefined && next.text === text) return;
    if (!('users' in next)) {
      logger.error(
        { file, problems: describeProblems(file, next.problems) },
        'auth.htpasswd changed but cannot be used; the previous users can still log in (fix the file: it is read again when it changes)',
      );
      return;
    }
    users = next.users;
    text = next.text;
    version++;
    cache.clear();
    pending.clear();
    logger.info({ file, users: users.size }, 'auth.htpasswd re-read: remembered logins forgotten');
  };
  const watch: FileWatch = watchFiles([file], reload, 200);
  const poll = setInterval(reload, POLL_MS);
  poll.unref();

  const verify = async (key: string, authorization: string): Promise<CheckResult> => {
    const credentials = basicCredentials(authorization);
    if (!credentials || credentials.user === '') return { ok: false, user: undefined };
    const started = version;
    const hash = users.get(credentials.user);
    const matches = await bcrypt.compare(credentials.password, hash ?? DUMMY_HASH);
    const ok = matches && hash !== undefined;
    opts.onPasswordCheck(ok ? 'ok' : 'failed');
    if (ok && started === version) {
      if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
      cache.set(key, { user: credentials.user, expires: now() + CACHE_TTL_MS });
    }
    return ok ? { ok: true, user: credentials.user } : { ok: false, user: credentials.user };
  };

  return {
    remembered(authorization) {
      const key = cacheKey(authorization);
      const hit = cache.get(key);
      if (!hit) return undefined;
      if (hit.expires > now()) return hit.user;
      cache.delete(key);
      return undefined;
    },
    check(authorization) {
      const key = cacheKey(authorization);
      let check = pending.get(key);
      if (!check) {
        check = verify(key, authorization).finally(() => {
          if (pending.get(key) === check) pending.delete(key);
        });
        pending.set(key, check);
      }
      return check;
    },
    close() {
      watch.close();
      clearInterval(poll);
      cache.clear();
    },
  };
}

function cacheKey(authorization: string): string {
  return createHash('sha256').update(authorization).digest('base64');
}

/** `Basic base64(user:password)` → its parts (the user may be empty); undefined for anything else. */
export function basicCredentials(
  authorization: string,
): { user: string; password: string } | undefined {
  const match = /^\s*Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
