/**
 * PROXY protocol behind a real haproxy in `mode tcp` (TLS passes through to the proxy,
 * so haproxy cannot add X-Forwarded-For). The client runs on a test host in a network
 * namespace (198.18.0.x), haproxy and the proxy on loopback: the client's address
 * differs from the balancer's, and the registry (a recording backend) and the
 * proxy's own logs must name the client, not haproxy. haproxy's health checks send
 * their own header (check-send-proxy: LOCAL in v2) and must keep the proxy UP with
 * proxyProtocol.required on. Then a spoofed header from an untrusted address, and
 * hostile headers from the trusted peer: each closes that one connection only.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { startHAProxy, type HAProxy } from './helpers/haproxy.js';
import { httpsGet } from './helpers/https.js';
import { createTestHost, type TestHost } from './helpers/netns.js';
import { reloadCounter } from './helpers/reloads.js';
import {
  createRegistry,
  readCA,
  startProxy,
  tempDir,
  type Proxy,
  type Registry,
} from './helpers/processes.js';
import {
  startRecordingBackend,
  useRecordingBackendBehindProxy,
  type RecordingBackend,
} from './helpers/recording-backend.js';

/** The peer trusted to send headers: haproxy, on loopback. */
const TRUSTED = '127.0.0.1';
/** Another loopback address, not trusted: it may not claim anyone's address. */
const UNTRUSTED = '127.0.0.5';
const HEADERS_MS = 1000;

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
    const before = started(backend).requests.length;
    const result = await sendRaw(front.proxy.port, [spoof], { from: UNTRUSTED });
    expect(result.received).toBe('');
    expect(result.closed).toBe(true);
    const line = await refusalLine(front.proxy, 'untrusted');
    expect(line['peer']).toBe(UNTRUSTED);
    expect(String(line['msg'])).toMatch(/proxyProtocol\.trustedFrom/);
    expect(started(backend).requests.length).toBe(before);
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
});

/**
 * haproxy (mode tcp, on the test host link's root side) in front of one proxy on
 * loopback that trusts PROXY headers from it and requires them; the backend is the
 * caller's. Registers beforeAll/afterAll; read the fields inside tests.
 */
function useHAProxyFront(
  label: string,
  opts: {
    startBackend: () => Promise<{ url: string; stop: () => Promise<unknown> | undefined }>;
    env: Record<string, string>;
    checks: readonly string[];
    serverOptions: string;
  },
) {
  const tmp = tempDir(label);
  let host: TestHost | undefined;
  let backend: { url: string; stop: () => Promise<unknown> | undefined } | undefined;
  let proxy: Proxy | undefined;
  let haproxy: HAProxy | undefined;
  const caFile = join(tmp.path, 'ca.crt');
  beforeAll(async () => {
    host = createTestHost(label);
    backend = await opts.startBackend();
    proxy = await startProxy({
      backend: backend.url,
      tlsDir: join(tmp.path, 'tls'),
      env: {
        // The name clients use: haproxy's frontend on the test host's link.
        RTP_TLS_NAMES: host.hostAddress,
        RTP_PROXY_PROTOCOL_TRUSTED_FROM: TRUSTED,
        RTP_PROXY_PROTOCOL_REQUIRED: 'true',
        ...opts.env,
      },
    });
    writeFileSync(caFile, readCA(proxy));
    mkdirSync(join(tmp.path, 'haproxy'));
    haproxy = await startHAProxy({
      dir: join(tmp.path, 'haproxy'),
      servers: [{ name: 'p1', port: proxy.port }],
      caFile: proxy.caFile,
      checks: opts.checks,
      bindAddress: host.hostAddress,
      serverOptions: opts.serverOptions,
    });
  });
  afterAll(async () => {
    await haproxy?.stop();
    await proxy?.stop();
    await backend?.stop();
    host?.destroy();
    tmp.remove();
  });
  return {
    dir: tmp.path,
    get host() {
      return started(host);
    },
    get proxy() {
      return started(proxy);
    },
    get haproxy() {
      return started(haproxy);
    },
    /** curl on the test host through haproxy, trusting exactly the proxy's CA unless `trust` is false. */
    curl(path: string, o: { trust?: boolean; args?: readonly string[] } = {}) {
      const { hostAddress } = started(host);
      return run(started(host), [
        'curl',
        '-sS',
        '--max-time',
        '10',
        ...(o.trust === false ? [] : ['--cacert', caFile]),
        ...(o.args ?? []),
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        `https://${hostAddress}:${started(haproxy).port}${path}`,
      ]);
    },
  };
}

