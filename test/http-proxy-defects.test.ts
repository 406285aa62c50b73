/**
 * Regression tests for the known defects of http-proxy 1.18.1 (REGISTRY-NOTES.md),
 * each against the real proxy process. The backend here is a small HTTP server
 * in the test that records exactly what reached it.
 */
import {
  createServer,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { httpsGet } from './helpers/https.js';
import { freePort, startProxy, tempDir, type Proxy } from './helpers/processes.js';
import { readUntil, statusOf, tlsConnect } from './helpers/raw-tls.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

describe('http-proxy 1.18.1 defects are guarded', () => {
  const tmp = tempDir('defects');
  let backend: Server;
  let proxy: Proxy;
  let ca: string;
  const seen: Seen[] = [];
  let backendConnections = 0;
  /** Streaming responses that are still open, by request id. */
  const openStreams = new Map<string, ServerResponse>();
  const closedStreams = new Set<string>();

  beforeAll(async () => {
    backend = createServer((req, res) => {
      const url = req.url ?? '/';
      if (url.startsWith('/stream/')) {
        // An endless blob: 64 KiB every 20 ms until the proxy hangs up.
        const id = url.slice('/stream/'.length);
        openStreams.set(id, res);
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const timer = setInterval(() => res.write(Buffer.alloc(64 << 10)), 20);
        res.on('close', () => {
          clearInterval(timer);
          openStreams.delete(id);
          closedStreams.add(id);
        });
        return;
      }
      if (url.startsWith('/upload/')) {
        const id = url.slice('/upload/'.length);
        openStreams.set(id, res);
        req.resume();
        req.on('close', () => {
          openStreams.delete(id);
          closedStreams.add(id);
        });
        return;
      }
      if (url === '/v2/hang') return; // never answers
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url, headers: req.headers, body });
        if (url === '/hop-by-hop') {
          res.writeHead(200, {
            connection: 'X-Backend-Hop',
            'x-backend-hop': 'secret',
            'keep-alive': 'timeout=99',
            'proxy-authenticate': 'Basic realm="upstream"',
            'x-end-to-end': 'kept',
          });
          res.end('ok');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: true }));
      });
    });
    backend.on('connection', () => backendConnections++);
    const port = await freePort();
    await new Promise<void>((r) => backend.listen(port, '127.0.0.1', r));
    proxy = await startProxy({
      backend: `http://127.0.0.1:${port}`,
      tlsDir: join(tmp.path, 'tls'),
      env: { RTP_TIMEOUTS_BACKEND_IDLE_MS: '1500' },
    });
    ca = readFileSync(proxy.caFile, 'utf8');
  });

  afterAll(async () => {
    await proxy?.stop();
    backend?.closeAllConnections();
    await new Promise((r) => backend?.close(r));
    tmp.remove();
  });

  const lastSeen = (url: string): Seen => {
    const hit = seen.filter((s) => s.url === url).pop();
    if (!hit) throw new Error(`backend never saw ${url}`);
    return hit;
  };

  const upstreamSockets = async (state: 'active' | 'idle'): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
    const match = new RegExp(`^rtp_upstream_sockets\\{state="${state}"\\} (\\d+)$`, 'm').exec(text);
    return Number(match?.[1] ?? NaN);
  };

  it('a client abort mid-download aborts the upstream request (no leaked sockets)', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `pull-${i}`);
    await Promise.all(
      ids.map(
        (id) =>
          new Promise<void>((resolve, reject) => {
            const req = httpsRequest(
              `${proxy.origin}/stream/${id}`,
              { ca, agent: false },
              (res) => {
                res.once('data', () => {
                  req.destroy();
                  resolve();
                });
              },
            );
            req.on('error', (err) =>
              (err as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(err),
            );
            req.end();
          }),
      ),
    );
    await eventually('the backend to see every stream closed', () =>
      ids.every((id) => closedStreams.has(id)),
    );
    await eventually(
      'no active backend socket',
      async () => (await upstreamSockets('active')) === 0,
    );
  });

  it('a client abort mid-upload aborts the upstream request', async () => {
    const id = 'push-1';
    const req = httpsRequest(`${proxy.origin}/upload/${id}`, { ca, method: 'PATCH', agent: false });
    req.on('error', () => undefined);
    req.write(Buffer.alloc(256 << 10));
    await eventually('the backend to see the upload begin', () => openStreams.has(id));
    req.destroy();
    await eventually('the backend to see the upload closed', () => closedStreams.has(id));
    await eventually(
      'no active backend socket',
      async () => (await upstreamSockets('active')) === 0,
    );
  });

  it('a Trailer request header cannot crash the process', async () => {
    const socket = await tlsConnect(proxy.port, ca);
    socket.write(
      'POST /trailer HTTP/1.1\r\nHost: localhost\r\nTrailer: X-Checksum\r\nContent-Length: 5\r\n\r\nhello',
    );
    const response = await readUntil(socket, /\{"ok":true\}/);
    socket.destroy();
    expect(statusOf(response)).toBe(200);
    expect(lastSeen('/trailer').body).toBe('hello');
    expect(proxy.child.exitCode).toBeNull();
    expect((await httpsGet(`${proxy.origin}/after-trailer`, { ca })).status).toBe(200);
  });

  it('Expect: 100-continue keeps the forwarded headers', async () => {
    const socket = await tlsConnect(proxy.port, ca);
    socket.write(
      `PUT /expect HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n`,
    );
    const interim = await readUntil(socket, /^HTTP\/1\.1 100 Continue\r\n\r\n/);
    expect(statusOf(interim)).toBe(100);
    socket.write('data');
    const response = await readUntil(socket, /\{"ok":true\}/);
    socket.destroy();
    expect(response).toMatch(/HTTP\/1\.1 200 OK/);
    const { headers, body } = lastSeen('/expect');
    expect(body).toBe('data');
    expect(headers['x-forwarded-proto']).toBe('https');
    expect(headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(headers['x-forwarded-host']).toBe(`127.0.0.1:${proxy.port}`);
  });

  it('overwrites client X-Forwarded-* and Forwarded instead of appending; Host passes unchanged', async () => {
    const socket = await tlsConnect(proxy.port, ca);
    socket.write(
      'GET /forwarded HTTP/1.1\r\nHost: registry.example:5443\r\n' +
        'X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: evil.example\r\n' +
        'X-Forwarded-Port: 80\r\nForwarded: for=6.6.6.6;host=evil.example;proto=http\r\nX-Real-IP: 6.6.6.6\r\n\r\n',
    );
    await readUntil(socket, /\{"ok":true\}/);
    socket.destroy();
    const { headers } = lastSeen('/forwarded');
    expect(headers.host).toBe('registry.example:5443');
    expect(headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(headers['x-forwarded-proto']).toBe('https');
    expect(headers['x-forwarded-host']).toBe('registry.example:5443');
    expect(headers['x-forwarded-port']).toBe(String(proxy.port));
    expect(headers['x-real-ip']).toBe('127.0.0.1');
    expect(headers.forwarded).toBeUndefined();
  });

  it('strips hop-by-hop headers in both directions', async () => {
    const socket = await tlsConnect(proxy.port, ca);
    socket.write(
      'GET /hop-by-hop HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive, X-Client-Hop\r\n' +
        'X-Client-Hop: secret\r\nKeep-Alive: timeout=1\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n' +
        'TE: trailers\r\nProxy-Connection: keep-alive\r\nX-End-To-End: kept\r\n\r\n',
    );
    const response = await readUntil(socket, /\r\n0\r\n\r\n$/);
    socket.destroy();
    const { headers } = lastSeen('/hop-by-hop');
    for (const name of [
      'x-client-hop',
      'keep-alive',
      'proxy-authorization',
      'te',
      'proxy-connection',
    ]) {
      expect(headers[name], name).toBeUndefined();
    }
    expect(headers['x-end-to-end']).toBe('kept');
    const head = response.split('\r\n\r\n')[0]?.toLowerCase() ?? '';
    expect(head).not.toContain('x-backend-hop');
    expect(head).not.toContain('proxy-authenticate');
    expect(head).not.toContain('timeout=99');
    expect(head).toContain('x-end-to-end: kept');
  });

  it('keeps connections alive to the backend and to the client', async () => {
    const before = backendConnections;
    const socket = await tlsConnect(proxy.port, ca);
    for (let i = 0; i < 5; i++) {
      socket.write(`GET /keepalive-${i} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      const response = await readUntil(socket, /\{"ok":true\}/);
      expect(response.toLowerCase()).not.toContain('connection: close');
    }
    socket.destroy();
    // Sequential requests reuse one upstream socket (earlier tests may have left idle ones to reuse).
    expect(backendConnections - before).toBeLessThanOrEqual(1);
  });

  it('answers 504 in registry JSON when the backend sends nothing, counted as a timeout', async () => {
    const timeouts = async () => {
      const text = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
      return Number(
        /^rtp_upstream_errors_total\{backend="[^"]+",kind="timeout"\} (\d+)$/m.exec(text)?.[1] ??
          NaN,
      );
    };
    const before = await timeouts();
    const res = await httpsGet(`${proxy.origin}/v2/hang`, { ca });
    expect(res.status).toBe(504);
    expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(JSON.parse(res.body)).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
    expect(await timeouts()).toBe(before + 1);
  });
});

describe('malformed requests', () => {
  const tmp = tempDir('malformed');
  let proxy: Proxy;
  let ca: string;

  beforeAll(async () => {
    // No backend is needed: none of these requests may reach one.
    proxy = await startProxy({
      backend: `http://127.0.0.1:${await freePort()}`,
      tlsDir: join(tmp.path, 'tls'),
    });
    ca = readFileSync(proxy.caFile, 'utf8');
  });

  afterAll(async () => {
    await proxy?.stop();
    tmp.remove();
  });

  it.each([
    [
      'oversized headers',
      `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
    ],
    ['a garbled request line', 'GET /v2/ HTTP/9.Z\r\nHost: localhost\r\n\r\n', 400],
    [
      'Content-Length with Transfer-Encoding',
      'POST /v2/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      400,
    ],
  ])('answers %s with a registry-style JSON error and stays up', async (_name, request, status) => {
    const socket = await tlsConnect(proxy.port, ca);
    socket.write(request);
    const response = await readUntil(socket, /\}\]\}$/);
    socket.destroy();
    expect(statusOf(response)).toBe(status);
    expect(response).toMatch(/\r\nDocker-Distribution-API-Version: registry\/2\.0\r\n/);
    expect(JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4))).toMatchObject({
      errors: [{ code: 'UNSUPPORTED' }],
    });
    expect(proxy.child.exitCode).toBeNull();
  });
});
