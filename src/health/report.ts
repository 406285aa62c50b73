/** The verdict as JSON, the same on /readyz and on the public health path. */
import type { Verdict } from './probe.js';

export function verdictBody(v: Verdict): Record<string, unknown> {
  return {
    status: v.healthy ? 'ok' : 'unavailable',
    verdict: v.status,
    reason: v.reason,
    checkedAt: v.checkedAt.toISOString(),
    ...(v.httpStatus !== undefined ? { backendStatus: v.httpStatus } : {}),
  };
}
