/**
 * Signals as an orchestrator sends them, against the real registry:
 *  - SIGTERM drains: a layer push in flight completes, new connections are refused,
 *    idle keep-alive connections close, /readyz says "draining", exit 0; a connection
 *    opened just before gets its first request answered;
 *    what outlasts timeouts.drainMs is cut at the deadline (and logged);
 *  - the same in a cluster, with no worker left behind;
 *  - SIGHUP re-reads the configuration: a valid one takes effect while a download
 *    that started before it finishes byte-identical, a name added to tls.names is in
 *    the next handshake's certificate; an invalid one is logged with
 *    every problem and the old configuration keeps serving;
 *  - reloads one after another under a stream of new connections, and under
 *    keep-alive clients pushing back to back, answer every request (a cluster's old
 *    workers used to reset or strand a few per reload; a drain used to close a
 *    keep-alive connection while the client's next request was on its way).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { httpsGet } from './helpers/https.js';
import {
  childPids,
  createRegistry,
  isAlive,
  readCA,
  startProxy,
  tempDir,
  tryConnect,
  waitForOutput,
  type Proxy,
  type Registry,
} from './helpers/processes.js';
import { readUntil, tlsConnect, waitForClose } from './helpers/raw-tls.js';
import { pushBlobDirect } from './helpers/registry-api.js';
import { getSlowly, putSlowly, repeatedBlob, startUpload } from './helpers/slow-transfer.js';

const MIB = 1 << 20;

function exited(proxy: Proxy): Promise<{ code: number | null; at: number }> {
  return new Promise((resolve) => {
    if (proxy.child.exitCode !== null) resolve({ code: proxy.child.exitCode, at: Date.now() });
    proxy.child.once('exit', (code) => resolve({ code, at: Date.now() }));
  });
}

/** HEAD of a blob straight from the registry (plain HTTP, no proxy): status and size. */
async function blobInRegistry(registry: Registry, repo: string, digest: string) {
  const res = await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  return { status: res.status, length: Number(res.headers.get('content-length')) };
}

