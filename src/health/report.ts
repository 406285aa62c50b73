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
  };
}

/**
 * The verdict for anyone who reaches the public port: the same, but the reason does not
 * say where the backend is (the admin listener's /readyz does). Its URL becomes nothing
 * ("/v2/ answered 200 …"), its host:port or address "the backend".
 *
 * @example publicVerdictBody(v, 'http://10.0.0.20:5000').reason
 * // 'backend down: http://10.0.0.20:5000/v2/: connection refused' → 'backend down: /v2/: connection refused'
 */
export function publicVerdictBody(v: Verdict, backend: string): Record<string, unknown> {
  const url = new URL(backend);
  const host = unbracketHost(url.hostname);
  let reason = v.reason.replaceAll(url.origin, '').replaceAll(url.host, 'the backend');
  // A bare name ("registry") could be any word; addresses and dotted names are not.
  if (isIP(host) || host.includes('.')) reason = reason.replaceAll(host, 'the backend');
  return { ...verdictBody(v), reason };
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
