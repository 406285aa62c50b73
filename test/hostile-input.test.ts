/**
 * Hostile input on the public port, each probe asserted on what the backend
 * actually received (a TCP tap in front of it records every byte): request
 * smuggling probes, garbage and truncated TLS, and the optional path allowlist.
 * After each, the process is alive and a normal request still works.
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnectRaw, type TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { httpsGet } from './helpers/https.js';
import { exchangeRaw, readToClose, statusOf, tlsConnect } from './helpers/raw-tls.js';
import {
  useRecordingBackendBehindProxy,
  type RecordingBackendBehindProxy,
} from './helpers/recording-backend.js';

const HEADERS_MS = 1000;

const sendRaw = (env: RecordingBackendBehindProxy, raw: string) =>
  exchangeRaw(env.proxy.port, env.ca, raw);

let markers = 0;
/**
 * Sends an ordinary request through the proxy and waits for its answer, which comes
 * from the backend: whatever an earlier probe made the proxy send has reached the
 * backend by then. Returns where the marker's bytes start and end in `bytes()`.
 */
async function sendMarker(env: RecordingBackendBehindProxy): Promise<[number, number]> {
  const path = `/v2/?marker=${++markers}`;
  const res = await httpsGet(`${env.proxy.origin}${path}`, { ca: env.ca });
  expect(res.status, `the marker request ${path}`).toBe(200);
  const bytes = env.backend.bytes();
  const start = bytes.indexOf(`GET ${path} HTTP/1.1\r\n`);
  expect(start, `the backend received ${path}`).toBeGreaterThanOrEqual(0);
  return [start, bytes.indexOf('\r\n\r\n', start) + 4];
}

/**
 * What reached the backend while `action` ran, up to a marker request sent after it
 * (the marker left out), as latin1 text.
 */
async function receivedDuring(
  env: RecordingBackendBehindProxy,
  action: () => Promise<unknown>,
): Promise<string> {
  const before = env.backend.bytes().length;
  await action();
  const [start, end] = await sendMarker(env);
  const bytes = env.backend.bytes();
  return bytes.slice(before, start) + bytes.slice(end);
}

/** The proxy process is alive and proxies a normal request to the backend. */
async function stillServes(env: RecordingBackendBehindProxy): Promise<void> {
  expect(env.proxy.child.exitCode).toBeNull();
  const res = await httpsGet(`${env.proxy.origin}/v2/`, { ca: env.ca });
  expect(res.status).toBe(200);
  expect(res.body).toBe('{"ok":true}');
}

function expectRegistryError(response: string, status: number): void {
  expect(statusOf(response)).toBe(status);
  expect(response).toMatch(/\r\nDocker-Distribution-API-Version: registry\/2\.0\r\n/i);
  expect(JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4))).toMatchObject({
    errors: [{ code: 'UNSUPPORTED' }],
  });
  // One answer: nothing parsed after the refused request was served.
  expect(response.match(/HTTP\/1\.1 \d{3} /g)).toHaveLength(1);
}

interface Target {
  method: string;
  path: string;
}
/** Upload chunks take the relay (relay.ts); upload starts take http-proxy. */
const TARGETS: Array<[string, Target]> = [
  ['relay', { method: 'PATCH', path: '/v2/probe/blobs/uploads/u1' }],
  ['http-proxy', { method: 'POST', path: '/v2/probe/blobs/uploads/' }],
];
const line = (t: Target, version = '1.1') => `${t.method} ${t.path} HTTP/${version}\r\n`;
const head = (t: Target, headers: string) => `${line(t)}Host: localhost\r\n${headers}\r\n`;
const chunked = (t: Target, body: string) => head(t, 'Transfer-Encoding: chunked\r\n') + body;
const HELLO = '5\r\nhello\r\n0\r\n\r\n';

/**
 * [probe, request, status]. In the comments: who refuses it — Node's parser (llhttp,
 * answered by server.ts's clientError handler) or request-checks.ts.
 */
