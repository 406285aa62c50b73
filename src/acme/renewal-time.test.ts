import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { backoffMs, orderReason, renewalTime } from './renewal-time.js';
import type { ACMECertificate } from './store.js';

const DAY = 86_400_000;
const cert = (names: string[], from: number, days: number): ACMECertificate => ({
  chainPEM: '',
  keyPEM: '',
  leaf: undefined as unknown as X509Certificate,
  names,
  notBefore: new Date(from),
  notAfter: new Date(from + days * DAY),
});

describe('ACME renewal time', () => {
  const c = cert(['a.example'], 0, 90);
  it.each([
    [0, 60 * DAY],
    [30 * DAY, 60 * DAY],
    [7 * DAY, 83 * DAY],
    // Not shorter than the 90-day lifetime: a third left, not at once (an order loop).
    [90 * DAY, 60 * DAY],
    [398 * DAY, 60 * DAY],
  ])('renewBefore %i renews at %i', (before, at) => {
    expect(renewalTime(c, before).getTime()).toBe(at);
  });

  it.each<[ACMECertificate | undefined, number, string | undefined]>([
    [undefined, 0, 'no ACME certificate yet'],
    [c, 10 * DAY, undefined],
    [c, 61 * DAY, 'it is due for renewal'],
    [cert(['b.example'], 0, 90), 10 * DAY, 'it does not cover a.example'],
  ])('order reason %#', (stored, now, reason) => {
    expect(orderReason(stored, ['a.example'], 0, new Date(now))).toBe(reason);
  });

  it.each([
    [1, undefined, 2_000],
    [3, undefined, 8_000],
    [30, undefined, 6 * 3_600_000],
    [1, { retryAfterMs: 120_000 }, 120_000],
    [1, { type: 'urn:ietf:params:acme:error:rateLimited' }, 3_600_000],
    [1, { type: 'urn:ietf:params:acme:error:rateLimited', retryAfterMs: 5_000 }, 5_000],
  ])('after %i failures (%o) waits %i ms', (failures, problem, ms) => {
    expect(backoffMs(failures, problem)).toBe(ms);
  });
});
