import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createReplicas } from './replicas.js';

const backends = ['http://127.0.0.1:5001', 'http://127.0.0.1:5002', 'http://127.0.0.1:5003'];
const settings = { backends, keepAliveMs: 4000, logger: pino({ level: 'silent' }) };

describe('createReplicas: pick', () => {
  it('takes the healthy replica with the fewest requests outstanding, equals in turn', () => {
    let healthy = [true, true, true];
    const replicas = createReplicas({ ...settings, healthy: () => healthy });
    const [a, b, c] = replicas.all;
    // All idle: one request after another still goes round.
    expect([replicas.pick(), replicas.pick(), replicas.pick(), replicas.pick()]).toEqual([
      a,
      b,
      c,
      a,
    ]);
    a!.outstanding = 2;
    b!.outstanding = 1;
    expect(replicas.pick()).toBe(c);
    expect(replicas.pick()).toBe(c);
    c!.outstanding = 1;
    expect(new Set([replicas.pick(), replicas.pick(), replicas.pick()])).toEqual(new Set([b, c]));
    healthy = [true, false, false];
    expect(replicas.pick()).toBe(a); // busier, but the only one in rotation
    replicas.destroy();
  });

  it('for a retry, takes another healthy replica; the same one only when no other is healthy', () => {
    let healthy = [true, true, false];
    const replicas = createReplicas({ ...settings, healthy: () => healthy });
    const [a, b] = replicas.all;
    expect(replicas.pick(a)).toBe(b);
    healthy = [true, false, false];
    expect(replicas.pick(a)).toBe(a);
    replicas.destroy();
  });

  it('sends to any replica when none is healthy, so the registry answers for itself', () => {
    const replicas = createReplicas({ ...settings, healthy: () => [false, false, false] });
    replicas.all[0]!.outstanding = 1;
    replicas.all[2]!.outstanding = 1;
    expect(replicas.pick()).toBe(replicas.all[1]);
    replicas.destroy();
  });
});