const PROBES: Array<[string, number, (t: Target) => string]> = [
  // llhttp
  [
    'Content-Length with Transfer-Encoding',
    400,
    (t) => head(t, 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n') + HELLO,
  ],
  [
    'duplicate Content-Length, same value',
    400,
    (t) => head(t, 'Content-Length: 5\r\nContent-Length: 5\r\n') + 'hello',
  ],
  [
    'duplicate Content-Length, different values',
    400,
    (t) => head(t, 'Content-Length: 5\r\nContent-Length: 50\r\n') + 'hello',
  ],
  ['Content-Length: +5', 400, (t) => head(t, 'Content-Length: +5\r\n') + 'hello'],
  ['Content-Length: 5,5', 400, (t) => head(t, 'Content-Length: 5,5\r\n') + 'hello'],
  ['Content-Length: 5 5', 400, (t) => head(t, 'Content-Length: 5 5\r\n') + 'hello'],
  ['Content-Length: 0x5', 400, (t) => head(t, 'Content-Length: 0x5\r\n') + 'hello'],
  ['Content-Length: -5', 400, (t) => head(t, 'Content-Length: -5\r\n') + 'hello'],
  [
    'Content-Length: 2^70',
    400,
    (t) => head(t, 'Content-Length: 1180591620717411303424\r\n') + 'hello',
  ],
  ['empty Content-Length', 400, (t) => head(t, 'Content-Length: \r\n') + 'hello'],
  ['Transfer-Encoding: xchunked', 400, (t) => head(t, 'Transfer-Encoding: xchunked\r\n') + HELLO],
  ['Transfer-Encoding: identity', 400, (t) => head(t, 'Transfer-Encoding: identity\r\n') + 'hello'],
  [
    'Transfer-Encoding: chunked;q=1',
    400,
    (t) => head(t, 'Transfer-Encoding: chunked;q=1\r\n') + HELLO,
  ],
  [
    'Transfer-Encoding twice',
    400,
    (t) => head(t, 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n') + HELLO,
  ],
  [
    'Transfer-Encoding : chunked (space before the colon)',
    400,
    (t) => head(t, 'Transfer-Encoding : chunked\r\n') + HELLO,
  ],
  [
    'Transfer-Encoding folded onto a continuation line',
    400,
    (t) => head(t, 'Transfer-Encoding:\r\n chunked\r\n') + HELLO,
  ],
  [
    'obs-fold in another header',
    400,
    (t) => head(t, 'X-Note: a\r\n b\r\nContent-Length: 5\r\n') + 'hello',
  ],
  [
    'bare LF line endings',
    400,
    (t) => `${t.method} ${t.path} HTTP/1.1\nHost: localhost\nContent-Length: 5\n\nhello`,
  ],
  [
    'one bare LF among CRLFs',
    400,
    (t) => `${line(t)}Host: localhost\nContent-Length: 5\r\n\r\nhello`,
  ],
  [
    'bare CR',
    400,
    (t) => `${t.method} ${t.path} HTTP/1.1\rHost: localhost\r\nContent-Length: 5\r\n\r\nhello`,
  ],
  [
    'bare CR inside a header value',
    400,
    (t) => head(t, 'X-Note: a\rb\r\nContent-Length: 5\r\n') + 'hello',
  ],
  ['NUL in a header value', 400, (t) => head(t, 'X-Note: a\0b\r\nContent-Length: 5\r\n') + 'hello'],
  ['NUL in a header name', 400, (t) => head(t, 'X-No\0te: a\r\nContent-Length: 5\r\n') + 'hello'],
  [
    'a control character in a header value',
    400,
    (t) => head(t, 'X-Note: a\x01b\r\nContent-Length: 5\r\n') + 'hello',
  ],
  ['HTTP/2 preface', 400, () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
  // llhttp, but only after the head was handed to the proxy: the body framing fails
  [
    'Transfer-Encoding: chunked, identity',
    400,
    (t) => head(t, 'Transfer-Encoding: chunked, identity\r\n') + HELLO,
  ],
  ['chunk size zz', 400, (t) => chunked(t, 'zz\r\nhello\r\n0\r\n\r\n')],
  ['chunk size -5', 400, (t) => chunked(t, '-5\r\nhello\r\n0\r\n\r\n')],
  ['chunk size 0x5', 400, (t) => chunked(t, '0x5\r\nhello\r\n0\r\n\r\n')],
  ['chunk size with a space', 400, (t) => chunked(t, '5 \r\nhello\r\n0\r\n\r\n')],
  [
    'chunk size overflowing 64 bits',
    400,
    (t) => chunked(t, 'fffffffffffffffffff\r\nhello\r\n0\r\n\r\n'),
  ],
  ['chunk lines ending in bare LF', 400, (t) => chunked(t, '5\nhello\n0\n\n')],
  // request-checks.ts
  [
    'Transfer-Encoding: gzip, chunked',
    400,
    (t) => head(t, 'Transfer-Encoding: gzip, chunked\r\n') + HELLO,
  ],
  ['Transfer-Encoding: Chunked', 400, (t) => head(t, 'Transfer-Encoding: Chunked\r\n') + HELLO],
  ['empty Transfer-Encoding', 400, (t) => head(t, 'Transfer-Encoding: \r\n') + 'hello'],
  [
    'HTTP/1.0 with Transfer-Encoding',
    400,
    (t) => `${line(t, '1.0')}Host: localhost\r\nTransfer-Encoding: chunked\r\n\r\n${HELLO}`,
  ],
  [
    'two Host headers',
    400,
    (t) => head(t, 'Host: evil.example\r\nContent-Length: 5\r\n') + 'hello',
  ],
  [
    'an absolute-form target',
    400,
    (t) =>
      `${t.method} http://evil.example${t.path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello`,
  ],
  ['OPTIONS *', 400, () => 'OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n'],
  ['an HTTP/0.9 request line', 400, (t) => `GET ${t.path}\r\n\r\n`],
  ['TRACE', 405, (t) => `TRACE ${t.path} HTTP/1.1\r\nHost: localhost\r\n\r\n`],
  // server.ts's 'connect' listener
  ['CONNECT', 405, () => 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n'],
];

describe('request smuggling probes are refused and never reach the backend', () => {
  const env = useRecordingBackendBehindProxy('hostile', {
    RTP_TIMEOUTS_HEADERS_MS: String(HEADERS_MS),
  });

  describe.each(TARGETS)('on the %s path', (_path, target) => {
    it.each(PROBES)('%s → %i, connection closed', async (_name, status, build) => {
      let response = '';
      const received = await receivedDuring(env, async () => {
        response = await sendRaw(env, build(target));
      });
      expectRegistryError(response, status);
      expect(received).toBe('');
      await stillServes(env);
    });

    it('a request hidden in a body arrives as that body, not as a request', async () => {
      const hidden = 'GET /v2/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n';
      const socket = await tlsConnect(env.proxy.port, env.ca);
      const response = readToClose(socket);
      socket.write(
        head(target, `Content-Length: ${hidden.length}\r\nConnection: close\r\n`) + hidden,
      );
      expect(statusOf(await response)).toBeLessThan(300);
      const seen = env.backend.requests.filter((r) => r.url === target.path).pop();
      expect(seen).toMatchObject({ method: target.method, body: hidden, complete: true });
      expect(env.backend.requests.some((r) => r.url === '/v2/smuggled')).toBe(false);
    });

    it('a request pipelined behind a refused one is never served', async () => {
      const smuggled = `GET /v2/smuggled-${_path} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
      let response = '';
      const received = await receivedDuring(env, async () => {
        response = await sendRaw(
          env,
          head(target, 'Transfer-Encoding: Chunked\r\n') + '0\r\n\r\n' + smuggled,
        );
      });
      expectRegistryError(response, 400);
      expect(received).toBe('');
      await stillServes(env);
    });

    // Streaming (as nginx with proxy_request_buffering off): bytes of valid chunks go on
    // before a later one turns out bad. The backend then sees the request break off, as
    // when a client disconnects, never a complete request nor a byte after the bad chunk.
    it.each<[string, string, string]>([
      ['a bad chunk size after a good chunk', '5\r\nhello\r\n', 'zz\r\nworld\r\n0\r\n\r\n'],
      ['chunk data longer than its size', '3\r\nhel', 'loworld\r\n0\r\n\r\n'],
    ])('%s: the backend sees the upload break off, nothing after it', async (_name, good, bad) => {
      const path = `${target.path}?case=${encodeURIComponent(_name)}`;
      const socket = await tlsConnect(env.proxy.port, env.ca);
      const response = readToClose(socket);
      socket.write(chunked({ ...target, path }, good));
      await eventually(`the backend to receive the head of ${path}`, () =>
        env.backend.bytes().includes(path),
      );
      socket.write(bad);
      expectRegistryError(await response, 400);
      await sendMarker(env); // what the proxy sent after the bad chunk has arrived by now
      const seen = env.backend.requests.filter((r) => r.url === path);
      expect(seen).toHaveLength(1);
      expect(seen[0]?.complete).toBe(false);
      expect(env.backend.bytes()).not.toContain('world');
      await stillServes(env);
    });
  });

  it('whitespace around a Content-Length value is not part of it (RFC 9110 §5.5): 5 bytes forwarded', async () => {
    const path = '/v2/probe/blobs/uploads/ows';
    const socket = await tlsConnect(env.proxy.port, env.ca);
    const response = readToClose(socket);
    socket.write(
      `PATCH ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Length:  5 \r\nConnection: close\r\n\r\nhello`,
    );
    expect(statusOf(await response)).toBe(200);
    expect(env.backend.requests.filter((r) => r.url === path)).toMatchObject([
      { body: 'hello', complete: true },
    ]);
    expect(env.backend.bytes()).toMatch(
      new RegExp(`PATCH ${path} HTTP/1.1\r\n(.+\r\n)*content-length: 5\r\n`),
    );
  });
});

/** The first flight of a real TLS client (a ClientHello), captured without sending it. */
function clientHello(ca: string): Promise<Buffer> {
  return new Promise((resolve) => {
    let tls: TLSSocket | undefined;
    const transport = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        resolve(Buffer.from(chunk));
        done();
        setImmediate(() => tls?.destroy());
      },
    });
    tls = tlsConnectRaw({ socket: transport, ca, servername: 'localhost' });
    tls.on('error', () => undefined);
  });
}

function tcpConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** A TLS session over a TCP socket the test can also write raw bytes to. */
async function tlsOverTap(port: number, ca: string): Promise<{ tcp: Socket; tls: TLSSocket }> {
  const tcp = await tcpConnect(port);
  const transport = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      tcp.write(chunk, () => done());
    },
  });
  tcp.on('data', (d: Buffer) => transport.push(d));
  tcp.on('end', () => transport.push(null));
  const tls = tlsConnectRaw({ socket: transport, ca, servername: 'localhost' });
  tls.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    tls.once('secureConnect', resolve);
    tls.once('error', reject);
  });
  return { tcp, tls };
}

describe('garbage and truncated TLS on the public port', () => {
  const env = useRecordingBackendBehindProxy('hostile-tls', {
    RTP_TIMEOUTS_HEADERS_MS: String(HEADERS_MS),
  });

  it.each<[string, () => Buffer]>([
    // 0x16 sends it to the TLS server (sniff.ts), which finds no valid handshake in it.
    [
      '64 KiB of random bytes after a handshake record type',
      () => Buffer.concat([Buffer.from([0x16]), randomBytes(64 << 10)]),
    ],
    // Anything else is taken for plain HTTP and answered with the 400 that says to use https.
    ['64 KiB of random bytes', () => Buffer.concat([Buffer.from([0x00]), randomBytes(64 << 10)])],
  ])('%s: connection closed, process alive', async (_name, bytes) => {
    const socket = await tcpConnect(env.proxy.port);
    const closed = readToClose(socket);
    socket.write(bytes());
    await closed;
    await stillServes(env);
  });

  it('a ClientHello cut in the middle, then closed: process alive', async () => {
    const hello = await clientHello(env.ca);
    const socket = await tcpConnect(env.proxy.port);
    const closed = readToClose(socket);
    socket.end(hello.subarray(0, hello.length >> 1));
    expect(await closed).toBe('');
    await stillServes(env);
  });

  it('Slowloris: a client dribbling header lines gets 408 at timeouts.headersMs, not later', async () => {
    const socket = await tlsConnect(env.proxy.port, env.ca);
    const started = Date.now();
    const answer = readToClose(socket, HEADERS_MS * 10);
    socket.write('GET /v2/ HTTP/1.1\r\nHost: localhost\r\n');
    // One more header line every 200 ms: the socket is never idle, the head never ends.
    let n = 0;
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write(`X-Drip-${n++}: x\r\n`);
    }, 200);
    const response = await answer;
    clearInterval(drip);
    expect(statusOf(response)).toBe(408);
    expect(Date.now() - started).toBeLessThan(HEADERS_MS * 3);
    expect(env.backend.requests.filter((r) => r.rawHeaders.includes('X-Drip-0'))).toEqual([]);
    expect(env.proxy.child.exitCode).toBeNull();
  });

  it('a ClientHello cut in the middle, then silence: closed after timeouts.headersMs', async () => {
    const hello = await clientHello(env.ca);
    const socket = await tcpConnect(env.proxy.port);
    const started = Date.now();
    const closed = readToClose(socket, HEADERS_MS * 5);
    socket.write(hello.subarray(0, hello.length >> 1));
    await closed;
    expect(Date.now() - started).toBeGreaterThanOrEqual(HEADERS_MS - 100);
    await stillServes(env);
  });

  it.each<[string, () => Buffer]>([
    ['random bytes', () => randomBytes(4096)],
    // An application-data record of the right shape whose content fails authentication.
    [
      'a forged application-data record',
      () => Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x40]), randomBytes(64)]),
    ],
  ])('a valid handshake, then %s: connection closed, process alive', async (_name, garbage) => {
    const { tcp } = await tlsOverTap(env.proxy.port, env.ca);
    const closed = new Promise<void>((resolve) => tcp.once('close', () => resolve()));
    tcp.write(garbage());
    await closed;
    await stillServes(env);
  });
});

describe('allowedPaths: only listed prefixes reach the backend', () => {
  const env = useRecordingBackendBehindProxy('allowlist', { RTP_ALLOWED_PATHS: '/v2/' });

  async function request(
    path: string,
    method = 'GET',
  ): Promise<{ status: number; body: string; received: string }> {
    let response = '';
    const received = await receivedDuring(env, async () => {
      response = await sendRaw(
        env,
        `${method} ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
      );
    });
    return {
      status: statusOf(response),
      body: response.slice(response.indexOf('\r\n\r\n') + 4),
      received,
    };
  }

  it.each<[string, number]>([
    ['/admin', 403],
    ['/debug/vars', 403],
    ['/v2x/', 403],
    ['/V2/', 403],
    ['/v2/../admin', 400],
    ['/v2/..', 400],
    ['/v2/./_catalog', 400],
    ['/v2/%2e%2e/admin', 400],
    ['/v2/%2E%2E/admin', 400],
    ['/v2/.%2e/admin', 400],
    ['/v2%2f..%2fadmin', 400],
    ['/v2/x%2F..%2F..%2Fadmin', 400],
    ['/v2/%5c..%5cadmin', 400],
    ['/v2/\\..\\admin', 400],
    ['/v2//admin', 400],
    ['//admin', 400],
    ['//v2/', 400],
    ['/v2/%252e%252e/admin', 400],
    ['/v2/..;/admin', 400],
    ['/v2/x#/../../admin', 400],
  ])('%s → %i in registry JSON, nothing forwarded', async (path, status) => {
    const res = await request(path);
    expect(res.status).toBe(status);
    expect(JSON.parse(res.body)).toMatchObject({
      errors: [{ code: status === 403 ? 'DENIED' : 'UNSUPPORTED' }],
    });
    expect(res.received).toBe('');
    expect(env.proxy.child.exitCode).toBeNull();
  });

  it.each(['/v2/', '/v2', '/v2/library/app/manifests/1.0', '/v2/app/blobs/sha256:0123abcd'])(
    '%s reaches the backend',
    async (path) => {
      const res = await request(path);
      expect(res.status).toBe(200);
      expect(res.received).toMatch(new RegExp(`^GET ${path} HTTP/1.1\r\n`));
    },
  );

  it.each([
    '/ca.crt',
    '/install-ca.sh',
    '/install-ca-macos.sh',
    '/install-ca.ps1',
    '/_proxy/health',
  ])("the proxy's own %s still answers", async (path) => {
    const res = await request(path);
    expect([200, 503]).toContain(res.status);
    expect(res.body).not.toMatch(/DENIED/);
    expect(res.received).toBe('');
  });

  it('a refused request pipelined behind an allowed one is not forwarded', async () => {
    let response = '';
    const received = await receivedDuring(env, async () => {
      response = await sendRaw(
        env,
        'GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n' +
          'GET /admin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
      );
    });
    expect(response.match(/HTTP\/1\.1 \d{3}/g)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 403']);
    expect(received).toMatch(/^GET \/v2\/ HTTP\/1.1\r\n/);
    expect(received).not.toContain('/admin');
  });
});
