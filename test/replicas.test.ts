/**
 * Registry replicas behind the proxy (config `backend` as a list): three real
 * registries sharing one storage root and http.secret, each probed on its own. A
 * replica that dies or turns anonymous is taken out of rotation (logged once) and gets
 * no more requests; it comes back when it is healthy again. /readyz, the public health
 * path and `check` report each replica.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { httpsGet } from './helpers/https.js';
import { reloadCounter } from './helpers/reloads.js';
import {
  createRegistry,
  freePort,
  readCA,
  runCLI,
  startProxy,
  tempDir,
  type Proxy,
  type Registry,
  type RegistryAuth,
} from './helpers/processes.js';
import { buildOCIImage } from './helpers/oci.js';
import { blobOf, pushBlobDirect } from './helpers/registry-api.js';
import { skopeoPull, skopeoPush } from './helpers/skopeo.js';

const USER = 'rita';
const PASSWORD = 'replica-e2e-pa55';
const SECURED: RegistryAuth = { kind: 'htpasswd', user: USER, password: PASSWORD };
const REPO = 'rep/app';

interface ReplicaBody {
  status: string;
  verdict: string;
  reason: string;
  replicas?: Array<{ backend?: string; replica?: number; verdict: string; reason: string }>;
}

function getJSON(url: string): Promise<{ status: number; body: ReplicaBody }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as ReplicaBody }),
      );
    })
      .on('error', reject)
      .end();
  });
}

describe('registry replicas behind one proxy', () => {
  const tmp = tempDir('replicas');
  const blob = blobOf(Buffer.from('shared by every replica\n'));
  const replicas: Registry[] = [];
  const dirs = ['a', 'b', 'c'].map((name) => join(tmp.path, name));
  let proxy: Proxy;
  let ca = '';
  const auth = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

  /** Replica `i` with `registryAuth`, on its fixed port and the shared storage. */
  const replicaAt = (i: number, registryAuth: RegistryAuth, port?: number) =>
    createRegistry({ auth: registryAuth, ...(port ? { port } : {}) }, dirs[i] as string);

  /**
   * Replica `i` stopped (if it still runs) and replaced by a new registry with
   * `registryAuth` on its old address, the same storage and secret.
   */
  const replaceReplica = async (i: number, registryAuth: RegistryAuth) => {
    const old = replicas[i] as Registry;
    await old.stop(); // also reaps one that was killed
    const next = await replicaAt(i, registryAuth, old.port);
    await next.start();
    replicas[i] = next;
  };

  /** Requests for the blob each replica has answered so far (its access log lines). */
  const blobRequests = () =>
    replicas.map(
      (r) =>
        r
          .output()
          .split('\n')
          .filter((l) => l.includes('response completed') && l.includes(blob.digest)).length,
    );

  const readyz = () => getJSON(`http://127.0.0.1:${proxy.adminPort}/readyz`);
  /** The blob through `via` (the shared proxy unless another is named), trusting its CA. */
  const fetchBlob = (via: { proxy: Proxy; ca: string } = { proxy, ca }) =>
    httpsGet(`${via.proxy.origin}/v2/${REPO}/blobs/${blob.digest}`, {
      ca: via.ca,
      headers: { authorization: auth },
    });
  /** The steps of a push through the proxy, each answered as the client sees it. */
  const startUpload = (via: { proxy: Proxy; ca: string } = { proxy, ca }) =>
    httpsGet(`${via.proxy.origin}/v2/${REPO}/blobs/uploads/`, {
      ca: via.ca,
      method: 'POST',
      headers: { authorization: auth, 'content-length': '0' },
    });
  const patchUpload = (location: string, chunk: Buffer) =>
    httpsGet(location, {
      ca,
      method: 'PATCH',
      headers: { authorization: auth, 'content-length': String(chunk.length) },
      body: chunk,
    });
  const completeUpload = (location: string, digest: string) => {
    const done = new URL(location);
    done.searchParams.set('digest', digest);
    return httpsGet(done.toString(), {
      ca,
      method: 'PUT',
      headers: { authorization: auth, 'content-length': '0' },
    });
  };
  const verdictsOf = async () => (await readyz()).body.replicas?.map((r) => r.verdict);

  beforeAll(async () => {
    // Every replica stores into the same root (the registry docs' requirement), here
    // through a symlink from each one's own directory; http.secret is the same in all.
    mkdirSync(join(tmp.path, 'storage'));
    for (const dir of dirs) {
      mkdirSync(dir);
      symlinkSync(join(tmp.path, 'storage'), join(dir, 'storage'));
    }
    for (let i = 0; i < 3; i++) {
      const registry = await replicaAt(i, SECURED);
      await registry.start();
      replicas.push(registry);
    }
    // Pushed to one replica, readable through every one.
    const open = await replicaAt(0, { kind: 'none' }, await freePort());
    await open.start();
    await pushBlobDirect(open.url, REPO, blob);
    await open.stop();
    proxy = await startProxy({
      backend: replicas.map((r) => r.url).join(','),
      tlsDir: join(tmp.path, 'tls'),
      env: {
        RTP_HEALTH_INTERVAL: '1s',
        RTP_HEALTH_TIMEOUT: '500ms',
        RTP_HEALTH_PUBLIC_PATH: '/healthz',
      },
    });
    ca = readCA(proxy);
    await eventually('every replica healthy', async () =>
      (await verdictsOf())?.every((v) => v === 'healthy'),
    );
  });

  afterAll(async () => {
    await proxy?.stop();
    for (const r of replicas) await r.stop();
    tmp.remove();
  });

  it('reports each replica on /readyz, by number on the public health path, and in check', async () => {
    const ready = await readyz();
    expect(ready.status).toBe(200);
    expect(ready.body.replicas?.map((r) => r.backend)).toEqual(replicas.map((r) => r.url));
    const start = proxy.logLines().find((l) => String(l['msg']).startsWith('proxying '));
    expect(start?.['msg']).toContain(replicas.map((r) => r.url).join(', '));

    const open = await httpsGet(`${proxy.origin}/healthz`, { ca });
    expect(open.status).toBe(200);
    expect(open.body).not.toContain('127.0.0.1');
    const body = JSON.parse(open.body) as ReplicaBody;
    expect(body.replicas?.map((r) => r.replica)).toEqual([1, 2, 3]);

    const check = runCLI(['check'], {
      RTP_BACKEND: replicas.map((r) => r.url).join(','),
      RTP_TLS_DIR: proxy.tlsDir,
      RTP_LISTEN: `127.0.0.1:${proxy.port}`,
    });
    for (const r of replicas) expect(check.stdout).toMatch(new RegExp(`ok +backend ${r.url} `));
  });

  it('spreads requests over the replicas', async () => {
    const before = blobRequests();
    // In parallel, so that least-outstanding routing has something to balance.
    const answers = await Promise.all(Array.from({ length: 30 }, () => fetchBlob()));
    expect(answers.map((a) => a.status)).toEqual(Array(30).fill(200));
    // The registry logs a request as it ends; its line can reach us after the answer.
    const served = await eventually("all 30 in the replicas' logs", () => {
      const each = blobRequests().map((n, i) => n - (before[i] ?? 0));
      return each.reduce((a, b) => a + b, 0) === 30 && each;
    });
    expect(served.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
    // The proxy counts the same per replica, by its origin.
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
    for (const r of replicas) {
      expect(metrics).toMatch(new RegExp(`^rtp_replica_up\\{backend="${r.url}"\\} 1$`, 'm'));
      expect(metrics).toMatch(
        new RegExp(
          `^rtp_backend_requests_total\\{backend="${r.url}",status_class="2xx"\\} [1-9]`,
          'm',
        ),
      );
    }
  });

  it('keeps each upload on the replica that started it; the registry never sees the pin', async () => {
    const data = Buffer.from('a layer in two chunks, pushed through the proxy\n'.repeat(200));
    const pushed = blobOf(data);
    for (let push = 0; push < 3; push++) {
      const start = await startUpload();
      expect(start.status).toBe(202);
      let location = String(start.headers.location);
      const pin = /[?&]_rtp_replica=(\d)/.exec(location)?.[1];
      expect(pin).toBeDefined();
      const uuid = new URL(location).pathname.split('/').pop() as string;
      for (const chunk of [data.subarray(0, 4000), data.subarray(4000)]) {
        const patch = await patchUpload(location, chunk);
        expect(patch.status).toBe(202);
        location = String(patch.headers.location);
        expect(location).toContain(`_rtp_replica=${pin}`);
      }
      const put = await completeUpload(location, pushed.digest);
      expect(put.status).toBe(201);
      // Every step of this upload reached one replica: the one named in its URL (its
      // log line for the last step can reach us after the answer).
      const seen = await eventually("the upload's steps in the logs", () => {
        const each = replicas.map(
          (r) =>
            r
              .output()
              .split('\n')
              .filter((l) => l.includes('response completed') && l.includes(uuid)).length,
        );
        return (each[Number(pin)] ?? 0) >= 3 && each;
      });
      expect(seen.filter((n) => n > 0)).toHaveLength(1);
    }
    for (const r of replicas) expect(r.output()).not.toContain('_rtp_replica');
  });

  it('takes a dead replica out (logged once), sends it nothing, and puts it back when it returns; what met it went to another', async () => {
    const dead = replicas[1] as Registry;
    // Requests that meet a dead replica before a probe notices go to another. A proxy
    // whose next probe is an hour away is sure to send some there: on the shared one
    // (1 s probes), a loaded machine lets the probe win the race.
    const unprobed = await startProxy({
      backend: replicas.map((r) => r.url).join(','),
      tlsDir: join(tmp.path, 'tls-unprobed'),
      env: { RTP_HEALTH_INTERVAL: '1h', RTP_HEALTH_TIMEOUT: '5s' },
    });
    try {
      const via = { proxy: unprobed, ca: readCA(unprobed) };
      await eventually('every replica healthy at the first probe', async () => {
        const body = (await getJSON(`http://127.0.0.1:${unprobed.adminPort}/readyz`)).body;
        return body.replicas?.every((r) => r.verdict === 'healthy');
      });
      await dead.stop();
      // Pushes' first steps (one after another, so the replicas take turns, and one of
      // three meets the dead one), then pulls.
      for (let i = 0; i < 3; i++) {
        const start = await startUpload(via);
        expect(start.status).toBe(202);
        expect(String(start.headers.location)).not.toContain('_rtp_replica=1');
      }
      const meanwhile = await Promise.all(Array.from({ length: 12 }, () => fetchBlob(via)));
      expect(meanwhile.map((a) => a.status)).toEqual(Array(12).fill(200));
      const retried = unprobed
        .logLines()
        .filter((l) => String(l['msg']).endsWith('sent to another replica'));
      expect(retried.length).toBeGreaterThan(0);
      expect(retried.every((l) => l['backend'] === new URL(dead.url).origin)).toBe(true);
      // Each is counted against the replica that failed it, though the client never saw it.
      const metrics = await (await fetch(`http://127.0.0.1:${unprobed.adminPort}/metrics`)).text();
      const refused = new RegExp(
        `^rtp_upstream_errors_total\\{backend="${new URL(dead.url).origin}",kind="refused"\\} (\\d+)$`,
        'm',
      ).exec(metrics);
      expect(Number(refused?.[1])).toBe(retried.length);
    } finally {
      await unprobed.stop();
    }
    // The shared proxy's probe takes it out.
    await eventually('replica 2 out of rotation', async () => (await verdictsOf())?.[1] === 'down');
    const ready = await readyz();
    expect(ready.status).toBe(200);
    expect(ready.body.reason).toMatch(/^healthy: 2 of 3 replicas in rotation; out: backend down/);

    for (let i = 0; i < 20; i++) expect((await fetchBlob()).status).toBe(200);
    // The proxy's log line and its /readyz answer come on two pipes: either can arrive first.
    await eventually('taken out, in the log', () =>
      proxy.logLines().some((l) => String(l['msg']).endsWith('replica taken out of rotation')),
    );
    const takenOut = proxy
      .logLines()
      .filter((l) => String(l['msg']).endsWith('replica taken out of rotation'));
    expect(takenOut.map((l) => l['backend'])).toEqual([new URL(dead.url).origin]);

    // Back, secured as before, on its old address.
    await replaceReplica(1, SECURED);
    await eventually('replica 2 back', async () => (await verdictsOf())?.[1] === 'healthy');
    await eventually('back, in the log', () =>
      proxy.logLines().some((l) => String(l['msg']).endsWith('replica back in rotation')),
    );
    expect(
      proxy.logLines().filter((l) => String(l['msg']).endsWith('replica back in rotation')),
    ).toHaveLength(1);
    const answers = await Promise.all(Array.from({ length: 30 }, () => fetchBlob()));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    // The registry logs a request as it ends; its line can reach us after the answer.
    await eventually('replica 2 answering again', async () => (blobRequests()[1] ?? 0) > 0);
  });

  it('a loop of skopeo pulls loses no pull while a replica is killed; its traffic goes to 0', async () => {
    const certDir = join(tmp.path, 'skopeo-certs');
    mkdirSync(certDir);
    mkdirSync(join(tmp.path, 'pulls'));
    writeFileSync(join(certDir, 'ca.crt'), ca);
    const image = buildOCIImage(join(tmp.path, 'loop-image'), 'loop', [200_000, 200_000, 200_000]);
    const ref = `127.0.0.1:${proxy.port}/${REPO}:loop`;
    const creds = `${USER}:${PASSWORD}`;
    const push = await skopeoPush(image.ref, ref, certDir, creds);
    expect(push.stderr).toBe('');
    expect(push.code).toBe(0);

    let pulls = 0;
    const pull = () =>
      // A fresh layout each time: every blob is fetched.
      skopeoPull(ref, `oci:${join(tmp.path, 'pulls', String(++pulls))}:loop`, certDir, creds);
    const killed = replicas[0] as Registry;
    const origin = new URL(killed.url).origin;
    const servedByKilled = async () => {
      const text = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
      const counts = [
        ...text.matchAll(
          new RegExp(`^rtp_backend_requests_total\\{backend="${origin}",[^}]*\\} (\\d+)`, 'gm'),
        ),
      ];
      return counts.reduce((sum, m) => sum + Number(m[1]), 0);
    };
    const failures: string[] = [];
    let phase: 'before' | 'out' | 'done' = 'before';
    let pullsSinceOut = 0;
    let killedAtPull = 0;
    // The kill lands between pulls: a transfer in flight on a replica that dies is cut
    // (the README says so; docker retries a layer download, skopeo does not). What
    // this asserts is that every request after the death, on the pool's idle
    // connections to it or new ones, ends on another replica.
    let gate: { opened: Promise<void>; open: () => void; waiting: number } | undefined;
    // Two lanes of pulls, one after another in each, until six more have finished after
    // the killed replica went out of rotation.
    const lane = async () => {
      let mine = 0;
      while (phase !== 'done') {
        if (gate) {
          gate.waiting += 1;
          await gate.opened;
        }
        const result = await pull();
        mine += 1;
        if (result.code !== 0) failures.push(result.stderr);
        if (phase === 'out' && ++pullsSinceOut >= 6) phase = 'done';
        if (mine === 2 && killedAtPull === 0 && !gate) {
          let open = () => {};
          const opened = new Promise<void>((resolve) => (open = resolve));
          gate = { opened, open, waiting: 0 };
        }
      }
    };
    const lanes = Promise.all([lane(), lane()]);
    await eventually('both lanes between pulls', () => gate?.waiting === 2, { timeoutMs: 60_000 });
    killedAtPull = pulls;
    process.kill(killed.pid() as number, 'SIGKILL');
    gate?.open();
    await eventually(
      'the killed replica out of rotation',
      async () => (await verdictsOf())?.[0] === 'down',
      { timeoutMs: 20_000 },
    );
    const servedWhenOut = await servedByKilled();
    const aboutIt = () => proxy.logLines().filter((l) => l['backend'] === origin);
    const linesWhenOut = aboutIt();
    const retried = linesWhenOut.filter((l) => String(l['msg']).endsWith('another replica'));
    phase = 'out';
    await lanes;
    console.log(
      `skopeo loop: ${pulls} pulls, replica 1 killed after pull ${killedAtPull}; ` +
        `${retried.length} requests that met it were sent to another replica`,
    );
    expect(failures).toEqual([]);
    expect(pulls).toBeGreaterThanOrEqual(killedAtPull + 6);
    // Once out, the proxy sends it nothing, not even a first try that is then retried.
    expect(await servedByKilled()).toBe(servedWhenOut);
    expect(aboutIt().length).toBe(linesWhenOut.length);
    // A killed registry closes every idle connection at once: that is no idle timeout,
    // and the proxy does not warn as if it were one.
    expect(aboutIt().filter((l) => String(l['msg']).includes('keep-alive timeout'))).toEqual([]);

    await replaceReplica(0, SECURED);
    await eventually('replica 1 back', async () => (await verdictsOf())?.[0] === 'healthy');
  });

  it('takes out a replica whose auth was turned off (open to anyone), and says so', async () => {
    const origin = new URL((replicas[2] as Registry).url).origin;
    const linesBefore = proxy.logLines().length;
    await replaceReplica(2, { kind: 'none' });
    await eventually('replica 3 open', async () => (await verdictsOf())?.[2] === 'open');
    await eventually('why, in the log', () =>
      proxy
        .logLines()
        .slice(linesBefore)
        .some((l) => String(l['msg']).startsWith('backend is open to anonymous pulls')),
    );
    // Out once (while it restarts it may first be down, then open), and why.
    const lines = proxy
      .logLines()
      .slice(linesBefore)
      .filter((l) => l['backend'] === origin);
    const messages = lines.map((l) => String(l['msg']));
    expect(messages.filter((m) => m.endsWith('replica taken out of rotation'))).toHaveLength(1);
    expect(messages.some((m) => m.startsWith('backend is open to anonymous pulls'))).toBe(true);

    const before = blobRequests()[2] ?? 0;
    for (let i = 0; i < 20; i++) expect((await fetchBlob()).status).toBe(200);
    expect(blobRequests()[2]).toBe(before);
    expect((await readyz()).status).toBe(200);
  });

  it('SIGHUP applies a new list of replicas', async () => {
    const config = join(tmp.path, 'reload.yml');
    const list = (rs: readonly Registry[]) => `backend: [${rs.map((r) => r.url).join(', ')}]\n`;
    writeFileSync(
      config,
      list(replicas.slice(0, 1)) + 'health:\n  interval: 1s\n  timeout: 500ms\n',
    );
    const second = await startProxy({
      args: ['--config', config],
      tlsDir: join(tmp.path, 'tls-reload'),
    });
    try {
      const ready = () => getJSON(`http://127.0.0.1:${second.adminPort}/readyz`);
      expect((await ready()).body.replicas).toBeUndefined(); // one backend: its own verdict
      const reloads = reloadCounter(second);
      writeFileSync(
        config,
        list(replicas.slice(0, 2)) + 'health:\n  interval: 1s\n  timeout: 500ms\n',
      );
      await reloads.reload();
      const after = await eventually('two replicas on /readyz', async () => {
        const r = await ready();
        return r.body.replicas?.length === 2 ? r : undefined;
      });
      expect(after.body.replicas?.map((r) => r.backend)).toEqual(
        replicas.slice(0, 2).map((r) => r.url),
      );
      await eventually('both healthy', async () =>
        (await ready()).body.replicas?.every((r) => r.verdict === 'healthy'),
      );
      const before = blobRequests()[1] ?? 0;
      const secondCA = readCA(second);
      const answers = await Promise.all(
        Array.from({ length: 10 }, () =>
          httpsGet(`${second.origin}/v2/${REPO}/blobs/${blob.digest}`, {
            ca: secondCA,
            headers: { authorization: auth },
          }),
        ),
      );
      expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
      // The replica added by the reload serves (its log line can come after the answer).
      await eventually('the added replica serving', () => (blobRequests()[1] ?? 0) > before);
    } finally {
      await second.stop();
    }
  });

  it('in cluster mode (workers: 2), every worker routes on its own probes; uploads stay pinned across workers', async () => {
    // Replica 3 is still open from the test before: out of rotation from the start.
    const open = new URL((replicas[2] as Registry).url).origin;
    const cluster = await startProxy({
      backend: replicas.map((r) => r.url).join(','),
      tlsDir: join(tmp.path, 'tls-cluster'),
      env: { RTP_WORKERS: '2', RTP_HEALTH_INTERVAL: '1s', RTP_HEALTH_TIMEOUT: '500ms' },
    });
    try {
      const clusterCA = readCA(cluster);
      const ready = () => getJSON(`http://127.0.0.1:${cluster.adminPort}/readyz`);
      await eventually('replicas 1 and 2 healthy, 3 open', async () => {
        const verdicts = (await ready()).body.replicas?.map((r) => r.verdict);
        return verdicts?.join() === 'healthy,healthy,open';
      });
      const get = () =>
        httpsGet(`${cluster.origin}/v2/${REPO}/blobs/${blob.digest}`, {
          ca: clusterCA,
          headers: { authorization: auth },
        });
      const before = blobRequests();
      const answers = await Promise.all(Array.from({ length: 30 }, () => get()));
      expect(answers.map((a) => a.status)).toEqual(Array(30).fill(200));
      // The registries' log lines can reach us after the answers.
      const served = await eventually("all 30 in the replicas' logs", () => {
        const each = blobRequests().map((n, i) => n - (before[i] ?? 0));
        return each.reduce((a, b) => a + b, 0) === 30 && each;
      });
      expect(served[0]).toBeGreaterThan(0);
      expect(served[1]).toBeGreaterThan(0);
      expect(served[2]).toBe(0);
      // Logged once, by the primary (the workers route on their own probes, silently).
      const outLines = cluster
        .logLines()
        .filter((l) => l['backend'] === open && String(l['msg']).includes('out of rotation'));
      expect(outLines).toHaveLength(1);

      // An upload whose steps each come on a new connection, so to either worker: every
      // step reaches the replica that started it (the pin is in the URL, not in a worker).
      const data = Buffer.from('pushed through a cluster\n'.repeat(500));
      const pushed = blobOf(data);
      const step = (url: string, method: string, body?: Buffer) =>
        httpsGet(url, {
          ca: clusterCA,
          method,
          headers: { authorization: auth, 'content-length': String(body?.length ?? 0) },
          ...(body ? { body } : {}),
        });
      const start = await step(`${cluster.origin}/v2/${REPO}/blobs/uploads/`, 'POST');
      expect(start.status).toBe(202);
      let location = String(start.headers.location);
      const pin = Number(/[?&]_rtp_replica=(\d)/.exec(location)?.[1]);
      const uuid = new URL(location).pathname.split('/').pop() as string;
      for (const chunk of [data.subarray(0, 5000), data.subarray(5000)]) {
        const patch = await step(location, 'PATCH', chunk);
        expect(patch.status).toBe(202);
        location = String(patch.headers.location);
      }
      const done = new URL(location);
      done.searchParams.set('digest', pushed.digest);
      expect((await step(done.toString(), 'PUT')).status).toBe(201);
      const seen = replicas.map(
        (r) =>
          r
            .output()
            .split('\n')
            .filter((l) => l.includes('response completed') && l.includes(uuid)).length,
      );
      expect(seen[pin]).toBe(3); // the PATCHes and the PUT (the POST named no upload yet)
      expect(seen.filter((n) => n > 0)).toHaveLength(1);
      const workers = new Set(
        cluster
          .logLines()
          .filter((l) => l['msg'] === 'request' && String(l['path']).includes(uuid))
          .map((l) => l['worker']),
      );
      expect(workers.size).toBe(2); // the steps were served by both workers
    } finally {
      await cluster.stop();
    }
  });

  it('puts the anonymous replica back once it is restarted secured', async () => {
    const origin = new URL((replicas[2] as Registry).url).origin;
    const linesBefore = proxy.logLines().length;
    await replaceReplica(2, SECURED);
    await eventually('replica 3 healthy', async () => (await verdictsOf())?.[2] === 'healthy');
    await eventually('back, in the log', () =>
      proxy
        .logLines()
        .slice(linesBefore)
        .some((l) => l['backend'] === origin && String(l['msg']).endsWith('back in rotation')),
    );
    const back = proxy
      .logLines()
      .slice(linesBefore)
      .filter((l) => l['backend'] === origin && String(l['msg']).endsWith('back in rotation'));
    expect(back).toHaveLength(1);
    const before = blobRequests()[2] ?? 0;
    const answers = await Promise.all(Array.from({ length: 30 }, () => fetchBlob()));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    await eventually('replica 3 serving again', () => (blobRequests()[2] ?? 0) > before);
  });

  it('a push whose replica dies mid-upload fails with a registry-style error (never silently); the next push succeeds', async () => {
    const data = Buffer.alloc(256 * 1024, 7);
    const pushed = blobOf(data);
    const upload = async () => {
      const start = await startUpload();
      expect(start.status).toBe(202);
      return String(start.headers.location);
    };
    const patch = patchUpload;

    const location = await upload();
    const pin = Number(/[?&]_rtp_replica=(\d)/.exec(location)?.[1]);
    const first = await patch(location, data.subarray(0, 128 * 1024));
    expect(first.status).toBe(202);
    const dying = replicas[pin] as Registry;
    await dying.stop();
    // Almost always before the next probe (1 s): the step goes to its own replica, which is
    // gone, and the client gets a registry-style error it can act on. If the probe came
    // first, the replica is out and the step goes to another, which shares the storage
    // and secret and so continues the upload (the same registry's state): never a silent loss.
    const broken = await patch(String(first.headers.location), data.subarray(128 * 1024));
    if (broken.status === 202) {
      expect(String(broken.headers.location)).not.toContain(`_rtp_replica=${pin}`);
    } else {
      expect(broken.status).toBe(502);
      expect(broken.headers['content-type']).toMatch(/^application\/json/);
      const body = JSON.parse(broken.body) as { errors: Array<{ code: string }> };
      expect(body.errors[0]?.code).toBe('UNAVAILABLE');
    }

    await eventually('the dead replica out', async () => (await verdictsOf())?.[pin] === 'down');
    const again = await upload();
    expect(again).not.toContain(`_rtp_replica=${pin}`);
    const whole = await patch(again, data);
    expect(whole.status).toBe(202);
    const put = await completeUpload(String(whole.headers.location), pushed.digest);
    expect(put.status).toBe(201);
    const pulled = await httpsGet(`${proxy.origin}/v2/${REPO}/blobs/${pushed.digest}`, {
      ca,
      headers: { authorization: auth },
    });
    expect(pulled.status).toBe(200);
    expect(pulled.body.length).toBe(data.length);
  });
});