/** Hostile headers from the trusted peer, one proxy; after each, clients are still served. */
describe('hostile PROXY headers from the trusted peer', () => {
  const tmp = tempDir('proxyproto-hostile');
  let backend: RecordingBackend | undefined;
  let proxy: Proxy | undefined;

  beforeAll(async () => {
    backend = await startRecordingBackend();
    proxy = await startProxy({
      backend: `http://127.0.0.1:${backend.port}`,
      tlsDir: join(tmp.path, 'tls'),
      env: {
        RTP_HEALTH_INTERVAL: '1h',
        RTP_PROXY_PROTOCOL_TRUSTED_FROM: TRUSTED,
        RTP_TIMEOUTS_HEADERS_MS: String(HEADERS_MS),
        // An HTTP proxy in front of haproxy, known by the address the header names.
        RTP_TRUSTED_PROXIES: '198.18.0.77',
      },
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await backend?.close();
    tmp.remove();
  });

  const v2Prefix = (lengthField: number, rest: Buffer) => {
    const fixed = Buffer.from([0x21, 0x11, 0, 0]);
    fixed.writeUInt16BE(lengthField, 2);
    return Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), fixed, rest]);
  };
  const addresses = Buffer.from([198, 18, 0, 9, 127, 0, 0, 1, 0x9c, 0x40, 0x15, 0x43]);

  const CASES = [
    {
      name: 'a v1 header cut short by the client closing',
      chunks: [Buffer.from('PROXY TCP4 198.18.0.9 127.0')],
      end: true,
      reason: 'truncated',
    },
    {
      name: 'a v1 line longer than 107 bytes',
      chunks: [Buffer.from(`PROXY TCP4 ${'9'.repeat(200)}\r\n`)],
      reason: 'too_long',
    },
    {
      name: 'a v2 header claiming 60,000 bytes',
      chunks: [v2Prefix(60_000, addresses)],
      reason: 'too_long',
    },
    {
      name: 'a v2 TLV claiming more than its block holds',
      chunks: [v2Prefix(16, Buffer.concat([addresses, Buffer.from([0x05, 0x01, 0x00, 0x41])]))],
      reason: 'malformed',
    },
    {
      name: 'a v2 header claiming a block it never sends',
      chunks: [v2Prefix(200, addresses)],
      reason: 'timeout',
    },
    {
      name: 'a v1 header sent one byte at a time, slower than timeouts.headersMs',
      chunks: [...Buffer.from('PROXY TCP4 198.18.0.9 127.0.0.1 1 2\r\n')].map((b) =>
        Buffer.from([b]),
      ),
      gapMs: 100,
      reason: 'timeout',
    },
    {
      name: 'garbage after the v2 signature',
      chunks: [v2Prefix(12, Buffer.alloc(12)).fill(0xff, 12)],
      reason: 'malformed',
    },
  ] as const;

  it.each(CASES)('closes the connection on $name, and serves clients meanwhile', async (c) => {
    const proxyPort = started(proxy).port;
    const startedAt = Date.now();
    const hostile = sendRaw(proxyPort, c.chunks, {
      ...('gapMs' in c ? { gapMs: c.gapMs } : {}),
      ...('end' in c ? { end: c.end } : {}),
    });
    // While the hostile connection is open, a good client (with a header) is served.
    const good = await requestWithHeader(proxyPort, readCA(started(proxy)));
    expect(good).toBe(200);
    const result = await hostile;
    expect(result.closed).toBe(true);
    expect(result.received).toBe('');
    if (c.reason === 'timeout') {
      // Within headersMs (plus the timer's slack), not the 30 s first-byte limit.
      expect(Date.now() - startedAt).toBeLessThan(HEADERS_MS + 2000);
    }
    const line = await refusalLine(started(proxy), c.reason);
    expect(line['peer']).toBe(TRUSTED);
    expect(await refusedCount(started(proxy), c.reason)).toBeGreaterThanOrEqual(1);
  });

  it('survives 200 connections of mutated headers in random pieces, each closed in time', async () => {
    const port = started(proxy).port;
    const v1 = Buffer.from(`PROXY TCP4 198.18.0.9 127.0.0.1 40000 ${port}\r\n`);
    const valid = [v1, v2Prefix(12, addresses)];
    const random = (n: number) => Math.floor(Math.random() * n);
    const connections = Array.from({ length: 200 }, (_, i) => {
      // Every 7th: an unmutated v1 header cut before its CRLF, left open (the deadline closes it).
      const stalled = i % 7 === 0;
      let bytes = Buffer.from(stalled ? v1.subarray(0, 1 + random(v1.length - 2)) : valid[i % 2]!);
      if (!stalled) {
        for (let n = 0; n < 1 + (i % 4); n++) bytes[random(bytes.length)] = random(256);
        if (i % 3 === 0) bytes = bytes.subarray(0, random(bytes.length));
      }
      const pieces: Buffer[] = [];
      for (let at = 0, size = 0; at < bytes.length; at += size) {
        size = 1 + random(8);
        pieces.push(bytes.subarray(at, at + size));
      }
      // The rest half-close once sent: a header that survived its mutation is then complete, and
      // its connection (now waiting for a ClientHello) ends instead of idling for 30 s.
      return sendRaw(port, pieces, { gapMs: 5, end: !stalled });
    });
    const startedAt = Date.now();
    const results = await Promise.all(connections);
    expect(results.every((r) => r.closed)).toBe(true);
    // The stalled ones were closed by the header deadline (headersMs), not the 30 s first-byte limit.
    expect(Date.now() - startedAt).toBeLessThan(HEADERS_MS + 4000);
    expect(await requestWithHeader(port, readCA(started(proxy)))).toBe(200);
  });

  it("decides trustedProxies by the header's address, not the TCP peer's", async () => {
    const ca = readCA(started(proxy));
    const port = started(proxy).port;
    const forwardedFor = (path: string) =>
      started(backend)
        .requests.filter((r) => r.url === path)
        .map((r) => headerValues(r.rawHeaders, 'x-forwarded-for'));
    const spoofed = 'X-Forwarded-For: 203.0.113.1\r\n';
    // From the trusted proxy's address, its X-Forwarded-For is kept and its address appended.
    expect(await requestWithHeader(port, ca, { path: '/v2/tp/a', headers: spoofed })).toBe(200);
    expect(forwardedFor('/v2/tp/a')).toEqual([['203.0.113.1, 198.18.0.77']]);
    // From any other client address, it is replaced by that address.
    expect(
      await requestWithHeader(port, ca, {
        source: '198.18.0.78',
        path: '/v2/tp/b',
        headers: spoofed,
      }),
    ).toBe(200);
    expect(forwardedFor('/v2/tp/b')).toEqual([['198.18.0.78']]);
  });

  it('lets the trusted peer connect without a header when required is false', async () => {
    const r = await httpsGet(`${started(proxy).origin}/v2/`, { ca: readCA(started(proxy)) });
    expect(r.status).toBe(200);
  });
});

