/**
 * The htpasswd file (auth.htpasswd) as the distribution registry reads it: one
 * `user:hash` per line, bcrypt hashes only (`htpasswd -B`; registry/auth/htpasswd).
 * Any other kind of hash — Apache's MD5 ($apr1$), {SHA}, crypt(3), plain text — is a
 * problem at start-up, with its line and how to re-hash it: accepting them would
 * mean storing passwords a stolen file gives away in seconds.
 */
import { readFileSync } from 'node:fs';

/** The users of one version of the file: name → bcrypt hash. */
export type Users = ReadonlyMap<string, string>;

export interface HtpasswdProblem {
  /** 1-based; 0 when the problem is the whole file (missing, unreadable, empty). */
  line: number;
  message: string;
}

export type ParsedHtpasswd = { users: Users; problems: [] } | { problems: HtpasswdProblem[] };

/** `$2a$`, `$2b$`, `$2y$` (Apache's htpasswd writes 2y), cost two digits, 53 characters of salt+hash. */
const BCRYPT = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;

/** What a hash that is not bcrypt is, so the message can name it. */
function hashKind(hash: string): string {
  if (hash.startsWith('$apr1$')) return "an Apache MD5 ($apr1$) hash (htpasswd's default, -m)";
  if (hash.startsWith('{SHA}')) return 'a SHA-1 ({SHA}) hash (htpasswd -s)';
  if (/^\$[156]\$/.test(hash)) return `a crypt(3) ${hash.slice(0, 3)} hash`;
  if (/^\$2[aby]\$/.test(hash)) return 'a malformed bcrypt hash';
  if (/^[./A-Za-z0-9]{13}$/.test(hash)) return 'a DES crypt hash (htpasswd -d), or plain text';
  return 'no hash at all (plain text, htpasswd -p)';
}

/**
 * Parses one version of the file. Blank lines and `#` comments are skipped.
 *
 * @example parseHtpasswd('alice:$2y$05$…\n') // → { users: Map { 'alice' => '$2y$05$…' }, problems: [] }
 */
export function parseHtpasswd(text: string): ParsedHtpasswd {
  const users = new Map<string, string>();
  const problems: HtpasswdProblem[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const entry = raw.trim();
    if (entry === '' || entry.startsWith('#')) return;
    const colon = entry.indexOf(':');
    if (colon <= 0) {
      problems.push({ line, message: 'is not user:hash; write lines with htpasswd -B' });
      return;
    }
    const user = entry.slice(0, colon);
    const hash = entry.slice(colon + 1);
    const first = seen.get(user);
    if (first !== undefined) {
      problems.push({
        line,
        message: `user ${JSON.stringify(user)} is listed again (first on line ${first}); keep one line per user`,
      });
      return;
    }
    seen.set(user, line);
    if (!BCRYPT.test(hash)) {
      problems.push({
        line,
        message: `user ${JSON.stringify(user)} has ${hashKind(hash)}; only bcrypt is accepted, as by the registry: re-hash it with htpasswd -B FILE ${user}`,
      });
      return;
    }
    users.set(user, hash);
  });
  if (problems.length > 0) return { problems };
  if (users.size === 0) {
    return {
      problems: [{ line: 0, message: 'has no users; add one with htpasswd -B FILE USER' }],
    };
  }
  return { users, problems: [] };
}

/** Reads and parses `file`; a missing or unreadable file is a problem too. */
export function readHtpasswd(file: string): ParsedHtpasswd & { text?: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message =
      code === 'ENOENT'
        ? 'file not found; create it with htpasswd -cB FILE USER'
        : code === 'EACCES'
          ? 'cannot read it (permission denied): let the user the proxy runs as read it'
          : `cannot read it (${code ?? String(err)})`;
    return { problems: [{ line: 0, message }] };
  }
  return { ...parseHtpasswd(text), text };
}

/** `FILE:LINE: message` lines, for start-up errors and reload log lines. */
export function describeProblems(file: string, problems: readonly HtpasswdProblem[]): string[] {
  return problems.map((p) => `${p.line > 0 ? `${file}:${p.line}` : file}: ${p.message}`);
}
