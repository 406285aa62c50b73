/**
 * SIGHUP reloads, back to back, in one process and in a cluster's primary: the RSS stays
 * bounded and stops growing, and rtp_requests_total never goes down and counts every
 * request made between them.
 *
 * Each reload used to leave memory behind: in one process, garbage HTTPS servers whose
 * TLS contexts live outside V8's heap (+44 MiB on Node 20, +120 MiB on Node 26); in a
 * primary, every worker ever stopped (+44 MiB). It runs in the 'load' project, alone:
 * an RSS measured beside other test files measures them.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { httpsGet } from './helpers/https.js';
import {
  createRegistry,
  heapProbeEnv,
  heldAfterCollection,
  readCA,
  rssMiB,
  startProxy,
  tempDir,
  waitForOutput,
  type Proxy,
  type Registry,
} from './helpers/processes.js';
import { fetchScrape, sampleSum } from './helpers/prometheus.js';
import { reloadCounter } from './helpers/reloads.js';

/**
 * One process: 1,000 reloads after 800 that warm it up. In the warm-up V8 compiles the
 * reload path and its allocator settles: RSS rises 3–5 MiB, and on Node 26 it takes one
 * step of 6–11 MiB somewhere between event 400 and 600, then stays flat. That step is
 * not the reloads': a process that reloads never, only answering 1,500 fresh handshakes,
 * takes the same step at the same point (glibc arenas of V8's worker threads, not its
 * heap; with --single-threaded there is none). Measured on 2026-12-02: Node 26, reloads
 * 600 → 1,700: +1.0 MiB; Node 20: +1.8.
 * A cluster's primary forks two Node processes per reload (~0.5 s), so 150 there, from
 * the start: its leak (a Map of every worker ever stopped, ~30 KiB a reload) showed by
 * then. Its RSS says little: the garbage of a reload (config, certificates, forks) waits
 * for a major collection that V8 schedules by itself, and it swings by up to 29 MiB
 * (measured 2026-12-03, 450 reloads sampled every 25: 67.5 → 96.3 by reload 275, 68.6 at
 * 300). So the primary is measured after a full collection (the heap probe), where a
 * leak stays and garbage does not. One process is not: its leak was garbage (HTTPS
 * servers whose TLS contexts V8 did not count), which RSS shows and a forced collection
 * would hide.
 */
describe.each([
  ['one process', '1', 800, 1000, 100, false],
  ['the primary of two workers', '2', 0, 150, 50, true],
])('SIGHUPs, %s', (name, workers, warmUp, reloads, every, collect) => {
  const tmp = tempDir('reload-memory');
  const probeFile = join(tmp.path, 'heap-probe.json');
  let registry: Registry;
  let proxy: Proxy;
  beforeAll(async () => {
    registry = await createRegistry({ auth: { kind: 'none' } }, tmp.path);
    await registry.start();
    const file = join(tmp.path, 'proxy.yaml');
    writeFileSync(file, `backend: ${registry.url}\n`);
    proxy = await startProxy({
      tlsDir: join(tmp.path, 'tls'),
      args: ['--config', file],
      env: { RTP_WORKERS: workers, ...(collect ? heapProbeEnv(probeFile) : {}) },
    });
    await waitForOutput(proxy.child, proxy.output, /"msg":"admin listener /);
    // Twice, in full-suite CI runs only, the first scrape of the two-worker primary met a
    // connection closed unanswered (never reproduced alone): wait until the admin
    // listener answers before taking the baseline, and say what the proxy logged if not.
    await eventually(
      'the admin listener to answer /healthz',
      async () => (await fetch(`http://127.0.0.1:${proxy.adminPort}/healthz`)).ok || undefined,
      { timeoutMs: 10_000 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nproxy output:\n${proxy.output().slice(-4000)}`);
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await registry?.stop();
    tmp.remove();
  });

  it(
    `${reloads} leave the RSS bounded and every request counted`,
    { timeout: 600_000 },
    async () => {
      const ca = readCA(proxy);
      const counter = reloadCounter(proxy);
      const requestsTotal = async () => {
        const scrape = await fetchScrape(`http://127.0.0.1:${proxy.adminPort}/metrics`).catch(
          (err: Error) => {
            throw new Error(`${err.message}\nproxy output:\n${proxy.output().slice(-4000)}`);
          },
        );
        return sampleSum(scrape, 'rtp_requests_total');
      };
      let made = 0;
      const ping = async () => {
        expect((await httpsGet(`${proxy.origin}/v2/`, { ca, timeoutMs: 10_000 })).status).toBe(200);
        made++;
      };
      await ping();
      for (let i = 0; i < warmUp; i++) await counter.reload(60_000);
      const pid = proxy.child.pid!;
      const memory = async () => {
        if (!collect) return { rss: rssMiB(pid), heap: NaN };
        const held = await heldAfterCollection(proxy.child, probeFile);
        return { rss: held.rss, heap: held.heap };
      };
      const sample = async (reloads: number) => ({
        reloads,
        ...(await memory()),
        requests: await requestsTotal(),
      });
      const samples = [await sample(0)];
      for (let i = 1; i <= reloads; i++) {
        await counter.reload(60_000);
        if (i % every === 0) {
          await ping();
          samples.push(await sample(i));
        }
      }
      const show = (key: 'rss' | 'heap') =>
        samples.map((s) => `${s.reloads}:${s[key].toFixed(1)}`).join(' ');
      console.log(
        `${name} on Node ${process.version}, after ${warmUp} reloads: RSS MiB by reloads ` +
          show('rss') +
          (collect ? ` (after a full collection; heap held: ${show('heap')})` : ''),
      );
      expect(counter.count()).toBe(warmUp + reloads);
      const first = samples[0]!;
      const last = samples[samples.length - 1]!;
      // After the warm-up: Node 20 +1–3 MiB, Node 26 +1–2. Before the fix: +45 MiB (Node
      // 20), +120 (Node 26). The bound is 10 MiB over 1,000 SIGHUPs. The primary
      // (150, no warm-up) is held to 24: even after a collection its RSS moves by up to
      // +10 (CI, 2026-12-03: 67.8 → 78.1 with the heap held flat at 12.0), since freed
      // pages are not all given back at once. Its heap is the leak detector: +1.5 MiB in
      // the first 50 (compiled code) and +0.2 in the next 100; the leak it had (the
      // stopped-workers Map put back) makes that +2.5.
      expect(last.rss - first.rss).toBeLessThan(reloads >= 1000 ? 10 : 24);
      if (collect) expect(last.heap - samples[1]!.heap).toBeLessThan(1.5);
      // The last 200 reloads: a leak of 15 KiB or more each shows here.
      const later = samples[samples.length - 3]!;
      if (reloads >= 1000) expect(last.rss - later.rss).toBeLessThan(3);
      for (let i = 1; i < samples.length; i++) {
        expect(samples[i]!.requests, JSON.stringify(samples)).toBeGreaterThanOrEqual(
          samples[i - 1]!.requests,
        );
      }
      // A request is counted as it finishes, a retired worker's when it has exited.
      expect(
        await eventually('every request counted', async () =>
          (await requestsTotal()) === made ? made : undefined,
        ),
      ).toBe(made);
    },
  );
});
