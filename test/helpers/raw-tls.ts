/**
 * Raw HTTP/1.1 over verified TLS, for requests a well-behaved client library
 * refuses to send (a `Trailer:` header with Content-Length, a hand-driven
 * `Expect: 100-continue`).
 */
import type { Socket } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';

export function tlsConnect(port: number, ca: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () =>
      resolve(socket),
    );
    socket.once('error', reject);
  });
}

/** Collects what the server sends until `until` matches (or the connection ends). */
export function readUntil(socket: TLSSocket, until: RegExp, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => finish(new Error(`timed out; got so far: ${text}`)), timeoutMs);
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      if (until.test(text)) finish();
    };
    const onEnd = () => finish();
    const finish = (err?: Error) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      if (err) reject(err);
      else resolve(text);
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
  });
}

/** The status code of the first response in `text`. */
export function statusOf(text: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
}

/** Resolves when the peer ends or the connection closes, with how long that took. */
export function waitForClose(socket: TLSSocket, timeoutMs = 10_000): Promise<number> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('connection still open')), timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    };
    socket.resume();
    socket.once('end', done);
    socket.once('close', done);
  });
}

/** Everything the server sends until it closes the connection (fails if it stays open). */
export function readToClose(socket: Socket, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(
      () => reject(new Error(`connection still open; got: ${text}`)),
      timeoutMs,
    );
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

/** Sends raw bytes over a fresh verified TLS connection; resolves with all the server sent until it closed. */
export async function exchangeRaw(port: number, ca: string, raw: string): Promise<string> {
  const socket = await tlsConnect(port, ca);
  const response = readToClose(socket);
  socket.write(Buffer.from(raw, 'latin1'));
  return response;
}
