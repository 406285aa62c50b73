/**
 * The registry's rule for health checks, against the real registry: 401 with a
 * challenge is healthy, 200 to anonymous users is not (an auth misconfiguration
 * opened the registry), a dead registry is not — on the admin /readyz, on the
 * public health path, and in `registry-tls-proxy check`.
 */
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { httpsGet } from './helpers/https.js';
import { runCLI, waitForOutput, type Proxy } from './helpers/processes.js';

interface Readiness {
  status: number;
  body: { status: string; verdict: string; reason: string; checkedAt: string };
}

function readyz(proxy: Proxy): Promise<Readiness> {
  return new Promise((resolve, reject) => {
    request(`http://127.0.0.1:${proxy.adminPort}/readyz`, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Readiness['body'] }),
      );
    })
      .on('error', reject)
      .end();
  });
}

/** Polls /readyz until `until` holds (verdicts change at the next probe, every second here). */
function readyzUntil(
  proxy: Proxy,
  what: string,
  until: (r: Readiness) => boolean,
): Promise<Readiness> {
  return eventually(
    `/readyz to say ${what}`,
    async () => {
      const r = await readyz(proxy);
      if (!until(r)) throw new Error(JSON.stringify(r)); // the timeout names the last answer
      return r;
    },
    { timeoutMs: 15_000, intervalMs: 200 },
  );
}

/**
 * Waits until /readyz shows `count` probes after this call (each probe stamps its own
 * checkedAt); resolves with the verdict of each.
 */
async function nextProbes(proxy: Proxy, count: number): Promise<string[]> {
  const since = (await readyz(proxy)).body.checkedAt;
  const verdicts = new Map<string, string>();
  await eventually(
    `${count} more probes of the backend`,
    async () => {
      const { body } = await readyz(proxy);
      if (body.checkedAt !== since) verdicts.set(body.checkedAt, body.verdict);
      return verdicts.size >= count;
    },
    { timeoutMs: 15_000, intervalMs: 200 },
  );
  return [...verdicts.values()];
}

const FAST_PROBES = { RTP_HEALTH_INTERVAL: '1s', RTP_HEALTH_TIMEOUT: '500ms' };

describe('a secured registry (htpasswd)', () => {
  const env = useRegistryBehindProxy(
    'health-secured',
    { auth: { kind: 'htpasswd', user: 'hana', password: 'health-pa55' } },
    FAST_PROBES,
  );

  it('is ready: /readyz 200 with the reason, the public path 200, /v2/ through the proxy 401', async () => {
    const r = await readyzUntil(
      env.proxy,
      '200 with a verdict',
      (x) => x.body.verdict !== undefined && x.status === 200,
    );
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'ok', verdict: 'healthy' });
    expect(r.body.reason).toMatch(/requires authentication \(401 with a Basic challenge\)/);
    expect(Date.now() - Date.parse(r.body.checkedAt)).toBeLessThan(5_000);

    const pub = await httpsGet(`${env.proxy.origin}/_proxy/health`, { ca: env.ca });
    expect(pub.status).toBe(200);
    expect(JSON.parse(pub.body)).toMatchObject({ verdict: 'healthy' });
    expect(pub.body).not.toContain(String(env.registry.port));
    const v2 = await httpsGet(`${env.proxy.origin}/v2/`, { ca: env.ca });
    expect(v2.status).toBe(401);
    expect(v2.headers['www-authenticate']).toMatch(/^Basic /);
  });

  it('`check` reports it healthy and exits 0', () => {
    const check = runCLI(['check', '--url', env.proxy.origin], {
      RTP_TLS_DIR: env.proxy.tlsDir,
      RTP_BACKEND: env.registry.url,
    });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toMatch(/^ok +CA +/m);
    expect(check.stdout).toMatch(/^ok +server certificate +serial /m);
    expect(check.stdout).toMatch(/^ok +backend .*401 with a Basic challenge/m);
    expect(check.stdout).toMatch(
      /^ok +proxy https:\/\/127\.0\.0\.1:\d+ +TLS verified.*answered 401/m,
    );
    expect(check.stdout).toMatch(/^healthy: 0 problem\(s\)/m);
  });

  it('goes not ready when the registry dies, and ready again when it returns; each transition logged once', async () => {
    await env.registry.stop();
    const down = await readyzUntil(env.proxy, '503', (x) => x.status === 503);
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({ status: 'unavailable', verdict: 'down' });
    expect(down.body.reason).toMatch(/connection refused/);
    // The admin listener names the backend; the public port tells anyone only that it is down.
    expect(down.body.reason).toContain(`${env.registry.url}/v2/`);
    const pub = await httpsGet(`${env.proxy.origin}/_proxy/health`, { ca: env.ca });
    expect(pub.status).toBe(503);
    const publicBody = JSON.parse(pub.body) as { verdict: string; reason: string };
    expect(publicBody).toMatchObject({ status: 'unavailable', verdict: 'down' });
    expect(publicBody.reason).toMatch(/^backend down: \/v2\/: connection refused/);
    expect(pub.body).not.toContain(String(env.registry.port));
    // A client's request meanwhile: 502, counted as a refused upstream connection…
    const refused = await httpsGet(`${env.proxy.origin}/v2/`, { ca: env.ca });
    expect(refused.status).toBe(502);
    // …and its log line counts the error body the proxy sent (it said bytesOut: 0).
    const logged = await eventually('the log line of the 502', () =>
      env.proxy.logLines().find((l) => l['msg'] === 'request' && l['status'] === 502),
    );
    expect(logged['bytesOut']).toBe(Buffer.byteLength(refused.body));
    expect(Buffer.byteLength(refused.body)).toBeGreaterThan(0);
    const metrics = await (await fetch(`http://127.0.0.1:${env.proxy.adminPort}/metrics`)).text();
    const origin = new URL(env.registry.url).origin;
    expect(metrics).toMatch(
      new RegExp(
        `^rtp_upstream_errors_total\\{backend="${origin}",kind="refused"\\} [1-9]\\d*$`,
        'm',
      ),
    );
    expect(metrics).toMatch(/^rtp_backend_up 0$/m);
    expect(metrics).toMatch(/^rtp_backend_verdict\{verdict="down"\} 1$/m);

    const check = runCLI(['check', '--url', env.proxy.origin], {
      RTP_TLS_DIR: env.proxy.tlsDir,
      RTP_BACKEND: env.registry.url,
    });
    expect(check.status).toBe(1);
    expect(check.stdout).toMatch(/^fail +backend .*connection refused/m);
    expect(check.stdout).toMatch(/^UNHEALTHY/m);

    // Several probes find it down meanwhile: still one line about it.
    expect(await nextProbes(env.proxy, 3)).toEqual(['down', 'down', 'down']);
    await env.registry.start();
    const up = await readyzUntil(env.proxy, '200', (x) => x.status === 200);
    expect(up.body.verdict).toBe('healthy');
    await waitForOutput(
      env.proxy.child,
      env.proxy.output,
      /"verdict":"healthy"[\s\S]*"verdict":"down"[\s\S]*"verdict":"healthy"/,
    );
    const transitions = env.proxy.logLines().filter((l) => l['verdict'] !== undefined);
    expect(transitions.map((l) => l['verdict'])).toEqual(['healthy', 'down', 'healthy']);
    expect(transitions[1]).toMatchObject({ level: 'warn' });
  });
});

