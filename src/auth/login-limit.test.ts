import { describe, expect, it } from 'vitest';
import { loginLimit } from './login-limit.js';

describe('loginLimit', () => {
  it('allows a burst of failures, then blocks with a wait until a token refills', () => {
    let now = 0;
    const limit = loginLimit(3, 6_000, () => now);
    expect([limit.failed('a'), limit.failed('a')]).toEqual([false, false]);
    expect(limit.blockedFor('a')).toBeUndefined();
    expect(limit.failed('a')).toBe(true); // this one emptied the bucket
    expect(limit.blockedFor('a')).toBe(6);
    expect(limit.blockedFor('b')).toBeUndefined(); // per address
    now = 4_000;
    expect(limit.blockedFor('a')).toBe(2);
    now = 6_000;
    expect(limit.blockedFor('a')).toBeUndefined();
  });
});
