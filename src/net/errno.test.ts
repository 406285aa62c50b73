import { describe, expect, it } from 'vitest';
import { backendTimeout, connectionFailure, knownKind } from './errno.js';

describe('connectionFailure', () => {
  it.each<[string | undefined, string, number, string]>([
    ['ECONNREFUSED', 'refused', 502, 'connection refused'],
    ['ECONNRESET', 'reset', 502, 'connection reset by the backend'],
    ['RTP_BACKEND_TIMEOUT', 'timeout', 504, 'backend timeout'],
    ['ENOTFOUND', 'other', 502, 'backend name does not resolve'],
    ['EAI_AGAIN', 'other', 502, 'backend name does not resolve'],
    ['EHOSTUNREACH', 'other', 502, 'backend unreachable'],
    ['ENETUNREACH', 'other', 502, 'backend unreachable'],
    ['EPIPE', 'other', 502, 'backend connection failed'],
    [undefined, 'other', 502, 'backend connection failed'],
  ])('%s → label %s, %i, %j', (code, label, status, reason) => {
    const failure = connectionFailure(code === undefined ? {} : { code });
    expect({ label: failure.label, status: failure.status, reason: failure.reason }).toEqual({
      label,
      status,
      reason,
    });
  });

  it('knows a code or says it does not', () => {
    expect(knownKind({ code: 'ECONNREFUSED' })).toBe('refused');
    expect(knownKind({ code: 'EPIPE' })).toBeUndefined();
  });

  it('names the idle limit in a timeout', () => {
    const err = backendTimeout(1500);
    expect(err.message).toBe('backend sent nothing for 1500 ms');
    expect(connectionFailure(err).kind).toBe('timeout');
  });
});
