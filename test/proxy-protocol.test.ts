/**
 * PROXY protocol behind a real haproxy in `mode tcp` (TLS passes through to the proxy,
 * so haproxy cannot add X-Forwarded-For). The client runs on a test host in a network
 * namespace (198.18.0.x), haproxy and the proxy on loopback: the client's address
 * differs from the balancer's, and the registry (a recording backend, then the real
 * registry's access log) and the proxy's own logs must name the client, not haproxy.
 * haproxy's health checks send their own header (check-send-proxy: LOCAL in v2) and
 * must keep the proxy UP with proxyProtocol.required on. A spoofed header from an
 * untrusted address is refused. Hostile headers: proxy-protocol-hostile.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { httpsGet } from './helpers/https.js';
import { createTestHost, type TestHost } from './helpers/netns.js';
import { createRegistry, readCA, runCLI, tempDir, type Registry } from './helpers/processes.js';
import {
  HEADERS_MS,
  TRUSTED,
  UNTRUSTED,
  handshakeFailureLines,
  headerValues,
  refusalLine,
  refusals,
  refusedCount,
  sendRaw,
  started,
  useHAProxyFront,
} from './helpers/proxy-protocol.js';
import { startRecordingBackend, type RecordingBackend } from './helpers/recording-backend.js';

const VARIANTS = [
  { name: 'send-proxy-v2', serverOptions: 'send-proxy-v2 check-send-proxy', workers: '1' },
  // v1 with two workers: the header is read in whichever worker the primary hands the connection.
  { name: 'send-proxy (v1)', serverOptions: 'send-proxy check-send-proxy', workers: '2' },
] as const;

describe.each(VARIANTS)('PROXY protocol from haproxy with $name', (variant) => {
  let backend: RecordingBackend | undefined;
  const front = useHAProxyFront('pp', {
    startBackend: async () => {
      backend = await startRecordingBackend();
      return { url: `http://127.0.0.1:${backend.port}`, stop: () => backend?.close() };
    },
    env: {
      RTP_WORKERS: variant.workers,
      RTP_HEALTH_INTERVAL: '1h',
      RTP_LOG_LEVEL: 'debug',
      RTP_PROXY_PROTOCOL_TRUSTED_FROM: `${TRUSTED}/32`,
      RTP_TIMEOUTS_HEADERS_MS: String(HEADERS_MS),
    },
    checks: ['option httpchk GET /v2/', 'http-check expect status 200'],
    serverOptions: variant.serverOptions,
  });
  const curlFromTestHost = (path: string, trust = true) => front.curl(path, { trust });

  it("keeps the proxy UP through haproxy's health checks, which send their own header", async () => {
    const states = await front.haproxy.waitForServers(
      (s) => s.status === 'UP' && s.checkStatus === 'L7OK' && s.checkCode === 200,
      'UP with 200',
      20_000,
    );
    expect(states.size).toBe(1);
    // Each check is a TLS connection with a header: none was refused as missing.
    expect(refusals(front.proxy)).toEqual([]);
  });

  it("gives the registry and the proxy's log the client's address, not haproxy's", async () => {
    const path = `/v2/pp/${variant.workers}/manifests/v1`;
    const curl = await curlFromTestHost(path);
    expect(curl.stdout, curl.stderr).toBe('200');

    const seen = started(backend).requests.filter((r) => r.url === path);
    expect(seen).toHaveLength(1);
    const forwardedFor = headerValues(seen[0]?.rawHeaders ?? [], 'x-forwarded-for');
    expect(forwardedFor).toEqual([front.host.address]);
    expect(headerValues(seen[0]?.rawHeaders ?? [], 'x-real-ip')).toEqual([front.host.address]);

    const logged = await eventually('the request log line', () =>
      front.proxy.logLines().find((l) => l['msg'] === 'request' && l['path'] === path),
    );
    expect(logged['client']).toBe(front.host.address);
  });

  it('names the client in the TLS-failure log line of a client that does not trust the CA', async () => {
    const before = handshakeFailureLines(front.proxy).length;
    const curl = await curlFromTestHost('/v2/', false);
    expect(curl.code).not.toBe(0);
    expect(curl.stderr).toMatch(/certificate/i);
    const failures = await eventually('the TLS failure line', () => {
      const lines = handshakeFailureLines(front.proxy);
      return lines.length > before && lines.slice(before);
    });
    expect(failures.map((l) => l['client'])).toEqual([front.host.address]);
  });

  it('refuses a header from an address outside trustedFrom, and logs the sender', async () => {
    const spoof = Buffer.from(`PROXY TCP4 203.0.113.9 127.0.0.1 1234 ${front.proxy.port}\r\n`);
    // haproxy's own health checks (GET /v2/ every 2 s) reach the backend meanwhile: not counted.
    const reached = () => started(backend).requests.filter((r) => r.url !== '/v2/').length;
    const before = reached();
    const result = await sendRaw(front.proxy.port, [spoof], { from: UNTRUSTED });
    expect(result.received).toBe('');
    expect(result.closed).toBe(true);
    const line = await refusalLine(front.proxy, 'untrusted');
    expect(line['peer']).toBe(UNTRUSTED);
    expect(String(line['msg'])).toMatch(/proxyProtocol\.trustedFrom/);
    expect(reached()).toBe(before);
    expect(await refusedCount(front.proxy, 'untrusted')).toBeGreaterThanOrEqual(1);
  });

  it('refuses a connection from the trusted peer that sends no header (required: true)', async () => {
    // Straight to the proxy from haproxy's address, TLS first: what a balancer without send-proxy sends.
    await expect(
      httpsGet(`${front.proxy.origin}/v2/`, { ca: readCA(front.proxy), timeoutMs: 5000 }),
    ).rejects.toThrow(/socket hang up|ECONNRESET|disconnected before secure TLS connection/);
    const line = await refusalLine(front.proxy, 'missing');
    expect(line['peer']).toBe(TRUSTED);
  });
});

/**
 * The README's recipe as written: haproxy checking GET /v2/ for 401 with send-proxy-v2
 * and check-send-proxy, in front of the real registry with htpasswd; the registry's own
 * access log names the client on the test host.
 */
