/**
 * What the relay sends again when a reused backend connection dies before answering:
 * a GET once more on a new connection; an upload's completion (a body-less PUT) never,
 * since the registry may have completed the upload already.
 */
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { relay } from './relay.js';
import { RelayPool } from './relay-pool.js';

/** A backend that answers 200 but drops a reused connection on requests whose path starts /drop. */
async function backendDroppingReused() {
  const requests: string[] = [];
  const server = createServer((socket) => {
    let served = 0;
    let buffered = '';
    socket.on('data', (d: Buffer) => {
      buffered += d.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) >= 0) {
        const line = buffered.slice(0, buffered.indexOf('\r\n'));
        buffered = buffered.slice(end + 4);
        requests.push(line);
        served++;
        if (served > 1 && line.split(' ')[1]?.startsWith('/drop')) {
          socket.destroy();
          return;
        }
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, requests };
}

/** One body-less request through the relay: its status, or the error before any head. */
function send(pool: RelayPool, method: string, url: string) {
  return new Promise<{ status?: number; error?: string }>((resolve) => {
    relay(
      pool,
      { method, url, headers: { host: 'backend' } },
      {
        onHead: (head) => resolve({ status: head.status }),
        onBody: (_bytes, done) => done(),
        onEnd: () => undefined,
        onError: (err) => resolve({ error: err.code ?? err.message }),
      },
    );
  });
}

describe('relay: a reused connection that dies before answering', () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  it('sends a GET again on a new connection', async () => {
    const backend = await backendDroppingReused();
    server = backend.server;
    const pool = new RelayPool('127.0.0.1', backend.port, 4, 4000);
    expect(await send(pool, 'GET', '/warm')).toEqual({ status: 200 });
    expect(await send(pool, 'GET', '/drop-get')).toEqual({ status: 200 });
    expect(backend.requests).toEqual([
      'GET /warm HTTP/1.1',
      ...Array(2).fill('GET /drop-get HTTP/1.1'),
    ]);
    pool.destroy();
  });

  it('sends an upload completion (body-less PUT) once, and reports the failure', async () => {
    const backend = await backendDroppingReused();
    server = backend.server;
    const pool = new RelayPool('127.0.0.1', backend.port, 4, 4000);
    expect(await send(pool, 'GET', '/warm')).toEqual({ status: 200 });
    const put = await send(pool, 'PUT', '/drop-put?digest=sha256:0');
    expect(put.status).toBeUndefined();
    expect(put.error).toBe('ECONNRESET');
    expect(backend.requests).toEqual([
      'GET /warm HTTP/1.1',
      'PUT /drop-put?digest=sha256:0 HTTP/1.1',
    ]);
    pool.destroy();
  });
});
