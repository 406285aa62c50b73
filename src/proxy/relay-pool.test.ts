/**
 * The relay pool learns a backend's unannounced idle timeout from the first idle
 * connection the backend closes, and sends uploads (which cannot be sent twice) only
 * on connections idle for less. It warns once a second close confirms the timeout, and
 * forgets what a backend that restarted (every idle connection closed at once) taught.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { idleLimitUnder, RelayPool, type Conn } from './relay-pool.js';

const RESPONSE = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

/** A backend that answers every request and closes a connection idle for `idleCloseMs`. */
async function backendClosingIdleAfter(idleCloseMs: number, listenPort = 0) {
  const closedByBackend: Socket[] = [];
  const serverSockets = new Set<Socket>();
  const server = createServer((socket) => {
    serverSockets.add(socket);
    socket.on('close', () => serverSockets.delete(socket));
    let timer: NodeJS.Timeout | undefined;
    socket.on('data', () => {
      clearTimeout(timer);
      socket.write(RESPONSE);
      timer = setTimeout(() => {
        closedByBackend.push(socket);
        socket.end();
      }, idleCloseMs);
    });
    socket.on('close', () => clearTimeout(timer));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(listenPort, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { server, port, closedByBackend, serverSockets };
}

/** One GET on a pooled connection; resolves when the answer is in and the conn is released. */
function exchange(pool: RelayPool, replayable: boolean): Promise<Conn> {
  const conn = pool.acquire(replayable);
  return new Promise((resolve, reject) => {
    let got = '';
    conn.owner = {
      feed(bytes) {
        got += bytes.toString('latin1');
        if (got.endsWith('ok')) {
          pool.release(conn, true);
          resolve(conn);
        }
        return true;
      },
      gone: reject,
      timedOut: () => reject(new Error('timed out')),
    };
    conn.socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
  });
}

const closedOf = (conn: Conn) =>
  new Promise<void>((r) => (conn.socket.destroyed ? r() : conn.socket.once('close', () => r())));

describe('RelayPool idle limit for uploads', () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  it('keeps a second less than a long idle close, half of a short one, never under 50 ms', () => {
    expect(idleLimitUnder(5000)).toBe(4000);
    expect(idleLimitUnder(150)).toBe(75);
    expect(idleLimitUnder(20)).toBe(50);
  });

  it('after the backend closes an idle connection, sends uploads only on younger ones; GETs still reuse', async () => {
    const backend = await backendClosingIdleAfter(1000);
    server = backend.server;
    const learned: Array<[number, number]> = [];
    const pool = new RelayPool('127.0.0.1', backend.port, 4, 4000, (idleMs, after) =>
      learned.push([idleMs, after]),
    );

    await closedOf(await exchange(pool, false));
    expect(backend.closedByBackend).toHaveLength(1);
    expect(learned).toEqual([]); // lowered at once, but one close is not yet a timeout
    const limit = pool.uploadIdleLimitMs();
    // The close is timed from our release, which comes a little after the backend starts
    // its 1 s timer (it answers first); on a busy machine tens of ms either way.
    expect(limit).toBeGreaterThanOrEqual(idleLimitUnder(900));
    expect(limit).toBeLessThanOrEqual(idleLimitUnder(1200));

    // A connection idle past the learned limit (~500 ms), still short of the backend's 1 s:
    const kept = await exchange(pool, true);
    await new Promise((r) => setTimeout(r, limit + 200));
    expect(kept.socket.destroyed).toBe(false);
    const upload = pool.acquire(false);
    expect(upload.socket).not.toBe(kept.socket);
    expect(upload.reused).toBe(false);
    pool.discard(upload);
    const get = pool.acquire(true);
    expect(get.socket).toBe(kept.socket);
    expect(get.reused).toBe(true);
    pool.discard(get);

    // A second close after as long, at another moment: a timeout, told once.
    await closedOf(await exchange(pool, false));
    expect(learned).toHaveLength(1);
    const [told, after] = learned[0]!;
    expect(after).toBeGreaterThan(900);
    expect(after).toBeLessThan(1200);
    expect(told).toBe(pool.uploadIdleLimitMs());
    pool.destroy();
  });

  it('a backend that restarts teaches nothing: no warning, and the next long-idle GET lifts the limit', async () => {
    let backend = await backendClosingIdleAfter(10_000);
    server = backend.server;
    const learned: number[] = [];
    const pool = new RelayPool('127.0.0.1', backend.port, 4, 4000, (idleMs) =>
      learned.push(idleMs),
    );
    const conns = await Promise.all([
      exchange(pool, true),
      exchange(pool, true),
      exchange(pool, true),
    ]);
    await new Promise((r) => setTimeout(r, 150));
    // The registry restarts: every idle connection closes in the same moment.
    const port = backend.port;
    for (const socket of [...backend.serverSockets]) socket.end();
    await Promise.all(conns.map(closedOf));
    server.close();
    expect(pool.uploadIdleLimitMs()).toBeLessThan(4000); // lowered, to be safe
    backend = await backendClosingIdleAfter(10_000, port);
    server = backend.server;

    const again = await exchange(pool, true);
    // Idle far longer than twice the closes were (150 ms, more on a busy machine).
    await new Promise((r) => setTimeout(r, 900));
    const reused = await exchange(pool, true);
    expect(reused.socket).toBe(again.socket);
    expect(pool.uploadIdleLimitMs()).toBe(4000);
    expect(learned).toEqual([]);
    pool.destroy();
  });

  it('learns nothing from connections it closes itself', async () => {
    const backend = await backendClosingIdleAfter(10_000);
    server = backend.server;
    const learned: number[] = [];
    const pool = new RelayPool('127.0.0.1', backend.port, 4, 100, (idleMs) => learned.push(idleMs));
    await closedOf(await exchange(pool, false));
    expect(backend.closedByBackend).toHaveLength(0);
    expect(learned).toEqual([]);
    expect(pool.uploadIdleLimitMs()).toBe(100);
    pool.destroy();
  });
});
