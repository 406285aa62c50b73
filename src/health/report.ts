/** The verdict as JSON, the same on /readyz and on the public health path. */
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

/** What readiness says while the process drains (SIGTERM): 503, whatever the backend's state. */
export function drainingVerdict(v: Verdict): Verdict {
  return {
    ...v,
    healthy: false,
    draining: true,
    reason: 'draining: this proxy is shutting down or reloading; send new requests elsewhere',
  };
}
