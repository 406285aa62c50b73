/**
 * `allowedPaths`: only requests under these path prefixes reach the registry.
 * Paths a registry client never sends — percent-encoding, backslashes, empty or
 * dot segments, `;` parameters, fragments — are refused outright instead of being
 * normalised: the backend (Go's path cleaning, a Java server's `..;`) could
 * resolve them differently from us and step outside the list.
 */

export type PathVerdict = 'allowed' | 'unsafe' | 'outside';

/** Characters and sequences no registry path contains (names, tags and digests are plain). */
const UNSAFE = ['%', '\\', ';', '#', '//'];
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;

/**
 * Whether a path could mean something else to another parser.
 *
 * @example isAmbiguousPath('/v2/%2e%2e/admin') // → true
 */
export function isAmbiguousPath(path: string): boolean {
  for (const s of UNSAFE) if (path.includes(s)) return true;
  return path.includes('/.') && DOT_SEGMENT.test(path);
}

/** The config check for allowedPaths entries. */
export function checkAllowedPaths(prefixes: readonly string[]): string | undefined {
  const bad = prefixes.filter((p) => !p.startsWith('/') || isAmbiguousPath(p));
  if (bad.length === 0) return undefined;
  return (
    `${bad.map((b) => JSON.stringify(b)).join(', ')} ${bad.length === 1 ? 'is' : 'are'} not a plain path prefix; ` +
    "write prefixes like /v2/ or /v2/library/ (starting with '/', no '%', '\\', ';', '//' or dot segments)"
  );
}

/**
 * The per-request check, built once. A prefix matches at segment boundaries:
 * /v2/library allows /v2/library and /v2/library/x, not /v2/library-x.
 * Undefined when the list is empty (everything allowed).
 */
export function pathAllowlist(
  prefixes: readonly string[],
): ((path: string) => PathVerdict) | undefined {
  if (prefixes.length === 0) return undefined;
  const exact = prefixes.map((p) => (p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p));
  const under = exact.map((p) => (p === '/' ? '/' : `${p}/`));
  return (path) => {
    if (isAmbiguousPath(path)) return 'unsafe';
    for (let i = 0; i < under.length; i++) {
      if (path === exact[i] || path.startsWith(under[i] as string)) return 'allowed';
    }
    return 'outside';
  };
}
