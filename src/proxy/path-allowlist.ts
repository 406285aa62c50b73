/**
 * `allowedPaths`: only requests under these path prefixes reach the registry.
 * Ambiguous paths (net/ambiguous-path.ts) are refused outright instead of being
 * normalised: the backend could resolve them differently from us and step outside
 * the list.
 */
import { isAmbiguousPath } from '../net/ambiguous-path.js';

export type PathVerdict = 'allowed' | 'unsafe' | 'outside';

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
