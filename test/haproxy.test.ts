/**
 * haproxy as a real load balancer in front of two proxy instances that share
 * one tls.dir (TLS passes through haproxy and ends at the proxies). haproxy
 * checks each instance the registry's way — GET /v2/ and expect 401
 * (distribution's deployment guide) — or through the public health path and
 * expects 200. Both instances are in rotation while the registry is secured;
 * when the registry opens to anonymous users, both are taken out; securing it
 * again puts them back.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { startHAProxy, type HAProxy, type ServerState } from './helpers/haproxy.js';
import { httpsGet } from './helpers/https.js';
import { buildOCIImage, readBlob, type OCIImage } from './helpers/oci.js';
import {
  createRegistry,
  startProxy,
  tempDir,
  type Proxy,
  type Registry,
  type RegistryAuth,
} from './helpers/processes.js';
import { skopeoPull, skopeoPush } from './helpers/skopeo.js';

const USER = 'alice';
const PASSWORD = 'haproxy-pa55word';
const SECURED: RegistryAuth = { kind: 'htpasswd', user: USER, password: PASSWORD };
const REPO = 'e2e/balanced';
const OPEN_LOG = 'backend is open to anonymous';
/** How long the proxies' probe (1 s), haproxy's checks (500 ms × 2) and a registry restart may take, with room. */
const DEADLINE_MS = 30_000;

const VARIANTS = [
  {
    name: 'GET /v2/ expecting 401',
    checks: ['option httpchk GET /v2/', 'http-check expect status 401'],
    path: '/v2/',
    healthyCode: 401,
    // The registry itself answers 200 to anyone.
    openCode: 200,
  },
  {
    name: 'the public health path expecting 200',
    checks: ['option httpchk GET /_proxy/health', 'http-check expect status 200'],
    path: '/_proxy/health',
    healthyCode: 200,
    // The proxy's cached verdict: open to anonymous users.
    openCode: 503,
  },
] as const;