describe("the README's haproxy recipe in front of the real registry", () => {
  let registry: Registry | undefined;
  const front = useHAProxyFront('ppreg', {
    startBackend: async () => {
      const dir = join(front.dir, 'registry');
      mkdirSync(dir);
      registry = await createRegistry(
        { auth: { kind: 'htpasswd', user: 'alice', password: 'pp-pa55' } },
        dir,
      );
      await registry.start();
      return { url: registry.url, stop: () => registry?.stop() };
    },
    env: {},
    checks: ['option httpchk GET /v2/', 'http-check expect status 401'],
    serverOptions: 'send-proxy-v2 check-send-proxy',
  });
  it('is UP on 401, and the registry logs the client, not haproxy', async () => {
    await front.haproxy.waitForServers(
      (s) => s.status === 'UP' && s.checkStatus === 'L7OK' && s.checkCode === 401,
      'UP with 401',
      20_000,
    );
    const curl = await front.curl('/v2/_catalog', { args: ['-u', 'alice:pp-pa55'] });
    expect(curl.stdout, curl.stderr).toBe('200');
    const accessLine = await eventually("the registry's log line for /v2/_catalog", () =>
      started(registry)
        .output()
        .split('\n')
        .find((l) => l.includes('/v2/_catalog') && l.includes('http.request.remoteaddr')),
    );
    expect(accessLine).toMatch(
      new RegExp(
        `http\\.request\\.remoteaddr="?${front.host.address.replaceAll('.', '\\.')}"?( |$)`,
      ),
    );
    expect(refusals(front.proxy)).toEqual([]);
  });

  it("passes `check` (the image's HEALTHCHECK) from loopback, which the proxy trusts for headers", async () => {
    // With required: true, a connection from 127.0.0.1 without a header is closed; check
    // sends a v2 LOCAL header first, as haproxy's own checks do.
    const check = runCLI(['check'], {
      RTP_BACKEND: started(registry).url,
      RTP_TLS_DIR: front.proxy.tlsDir,
      RTP_LISTEN: `127.0.0.1:${front.proxy.port}`,
      RTP_PROXY_PROTOCOL_TRUSTED_FROM: TRUSTED,
      RTP_PROXY_PROTOCOL_REQUIRED: 'true',
    });
    expect(check.stdout).toMatch(
      new RegExp(`^ok +proxy https://127\\.0\\.0\\.1:${front.proxy.port} .*answered 401`, 'm'),
    );
    expect(check.status, check.stdout).toBe(0);
    expect(refusals(front.proxy)).toEqual([]);
  });
});

