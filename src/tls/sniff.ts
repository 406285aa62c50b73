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
import { setClientAddress } from '../net/client-address.js';
import {
  looksLikeProxyHeader,
  parseProxyHeader,
  ProxyHeaderError,
  type ProxyHeaderResult,
  type ProxyRefusalReason,
} from '../net/proxy-protocol.js';
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
  /** proxyProtocol: who sends a PROXY header first; absent when no one does. */
  proxyProtocol?: ProxyProtocolOptions;
  /** A connection closed for its PROXY header (or its lack); `message` says what was wrong. */
  onProxyRefused?: (socket: Socket, reason: ProxyRefusalReason, message: string) => void;
}

export interface ProxyProtocolOptions {
  /** Whether a peer (the balancer) is in proxyProtocol.trustedFrom. */
  isTrusted: (address: string) => boolean;
  /** A trusted peer must send a header (required: true). */
  required: boolean;
  /** The whole header must arrive within this time (timeouts.headersMs). */
  timeoutMs: number;
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
    const { proxyProtocol, onProxyRefused } = route();
    const peer = socket.remoteAddress;
    const header = peer !== undefined && proxyProtocol?.isTrusted(peer) ? proxyProtocol : undefined;
    readFirstBytes(socket, header, onProxyRefused, (head) => {
      done();
      // Read at the first byte, not at accept: a reload in between must not hand the
      // connection to the server that is draining.
      classify(socket, head, route());
    });
  });
  return { server, sniffing: () => sniffing };
}

/** Where the first bytes after any PROXY header go: the HTTPS server, or a short refusal. */
function classify(socket: Socket, head: Buffer, target: SniffOptions): void {
  socket.unshift(head);
  socket.setTimeout(0);
  const { https, onPlainHTTP, onNotTLS, onACMEValidation } = target;
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
}

/**
 * Reads until the client's first bytes are there (everything that has arrived: a TLS
 * record header's 5 bytes come in the first segment). From a peer in
 * proxyProtocol.trustedFrom (`header`), a PROXY header is read first, whole, within
 * its deadline, and its address becomes the client's (net/client-address.ts); from
 * any other peer, bytes that start like one close the connection. Each refusal
 * closes only that connection.
 */
function readFirstBytes(
  socket: Socket,
  header: ProxyProtocolOptions | undefined,
  onRefused: SniffOptions['onProxyRefused'],
  then: (head: Buffer) => void,
): void {
  let buffered: Buffer = Buffer.alloc(0);
  let readingHeader = header !== undefined;
  const timer = header
    ? setTimeout(
        () => refuse('timeout', `no complete PROXY header within ${header.timeoutMs} ms`),
        header.timeoutMs,
      )
    : undefined;
  const stop = () => {
    clearTimeout(timer);
    socket.off('readable', onReadable);
    socket.off('end', onEnd);
    socket.off('close', stop);
  };
  const refuse = (reason: ProxyRefusalReason, message: string) => {
    stop();
    onRefused?.(socket, reason, message);
    socket.destroy();
  };
  function onEnd() {
    if (readingHeader && buffered.length > 0) {
      refuse('truncated', `the connection ended after ${buffered.length} bytes of a PROXY header`);
      return;
    }
    stop();
    socket.destroy();
  }
  function onReadable() {
    for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null;) {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    }
    if (readingHeader && header) {
      let result: ProxyHeaderResult;
      try {
        result = parseProxyHeader(buffered);
      } catch (err) {
        // Anything else thrown would be our bug; the connection is refused all the same.
        const known = err instanceof ProxyHeaderError;
        refuse(known ? err.reason : 'malformed', known ? err.message : String(err));
        return;
      }
      if (result.kind === 'incomplete') return;
      if (result.kind === 'absent' && header.required) {
        refuse('missing', 'no PROXY header, and proxyProtocol.required is true');
        return;
      }
      if (result.kind === 'header') {
        if (result.source) setClientAddress(socket, result.source.address);
        buffered = buffered.subarray(result.length);
      }
      readingHeader = false;
      clearTimeout(timer);
    }
    if (buffered.length === 0) return;
    if (!header && looksLikeProxyHeader(buffered)) {
      refuse(
        'untrusted',
        'a PROXY header from a peer that proxyProtocol.trustedFrom does not list',
      );
      return;
    }
    stop();
    then(buffered);
  }
  socket.on('readable', onReadable);
  socket.once('end', onEnd);
  socket.once('close', stop);
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
