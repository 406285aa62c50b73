/**
 * One port, two answers: a TLS ClientHello (first byte 0x16, a handshake record)
 * goes to the HTTPS server; anything else is a plain-HTTP request sent to the
 * TLS port and gets a short plain-text 400 that says to use https, instead of a
 * hang or a TLS alert the user cannot read. A first record that starts like a
 * handshake but whose header no ClientHello has (a 64 KiB record, version 0x99)
 * is turned away here, so what counts as "not TLS" does not depend on how the
 * OpenSSL release in use words its error.
 */
import type { Server as HTTPSServer } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { formatHostPort } from '../net/address.js';
import { canonicalIP } from '../pki/sans.js';
import { parseClientHello } from './client-hello.js';

const TLS_HANDSHAKE_RECORD = 0x16;
/** Give up on a connection that sends nothing at all for this long. */
const FIRST_BYTE_TIMEOUT_MS = 30_000;

/** RFC 8446 §5.1: a plaintext record carries at most 2^14 bytes. */
const MAX_RECORD_LENGTH = 1 << 14;
const CLIENT_HELLO = 0x01;

export interface SniffOptions {
  https: HTTPSServer;
  onPlainHTTP?: (socket: Socket) => void;
  /** A handshake record that is no ClientHello; the connection is closed. `why` says what was wrong. */
  onNotTLS?: (socket: Socket, why: string) => void;
  /** With ACME: where a ClientHello offering ALPN acme-tls/1 (a tls-alpn-01 validation) goes. */
  onACMEValidation?: (socket: Socket) => void;
}

export interface SniffingServer {
  server: Server;
  /** Connections accepted whose first byte has not arrived yet (a drain waits a little for them). */
  sniffing(): number;
}

/**
 * `route` is asked per connection: a SIGHUP reload points the listening socket at a
 * new HTTPS server (new configuration) while the old one finishes its requests.
 */
export function createSniffingServer(route: () => SniffOptions): SniffingServer {
  let sniffing = 0;
  const server = createServer({ pauseOnConnect: true, noDelay: true }, (socket) => {
    sniffing++;
    let sniffed = false;
    const done = () => {
      if (!sniffed) sniffing--;
      sniffed = true;
    };
    socket.once('close', done);
    socket.on('error', () => socket.destroy());
    socket.setTimeout(FIRST_BYTE_TIMEOUT_MS, () => socket.destroy());
    socket.once('readable', () => {
      done();
      // Everything that has arrived (a record header's 5 bytes come in the first segment).
      const head: Buffer | null = socket.read();
      if (head === null) {
        socket.destroy();
        return;
      }
      socket.unshift(head);
      socket.setTimeout(0);
      // Read at the first byte, not at accept: a reload in between must not hand the
      // connection to the server that is draining.
      const { https, onPlainHTTP, onNotTLS, onACMEValidation } = route();
      const notClientHello = head[0] === TLS_HANDSHAKE_RECORD ? notAClientHello(head) : undefined;
      if (notClientHello !== undefined) {
        onNotTLS?.(socket, notClientHello);
        socket.destroy();
        return;
      }
      if (head[0] === TLS_HANDSHAKE_RECORD) {
        socket.removeAllListeners('error');
        // Read once so net.Socket caches it: once Node closes a TLS connection itself (a
        // rejected client certificate) the addresses are otherwise gone from the log.
        void socket.remoteAddress;
        if (onACMEValidation && parseClientHello(head)?.alpn.includes('acme-tls/1')) {
          onACMEValidation(socket);
          return;
        }
        https.emit('connection', socket);
        return;
      }
      onPlainHTTP?.(socket);
      answerPlainHTTP(socket);
    });
  });
  return { server, sniffing: () => sniffing };
}

/**
 * What rules out the start of a handshake record as a ClientHello, or undefined
 * when what has arrived so far could be one (fewer than 6 bytes are judged on what
 * is there: OpenSSL sees the rest).
 */
export function notAClientHello(head: Buffer): string | undefined {
  const major = head[1];
  if (major !== undefined && major !== 3) {
    return `record version ${major}.${head[2] ?? '?'} is not TLS's 3.x`;
  }
  if (head.length >= 5) {
    const length = head.readUInt16BE(3);
    if (length === 0 || length > MAX_RECORD_LENGTH) {
      return `a record of ${length} bytes, where TLS allows 1 to ${MAX_RECORD_LENGTH}`;
    }
  }
  const type = head[5];
  if (type !== undefined && type !== CLIENT_HELLO) {
    return `handshake message type ${type}, where a client starts with a ClientHello (1)`;
  }
  return undefined;
}

function answerPlainHTTP(socket: Socket): void {
  const port = socket.localPort ?? 443;
  const local = canonicalIP(socket.localAddress ?? '127.0.0.1');
  const hostPort = formatHostPort(local, port);
  const body =
    `This port speaks HTTPS. Use https://${hostPort}/ (for docker: drop --insecure-registry ` +
    `for this address and trust the proxy's CA, see https://${hostPort}/ca.crt).\n`;
  socket.end(
    'HTTP/1.1 400 Bad Request\r\n' +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}
