import { describe, expect, it } from 'vitest';
import { eventually } from './eventually.js';

describe('eventually', () => {
  it('returns the first answer that is not "not yet", retrying throws and false/null/undefined', async () => {
    const answers: unknown[] = [false, null, undefined, 'boom', 0];
    let calls = 0;
    const got = await eventually(
      'the fifth answer',
      () => {
        const next = answers[calls++];
        if (next === 'boom') throw new Error('not ready');
        return next as number | false | null | undefined;
      },
      { intervalMs: 1 },
    );
    expect(got).toBe(0);
    expect(calls).toBe(5);
  });

  it('throws on timeout, naming what it waited for and the last answer', async () => {
    const started = Date.now();
    await expect(
      eventually('the moon to turn blue', () => false, { timeoutMs: 100, intervalMs: 10 }),
    ).rejects.toThrow(
      'timed out after 100 ms waiting for the moon to turn blue; last answer: false',
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
  });

  it('throws on timeout with the last error, an expect() inside reporting its own message', async () => {
    const failure = eventually(
      'three sockets',
      () => {
        expect(2, 'sockets').toBe(3);
        return true;
      },
      { timeoutMs: 50, intervalMs: 10 },
    );
    await expect(failure).rejects.toThrow(
      /waiting for three sockets; last error: sockets: expected 2 to be 3/,
    );
    await expect(failure).rejects.toHaveProperty(
      'cause.message',
      'sockets: expected 2 to be 3 // Object.is equality',
    );
  });

  it('waits for async answers', async () => {
    let n = 0;
    const got = await eventually('n to reach 3', async () => ++n >= 3 && `n=${n}`, {
      intervalMs: 1,
    });
    expect(got).toBe('n=3');
  });
});
