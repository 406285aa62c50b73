/**
 * A backend that records everything that reaches it: every byte, through a TCP tap
 * in front of a node:http server, and every request that server parsed. Tests of
 * hostile input assert on what the registry would have received, not on what the
 * proxy says it did.
 */
import { readFileSync } from 'node:fs';
import {
  createServer as createHTTPServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { connect, createServer as createTCPServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { eventually } from './eventually.js';
import { freePort, startProxy, tempDir, type Proxy } from './processes.js';

export interface ReceivedRequest {
  method: string;
  url: string;
  /** Name/value pairs as sent, original casing and duplicates kept. */
  rawHeaders: string[];
  body: string;
  /** The whole body arrived (false: the connection broke off mid-request). */
  complete: boolean;
}

export interface RecordingBackend {
  port: number;
  /** Every byte received so far, on every connection, as latin1 text. */
  bytes(): string;
  requests: ReceivedRequest[];
  close(): Promise<void>;
}

/**
 * Answers 202 with a registry-like Location to POST …/blobs/uploads/, 200 `{"ok":true}`
 * to everything else.
 */
function answer(req: IncomingMessage, res: ServerResponse): void {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (req.method === 'POST' && /\/blobs\/uploads\/?$/.test(req.url ?? '')) {
    headers['location'] = `${req.url?.replace(/\/?$/, '/')}upload-1`;
    res.writeHead(202, headers).end();
    return;
  }
  res.writeHead(200, headers).end(req.method === 'HEAD' ? undefined : '{"ok":true}');
}

export async function startRecordingBackend(): Promise<RecordingBackend> {
  const requests: ReceivedRequest[] = [];
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const http = createHTTPServer((req, res) => {
    const entry: ReceivedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      rawHeaders: req.rawHeaders,
      body: '',
      complete: false,
    };
    requests.push(entry);
    req.setEncoding('latin1');
    req.on('data', (d: string) => (entry.body += d));
    req.on('end', () => {
      entry.complete = true;
      answer(req, res);
    });
    req.on('error', () => undefined);
  });
  const httpPort = await freePort();
  await new Promise<void>((r) => http.listen(httpPort, '127.0.0.1', r));
  const tap = createTCPServer((client) => {
    const server = connect(httpPort, '127.0.0.1');
    for (const s of [client, server]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        server.destroy();
      });
    }
    client.on('data', (d: Buffer) => {
      chunks.push(d);
      server.write(d);
    });
    server.pipe(client);
  });
  const port = await freePort();
  await new Promise<void>((r) => tap.listen(port, '127.0.0.1', r));
  return {
    port,
    bytes: () => Buffer.concat(chunks).toString('latin1'),
    requests,
    close: async () => {
      for (const s of sockets) s.destroy();
      http.closeAllConnections();
      await Promise.all([new Promise((r) => tap.close(r)), new Promise((r) => http.close(r))]);
    },
  };
}

export interface RecordingBackendBehindProxy {
  readonly backend: RecordingBackend;
  readonly proxy: Proxy;
  /** The proxy's CA (PEM). */
  readonly ca: string;
}

/** Registers beforeAll/afterAll hooks; read the fields inside tests. */
export function useRecordingBackendBehindProxy(
  name: string,
  env: Record<string, string> = {},
  /** The proxy's listening address (default 127.0.0.1); '::' for a dual-stack listener. */
  host?: string,
): RecordingBackendBehindProxy {
  const tmp = tempDir(name);
  let backend: RecordingBackend | undefined;
  let proxy: Proxy | undefined;
  let ca = '';
  beforeAll(async () => {
    backend = await startRecordingBackend();
    proxy = await startProxy({
      backend: `http://127.0.0.1:${backend.port}`,
      tlsDir: join(tmp.path, 'tls'),
      // The health probe would add its own requests to what the backend records.
      env: { RTP_HEALTH_INTERVAL: '1h', ...env },
      ...(host !== undefined ? { host } : {}),
    });
    ca = readFileSync(proxy.caFile, 'utf8');
    // The start-up probe (GET /v2/) lands before any test takes its snapshot.
    const seen = backend.requests;
    await eventually("the proxy's start-up probe (GET /v2/) to reach the backend", () =>
      seen.some((r) => r.url === '/v2/' && r.complete),
    );
  });
  afterAll(async () => {
    await proxy?.stop();
    await backend?.close();
    tmp.remove();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('not started yet (use it inside a test)');
    return value;
  };
  return {
    get backend() {
      return started(backend);
    },
    get proxy() {
      return started(proxy);
    },
    get ca() {
      return ca;
    },
  };
}