describe('SIGTERM', () => {
  const tmp = tempDir('lifecycle-term');
  let registry: Registry;
  beforeAll(async () => {
    registry = await createRegistry({ auth: { kind: 'none' } }, tmp.path);
    await registry.start();
  });
  afterAll(async () => {
    await registry?.stop();
    tmp.remove();
  });
  const proxies: Proxy[] = [];
  afterAll(async () => {
    for (const p of proxies) await p.stop('SIGKILL');
  });

  /** A proxy with `env` in front of the registry, and an upload of `mib` MiB started on it. */
  async function proxyWithUpload(env: Record<string, string>, repo: string, mib: number) {
    const proxy = await startProxy({
      backend: registry.url,
      tlsDir: join(tmp.path, `tls-${proxies.length}`),
      env,
    });
    proxies.push(proxy);
    const ca = readCA(proxy);
    const blob = repeatedBlob(mib);
    const url = await startUpload(proxy.origin, repo, blob.digest, ca);
    return { proxy, ca, blob, url };
  }

  it('lets a 200 MiB layer push finish, refuses new connections, closes idle ones, then exits 0', async () => {
    const { proxy, ca, blob, url } = await proxyWithUpload(
      // The registry is open to anonymous users: allowed, so /readyz is 200 until the drain.
      { RTP_TIMEOUTS_DRAIN_MS: '30000', RTP_HEALTH_ALLOW_ANONYMOUS: 'true' },
      'drain/big',
      200,
    );
    // An idle keep-alive connection: one answered request, then nothing.
    const idle = await tlsConnect(proxy.port, ca);
    idle.write('GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(await readUntil(idle, /\r\n\r\n\{\}$/)).toMatch(/^HTTP\/1\.1 200/);
    await eventually(
      '/readyz to answer 200',
      async () => (await fetch(`http://127.0.0.1:${proxy.adminPort}/readyz`)).ok,
    );

    const upload = putSlowly(url, ca, blob, 15); // ≥ 3 s for 200 MiB
    await eventually('30 MiB of the push sent', () => upload.sent() >= 30, { timeoutMs: 10_000 });
    const exit = exited(proxy);
    proxy.child.kill('SIGTERM');
    await waitForOutput(proxy.child, proxy.output, /"msg":"draining: 1 requests in flight/);
    const signalledAt = Date.now();

    expect(await waitForClose(idle, 2000)).toBeLessThan(1000);
    expect(await tryConnect(proxy.port)).toBe('ECONNREFUSED');
    const ready = await fetch(`http://127.0.0.1:${proxy.adminPort}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'draining' });
    expect(upload.sent()).toBeLessThan(200); // all of this while the push was still going

    const response = await upload.done;
    expect(response.status).toBe(201);
    expect(response.headers['connection']).toBe('close');
    const { code, at } = await exit;
    expect(code).toBe(0);
    expect(at - signalledAt).toBeLessThan(30_000);
    expect(await blobInRegistry(registry, 'drain/big', blob.digest)).toEqual({
      status: 200,
      length: 200 * MIB,
    });
    const lines = proxy.logLines().map((l) => l['msg']);
    expect(lines).toContain('drained, exiting');
    expect(lines.some((m) => /cut/.test(String(m)))).toBe(false);
  });

  it('cuts a transfer that outlasts timeouts.drainMs at the deadline, logs it, exits 0', async () => {
    const { proxy, ca, blob, url } = await proxyWithUpload(
      { RTP_TIMEOUTS_DRAIN_MS: '1500' },
      'drain/cut',
      200,
    );
    const upload = putSlowly(url, ca, blob, 100); // 20 s: far beyond the deadline
    const outcome = upload.done.then(
      (r) => `answered ${r.status}`,
      (err: NodeJS.ErrnoException) => `cut: ${err.code}`,
    );
    await eventually('3 MiB of the push sent', () => upload.sent() >= 3, { timeoutMs: 10_000 });
    const exit = exited(proxy);
    const signalledAt = Date.now();
    proxy.child.kill('SIGTERM');
    const { code, at } = await exit;
    expect(code).toBe(0);
    expect(at - signalledAt).toBeGreaterThanOrEqual(1400);
    expect(at - signalledAt).toBeLessThan(1500 + 1500);
    expect(await outcome).toMatch(/^cut: (ECONNRESET|EPIPE)$/);
    expect(proxy.logLines()).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        cut: 1,
        msg: 'drain deadline passed: cut 1 request still in flight',
      }),
    );
    expect((await blobInRegistry(registry, 'drain/cut', blob.digest)).status).toBe(404);
  });

  it('answers the first request of a connection opened just before SIGTERM; closes a silent one after a short grace', async () => {
    const proxy = await startProxy({
      backend: registry.url,
      tlsDir: join(tmp.path, `tls-${proxies.length}`),
    });
    proxies.push(proxy);
    const ca = readCA(proxy);
    // Handshaken, request not sent yet: a client between connecting and asking.
    const fresh = await tlsConnect(proxy.port, ca);
    const silent = await tlsConnect(proxy.port, ca);
    const exit = exited(proxy);
    proxy.child.kill('SIGTERM');
    await waitForOutput(proxy.child, proxy.output, /"msg":"draining: 0 requests in flight/);
    const signalledAt = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    fresh.write('GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const answer = await readUntil(fresh, /\r\n\r\n\{\}$/);
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(await waitForClose(fresh, 2000)).toBeLessThan(2000);
    // The one that never asks does not hold the drain until the deadline (25 s).
    await waitForClose(silent, 5000);
    const { code, at } = await exit;
    expect(code).toBe(0);
    expect(at - signalledAt).toBeLessThan(4000);
  });

  it('drains a cluster (workers: 2): the push completes, then the primary and every worker exit', async () => {
    const { proxy, ca, blob, url } = await proxyWithUpload(
      { RTP_WORKERS: '2', RTP_TIMEOUTS_DRAIN_MS: '30000' },
      'drain/cluster',
      64,
    );
    await waitForOutput(proxy.child, proxy.output, /2 workers serve the public port/);
    const workers = childPids(proxy.child.pid!);
    expect(workers).toHaveLength(2);
    const upload = putSlowly(url, ca, blob, 40); // ≥ 2.5 s
    await eventually('10 MiB of the push sent', () => upload.sent() >= 10, { timeoutMs: 10_000 });
    const exit = exited(proxy);
    proxy.child.kill('SIGTERM');
    await waitForOutput(proxy.child, proxy.output, /"msg":"draining: 1 requests in flight/);
    await eventually(
      'the public port to refuse connections',
      async () => (await tryConnect(proxy.port)) === 'ECONNREFUSED',
    );
    expect(upload.sent()).toBeLessThan(64);
    expect((await upload.done).status).toBe(201);
    expect((await exit).code).toBe(0);
    await eventually('every worker to exit', () => workers.every((pid) => !isAlive(pid)));
    expect(await blobInRegistry(registry, 'drain/cluster', blob.digest)).toEqual({
      status: 200,
      length: 64 * MIB,
    });
  });
});

describe.each([
  ['one process', '1'],
  ['a cluster of two workers', '2'],
])('SIGHUP, %s', (_name, workers) => {
  const tmp = tempDir('lifecycle-hup');
  const registries: Registry[] = [];
  const file = join(tmp.path, 'proxy.yaml');
  let proxy: Proxy;
  let ca: string;
  const big = repeatedBlob(48);
  const small = Buffer.from('only on the second registry\n');
  const smallDigest = `sha256:${createHash('sha256').update(small).digest('hex')}`;

  beforeAll(async () => {
    for (const name of ['a', 'b']) {
      const dir = join(tmp.path, name);
      mkdirSync(dir);
      const registry = await createRegistry({ auth: { kind: 'none' } }, dir);
      await registry.start();
      registries.push(registry);
    }
    const [a, b] = registries as [Registry, Registry];
    await pushBlobDirect(a.url, 'hup/big', {
      data: Buffer.concat(Array(big.mib).fill(big.chunk)),
      digest: big.digest,
    });
    await pushBlobDirect(b.url, 'hup/small', { data: small, digest: smallDigest });
    writeFileSync(file, `backend: ${a.url}\n`);
    proxy = await startProxy({
      tlsDir: join(tmp.path, 'tls'),
      args: ['--config', file],
      env: { RTP_WORKERS: workers },
    });
    ca = readCA(proxy);
  });
  afterAll(async () => {
    await proxy?.stop();
    for (const r of registries) await r.stop();
    tmp.remove();
  });

  const reloads = () =>
    proxy.logLines().filter((l) => /^reloaded configuration/.test(String(l['msg']))).length;
  /** SIGHUP, and wait until the proxy says it reloaded. */
  const reload = async () => {
    const before = reloads();
    proxy.child.kill('SIGHUP');
    await eventually('the proxy to log the reload', () => reloads() > before, {
      timeoutMs: 20_000,
    });
  };
  /**
   * Runs eight `client`s while ten reloads follow one another, then `settleMs` more (the
   * last old workers drain meanwhile); each client loops while `more()` and `record`s
   * every outcome ('ok', a status, an error code). Resolves with the tally and their results.
   */
  const whileReloading = async <T>(
    settleMs: number,
    client: (more: () => boolean, record: (outcome: string) => void) => Promise<T>,
  ) => {
    const outcomes = new Map<string, number>();
    const record = (outcome: string) => outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    let running = true;
    const clients = Array.from({ length: 8 }, () => client(() => running, record));
    for (let i = 0; i < 10; i++) {
      await reload();
      await new Promise((r) => setTimeout(r, 100 + i * 20)); // land the next one at another moment
    }
    await new Promise((r) => setTimeout(r, settleMs));
    running = false;
    return { outcomes, results: await Promise.all(clients) };
  };
  const errorCode = (err: NodeJS.ErrnoException) => err.code ?? err.message;

  it('applies a changed backend while a download begun before it finishes byte-identical', async () => {
    const b = registries[1] as Registry;
    const pid = proxy.child.pid;
    const smallURL = `${proxy.origin}/v2/hup/small/blobs/${smallDigest}`;
    expect((await httpsGet(smallURL, { ca })).status).toBe(404); // not on registry a
    const before = childPids(proxy.child.pid!);
    const download = getSlowly(`${proxy.origin}/v2/hup/big/blobs/${big.digest}`, ca, 60); // ≥ 3 s
    await eventually('4 MiB of the download received', () => download.received() >= 4 * MIB, {
      timeoutMs: 10_000,
    });

    writeFileSync(file, `backend: ${b.url}\n`);
    proxy.child.kill('SIGHUP');
    await waitForOutput(
      proxy.child,
      proxy.output,
      /"msg":"reloaded configuration: backend changed"/,
    );
    const now = await httpsGet(smallURL, { ca });
    expect(now.status).toBe(200);
    expect(now.body).toBe(small.toString());
    expect(download.received()).toBeLessThan(big.mib * MIB); // still under way

    expect(await download.done).toEqual({ status: 200, digest: big.digest, bytes: big.mib * MIB });
    expect(proxy.child.pid).toBe(pid);
    if (workers === '2') {
      // A fresh set of workers took over; the old set drained and exited.
      expect(before).toHaveLength(2);
      await eventually('the old workers to exit', () => before.every((p) => !isAlive(p)));
      const after = childPids(pid!);
      expect(after).toHaveLength(2);
      expect(after.some((p) => before.includes(p))).toBe(false);
    }
  });

  it('serves a name added to tls.names from the next handshake on, under the same CA', async () => {
    const b = registries[1] as Registry;
    const asNewName = () =>
      httpsGet(`${proxy.origin}/v2/`, {
        ca,
        servername: 'registry.hup.test',
        timeoutMs: 5000,
      }).then(
        (res) => res.status,
        (err: NodeJS.ErrnoException) => err.code ?? err.message,
      );
    expect(await asNewName()).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    // The reason names what was missing. (Not "exactly one issue": tests that add network
    // namespaces change this machine's addresses, which the certificate also covers.)
    const issuedForName = () =>
      proxy
        .logLines()
        .some(
          (l) =>
            l['msg'] === 'issued a new server certificate' &&
            /registry\.hup\.test/.test(String(l['reason'])),
        );
    expect(issuedForName()).toBe(false);
    writeFileSync(file, `backend: ${b.url}\ntls:\n  names: [registry.hup.test]\n`);
    proxy.child.kill('SIGHUP');
    await waitForOutput(
      proxy.child,
      proxy.output,
      /"msg":"reloaded configuration: [^"]*tls\.names[^"]*changed"/,
    );
    expect(issuedForName()).toBe(true);
    expect(await asNewName()).toBe(200); // `ca` is the CA read at start: clients keep their trust
  });

  it('rejects an invalid configuration, logging every problem, and keeps serving the previous one', async () => {
    const pid = proxy.child.pid!;
    writeFileSync(
      file,
      ['backend: ftp://registry:21', 'timeouts:', '  drainMs: -1', 'colour: blue'].join('\n'),
    );
    proxy.child.kill('SIGHUP');
    await waitForOutput(proxy.child, proxy.output, /configuration reload rejected/);
    const rejected = proxy.logLines().find((l) => /reload rejected/.test(String(l['msg'])));
    expect(rejected).toMatchObject({ level: 'error' });
    const msg = String(rejected?.['msg']);
    expect(msg).toMatch(/has 3 problems/);
    expect(msg).toMatch(/- backend: must use http:\/\//);
    expect(msg).toMatch(/- timeouts\.drainMs: must be a whole number from 0 to 86400000, got -1/);
    expect(msg).toMatch(/- colour: unknown key/);
    expect(msg).toMatch(/still serving the previous configuration$/);

    const res = await httpsGet(`${proxy.origin}/v2/hup/small/blobs/${smallDigest}`, { ca });
    expect(res.status).toBe(200); // still registry b
    expect(isAlive(pid)).toBe(true);
    expect(proxy.child.pid).toBe(pid);
    expect(proxy.child.exitCode).toBeNull();
  });

  it('answers every request on new connections while reloads follow one another', async () => {
    const b = registries[1] as Registry;
    writeFileSync(file, `backend: ${b.url}\n`);
    const url = `${proxy.origin}/v2/hup/small/blobs/${smallDigest}`;
    await reload(); // registry b, whichever test ran before
    // Eight clients, each a new TLS connection per request, as pulls of many layers make.
    const { outcomes } = await whileReloading(2500, async (more, record) => {
      while (more()) {
        const outcome = await httpsGet(url, { ca, timeoutMs: 5000 }).then(
          (res) => (res.status === 200 && res.body === small.toString() ? 'ok' : `${res.status}`),
          errorCode,
        );
        record(outcome);
      }
    });
    expect(outcomes.get('ok')).toBeGreaterThan(100);
    expect([...outcomes.keys()]).toEqual(['ok']); // no reset, no hang, no error status
  });

  it('answers every request of keep-alive clients pushing back to back while reloads follow one another', async () => {
    const layer = Buffer.from('a layer pushed again and again\n');
    const digest = `sha256:${createHash('sha256').update(layer).digest('hex')}`;
    // Eight clients, each one keep-alive connection at a time, pushing as docker and skopeo
    // do: POST, then PUT with the bytes, at once. Neither Go nor Node retries a POST or a
    // PUT whose reused connection closes under it, so each such close is a failed push.
    const { outcomes, results } = await whileReloading(1000, async (more, record) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
      let connections = 0;
      const createConnection = agent.createConnection.bind(agent);
      agent.createConnection = (...args: Parameters<typeof createConnection>) => {
        connections++;
        return createConnection(...args);
      };
      let pushes = 0;
      const step = async () => {
        const post = await httpsGet(`${proxy.origin}/v2/hup/push/blobs/uploads/`, {
          ca,
          agent,
          method: 'POST',
          timeoutMs: 5000,
        });
        if (post.status !== 202) return `POST ${post.status}`;
        const put = new URL(String(post.headers.location));
        put.searchParams.set('digest', digest);
        const done = await httpsGet(put.href, {
          ca,
          agent,
          method: 'PUT',
          body: layer,
          headers: { 'content-type': 'application/octet-stream' },
          timeoutMs: 5000,
        });
        return done.status === 201 ? 'ok' : `PUT ${done.status}`;
      };
      while (more()) {
        record(await step().catch(errorCode));
        pushes++;
      }
      agent.destroy();
      return { pushes, connections };
    });
    expect([...outcomes.keys()]).toEqual(['ok']); // no reset, no hang, no error status
    for (const { pushes, connections } of results) {
      // At least one push per reload on average: the clients were busy while the reloads
      // came. (Not more: the window is ten reloads long, ~3 s, and a full suite on two busy
      // cores made 17-18 pushes per client in it where a quiet run makes 40+.)
      expect(pushes).toBeGreaterThanOrEqual(10);
      // The reloads did end the clients' connections (new ones were opened), and each
      // connection carried many requests: the case of a keep-alive connection in use.
      expect(connections).toBeGreaterThan(1);
      expect(connections).toBeLessThan(pushes);
    }
  });
});
