/**
 * The fast path (the Upstream of upstream-relay.ts): a minimal HTTP/1.1 client of our
 * own on pooled keep-alive sockets to the backend (relay-pool.ts), its responses
 * parsed by response-reader.ts.
 *
 * Why not http-proxy here: measured on a 1 GiB blob pull (bench/RESULTS.md), Node's
 * HTTP client path costs about 3 CPU-seconds per GiB against 1 for a raw relay.
 * Its parser copies every body chunk into a fresh Buffer, each 64 KiB socket read
 * allocates another, and the external-memory pressure runs a full (mark-compact)
 * GC every ~16 MiB. Here each backend socket reads into one reusable buffer
 * (net's `onread`), and the bytes go straight to the client's TLS socket, which
 * encrypts them before the write returns. The buffer is reused only after that
 * write's callback, so a slow client pauses the backend socket instead of
 * queueing data (no backlog in memory).
 */
import type { Socket } from 'node:net';
import { BACKEND_TIMEOUT, backendTimeout } from '../net/errno.js';
import { notePace, type Conn, type ConnOwner, type RelayPool } from './relay-pool.js';
import { ResponseReader, type ReaderEvents, type ResponseHead } from './response-reader.js';

export interface RelayRequest {
  method: string;
  /** Path and query as the client sent them. */
  url: string;
  /** Already prepared for the backend (forwarding headers set, hop-by-hop removed). */
  headers: Record<string, string | string[] | undefined>;
  /** The request body, when there is one; framing as the client sent it. */
  body?: { stream: NodeJS.ReadableStream; length: number | undefined };
}

export interface RelayHandlers {
  /** The backend's response head; the caller writes its own head to the client. */
  onHead(head: ResponseHead): void;
  /** Body bytes, valid only until `done` is called (the buffer is reused after). */
  onBody(bytes: Buffer, done: (err?: Error | null) => void): void;
  onEnd(): void;
  /** Before the head: the exchange failed (502/504 for the client); after it: the body broke off. */
  onError(err: NodeJS.ErrnoException, headSent: boolean): void;
}

/** Sends one request on a pooled connection and streams the answer through `handlers`. */
export function relay(pool: RelayPool, req: RelayRequest, handlers: RelayHandlers): RelayCall {
  return new RelayCall(pool, req, handlers);
}

/**
 * One request on the relay: it owns its connection (a second one when a reused
 * connection died before answering) and reads the answer from it.
 */
export class RelayCall implements ConnOwner, ReaderEvents {
  private conn: Conn;
  private reader: ResponseReader;
  private finished = false;
  private headSeen = false;
  private retried = false;
  /** The whole request went out (a backend that answered before could not take another). */
  private requestSent = false;
  private keepAliveHint: string | string[] | undefined;
  /** How long the backend may stay silent (0: no limit); the exchange sets it. */
  private idleMs = 0;

  constructor(
    private readonly pool: RelayPool,
    private readonly req: RelayRequest,
    private readonly handlers: RelayHandlers,
  ) {
    this.conn = pool.acquire(this.replayable());
    this.reader = this.start();
  }

  /** The client went away: drop the backend connection. */
  abort(): void {
    if (this.finished) return;
    this.finished = true;
    this.pool.discard(this.conn);
  }

  setIdleTimeout(ms: number): void {
    this.idleMs = ms;
    if (!this.finished) this.conn.socket.setTimeout(ms);
  }

  // ConnOwner: what happens on the socket.
  feed(bytes: Buffer): boolean {
    return this.reader.feed(bytes);
  }

  gone(err: NodeJS.ErrnoException): void {
    if (!this.reader.eof()) this.onError(err);
  }

  timedOut(): void {
    this.onError(backendTimeout(this.idleMs));
  }

  // ReaderEvents: what the response says.
  onHead(head: ResponseHead): void {
    this.headSeen = true;
    this.keepAliveHint = head.headers['keep-alive'];
    this.handlers.onHead(head);
  }

  onBody(bytes: Buffer, done: (err?: Error | null) => void): void {
    const conn = this.conn;
    const started = performance.now();
    this.handlers.onBody(bytes, (err) => {
      notePace(conn, bytes.length, performance.now() - started);
      done(err);
    });
  }

  onEnd(reusable: boolean): void {
    if (this.finished) return;
    this.finished = true;
    this.pool.release(this.conn, reusable && this.requestSent, this.keepAliveHint);
    this.handlers.onEnd();
  }

