/**
 * Idle limits, not deadlines: a transfer that keeps moving is never cut, a
 * client that goes silent is, and its upstream request goes with it.
 */
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { freePort, startProxy, tempDir, type Proxy } from './helpers/processes.js';
import { readUntil, statusOf, tlsConnect, waitForClose } from './helpers/raw-tls.js';

const CLIENT_IDLE_MS = 1000;

describe('idle timeouts', () => {
  const tmp = tempDir('timeouts');
  let backend: Server;
  let proxy: Proxy;
  let ca: string;
  const received = new Map<string, { bytes: number; complete: boolean; closedEarly: boolean }>();

  beforeAll(async () => {
    backend = createServer((req, res) => {
      const entry = { bytes: 0, complete: false, closedEarly: false };
      received.set(req.url ?? '', entry);
      req.on('data', (d: Buffer) => (entry.bytes += d.length));
      req.on('end', () => {
        entry.complete = true;
        if (req.url === '/slow-response') {
          // Headers at once, then the body trickles for well over the idle limit.
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          let n = 0;
          const timer = setInterval(() => {
            res.write('x');
            if (++n === 8) {
              clearInterval(timer);
              res.end();
            }
          }, CLIENT_IDLE_MS / 2);
          return;
        }
        res
          .writeHead(201, { 'content-type': 'application/json' })
          .end(JSON.stringify({ bytes: entry.bytes }));
      });
      req.on('close', () => {
        if (!entry.complete) entry.closedEarly = true;
      });
    });
    const port = await freePort();
    await new Promise<void>((r) => backend.listen(port, '127.0.0.1', r));
    proxy = await startProxy({
      backend: `http://127.0.0.1:${port}`,
      tlsDir: join(tmp.path, 'tls'),
      env: { RTP_TIMEOUTS_CLIENT_IDLE_MS: String(CLIENT_IDLE_MS) },
    });
    ca = readFileSync(proxy.caFile, 'utf8');
  });

  afterAll(async () => {
    await proxy?.stop();
    backend?.closeAllConnections();
    await new Promise((r) => backend?.close(r));
    tmp.remove();
  });

  it('never cuts an upload that keeps moving, however long it takes in total', async () => {
    const socket = await tlsConnect(proxy.port, ca);
    const chunks = 8;
    socket.write(
      `PATCH /slow-upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${chunks}\r\n\r\n`,
    );
    for (let i = 0; i < chunks; i++) {
      await new Promise((r) => setTimeout(r, CLIENT_IDLE_MS / 2));
      socket.write('x');
    }
    const response = await readUntil(socket, /\{"bytes":8\}/);
    socket.destroy();
    expect(statusOf(response)).toBe(201);
  });

  it('never cuts a download that keeps moving to a patient client', async () => {
    const socket = await tlsConnect(proxy.port, ca);
    socket.write('GET /slow-response HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const response = await readUntil(socket, /\r\n0\r\n\r\n$/, 15_000);
    socket.destroy();
    expect(statusOf(response)).toBe(200);
    expect(response.match(/\r\nx\r\n/g)).toHaveLength(8);
  });

  it('closes a client that goes silent mid-upload, and aborts its upstream request', async () => {
    const socket = await tlsConnect(proxy.port, ca);
    socket.write('PATCH /stalled HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\nxxxx');
    const elapsed = await waitForClose(socket);
    expect(elapsed).toBeGreaterThanOrEqual(CLIENT_IDLE_MS - 100);
    expect(elapsed).toBeLessThan(CLIENT_IDLE_MS * 4);
    await eventually(
      'the backend to see the upload end early',
      () => received.get('/stalled')?.closedEarly,
    );
    expect(received.get('/stalled')).toMatchObject({
      bytes: 4,
      complete: false,
      closedEarly: true,
    });
  });
});
