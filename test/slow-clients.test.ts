/**
 * slowhttptest against the proxy in front of the real registry, in its three modes —
 * slow headers (Slowloris), slow body (R-U-Dead-Yet) and slow read — with hundreds
 * of connections each, while a normal client (a new verified TLS connection every
 * 250 ms, GET /v2/ and a blob HEAD) measures whether the proxy still serves it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpsGet } from './helpers/https.js';
import type { TestHost } from './helpers/netns.js';
import { registryAndProxyOnTestHost } from './helpers/fixture.js';
import { rssMiB, tempDir, type Proxy, type Registry } from './helpers/processes.js';
import { blobOf } from './helpers/registry-api.js';

const REPO = 'slow/app';
const SECONDS = 20;
const CONNECTIONS = 400;

interface Run {
  /** "service available" verdicts slowhttptest printed (its own probe connection). */
  verdicts: string[];
  connected: number;
  /** Milliseconds for GET /v2/ and a blob HEAD through to the registry, one pair per probe. */
  probes: number[];
  /** Milliseconds for GET /ca.crt, which the proxy answers itself. */
  ownProbes: number[];
  failures: string[];
  peakRSSMiB: number;
  startRSSMiB: number;
}

/**
 * The registry and the proxy run on a test host (a network namespace), and the attack
 * and the normal client reach it over a veth link, as clients reach a registry over a
 * network. Not over loopback: its 64 KiB MTU lets the kernel give each socket to a
 * slow reader a ~2.5 MiB send buffer (400 of them: 1 GiB), which crossed the machine's
 * tcp_mem limit, and the kernel then dropped packets of every connection on the machine,
 * the normal client's too (its probes stalled for 3 s and 7 s: retransmission timeouts).
 * With a 1500-byte MTU the same attack holds a few MiB in the kernel.
 */
