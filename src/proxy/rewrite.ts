/**
 * Registry-aware rewriting of what the registry says about its own address.
 * The registry puts absolute URLs in `Location` (202 on upload start and PATCH,
 * 201 on completion, 307 to storage) and in `WWW-Authenticate: Bearer realm=…`.
 * When those point at the backend's own address, or at the public host over
 * plain http, clients get "blob upload unknown" or a 401 loop; we point them at
 * the public https origin the client used. Relative URLs and foreign hosts
 * (a storage redirect, a token server elsewhere) pass untouched.
 */

export interface RewriteContext {
  /** The backend, e.g. new URL('http://127.0.0.1:5000'). */
  backend: URL;
  /** The Host the client used, e.g. 'registry.lan:5443'. */
  publicHost: string;
  /** The public port, for a Host header that omits it. */
  publicPort: number;
}

/** Returns the rewritten URL, or the input when it is not ours to change. */
export function rewriteLocation(value: string, ctx: RewriteContext): string {
  let url: URL;
  try {
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value; // relative
    url = new URL(value);
  } catch {
    return value;
  }
  if (!pointsAtUs(url, ctx)) return value;
  // Keep the path, query and fragment exactly as the registry wrote them.
  const rest = value.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '');
  return `https://${ctx.publicHost}${rest}`;
}

/**
 * Rewrites the `realm` of a WWW-Authenticate challenge.
 *
 * @example rewriteAuthenticate('Bearer realm="http://127.0.0.1:5000/auth",service="r"', ctx)
 *   // → 'Bearer realm="https://registry.lan:5443/auth",service="r"'
 */
export function rewriteAuthenticate(value: string, ctx: RewriteContext): string {
  return value.replace(
    /(\brealm\s*=\s*)(?:"([^"]*)"|([^\s,]+))/gi,
    (whole, prefix: string, quoted: string | undefined, bare: string | undefined) => {
      const url = quoted ?? bare ?? '';
      const rewritten = rewriteLocation(url, ctx);
      if (rewritten === url) return whole;
      return `${prefix}"${rewritten}"`;
    },
  );
}

function pointsAtUs(url: URL, ctx: RewriteContext): boolean {
  if (url.protocol !== 'http:') return false;
  const port = url.port === '' ? 80 : Number(url.port);
  const host = url.hostname.toLowerCase();
  const backendPort = ctx.backend.port === '' ? 80 : Number(ctx.backend.port);
  const publicHostname = hostnameOf(ctx.publicHost);
  // The backend's own address, by its configured name or by the public name on its port.
  if (
    port === backendPort &&
    (host === ctx.backend.hostname.toLowerCase() || host === publicHostname)
  ) {
    return true;
  }
  // The public host over plain http: the scheme was lost on the way (no X-Forwarded-Proto).
  return host === publicHostname && (port === ctx.publicPort || port === 80);
}

/** 'registry.lan:5443' → 'registry.lan', '[::1]:5443' → '[::1]' (as URL.hostname spells it). */
export function hostnameOf(hostHeader: string): string {
  try {
    return new URL(`http://${hostHeader}/`).hostname.toLowerCase();
  } catch {
    return hostHeader.toLowerCase();
  }
}