describe('a PROXY header at a proxy with proxyProtocol off', () => {
  const off = useRecordingBackendBehindProxy('proxyproto-off');

  it('is refused and logged with the fix, not answered as plain HTTP', async () => {
    const header = Buffer.from('PROXY TCP4 203.0.113.9 127.0.0.1 1234 5443\r\n');
    const result = await sendRaw(off.proxy.port, [header]);
    expect(result).toEqual({ closed: true, received: '' });
    const line = await refusalLine(off.proxy, 'untrusted');
    expect(line['peer']).toBe(TRUSTED);
    expect(String(line['msg'])).toMatch(/add it to proxyProtocol\.trustedFrom/);
    // Clients without a header are served as before.
    const r = await httpsGet(`${off.proxy.origin}/v2/`, { ca: off.ca });
    expect(r.status).toBe(200);
    expect(headerValues(off.backend.requests.at(-1)?.rawHeaders ?? [], 'x-forwarded-for')).toEqual([
      TRUSTED,
    ]);
  });
});

describe('proxyProtocol changed by a SIGHUP reload', () => {
  const tmp = tempDir('proxyproto-reload');
  let backend: RecordingBackend | undefined;
  let proxy: Proxy | undefined;
  const configFile = join(tmp.path, 'config.yaml');
  beforeAll(async () => {
    backend = await startRecordingBackend();
    writeFileSync(configFile, 'proxyProtocol:\n  trustedFrom: []\n');
    proxy = await startProxy({
      backend: `http://127.0.0.1:${backend.port}`,
      tlsDir: join(tmp.path, 'tls'),
      args: ['--config', configFile],
      env: { RTP_HEALTH_INTERVAL: '1h' },
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await backend?.close();
    tmp.remove();
  });

  it('reads headers from the peers the new configuration trusts', async () => {
    const p = started(proxy);
    const ca = readCA(p);
    await expect(requestWithHeader(p.port, ca, { path: '/v2/before' })).rejects.toThrow();
    await refusalLine(p, 'untrusted');

    writeFileSync(configFile, `proxyProtocol:\n  trustedFrom: [${TRUSTED}]\n  required: true\n`);
    await reloadCounter(p).reload();
    expect(await requestWithHeader(p.port, ca, { source: '198.18.0.80', path: '/v2/after' })).toBe(
      200,
    );
    const seen = started(backend).requests.filter((r) => r.url === '/v2/after');
    expect(seen.map((r) => headerValues(r.rawHeaders, 'x-forwarded-for'))).toEqual([
      ['198.18.0.80'],
    ]);
    // required: true now, so a connection without a header is refused.
    await expect(httpsGet(`${p.origin}/v2/`, { ca, timeoutMs: 5000 })).rejects.toThrow();
    await refusalLine(p, 'missing');
  });
});

// --- helpers ---

function started<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('not started yet (use it inside a test)');
  return value;
}

function run(
  host: TestHost,
  argv: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const [command, ...args] = argv;
    const child = host.spawn(command as string, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function headerValues(rawHeaders: string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === name) values.push(rawHeaders[i + 1] ?? '');
  }
  return values;
}

function refusals(proxy: Proxy): Record<string, unknown>[] {
  return proxy
    .logLines()
    .filter((l) => String(l['msg']).startsWith('PROXY protocol: connection refused'));
}

function refusalLine(proxy: Proxy, reason: string): Promise<Record<string, unknown>> {
  return eventually(`a PROXY refusal line with reason ${reason}`, () =>
    refusals(proxy).find((l) => l['reason'] === reason),
  );
}

function handshakeFailureLines(proxy: Proxy): Record<string, unknown>[] {
  return proxy.logLines().filter((l) => String(l['msg']).startsWith('TLS handshake failed'));
}

/** rtp_proxy_protocol_refused_total{reason} as the admin listener's /metrics shows it. */
async function refusedCount(proxy: Proxy, reason: string): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    get(`http://127.0.0.1:${proxy.adminPort}/metrics`, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', (err) =>
      reject(new Error(`GET /metrics on the admin port ${proxy.adminPort}: ${err.message}`)),
    );
  });
  const match = new RegExp(
    `^rtp_proxy_protocol_refused_total\\{reason="${reason}"\\} (\\d+)`,
    'm',
  ).exec(text);
  if (!match)
    throw new Error(`no rtp_proxy_protocol_refused_total{reason="${reason}"} in /metrics`);
  return Number(match[1]);
}

