import { describe, expect, it } from 'vitest';
import type { Verdict } from './probe.js';
import { publicVerdictBody, verdictBody } from './report.js';

const verdict = (reason: string): Verdict =>
  ({ status: 'down', healthy: false, reason, checkedAt: new Date(0) }) as Verdict;

describe('publicVerdictBody', () => {
  it.each([
    [
      'http://10.0.0.20:5000',
      'backend down: http://10.0.0.20:5000/v2/: connect EHOSTUNREACH 10.0.0.20:5000',
      'backend down: /v2/: connect EHOSTUNREACH the backend',
    ],
    [
      'http://[fd00::20]:5000',
      'backend down: http://[fd00::20]:5000/v2/: connect ECONNREFUSED fd00::20',
      'backend down: /v2/: connect ECONNREFUSED the backend',
    ],
    [
      'http://registry.internal:5000',
      'backend down: http://registry.internal:5000/v2/: getaddrinfo ENOTFOUND registry.internal',
      'backend down: /v2/: getaddrinfo ENOTFOUND the backend',
    ],
    [
      'http://registry:5000',
      'backend down: http://registry:5000/v2/: connection refused (is the registry running?)',
      'backend down: /v2/: connection refused (is the registry running?)',
    ],
  ])('%s: keeps the reason, not the address', (backend, reason, shown) => {
    expect(publicVerdictBody(verdict(reason), [backend])).toEqual({
      ...verdictBody(verdict(reason)),
      reason: shown,
    });
  });
});
