/**
 * Load and abuse from well-formed clients against the real registry: 1,000 aborted
 * pulls and pushes must leave no file descriptors, backend sockets or memory behind,
 * and 500 concurrent connections pulling and reading manifests must all be served.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { httpsGet } from './helpers/https.js';
import { ociManifest } from './helpers/oci.js';
import { blobOf, plainRequest, pushBlobDirect } from './helpers/registry-api.js';
import {
  createRegistry,
  heapProbeEnv,
  heldAfterCollection,
  startProxy,
  tempDir,
  type HeldMemory,
  type Proxy,
  type Registry,
} from './helpers/processes.js';

const MiB = 1 << 20;
const REPO = 'load/app';
/** Transfers in flight at once while aborting. */
const PARALLEL = 25;
/** Rounds of 1,000 aborted transfers: growth that goes on across them is a leak. */
const ROUNDS = 3;

describe('load: aborted transfers and many connections', () => {
  const tmp = tempDir('load');
  let registry: Registry;
  let proxy: Proxy;
  let ca: string;
  const heapFile = join(tmp.path, 'heap.json');
  const held = () => heldAfterCollection(proxy.child, heapFile);
  const big = blobOf(randomBytes(8 * MiB));
  const small = blobOf(randomBytes(MiB));
  const config = blobOf(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux' })));
  const manifest = ociManifest({ digest: config.digest, size: config.data.length }, [
    { digest: small.digest, size: small.data.length },
  ]);

  beforeAll(async () => {
    registry = await createRegistry({ auth: { kind: 'none' } }, tmp.path);
    await registry.start();
    proxy = await startProxy({
      backend: registry.url,
      tlsDir: join(tmp.path, 'tls'),
      env: heapProbeEnv(heapFile),
    });
    ca = readFileSync(proxy.caFile, 'utf8');
    for (const b of [big, small, config]) await pushBlobDirect(registry.url, REPO, b);
    const put = await plainRequest(`${registry.url}/v2/${REPO}/manifests/v1`, 'PUT', manifest, {
      'content-type': 'application/vnd.oci.image.manifest.v1+json',
    });
    if (put.status !== 201) throw new Error(`pushing the test manifest answered ${put.status}`);
  });

  afterAll(async () => {
    await proxy?.stop();
    await registry?.stop();
    tmp.remove();
  });

  const openFDs = () => readdirSync(`/proc/${proxy.child.pid}/fd`).length;
  const upstreamSockets = async (state: 'active' | 'idle') => {
    const { body: text } = await plainRequest(`http://127.0.0.1:${proxy.adminPort}/metrics`, 'GET');
    const match = new RegExp(`^rtp_upstream_sockets\\{state="${state}"\\} (\\d+)`, 'm').exec(text);
    if (!match) throw new Error(`no rtp_upstream_sockets{state="${state}"} in /metrics`);
    return Number(match[1]);
  };

  /** A pull cut by the client after its first body bytes. */
  const abortedPull = () =>
    new Promise<void>((resolve, reject) => {
      const req = httpsRequest(`${proxy.origin}/v2/${REPO}/blobs/${big.digest}`, {
        ca,
        agent: false,
      });
      req.on('response', (res) => {
        if (res.statusCode !== 200) return reject(new Error(`pull answered ${res.statusCode}`));
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.end();
    });

  /** A push whose client dies after 1 of the 8 MiB it announced. */
  const abortedPush = async () => {
    const started = await httpsGet(`${proxy.origin}/v2/${REPO}/blobs/uploads/`, {
      ca,
      method: 'POST',
    });
    if (started.status !== 202) throw new Error(`upload start answered ${started.status}`);
    await new Promise<void>((resolve) => {
      const req = httpsRequest(new URL(String(started.headers.location), proxy.origin), {
        ca,
        agent: false,
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-length': 8 * MiB },
      });
      req.on('error', () => undefined);
      req.write(big.data.subarray(0, MiB), () => {
        req.destroy();
        resolve();
      });
    });
  };

  it(
    '1,000 aborted pulls and pushes leave no descriptors, backend sockets or memory behind',
    {
      timeout: 600_000,
    },
    async () => {
      // Warm-up with the same traffic: the pools fill, the heap settles.
      let t = Date.now();
      await inParallel(100, PARALLEL, (i) => (i % 2 ? abortedPull() : abortedPush()));
      console.log(`warm-up: 100 aborted transfers in ${Date.now() - t} ms`);
      await eventually(
        'no active backend socket after the warm-up',
        async () => (await upstreamSockets('active')) === 0,
        { timeoutMs: 10_000 },
      );
      await new Promise((r) => setTimeout(r, 1000));
      const baseline = {
        fds: openFDs(),
        idle: await upstreamSockets('idle'),
        memory: await held(),
      };

      const rounds: Array<{ fds: number; active: number; idle: number; memory: HeldMemory }> = [];
      for (let round = 0; round < ROUNDS; round++) {
        t = Date.now();
        await inParallel(1000, PARALLEL, (i) => (i % 2 ? abortedPull() : abortedPush()));
        console.log(`round ${round}: 1,000 aborted transfers in ${Date.now() - t} ms`);
        // Within seconds every aborted exchange has let go of its sockets. The keep-alive
        // pool to the registry may hold more idle sockets than at the baseline (bounded
        // below), and each is a descriptor: count only descriptors the pool does not explain.
        const settled = await eventually(
          `round ${round}: descriptors back to ${JSON.stringify(baseline)}, no active backend socket`,
          async () => {
            const now = {
              fds: openFDs(),
              active: await upstreamSockets('active'),
              idle: await upstreamSockets('idle'),
            };
            const unexplained = now.fds - now.idle;
            if (unexplained > baseline.fds - baseline.idle + 2 || now.active !== 0) {
              throw new Error(`not yet: ${JSON.stringify(now)}`);
            }
            return now;
          },
          { timeoutMs: 10_000 },
        );
        rounds.push({ ...settled, memory: await held() });
      }
      console.log('aborted transfers:', JSON.stringify({ baseline, rounds }));
      for (const r of rounds) {
        expect(r.active).toBe(0);
        expect(r.idle).toBeLessThanOrEqual(Math.max(baseline.idle, PARALLEL));
      }
      /*
       * Memory: measured after two full collections (heap-probe.cjs), because RSS alone is a
       * high-water mark: it says how busy the busiest moment of a round was, not what the
       * proxy still holds. Read raw, RSS after the first round ranged from +15 to +75 MiB
       * over the baseline on Node 26.12 from run to run of the same commit, and failed this
       * test with no leak. After collections, five rounds, Node 26.12: heap 15.9 MiB at the
       * baseline, then 14.6, 14.5, 14.6, 14.6, 14.6; Buffers 0.5 throughout; RSS 111, then
       * 118, 123, 125, 126, 126. Node 20.20: heap 12.0, then 12.4, 12.5, 12.9, 12.8, 12.8;
       * RSS 92, then 113, 113, 113, 108, 107. A leak grows in every round, so the rounds
       * after the first are compared with the first. Tried by planting leaks in the request
       * handler on Node 20: keeping each request's URL and a copy of its headers (about 450
       * bytes per request, 1,500 requests per round) grew the heap 1.0, 0.7, 0.7 MiB a round;
       * keeping the IncomingMessage itself grew it 17 MiB and the Buffers 60 MiB a round.
       * RSS, even after the collections, is only held to a gross bound over the baseline (a
       * native leak the heap cannot show): between rounds it still moves with how memory
       * was fragmented. CI, Node 20.20, 2026-12-03: heap 12.3, 12.5, 12.7 MiB (flat) while
       * RSS went 100, 119, 125 MiB, 24.3 over the first round.
       */
      const first = rounds[0]!.memory;
      const last = rounds.at(-1)!.memory;
      expect(last.heap - first.heap).toBeLessThan(1);
      expect(last.heap - baseline.memory.heap).toBeLessThan(4);
      expect(last.buffers - baseline.memory.buffers).toBeLessThan(2);
      expect(last.rss - baseline.memory.rss).toBeLessThan(48);
      expect(proxy.child.exitCode).toBeNull();
    },
  );

  it('500 concurrent connections pulling and reading manifests are all served', async () => {
    const agent = new Agent({ keepAlive: true, ca, maxSockets: 500 });
    const connections = new Set<unknown>();
    const request = (path: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; digest: string }>((resolve, reject) => {
        const req = httpsRequest(`${proxy.origin}${path}`, { agent, headers }, (res) => {
          const hash = createHash('sha256');
          res.on('data', (d: Buffer) => hash.update(d));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, digest: `sha256:${hash.digest('hex')}` }),
          );
          res.on('error', reject);
        });
        req.on('socket', (socket) => connections.add(socket));
        req.on('error', reject);
        req.end();
      });
    const manifestDigest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
    const started = Date.now();
    const sessions = await Promise.allSettled(
      Array.from({ length: 500 }, async () => {
        // A client's pull: version check, manifest, layer.
        const ping = await request('/v2/');
        const m = await request(`/v2/${REPO}/manifests/v1`, {
          accept: 'application/vnd.oci.image.manifest.v1+json',
        });
        const layer = await request(`/v2/${REPO}/blobs/${small.digest}`);
        return [ping.status, m.status, m.digest, layer.status, layer.digest];
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    agent.destroy();
    const failures = sessions.filter((s) => s.status === 'rejected');
    expect(failures.map((f) => String((f as PromiseRejectedResult).reason))).toEqual([]);
    for (const s of sessions) {
      expect((s as PromiseFulfilledResult<unknown[]>).value).toEqual([
        200,
        200,
        manifestDigest,
        200,
        small.digest,
      ]);
    }
    // Really 500 connections at once, not a few reused ones.
    expect(connections.size).toBe(500);
    console.log(`500 concurrent connections: 1,500 requests in ${seconds.toFixed(1)} s`);
    expect(proxy.child.exitCode).toBeNull();
    expect(
      proxy.logLines().filter((l) => l['level'] === 'error' || l['level'] === 'fatal'),
    ).toEqual([]);
  });
});

/** Runs `count` tasks, at most `parallel` at a time; the first failure fails it. */
async function inParallel(
  count: number,
  parallel: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) await task(next++);
    }),
  );
}
