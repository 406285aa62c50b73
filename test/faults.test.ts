/**
 * What a client sees when the real registry behind the proxy fails: killed in the
 * middle of a pull or a push, restarted, or frozen (SIGSTOP) before it answers.
 * The registry is the real distribution registry; "killed" is SIGKILL, as an OOM
 * kill or a crashed container would do it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpsGet } from './helpers/https.js';
import { pushBlobDirect } from './helpers/registry-api.js';
import {
  createRegistry,
  startProxy,
  tempDir,
  type Proxy,
  type Registry,
} from './helpers/processes.js';

const MiB = 1 << 20;
const BACKEND_IDLE_MS = 2000;
const REPO = 'faults/app';

describe('backend faults', () => {
  const tmp = tempDir('faults');
  let registry: Registry;
  let proxy: Proxy;
  let ca: string;
  const blob = randomBytes(64 * MiB);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;

  const startRegistry = async (port?: number) => {
    registry = await createRegistry(
      { auth: { kind: 'none' }, ...(port ? { port } : {}) },
      tmp.path,
    );
    await registry.start();
  };
  /** SIGKILL, then a new registry on the same port with the same storage. */
  const restartRegistry = async () => {
    await registry.stop();
    await startRegistry(registry.port);
  };

  beforeAll(async () => {
    await startRegistry();
    proxy = await startProxy({
      backend: registry.url,
      tlsDir: join(tmp.path, 'tls'),
      env: { RTP_TIMEOUTS_BACKEND_IDLE_MS: String(BACKEND_IDLE_MS) },
    });
    ca = readFileSync(proxy.caFile, 'utf8');
    await pushBlobDirect(registry.url, REPO, { data: blob, digest });
  });

  afterAll(async () => {
    const pid = registry?.pid();
    if (pid) process.kill(pid, 'SIGCONT');
    await proxy?.stop();
    await registry?.stop();
    tmp.remove();
  });

  it('a pull whose registry is killed mid-body fails promptly at the client, never looks complete', async () => {
    let killedAt = 0;
    const result = await new Promise<{ bytes: number; length: number; error?: string }>(
      (resolve) => {
        const req = httpsRequest(`${proxy.origin}/v2/${REPO}/blobs/${digest}`, {
          ca,
          agent: false,
        });
        req.on('response', (res) => {
          let bytes = 0;
          const length = Number(res.headers['content-length']);
          const done = (error?: string) => resolve({ bytes, length, ...(error ? { error } : {}) });
          res.on('data', (d: Buffer) => {
            bytes += d.length;
            if (bytes >= 4 * MiB && killedAt === 0) {
              // Hold the transfer mid-body while the registry dies under it.
              killedAt = -1;
              res.pause();
              void registry.stop().then(() => {
                killedAt = Date.now();
                res.resume();
              });
            }
          });
          res.on('end', () => done());
          res.on('error', (err) => done(err.message));
          res.on('aborted', () => done('aborted'));
        });
        req.on('error', (err) => resolve({ bytes: 0, length: 0, error: err.message }));
        req.end();
      },
    );
    expect(result.length).toBe(blob.length);
    // The proxy cuts the connection: the client sees the body end short, not an 'end'.
    expect(result.error).toBe('aborted');
    expect(result.bytes).toBeLessThan(blob.length);
    expect(killedAt).toBeGreaterThan(0);
    expect(Date.now() - killedAt).toBeLessThan(5000);
    expect(proxy.child.exitCode).toBeNull();
    await startRegistry(registry.port);
  });

  it('a push whose registry is killed mid-body is not acknowledged, and the upload cannot be completed', async () => {
    const start = await httpsGet(`${proxy.origin}/v2/${REPO}/blobs/uploads/`, {
      ca,
      method: 'POST',
    });
    expect(start.status).toBe(202);
    const location = new URL(start.headers.location as string, proxy.origin).toString();
    const payload = randomBytes(48 * MiB);
    const payloadDigest = `sha256:${createHash('sha256').update(payload).digest('hex')}`;
    let sent = 0;
    // 1 MiB every 20 ms: the registry is killed after 8 MiB, with 40 MiB still to come.
    const body = new Readable({
      read() {
        if (sent >= payload.length) return void this.push(null);
        const chunk = payload.subarray(sent, sent + MiB);
        sent += chunk.length;
        if (sent === 8 * MiB) void registry.stop();
        setTimeout(() => this.push(chunk), 20);
      },
    });
    const answer = await new Promise<{ status: number; type: string | undefined; body: string }>(
      (resolve, reject) => {
        const req = httpsRequest(location, {
          ca,
          agent: false,
          method: 'PATCH',
          headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
        });
        req.on('response', (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body: text }),
          );
        });
        req.on('error', reject);
        body.pipe(req);
      },
    );
    // What docker push shows: the registry is unavailable, in registry JSON; never a 202.
    expect(answer.status, answer.body).toBe(502);
    expect(answer.type).toMatch(/^application\/json/);
    expect(JSON.parse(answer.body)).toMatchObject({
      errors: [{ code: 'UNAVAILABLE', message: expect.stringMatching(/unavailable/) }],
    });
    expect(sent).toBeLessThan(payload.length);
    await startRegistry(registry.port);
    // Completing the upload with the whole blob's digest must not succeed...
    const put = await httpsGet(
      `${location}${location.includes('?') ? '&' : '?'}digest=${payloadDigest}`,
      {
        ca,
        method: 'PUT',
      },
    );
    expect(put.status).toBeGreaterThanOrEqual(400);
    // ...and the blob does not exist.
    const head = await httpsGet(`${proxy.origin}/v2/${REPO}/blobs/${payloadDigest}`, {
      ca,
      method: 'HEAD',
    });
    expect(head.status).toBe(404);
  });

  it('after the registry restarts, the next requests work on both paths: no stale keep-alive sockets surface', async () => {
    const agent = new Agent({ keepAlive: true, ca, maxSockets: 8 });
    const requests = () => [
      // The relay's pooled sockets:
      ...Array.from({ length: 6 }, () => get(agent, `${proxy.origin}/v2/`)),
      ...Array.from({ length: 6 }, () =>
        get(agent, `${proxy.origin}/v2/${REPO}/blobs/${digest}`, 'HEAD'),
      ),
      // http-proxy's keep-alive agent:
      ...Array.from({ length: 6 }, () => get(agent, `${proxy.origin}/v2/_catalog`)),
      ...Array.from({ length: 3 }, () =>
        get(agent, `${proxy.origin}/v2/${REPO}/blobs/uploads/`, 'POST'),
      ),
    ];
    // Fill both pools with idle backend connections...
    expect(new Set(await Promise.all(requests()))).toEqual(new Set([200, 202]));
    await restartRegistry();
    // ...which the restart killed. Every request right after it still works.
    for (let round = 0; round < 3; round++) {
      const statuses = await Promise.all(requests());
      expect(statuses.filter((s) => s !== 200 && s !== 202)).toEqual([]);
    }
    agent.destroy();
  });

  it('a frozen registry (SIGSTOP) gets a 504 in registry JSON after backend_idle_ms on both paths; the proxy recovers when it wakes', async () => {
    const pid = registry.pid() as number;
    process.kill(pid, 'SIGSTOP');
    try {
      const timed = async (path: string) => {
        const started = Date.now();
        const res = await httpsGet(`${proxy.origin}${path}`, { ca });
        return { ...res, took: Date.now() - started };
      };
      // On keep-alive sockets the pools hold from the tests before: a retry on a fresh
      // socket after the timeout would double the wait.
      const answers = await Promise.all([
        timed(`/v2/${REPO}/manifests/latest`),
        timed(`/v2/${REPO}/blobs/${digest}`),
        timed('/v2/_catalog'),
      ]);
      for (const res of answers) {
        expect(res.status).toBe(504);
        expect(res.headers['content-type']).toMatch(/application\/json/);
        expect(JSON.parse(res.body)).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
        expect(res.took).toBeGreaterThanOrEqual(BACKEND_IDLE_MS - 100);
        expect(res.took).toBeLessThan(BACKEND_IDLE_MS + 1500);
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect((await httpsGet(`${proxy.origin}/v2/`, { ca })).status).toBe(200);
  });

  it('a body that stalls longer than backend_idle_ms but keeps coming is never cut', async () => {
    // The header timeout governs only the wait for the answer; once the body flows, a
    // registry that pauses (GC, a slow disk) for longer than it is still served in full.
    const pid = registry.pid() as number;
    const hash = createHash('sha256');
    let bytes = 0;
    let pauses = 0;
    await new Promise<void>((resolve, reject) => {
      const req = httpsRequest(`${proxy.origin}/v2/${REPO}/blobs/${digest}`, { ca, agent: false });
      req.on('response', (res) => {
        res.on('data', (d: Buffer) => {
          hash.update(d);
          bytes += d.length;
          if (pauses < 2 && bytes >= (pauses + 1) * 16 * MiB) {
            pauses++;
            process.kill(pid, 'SIGSTOP');
            setTimeout(() => process.kill(pid, 'SIGCONT'), BACKEND_IDLE_MS + 1000);
          }
        });
        res.on('end', resolve);
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    expect(pauses).toBe(2);
    expect(bytes).toBe(blob.length);
    expect(`sha256:${hash.digest('hex')}`).toBe(digest);
  });
});

/** One request; resolves with the status once the body is read. */
function get(agent: Agent, url: string, method = 'GET'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { agent, method }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