describe.each(VARIANTS)('haproxy checking two proxies with $name', (variant) => {
  const tmp = tempDir('haproxy');
  const certDir = join(tmp.path, 'certs');
  const tlsDir = join(tmp.path, 'tls');
  let registry: Registry | undefined;
  let proxies: Proxy[] = [];
  let haproxy: HAProxy | undefined;
  let ca = '';
  let image: OCIImage;

  // In rotation: the last check passed with the healthy code. Out: it failed on the open registry's code.
  const inRotation = (s: ServerState) =>
    s.status === 'UP' && s.checkStatus === 'L7OK' && s.checkCode === variant.healthyCode;
  const outForOpenRegistry = (s: ServerState) =>
    s.status === 'DOWN' && s.checkStatus === 'L7STS' && s.checkCode === variant.openCode;
  const balancer = () => {
    if (!haproxy) throw new Error('haproxy is not started');
    return haproxy;
  };
  const openLogLines = (p: Proxy) =>
    p.logLines().filter((l) => String(l['msg']).startsWith(OPEN_LOG));

  /** Replaces the registry with one on the same port and storage, secured or open to anyone. */
  const restartRegistry = async (auth: RegistryAuth) => {
    const port = registry?.port;
    await registry?.stop();
    registry = await createRegistry({ auth, ...(port ? { port } : {}) }, tmp.path);
    await registry.start();
  };

  const pullThroughHAProxy = (into: string) =>
    skopeoPull(
      `127.0.0.1:${balancer().port}/${REPO}:v1`,
      `dir:${into}`,
      certDir,
      `${USER}:${PASSWORD}`,
    );

  beforeAll(async () => {
    await restartRegistry(SECURED);
    // Two replicas starting together on one tls.dir, as a deployment would start them.
    const started = await Promise.allSettled(
      [1, 2].map(() =>
        startProxy({
          backend: registry?.url ?? '',
          tlsDir,
          // A probe must end within the interval (one at a time).
          env: { RTP_HEALTH_INTERVAL: '1s', RTP_HEALTH_TIMEOUT: '800ms' },
        }),
      ),
    );
    proxies = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    ca = readFileSync(join(tlsDir, 'ca.crt'), 'utf8');
    mkdirSync(certDir);
    writeFileSync(join(certDir, 'ca.crt'), ca);
    mkdirSync(join(tmp.path, 'haproxy'));
    haproxy = await startHAProxy({
      dir: join(tmp.path, 'haproxy'),
      servers: proxies.map((p, i) => ({ name: `p${i + 1}`, port: p.port })),
      caFile: join(tlsDir, 'ca.crt'),
      checks: variant.checks,
    });
    image = buildOCIImage(join(tmp.path, 'image'), 'v1', [1 << 20, 100_000]);
  });

  afterAll(async () => {
    await haproxy?.stop();
    await Promise.all(proxies.map((p) => p.stop()));
    await registry?.stop();
    tmp.remove();
  });

  it('keeps both in rotation while the registry is secured, and pulls through haproxy reach both', async () => {
    // L7OK over `verify required` against tls.dir's ca.crt: both replicas serve a chain to the one shared CA.
    await balancer().waitForServers(inRotation, `UP with ${variant.healthyCode}`, DEADLINE_MS);

    const push = await skopeoPush(
      image.ref,
      `127.0.0.1:${balancer().port}/${REPO}:v1`,
      certDir,
      `${USER}:${PASSWORD}`,
    );
    expect(push.code, push.stderr).toBe(0);

    const layout = image.ref.slice(4, image.ref.lastIndexOf(':'));
    for (const n of [1, 2, 3]) {
      const pulled = join(tmp.path, `pulled-${n}`);
      const pull = await pullThroughHAProxy(pulled);
      expect(pull.code, pull.stderr).toBe(0);
      for (const digest of image.layerDigests) {
        expect(readBlob(pulled, digest, 'dir').equals(readBlob(layout, digest, 'oci'))).toBe(true);
      }
    }

    // Round robin spreads the clients' connections: each instance served part of the image.
    for (const p of proxies) {
      const served = p
        .logLines()
        .filter((l) => l['msg'] === 'request' && String(l['path']).startsWith(`/v2/${REPO}/`));
      expect(served.length, `requests for ${REPO} logged by ${p.origin}`).toBeGreaterThan(0);
    }
    // Still both in rotation after the traffic.
    await balancer().serversStay(inRotation, 'UP', 2_000);
  });

  it('takes both out when the registry opens to anonymous users, and each proxy says why once', async () => {
    await restartRegistry({ kind: 'none' });

    for (const p of proxies) {
      const ready = await waitForReadyz(p, (r) => r.body['verdict'] === 'open');
      expect(ready.status).toBe(503);
      expect(String(ready.body['reason'])).toMatch(/open to anonymous/);
    }
    await balancer().waitForServers(
      outForOpenRegistry,
      `DOWN with ${variant.openCode}`,
      DEADLINE_MS,
    );

    // What haproxy's check sees on each instance.
    for (const p of proxies) {
      const seen = await httpsGet(`${p.origin}${variant.path}`, { ca });
      expect(seen.status).toBe(variant.openCode);
      if (variant.openCode === 503) expect(seen.body).toMatch(/open to anonymous/);
    }

    // With no server left, clients are turned away at haproxy.
    const refused = await pullThroughHAProxy(join(tmp.path, 'pulled-while-down'));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/pinging container registry .*(EOF|connection reset)/);

    // Out for several probe intervals, without flapping; each proxy logged the transition once, not per probe.
    await balancer().serversStay(outForOpenRegistry, `DOWN with ${variant.openCode}`, 4_000);
    for (const p of proxies) {
      const lines = openLogLines(p);
      expect(lines, `"${OPEN_LOG}" lines of ${p.origin}`).toHaveLength(1);
      expect(lines[0]).toMatchObject({ verdict: 'open', httpStatus: 200 });
    }
  });

  it('puts both back when the registry is secured again', async () => {
    await restartRegistry(SECURED);

    await balancer().waitForServers(inRotation, `UP with ${variant.healthyCode}`, DEADLINE_MS);
    for (const p of proxies) {
      const ready = await waitForReadyz(p, (r) => r.status === 200);
      expect(ready.body['verdict']).toBe('healthy');
    }
    // Same storage: the image pushed before is there again.
    const pull = await pullThroughHAProxy(join(tmp.path, 'pulled-after'));
    expect(pull.code, pull.stderr).toBe(0);
    for (const p of proxies) expect(openLogLines(p)).toHaveLength(1);
  });
});

interface Readyz {
  status: number;
  body: Record<string, unknown>;
}

/** Polls the proxy's /readyz (admin listener) until `want`; rejects at the deadline with the last answer. */
function waitForReadyz(proxy: Proxy, want: (r: Readyz) => boolean): Promise<Readyz> {
  return eventually(
    `/readyz of ${proxy.origin} as wanted`,
    async () => {
      const r = await readyz(proxy.adminPort);
      // Thrown, so that the timeout names the last answer.
      if (!want(r)) throw new Error(JSON.stringify(r));
      return r;
    },
    { timeoutMs: DEADLINE_MS, intervalMs: 200 },
  );
}

function readyz(adminPort: number): Promise<Readyz> {
  return new Promise((resolve, reject) => {
    get(`http://127.0.0.1:${adminPort}/readyz`, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }),
      );
      res.on('error', reject);
    }).on('error', reject);
  });
}