describe('slow clients (slowhttptest)', () => {
  const tmp = tempDir('slow-clients');
  let host: TestHost;
  let registry: Registry;
  let proxy: Proxy;
  let ca = '';
  const env = {
    get proxy() {
      return proxy;
    },
    get ca() {
      return ca;
    },
  };
  const blob = blobOf(randomBytes(16 << 20));

  beforeAll(async () => {
    ({ host, registry, proxy } = await registryAndProxyOnTestHost('slow', tmp.path, {
      kind: 'none',
    }));
    ca = readFileSync(proxy.caFile, 'utf8');
    // The registry listens inside the test host only: the blob goes in through the proxy.
    const started = await httpsGet(`${proxy.origin}/v2/${REPO}/blobs/uploads/`, {
      ca,
      method: 'POST',
      headers: { 'content-length': '0' },
    });
    const location = new URL(String(started.headers.location), proxy.origin);
    location.searchParams.set('digest', blob.digest);
    const put = await httpsGet(location.toString(), {
      ca,
      method: 'PUT',
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(blob.data.length),
      },
      body: blob.data,
    });
    if (put.status !== 201)
      throw new Error(`pushing the test blob answered ${put.status}: ${put.body}`);
  });

  afterAll(async () => {
    await proxy?.stop();
    await registry?.stop();
    host?.destroy();
    tmp.remove();
  });

  /** Runs slowhttptest with `args` while the normal client probes; returns what both saw. */
  async function attack(args: string[]): Promise<Run> {
    const { proxy, ca } = env;
    const rss = () => rssMiB(proxy.child.pid!);
    const startRSSMiB = rss();
    let peakRSSMiB = startRSSMiB;
    const probes: number[] = [];
    const ownProbes: number[] = [];
    const failures: string[] = [];
    let running = true;
    /** Repeats `probe` every 250 ms while the attack runs, after giving it 3 s to connect. */
    const probeLoop = async (probe: () => Promise<void>) => {
      await new Promise((r) => setTimeout(r, 3000));
      while (running) {
        try {
          await probe();
        } catch (err) {
          failures.push((err as Error).message);
        }
        peakRSSMiB = Math.max(peakRSSMiB, rss());
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    // Two loops, so a slow registry cannot hide how the proxy answers on its own: under
    // 400 slow readers the registry itself stalls for seconds (a direct GET /v2/ to it
    // took 1.8 s at the moment a proxied one took 1.9 s).
    const probers = [
      // The proxy's own answer (a new verified connection, no registry involved)...
      probeLoop(async () => {
        const started = Date.now();
        const own = await httpsGet(`${proxy.origin}/ca.crt`, { ca });
        if (own.status !== 200) failures.push(`/ca.crt answered ${own.status}`);
        ownProbes.push(Date.now() - started);
      }),
      // ...and a client's requests through to the registry.
      probeLoop(async () => {
        const started = Date.now();
        const ping = await httpsGet(`${proxy.origin}/v2/`, { ca });
        const head = await httpsGet(`${proxy.origin}/v2/${REPO}/blobs/${blob.digest}`, {
          ca,
          method: 'HEAD',
        });
        if (ping.status !== 200 || head.status !== 200) {
          failures.push(`statuses ${ping.status} ${head.status}`);
        }
        probes.push(Date.now() - started);
      }),
    ];
    const output = await new Promise<string>((resolve) => {
      execFile(
        'slowhttptest',
        [...args, '-c', String(CONNECTIONS), '-r', '200', '-l', String(SECONDS), '-p', '3'],
        { timeout: (SECONDS + 60) * 1000, maxBuffer: 16 << 20 },
        (_err, stdout, stderr) => resolve(stdout + stderr),
      );
    });
    running = false;
    await Promise.all(probers);
    const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
    return {
      verdicts: [...plain.matchAll(/service available:\s*(\w+)/g)].map((m) => m[1] as string),
      connected: Math.max(
        0,
        ...[...plain.matchAll(/connected:\s*(\d+)/g)].map((m) => Number(m[1])),
      ),
      probes,
      ownProbes,
      failures,
      peakRSSMiB,
      startRSSMiB,
    };
  }

  const quantiles = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const at = (q: number) =>
      sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
    return { p50: at(0.5), p95: at(0.95), max: at(1) };
  };

  /**
   * Logs the figures and asserts availability. `throughRegistry: false` (slow read):
   * 400 stalled blob downloads load the registry itself (it shares the two cores), so
   * requests that reach it are asserted to succeed, not to be fast; the proxy's own
   * answers must stay fast in every mode.
   */
  const report = (mode: string, run: Run, throughRegistry = true) => {
    const own = quantiles(run.ownProbes);
    const full = quantiles(run.probes);
    console.log(
      `${mode}: ${run.connected} attacking connections at peak; normal client ${run.ownProbes.length} probes, ` +
        `${run.failures.length} failed; proxy's own answer p50 ${own.p50} / p95 ${own.p95} / max ${own.max} ms; ` +
        `through to the registry p50 ${full.p50} / p95 ${full.p95} / max ${full.max} ms; ` +
        `slowhttptest's probe: ${[...new Set(run.verdicts)].join('/')}; ` +
        `proxy RSS ${run.startRSSMiB.toFixed(0)} → peak ${run.peakRSSMiB.toFixed(0)} MiB`,
    );
    // The attack really held its connections open...
    expect(run.connected).toBeGreaterThanOrEqual(CONNECTIONS * 0.9);
    expect(run.verdicts.length).toBeGreaterThan(0);
    // ...and the proxy stayed available throughout.
    expect(run.failures).toEqual([]);
    expect(run.ownProbes.length).toBeGreaterThanOrEqual(SECONDS);
    expect(own.p95).toBeLessThan(1000);
    if (throughRegistry) {
      expect(run.verdicts.filter((v) => v !== 'YES')).toEqual([]);
      expect(full.p95).toBeLessThan(1000);
    }
    expect(env.proxy.child.exitCode).toBeNull();
  };

  it('slow headers: stays available', { timeout: 180_000 }, async () => {
    report('slow headers', await attack(['-H', '-i', '5', '-u', `${env.proxy.origin}/v2/`]));
  });

  it('slow body: stays available', { timeout: 180_000 }, async () => {
    report(
      'slow body',
      await attack([
        '-B',
        '-i',
        '5',
        '-s',
        '65536',
        '-t',
        'POST',
        '-u',
        `${env.proxy.origin}/v2/${REPO}/blobs/uploads/`,
      ]),
    );
  });

  it(
    'slow read: stays available, without buffering what the readers do not take',
    { timeout: 180_000 },
    async () => {
      const run = await attack([
        '-X',
        '-w',
        '512',
        '-y',
        '1024',
        '-n',
        '5',
        '-z',
        '32',
        '-k',
        '2',
        '-u',
        `${env.proxy.origin}/v2/${REPO}/blobs/${blob.digest}`,
      ]);
      report('slow read', run, false);
      // Each slow reader holds one small read, not a big one: 400 of them cost well under
      // 150 MiB (~90 measured; with 256 KiB reads from the start the proxy grew by ~300 MiB).
      expect(run.peakRSSMiB - run.startRSSMiB).toBeLessThan(150);
    },
  );
});