describe('a registry open to anonymous users', () => {
  const env = useRegistryBehindProxy('health-open', { auth: { kind: 'none' } }, FAST_PROBES);

  it('is not ready, with the reason and what to do, said once', async () => {
    const r = await readyzUntil(env.proxy, 'open', (x) => x.body.verdict === 'open');
    expect(r.status).toBe(503);
    expect(r.body.reason).toMatch(/open to anonymous pulls and pushes/);
    expect(r.body.reason).toMatch(/health\.allowAnonymous/);
    const pub = await httpsGet(`${env.proxy.origin}/_proxy/health`, { ca: env.ca });
    expect(pub.status).toBe(503);
    // /v2/ through the proxy: 200, which a balancer expecting 401 counts as down.
    expect((await httpsGet(`${env.proxy.origin}/v2/`, { ca: env.ca })).status).toBe(200);

    expect(await nextProbes(env.proxy, 2)).toEqual(['open', 'open']); // each finds it open again
    const said = env.proxy
      .logLines()
      .filter((l) => String(l['msg']).startsWith('backend is open to anonymous'));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ level: 'warn', verdict: 'open' });
  });

  it('`check` exits 1 naming the problem', () => {
    const check = runCLI(['check', '--url', env.proxy.origin], {
      RTP_TLS_DIR: env.proxy.tlsDir,
      RTP_BACKEND: env.registry.url,
    });
    expect(check.status).toBe(1);
    expect(check.stdout).toMatch(/^fail +backend .*open to anonymous/m);
    expect(check.stdout).toMatch(/^fail +proxy .*answered 200 \(open to anonymous users\)/m);
  });

  it('`check` against a port where no proxy runs says so', () => {
    const check = runCLI(['check', '--url', 'https://127.0.0.1:9'], {
      RTP_TLS_DIR: env.proxy.tlsDir,
      RTP_BACKEND: env.registry.url,
      RTP_HEALTH_ALLOW_ANONYMOUS: 'true',
    });
    expect(check.status).toBe(1);
    expect(check.stdout).toMatch(/^ok +backend .*allowed by health\.allowAnonymous/m);
    expect(check.stdout).toMatch(/^fail +proxy https:\/\/127\.0\.0\.1:9 +nothing listens there/m);
  });
});

describe('an anonymous registry allowed by health.allowAnonymous', () => {
  const env = useRegistryBehindProxy(
    'health-allowed',
    { auth: { kind: 'none' } },
    { ...FAST_PROBES, RTP_HEALTH_ALLOW_ANONYMOUS: 'true' },
  );

  it('is ready', async () => {
    const r = await readyzUntil(env.proxy, '200', (x) => x.status === 200);
    expect(r.status).toBe(200);
    expect(r.body.reason).toMatch(/allowed by health\.allowAnonymous/);
  });
});

describe('`check` with mutual TLS on', () => {
  const env = useRegistryBehindProxy(
    'health-mtls',
    { auth: { kind: 'htpasswd', user: 'hana', password: 'health-pa55' } },
    { ...FAST_PROBES, RTP_TLS_CLIENT_AUTH: 'true' },
  );

  it('presents a short-lived client certificate from the CA and passes', () => {
    const check = runCLI(['check', '--url', env.proxy.origin], {
      RTP_TLS_DIR: env.proxy.tlsDir,
      RTP_BACKEND: env.registry.url,
      RTP_TLS_CLIENT_AUTH: 'true',
    });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toMatch(/^ok +proxy .*answered 401/m);
    expect(env.proxy.logLines().some((l) => l['reason'] === 'client_cert_missing')).toBe(false);
  });
});
