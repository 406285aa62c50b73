import { describe, expect, it } from 'vitest';
import type { Verdict } from './probe.js';
import { combineVerdicts } from './replicas.js';
import { publicVerdictBody, verdictBody } from './report.js';

const at = new Date('2026-12-03T08:00:00Z');
const v = (status: Verdict['status'], reason: string, httpStatus?: number): Verdict => ({
  status,
  healthy: status === 'healthy',
  reason,
  checkedAt: at,
  durationMs: 3,
  ...(httpStatus !== undefined ? { httpStatus } : {}),
});
const A = 'http://10.0.0.11:5000';
const B = 'http://10.0.0.12:5000';

describe('combineVerdicts', () => {
  it('is the verdict itself for one backend', () => {
    const only = v('healthy', `healthy: ${A}/v2/ requires authentication`, 401);
    expect(combineVerdicts([{ backend: A, verdict: only }])).toBe(only);
  });

  it('is healthy while one replica is, and says which is out and why', () => {
    const combined = combineVerdicts([
      { backend: A, verdict: v('down', `backend down: ${A}/v2/: connection refused`) },
      { backend: B, verdict: v('healthy', `healthy: ${B}/v2/ requires authentication`, 401) },
    ]);
    expect(combined.healthy).toBe(true);
    expect(combined.status).toBe('healthy');
    expect(combined.reason).toBe(
      `healthy: 1 of 2 replicas in rotation; out: backend down: ${A}/v2/: connection refused`,
    );
    expect(combined.replicas?.map((r) => r.backend)).toEqual([A, B]);
  });

  it('is open when none is healthy and one is open, down when all are down', () => {
    const open = combineVerdicts([
      { backend: A, verdict: v('down', 'backend down: x') },
      { backend: B, verdict: v('open', 'backend is open to anonymous pulls', 200) },
    ]);
    expect(open).toMatchObject({ status: 'open', healthy: false });
    expect(open.reason).toMatch(/^no replica healthy: 0 of 2 replicas in rotation/);
    const down = combineVerdicts([
      { backend: A, verdict: v('down', 'backend down: x') },
      { backend: B, verdict: v('down', 'backend down: y') },
    ]);
    expect(down).toMatchObject({ status: 'down', healthy: false });
  });
});

describe('reporting replicas', () => {
  const combined = combineVerdicts([
    { backend: A, verdict: v('down', `backend down: ${A}/v2/: connection refused`) },
    { backend: B, verdict: v('healthy', `healthy: ${B}/v2/ requires authentication`, 401) },
  ]);

  it('/readyz lists each replica with its address', () => {
    expect(verdictBody(combined)['replicas']).toEqual([
      {
        backend: A,
        verdict: 'down',
        reason: `backend down: ${A}/v2/: connection refused`,
        checkedAt: at.toISOString(),
      },
      {
        backend: B,
        verdict: 'healthy',
        reason: `healthy: ${B}/v2/ requires authentication`,
        checkedAt: at.toISOString(),
        backendStatus: 401,
      },
    ]);
  });

  it('the public health path lists them by number, with no address anywhere', () => {
    const body = publicVerdictBody(combined, [A, B]);
    expect(JSON.stringify(body)).not.toMatch(/10\.0\.0\.1[12]/);
    expect(body['reason']).toBe(
      'healthy: 1 of 2 replicas in rotation; out: backend down: /v2/: connection refused',
    );
    expect(body['replicas']).toEqual([
      expect.objectContaining({ replica: 1, verdict: 'down' }),
      expect.objectContaining({ replica: 2, verdict: 'healthy', backendStatus: 401 }),
    ]);
  });
});