/**
 * Sends `chunks` (with `gapMs` between them) on a raw connection and waits for the
 * proxy to close it; resolves with what came back. Rejects if it stays open 10 s.
 */
function sendRaw(
  port: number,
  chunks: readonly Buffer[],
  opts: { from?: string; gapMs?: number; end?: boolean } = {},
): Promise<{ closed: boolean; received: string }> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({
      port,
      host: '127.0.0.1',
      ...(opts.from ? { localAddress: opts.from } : {}),
    });
    let received = '';
    let timer: NodeJS.Timeout | undefined;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (received += d));
    socket.on('error', () => undefined); // a reset is a close too
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, received });
    });
    socket.setTimeout(10_000, () => {
      socket.destroy();
      reject(
        new Error(`the proxy kept the connection open 10 s; received ${JSON.stringify(received)}`),
      );
    });
    socket.on('connect', () => {
      let i = 0;
      const next = () => {
        if (socket.destroyed) return;
        const chunk = chunks[i++];
        if (chunk === undefined) {
          if (opts.end) socket.end();
          return;
        }
        socket.write(chunk);
        timer = setTimeout(next, opts.gapMs ?? 0);
      };
      next();
    });
  });
}

/**
 * GET `path` over TLS after a v1 header naming `source`, as a balancer would send it,
 * with `headers` added; resolves with the status.
 */
function requestWithHeader(
  port: number,
  ca: string,
  opts: { source?: string; path?: string; headers?: string } = {},
): Promise<number> {
  const { source = '198.18.0.77', path = '/v2/', headers = '' } = opts;
  return new Promise((resolve, reject) => {
    const raw = connect({ port, host: '127.0.0.1' }, () => {
      raw.write(`PROXY TCP4 ${source} 127.0.0.1 40000 ${port}\r\n`);
      // host: the name the certificate is checked for (an IP address: no SNI is sent).
      const tls = tlsConnect({ socket: raw, ca, host: '127.0.0.1' }, () => {
        tls.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Connection: close\r\n\r\n`);
      });
      let text = '';
      tls.setEncoding('latin1');
      tls.on('data', (d: string) => (text += d));
      tls.on('end', () => {
        const status = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1];
        if (status) resolve(Number(status));
        else
          reject(new Error(`the connection closed without a response (${JSON.stringify(text)})`));
      });
      tls.on('error', reject);
    });
    raw.on('error', reject);
  });
}
