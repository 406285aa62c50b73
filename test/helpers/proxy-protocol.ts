/**
 * Shared by the PROXY protocol tests: raw connections that send a header (or
 * hostile bytes), the proxy's refusal lines and counts, and haproxy in front of one
 * proxy with the client on a network-namespace test host.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { eventually } from './eventually.js';
import { startHAProxy, type HAProxy } from './haproxy.js';
import { createTestHost, type TestHost } from './netns.js';
import { readCA, startProxy, tempDir, type Proxy } from './processes.js';

/** The peer trusted to send headers: haproxy, on loopback. */
export const TRUSTED = '127.0.0.1';
/** Another loopback address, not trusted: it may not claim anyone's address. */
export const UNTRUSTED = '127.0.0.5';
export const HEADERS_MS = 1000;

/**
 * haproxy (mode tcp, on the test host link's root side) in front of one proxy on
 * loopback that trusts PROXY headers from it and requires them; the backend is the
 * caller's. Registers beforeAll/afterAll; read the fields inside tests.
 */
export function useHAProxyFront(
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
    /**
     * curl on the test host (or `on`, another one with a route to it) through haproxy,
     * trusting exactly the proxy's CA unless `trust` is false.
     */
    curl(path: string, o: { trust?: boolean; args?: readonly string[]; on?: TestHost } = {}) {
      const { hostAddress } = started(host);
      return run(o.on ?? started(host), [
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

export function started<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('not started yet (use it inside a test)');
  return value;
}

export function run(
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

export function headerValues(rawHeaders: string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === name) values.push(rawHeaders[i + 1] ?? '');
  }
  return values;
}

export function refusals(proxy: Proxy): Record<string, unknown>[] {
  return proxy
    .logLines()
    .filter((l) => String(l['msg']).startsWith('PROXY protocol: connection refused'));
}

export function refusalLine(proxy: Proxy, reason: string): Promise<Record<string, unknown>> {
  return eventually(`a PROXY refusal line with reason ${reason}`, () =>
    refusals(proxy).find((l) => l['reason'] === reason),
  );
}

export function handshakeFailureLines(proxy: Proxy): Record<string, unknown>[] {
  return proxy.logLines().filter((l) => String(l['msg']).startsWith('TLS handshake failed'));
}

/** rtp_proxy_protocol_refused_total{reason} as the admin listener's /metrics shows it. */
export async function refusedCount(proxy: Proxy, reason: string): Promise<number> {
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
export function sendRaw(
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
export function requestWithHeader(
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