/**
 * Failed-login limits (auth.htpasswd at the proxy, an open registry behind it) count the
 * client the PROXY header names: behind haproxy every connection comes from haproxy's
 * address, and a limit per peer would lock every user out when one guesses passwords.
 * Two clients on two test hosts; only the guesser gets 429.
 */
describe('failed-login limits behind haproxy, per client from the header', () => {
  const htpasswdDir = tempDir('pp-logins');
  const htpasswd = join(htpasswdDir.path, 'htpasswd');
  writeFileSync(htpasswd, execFileSync('htpasswd', ['-Bbn', '-C', '10', 'alice', 'pp-login-pa55']));
  const front = useHAProxyFront('pplogin', {
    startBackend: async () => {
      const dir = join(front.dir, 'registry');
      mkdirSync(dir);
      const registry = await createRegistry({ auth: { kind: 'none' } }, dir);
      await registry.start();
      return { url: registry.url, stop: () => registry.stop() };
    },
    env: { RTP_AUTH_HTPASSWD: htpasswd },
    checks: ['option httpchk GET /v2/', 'http-check expect status 401'],
    serverOptions: 'send-proxy-v2 check-send-proxy',
  });
  let other: TestHost | undefined;
  afterAll(() => {
    other?.destroy();
    htpasswdDir.remove();
  });

  it('gives 429 to the client that guesses, and none to another behind the same haproxy', async () => {
    await front.haproxy.waitForServers(
      (s) => s.status === 'UP' && s.checkStatus === 'L7OK' && s.checkCode === 401,
      'UP with 401',
      20_000,
    );
    // A second client, on its own test host, reaching haproxy's frontend on the first link.
    other = createTestHost('pplogin');
    execFileSync('ip', [
      ...other.wrap.slice(1),
      'ip',
      'route',
      'add',
      `${front.host.hostAddress}/32`,
      'via',
      other.hostAddress,
    ]);
    const login = (host: TestHost, password: string) =>
      front.curl('/v2/', { args: ['-u', `alice:${password}`], on: host });

    const statuses: string[] = [];
    for (let n = 0; n < 15 && statuses.at(-1) !== '429'; n++) {
      statuses.push((await login(front.host, `guess-${n}`)).stdout);
    }
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill('401'));
    expect(statuses.at(-1)).toBe('429');
    const line = front.proxy.logLines().find((l) => /failed logins/.test(String(l['msg'])));
    expect(line?.['client']).toBe(front.host.address);

    // The other client, through the same haproxy: its own wrong password is a 401, its
    // right one lets it in.
    expect((await login(other, 'a-typo')).stdout).toBe('401');
    expect((await login(other, 'pp-login-pa55')).stdout).toBe('200');
    // Nothing was counted against haproxy's own address.
    const limited = front.proxy.logLines().filter((l) => /failed logins/.test(String(l['msg'])));
    expect(limited.map((l) => l['client'])).toEqual([front.host.address]);
  });
});
