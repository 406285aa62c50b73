/**
 * One verdict for several registry replicas (config `backend` as a list). Each replica
 * is probed on its own (monitor.ts); the proxy is ready while at least one of them is
 * healthy, and /readyz and `check` show each one.
 */
import type { Verdict, VerdictStatus } from './probe.js';

export interface ReplicaVerdict {
  /** The replica's URL as configured. */
  backend: string;
  verdict: Verdict;
}

/**
 * The proxy's verdict: one replica's own, or for several, healthy while any is healthy
 * (else open if any is open, else down), with every replica listed in `replicas`.
 */
export function combineVerdicts(replicas: readonly ReplicaVerdict[]): Verdict {
  const only = replicas[0];
  if (replicas.length === 1 && only) return only.verdict;
  const healthy = replicas.filter((r) => r.verdict.healthy);
  const out = replicas.filter((r) => !r.verdict.healthy);
  const status: VerdictStatus =
    healthy.length > 0 ? 'healthy' : out.some((r) => r.verdict.status === 'open') ? 'open' : 'down';
  const summary =
    out.length === 0
      ? `healthy: all ${replicas.length} replicas`
      : `${healthy.length > 0 ? 'healthy' : 'no replica healthy'}: ${healthy.length} of ${replicas.length} replicas in rotation; out: ${out.map((r) => r.verdict.reason).join(' | ')}`;
  const times = replicas.map((r) => r.verdict.checkedAt.getTime());
  return {
    status,
    healthy: healthy.length > 0,
    reason: summary,
    checkedAt: new Date(Math.min(...times)),
    durationMs: Math.max(...replicas.map((r) => r.verdict.durationMs)),
    replicas: replicas.map((r) => ({ backend: r.backend, verdict: r.verdict })),
  };
}
