/** The verdict as JSON: all of it on /readyz (admin), without the backend's address on the public health path. */
import { isIP } from 'node:net';
import { unbracketHost } from '../net/address.js';
import type { Verdict } from './probe.js';

export function verdictBody(v: Verdict): Record<string, unknown> {
  return {
    status: v.draining ? 'draining' : v.healthy ? 'ok' : 'unavailable',
    verdict: v.status,
    reason: v.reason,
    checkedAt: v.checkedAt.toISOString(),
    ...(v.httpStatus !== undefined ? { backendStatus: v.httpStatus } : {}),
    ...(v.replicas
      ? {
          replicas: v.replicas.map((r) => ({
            backend: r.backend,
            verdict: r.verdict.status,
            reason: r.verdict.reason,
            checkedAt: r.verdict.checkedAt.toISOString(),
            ...(r.verdict.httpStatus !== undefined ? { backendStatus: r.verdict.httpStatus } : {}),
          })),
        }
      : {}),
  };
}

/**
 * The verdict for anyone who reaches the public port: the same, but no reason says where
 * a backend is (the admin listener's /readyz does). A URL becomes nothing ("/v2/
 * answered 200 …"), a host:port or address "the backend"; replicas go by number.
 *
 * @example publicVerdictBody(v, ['http://10.0.0.20:5000']).reason
 * // 'backend down: http://10.0.0.20:5000/v2/: connection refused' → 'backend down: /v2/: connection refused'
 */
export function publicVerdictBody(
  v: Verdict,
  backends: readonly string[],
): Record<string, unknown> {
  const hide = (text: string) => backends.reduce(withoutAddress, text);
  const { replicas, ...rest } = verdictBody(v) as { replicas?: Array<Record<string, unknown>> };
  return {
    ...rest,
    reason: hide(v.reason),
    ...(replicas
      ? {
          replicas: replicas.map(({ backend: _backend, ...r }, i) => ({
            replica: i + 1,
            ...r,
            reason: hide(String(r['reason'])),
          })),
        }
      : {}),
  };
}

function withoutAddress(text: string, backend: string): string {
  const url = new URL(backend);
  const host = unbracketHost(url.hostname);
  let out = text.replaceAll(url.origin, '').replaceAll(url.host, 'the backend');
  // A bare name ("registry") could be any word; addresses and dotted names are not.
  if (isIP(host) || host.includes('.')) out = out.replaceAll(host, 'the backend');
  return out;
}

/** What readiness says while the process drains (SIGTERM): 503, whatever the backend's state. */
export function drainingVerdict(v: Verdict): Verdict {
  return {
    ...v,
    healthy: false,
    draining: true,
    reason: 'draining: this proxy is shutting down or reloading; send new requests elsewhere',
  };
}
