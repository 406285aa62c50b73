import { mkdtempSync, rmSync, existsSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tryLock } from './lock.js';

const dir = mkdtempSync(join(tmpdir(), 'rtp-acme-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the ACME order lock', () => {
  it('is held by one at a time, and free again once released', () => {
    const path = join(dir, 'a.lock');
    const first = tryLock(path);
    expect(first).toBeDefined();
    expect(tryLock(path)).toBeUndefined();
    first?.release();
    expect(existsSync(path)).toBe(false);
    const again = tryLock(path);
    expect(again).toBeDefined();
    again?.release();
  });

  it('is taken over when its holder stopped refreshing it; the old holder then leaves it alone', () => {
    const path = join(dir, 'b.lock');
    const crashed = tryLock(path);
    const old = new Date(Date.now() - 60_000);
    utimesSync(path, old, old);
    const next = tryLock(path, 10_000);
    expect(next).toBeDefined();
    expect(next?.tookOver).toMatchObject({ pid: process.pid });
    expect(next?.tookOver?.silentMs).toBeGreaterThanOrEqual(60_000);
    expect(crashed?.tookOver).toBeUndefined();
    crashed?.release(); // must not delete the new holder's lock
    expect(existsSync(path)).toBe(true);
    expect(tryLock(path)).toBeUndefined();
    next?.release();
  });
});
