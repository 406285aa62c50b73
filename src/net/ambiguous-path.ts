/**
 * Paths a registry client never sends — percent-encoding, backslashes, empty or dot
 * segments, `;` parameters, fragments — which another parser (Go's path cleaning, a
 * Java server's `..;`) could resolve differently from us. The rule behind
 * `allowedPaths`: its entries may not contain them (config/), requests that do are
 * refused rather than normalised (proxy/).
 */

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
