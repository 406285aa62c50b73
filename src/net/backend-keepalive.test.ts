import { describe, expect, it } from 'vitest';
import { keepAliveLimitMs } from './backend-keepalive.js';

describe('keepAliveLimitMs', () => {
  it.each([
    ['timeout=5', 4000], // Node's default answer
    ['timeout=5, max=100', 4000], // Apache
    ['max=100, timeout=75', 74_000],
    ['Timeout = 3', 2000],
    ['timeout=1', 0], // too short to reuse safely
    ['timeout=0', -1000],
    ['max=100', Infinity],
    ['', Infinity],
    [undefined, Infinity],
    [['timeout=10'], 9000],
  ])('%j allows %d ms', (hint, limit) => {
    expect(keepAliveLimitMs(hint)).toBe(limit);
  });
});
