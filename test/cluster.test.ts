/**
 * `workers: 2`: two processes behind one port, sharing the certificate and the
 * session-ticket keys, summed metrics on the primary's admin listener, a dead
 * worker replaced, and nothing left behind when the primary stops.
 */
import { connect, type TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { httpsGet } from './helpers/https.js';
import { childPids, isAlive, waitForOutput } from './helpers/processes.js';

/** A TLS connection, optionally resuming `session`; resolves with whether it resumed and the next session. */
function handshake(
  port: number,
  ca: string,
  session?: Buffer,
): Promise<{ reused: boolean; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    let next: Buffer | undefined;
    const socket: TLSSocket = connect(
      { host: '127.0.0.1', port, ca, ...(session ? { session } : {}) },
      () => {
        // TLS 1.3 tickets arrive after the handshake: give them a moment.
        setTimeout(() => {
          resolve({ reused: socket.isSessionReused(), session: next ?? session });
          socket.end();
        }, 100);
      },
    );
    socket.on('session', (s: Buffer) => (next = s));
    socket.on('error', reject);
  });
}

describe('a cluster of two workers', () => {
  const env = useRegistryBehindProxy(
    'cluster',
    { auth: { kind: 'htpasswd', user: 'cleo', password: 'cluster-pa55' } },
    { RTP_WORKERS: '2', RTP_HEALTH_INTERVAL: '1s', RTP_HEALTH_TIMEOUT: '500ms' },
  );

  it('serves the port from both workers with one certificate', async () => {
    await waitForOutput(env.proxy.child, env.proxy.output, /2 workers serve the public port/);
    expect(childPids(env.proxy.child.pid!)).toHaveLength(2);
    for (let i = 0; i < 8; i++) {
      expect((await httpsGet(`${env.proxy.origin}/v2/`, { ca: env.ca })).status).toBe(401);
    }
    const byWorker = new Set(
      env.proxy
        .logLines()
        .filter((l) => l['msg'] === 'request')
        .map((l) => l['worker']),
    );
    expect([...byWorker].sort()).toEqual([1, 2]);
  });

  it('resumes TLS sessions whichever worker a connection reaches (shared ticket keys)', async () => {
    let { session } = await handshake(env.proxy.port, env.ca);
    expect(session).toBeDefined();
    const reused: boolean[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await handshake(env.proxy.port, env.ca, session);
      reused.push(r.reused);
      session = r.session;
    }
    expect(reused.every(Boolean)).toBe(true);
  });

  it('sums the workers’ metrics on the primary’s admin listener; readiness from the primary', async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${env.proxy.adminPort}/metrics`)).text();
    // The eight pings of the first test, from both workers together.
    expect(metrics).toMatch(/^rtp_requests_total\{operation="ping",status_class="4xx"\} 8$/m);
    expect(metrics).toMatch(/^rtp_backend_up 1$/m);
    const ready = await fetch(`http://127.0.0.1:${env.proxy.adminPort}/readyz`);
    expect(ready.status).toBe(200);
  });

  it('replaces a worker that dies, and keeps serving meanwhile', async () => {
    const [victim] = childPids(env.proxy.child.pid!);
    process.kill(victim!, 'SIGKILL');
    await waitForOutput(env.proxy.child, env.proxy.output, /a worker exited unexpectedly/);
    for (let i = 0; i < 4; i++) {
      expect((await httpsGet(`${env.proxy.origin}/v2/`, { ca: env.ca })).status).toBe(401);
    }
    await eventually('a new worker in place of the killed one', () => {
      const pids = childPids(env.proxy.child.pid!);
      return pids.length === 2 && !pids.includes(victim!);
    });
  });

  it('stops every worker with the primary', async () => {
    const primary = env.proxy.child.pid!;
    const workers = childPids(primary);
    expect(await env.proxy.stop()).toBe(0);
    await eventually('every worker to exit', () => workers.every((pid) => !isAlive(pid)));
  });
});