  onError(err: NodeJS.ErrnoException): void {
    if (this.finished) return;
    if (this.mayRetry(err)) {
      this.retried = true;
      this.pool.discard(this.conn);
      this.conn = this.pool.acquire(true);
      this.reader = this.start();
      return;
    }
    this.finished = true;
    this.pool.discard(this.conn);
    this.handlers.onError(err, this.headSeen);
  }

  resume(): void {
    this.conn.socket.resume();
  }

  /**
   * A reused keep-alive socket the backend had already closed: once more on a new one.
   * Only a GET or HEAD: the usual race (the backend closes as our request goes out)
   * leaves the request written, so "nothing was written" would rarely allow a retry,
   * and the backend may have acted on what it read. GET and HEAD are safe to repeat
   * (RFC 9110 §9.2.1; Caddy retries only these by default). A body-less PUT is an
   * upload's completion: idempotent on paper, but a second one after the registry
   * completed the first answers 404 BLOB_UPLOAD_UNKNOWN to a push that worked. Not after a
   * timeout: a backend that is alive but silent would make the client wait twice as
   * long for its 504.
   */
  private mayRetry(err: NodeJS.ErrnoException): boolean {
    return (
      !this.headSeen &&
      this.conn.reused &&
      !this.retried &&
      this.replayable() &&
      err.code !== BACKEND_TIMEOUT
    );
  }

  /** May go out twice (mayRetry); anything else is sent only on a connection safe to reuse. */
  private replayable(): boolean {
    return !this.req.body && (this.req.method === 'GET' || this.req.method === 'HEAD');
  }

  /** Sends the request on the current connection; returns the reader of its answer. */
  private start(): ResponseReader {
    this.requestSent = false;
    this.keepAliveHint = undefined;
    const reader = new ResponseReader(this.req.method === 'HEAD', this);
    this.conn.owner = this;
    this.conn.socket.setTimeout(this.idleMs); // also ends the pool's idle timer
    if (this.req.body) {
      streamBody(this, this.conn.socket, requestHead(this.req), this.req.body);
    } else {
      this.conn.socket.write(requestHead(this.req), 'latin1');
      this.requestSent = true;
    }
    return reader;
  }

  /** The request body is out (streamBody). */
  bodySent(): void {
    this.requestSent = true;
  }

  /** The answer is complete: request bytes still coming are dropped (streamBody). */
  answered(): boolean {
    return this.finished && this.headSeen;
  }
}

/**
 * Sends the head with the first body bytes, then the body as the client sends it
 * (chunked when it came chunked), pausing the client while the backend is slower.
 */
function streamBody(
  call: RelayCall,
  socket: Socket,
  requestHead: string,
  body: NonNullable<RelayRequest['body']>,
): void {
  const { stream, length } = body;
  const chunked = length === undefined;
  // The head goes with the first body bytes: a body Node refuses from its start (a bad
  // chunk size) then leaves the backend with nothing of the request.
  let head: string | undefined = requestHead;
  const sendHead = () => {
    if (head === undefined) return;
    socket.write(head, 'latin1');
    head = undefined;
  };
  let waitingForDrain = false;
  stream.on('data', (chunk: Buffer) => {
    if (call.answered()) return;
    // One writev for the head, the chunk's framing and the chunk (three writes were three
    // syscalls). Each 'data' event comes in a turn of its own (one decrypted TLS record),
    // so there is nothing to gather across events.
    socket.cork();
    sendHead();
    if (chunked) socket.write(`${chunk.length.toString(16)}\r\n`);
    socket.write(chunk);
    if (chunked) socket.write('\r\n');
    socket.uncork();
    // Judged after the writev: while corked, write() says false for anything buffered.
    if (waitingForDrain || socket.writableLength <= socket.writableHighWaterMark) return;
    waitingForDrain = true;
    stream.pause();
    socket.once('drain', () => {
      waitingForDrain = false;
      stream.resume();
    });
  });
  stream.once('end', () => {
    call.bodySent();
    if (socket.destroyed) return;
    sendHead();
    if (chunked) socket.write('0\r\n\r\n');
  });
}

function requestHead(req: RelayRequest): string {
  let head = `${req.method} ${req.url} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === 'content-length' || name === 'transfer-encoding') continue;
    for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${v}\r\n`;
  }
  if (req.body) {
    head +=
      req.body.length === undefined
        ? 'transfer-encoding: chunked\r\n'
        : `content-length: ${req.body.length}\r\n`;
  } else if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') {
    head += 'content-length: 0\r\n';
  }
  return head + '\r\n';
}
