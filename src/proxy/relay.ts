/**
 * The fast path for registry bodies (blob downloads, upload chunks): a minimal
 * HTTP/1.1 client of our own on pooled keep-alive sockets to the backend.
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
 *
 * http-proxy keeps serving everything else (manifests, tokens, errors, small
 * requests), where its generality costs little.
 */
import { connect, type Socket } from 'node:net';
import { keepAliveLimitMs } from '../net/backend-keepalive.js';
import { BACKEND_TIMEOUT, backendTimeout } from '../net/errno.js';

/** One read from a backend socket; 64 KiB is libuv's usual read, 256 KiB halves the reads. */
const READ_SIZE = 256 * 1024;
/**
 * The read size for a slow client. A slow reader holds one read's worth of plaintext
 * (and its ciphertext) until it takes it: with 256 KiB reads, 400 slow-read
 * connections (slowhttptest -X) grew the proxy by ~300 MiB. Fast clients keep the
 * big reads (64 KiB reads cost 20–30 % more CPU per GiB).
 */
const SLOW_READ_SIZE = 16 * 1024;
/**
 * A client write that takes longer marks the client slow (256 KiB in 100 ms is
 * 2.5 MB/s). Not "the write was queued": a fast client on loopback queues too, as
 * the proxy outruns it, and reading small for it cost 60 % more CPU per GiB.
 */
const SLOW_WRITE_MS = 100;
/**
 * Bytes a client must take promptly before it is read for in big pieces. Every
 * exchange starts small: a slow-read attacker never completes even its first big
 * write, yet the kernel's send buffer takes the first ~100 KiB at once from anyone
 * (a ramp of 8 writes = 128 KiB let 400 slow readers through to big reads). A fast
 * client is up to speed after 1 MiB, 64 small reads.
 */
const FAST_AFTER_BYTES = 1024 * 1024;
const MAX_HEAD_BYTES = 64 * 1024;

export interface UpstreamHead {
  status: number;
  statusMessage: string;
  headers: Record<string, string | string[]>;
}

/** A backend connection, its reusable read buffer, and whoever consumes its bytes now. */
interface Conn {
  socket: Socket;
  /** Returns false to pause reading (resume with socket.resume()). */
  sink: ((bytes: Buffer) => boolean) | undefined;
  /** Called when the socket ends or fails while an exchange owns it. */
  onGone: ((err: NodeJS.ErrnoException) => void) | undefined;
  /** Called when the socket has been idle past its timeout (owned: a silent backend; pooled: closes it). */
  onTimeout: (() => void) | undefined;
  reused: boolean;
  /** The buffers reads go to: the big one while the client keeps up, else the small one. */
  big: Buffer | undefined;
  small: Buffer | undefined;
  /** Bytes the client took promptly since its last slow write; below FAST_AFTER_BYTES = slow. */
  promptBytes: number;
}

export class UpstreamPool {
  private readonly idle: Conn[] = [];
  private activeCount = 0;
  private closed = false;

  /**
   * `idleMs`: how long an idle connection is kept (0 = never), below the backend's own
   * keep-alive timeout, so the backend never closes one just as an upload is sent on it
   * (that upload would fail, and cannot be retried).
   */
  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly maxIdle: number,
    private readonly idleMs: number,
  ) {}

  stats(): { active: number; idle: number } {
    return { active: this.activeCount, idle: this.idle.length };
  }

  acquire(): Conn {
    this.activeCount++;
    for (;;) {
      const conn = this.idle.pop();
      if (!conn) break;
      if (!conn.socket.destroyed && conn.socket.readable && conn.socket.writable) {
        conn.reused = true;
        return conn;
      }
    }
    return this.create();
  }

  /**
   * Back to the pool if it can carry another exchange, else closed. `keepAliveHint` is the
   * backend's `Keep-Alive` response header, whose `timeout=N` shortens the idle time.
   */
  release(conn: Conn, reusable: boolean, keepAliveHint?: string | string[]): void {
    this.activeCount--;
    conn.sink = undefined;
    conn.onGone = undefined;
    conn.promptBytes = 0; // the next client starts with small reads
    const idleMs = Math.min(this.idleMs, keepAliveLimitMs(keepAliveHint));
    if (
      !reusable ||
      idleMs <= 0 ||
      this.closed ||
      conn.socket.destroyed ||
      this.idle.length >= this.maxIdle
    ) {
      conn.onTimeout = undefined;
      conn.socket.setTimeout(0);
      conn.socket.destroy();
      return;
    }
    conn.onTimeout = () => conn.socket.destroy(); // idle too long: 'close' takes it out of the pool
    conn.socket.setTimeout(idleMs);
    conn.socket.resume();
    this.idle.push(conn);
  }

  /** For an exchange that ended badly: never reused. */
  discard(conn: Conn): void {
    this.release(conn, false);
  }

  destroy(): void {
    this.closed = true;
    for (const conn of this.idle.splice(0)) conn.socket.destroy();
  }

  private create(): Conn {
    // The buffers first: connect() asks for the first read buffer before it returns.
    const buffers: Pick<Conn, 'big' | 'small' | 'promptBytes'> = {
      big: undefined,
      small: undefined,
      promptBytes: 0,
    };
    const conn: Conn = Object.assign(buffers, {
      sink: undefined,
      onGone: undefined,
      onTimeout: undefined,
      reused: false,
      socket: connect({
        host: this.host,
        port: this.port,
        noDelay: true,
        onread: {
          // Called before every read; the buffer of the previous read is not read into
          // again until its bytes are written (reading pauses until then).
          buffer: () => readBuffer(buffers),
          callback: (nread: number, buf: Buffer) => {
            if (!conn.sink) {
              // Bytes nobody asked for (an idle keep-alive socket): the connection is out of step.
              conn.socket.destroy();
              return false;
            }
            return conn.sink(buf.subarray(0, nread));
          },
        },
      }),
    });
    const gone = (err?: NodeJS.ErrnoException) => {
      const i = this.idle.indexOf(conn);
      if (i >= 0) this.idle.splice(i, 1);
      const onGone = conn.onGone;
      conn.onGone = undefined;
      onGone?.(
        err ??
          Object.assign(new Error('the backend closed the connection'), { code: 'ECONNRESET' }),
      );
    };
    conn.socket.on('error', (err) => gone(err));
    conn.socket.on('end', () => {
      conn.socket.destroy();
      gone();
    });
    conn.socket.on('close', () => gone());
    conn.socket.on('timeout', () => conn.onTimeout?.());
    return conn;
  }
}

function readBuffer(conn: Pick<Conn, 'big' | 'small' | 'promptBytes'>): Buffer {
  if (conn.promptBytes >= FAST_AFTER_BYTES) return (conn.big ??= Buffer.allocUnsafe(READ_SIZE));
  // A slow client: let the big buffer go (an in-flight write may still hold it).
  conn.big = undefined;
  return (conn.small ??= Buffer.allocUnsafe(SLOW_READ_SIZE));
}

/** Notes how long the client took for a body write of `bytes`. */
function notePace(conn: Pick<Conn, 'promptBytes'>, bytes: number, ms: number): void {
  conn.promptBytes = ms < SLOW_WRITE_MS ? conn.promptBytes + bytes : 0;
}

export interface RelayRequest {
  method: string;
  /** Path and query as the client sent them. */
  url: string;
  /** Already prepared for the backend (forwarding headers set, hop-by-hop removed). */
  headers: Record<string, string | string[] | undefined>;
  /** The request body, when there is one; framing as the client sent it. */
  body?: { stream: NodeJS.ReadableStream; length: number | undefined };
  backendIdleMs: number;
}

export interface RelayHandlers {
  /** The backend's response head; the caller writes its own head to the client. */
  onHead(head: UpstreamHead): void;
  /** Body bytes, valid only until `done` is called (the buffer is reused after). */
  onBody(bytes: Buffer, done: (err?: Error | null) => void): void;
  onEnd(): void;
  /** Before the head: the exchange failed (502/504 for the client); after it: the body broke off. */
  onError(err: NodeJS.ErrnoException, headSent: boolean): void;
}

export interface RelayControl {
  /** The client went away: drop the backend connection. */
  abort(): void;
}

/** Sends one request on a pooled connection and streams the answer through `handlers`. */
export function relay(
  pool: UpstreamPool,
  req: RelayRequest,
  handlers: RelayHandlers,
): RelayControl {
  let conn = pool.acquire();
  let finished = false;
  let headSeen = false;
  let retried = false;

  const fail = (err: NodeJS.ErrnoException) => {
    if (finished) return;
    // A reused keep-alive socket the backend had already closed: once more on a new one.
    // Only a GET or HEAD: the usual race (the backend closes as our request goes out)
    // leaves the request written, so "nothing was written" would rarely allow a retry,
    // and the backend may have acted on what it read. GET and HEAD are safe to repeat
    // (RFC 9110 §9.2.1; Caddy retries only these by default). A body-less PUT is an
    // upload's completion: idempotent on paper, but a second one after the registry
    // completed the first answers 404 BLOB_UPLOAD_UNKNOWN to a push that worked. Not after a
    // timeout: a backend that is alive but silent would make the client wait twice as
    // long for its 504.
    if (
      !headSeen &&
      conn.reused &&
      !retried &&
      !req.body &&
      (req.method === 'GET' || req.method === 'HEAD') &&
      err.code !== BACKEND_TIMEOUT
    ) {
      retried = true;
      pool.discard(conn);
      conn = pool.acquire();
      start();
      return;
    }
    finished = true;
    pool.discard(conn);
    handlers.onError(err, headSeen);
  };

  const start = () => {
    let requestSent = false;
    let keepAliveHint: string | string[] | undefined;
    const reader = new ResponseReader(req.method === 'HEAD', {
      onHead: (head) => {
        headSeen = true;
        keepAliveHint = head.headers['keep-alive'];
        conn.socket.setTimeout(0); // from here on the client's idleness governs
        handlers.onHead(head);
      },
      onBody: (bytes, done) => {
        const started = performance.now();
        handlers.onBody(bytes, (err) => {
          notePace(conn, bytes.length, performance.now() - started);
          done(err);
        });
      },
      onEnd: (reusable) => {
        if (finished) return;
        finished = true;
        // A backend that answered before reading the whole request body cannot take another.
        pool.release(conn, reusable && requestSent, keepAliveHint);
        handlers.onEnd();
      },
      onError: fail,
      resume: () => conn.socket.resume(),
    });
    conn.sink = (bytes) => reader.feed(bytes);
    conn.onGone = (err) => (reader.eof() ? undefined : fail(err));
    conn.onTimeout = () => fail(backendTimeout(req.backendIdleMs));
    conn.socket.setTimeout(req.backendIdleMs);
    if (!req.body) {
      conn.socket.write(requestHead(req), 'latin1');
      requestSent = true;
      return;
    }
    const { stream, length } = req.body;
    const chunked = length === undefined;
    const socket = conn.socket;
    // The head goes with the first body bytes: a body Node refuses from its start (a bad
    // chunk size) then leaves the backend with nothing of the request.
    let head: string | undefined = requestHead(req);
    const sendHead = () => {
      if (head === undefined) return;
      socket.write(head, 'latin1');
      head = undefined;
    };
    let waitingForDrain = false;
    const onData = (chunk: Buffer) => {
      if (finished && headSeen) return;
      sendHead();
      // Every piece is written whatever write() says: false only asks to pause after this chunk.
      if (chunked) socket.write(`${chunk.length.toString(16)}\r\n`);
      let ok = socket.write(chunk);
      if (chunked) ok = socket.write('\r\n') && ok;
      if (!ok && !waitingForDrain) {
        waitingForDrain = true;
        stream.pause();
        socket.once('drain', () => {
          waitingForDrain = false;
          stream.resume();
        });
      }
    };
    stream.on('data', onData);
    stream.once('end', () => {
      requestSent = true;
      if (socket.destroyed) return;
      sendHead();
      if (chunked) socket.write('0\r\n\r\n');
    });
  };

  start();
  return {
    abort() {
      if (finished) return;
      finished = true;
      pool.discard(conn);
    },
  };
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

interface ReaderEvents {
  onHead(head: UpstreamHead): void;
  onBody(bytes: Buffer, done: (err?: Error | null) => void): void;
  onEnd(reusable: boolean): void;
  onError(err: NodeJS.ErrnoException): void;
  /** Resume reading the socket after feed() returned false. */
  resume(): void;
}

type Framing =
  | { kind: 'none' }
  | { kind: 'length'; remaining: number }
  | {
      kind: 'chunked';
      state: 'size' | 'data' | 'data-crlf' | 'trailers';
      remaining: number;
      line: string;
    }
  | { kind: 'close' };

/**
 * Parses one response from the bytes of a socket: the head (1xx answers skipped),
 * then the body by Content-Length, chunked encoding, or until the connection closes.
 */
class ResponseReader {
  private headBytes: Buffer[] = [];
  private headLength = 0;
  private framing: Framing | undefined;
  private done = false;
  /** Bytes fed but not yet consumed while a body write is in flight. */
  private pending: Buffer | undefined;
  /** The backend did not say Connection: close. */
  private keepAlive = true;

  constructor(
    private readonly headRequest: boolean,
    private readonly events: ReaderEvents,
  ) {}

  /** Returns false when the socket must pause until a body write completes. */
  feed(bytes: Buffer): boolean {
    this.pending = bytes;
    return this.pump();
  }

  /** The connection closed: for a body that runs until close, that is its end. */
  eof(): boolean {
    if (this.framing?.kind === 'close' && !this.done) {
      this.done = true;
      this.events.onEnd(false);
      return true;
    }
    return this.done;
  }

  private pump(): boolean {
    while (this.pending && this.pending.length > 0 && !this.done) {
      const bytes = this.pending;
      if (!this.framing) {
        const rest = this.readHead(bytes);
        if (rest === undefined) return true;
        this.pending = rest;
        continue;
      }
      const step = this.bodyStep(bytes);
      if (step === 'wait') return false;
    }
    this.pending = undefined;
    return true;
  }

  /** Consumes head bytes; returns what follows the head, or undefined while it is incomplete. */
  private readHead(bytes: Buffer): Buffer | undefined {
    // The head is copied out: the read buffer is reused.
    const start = this.headLength;
    this.headBytes.push(Buffer.from(bytes));
    this.headLength += bytes.length;
    const all = this.headBytes.length === 1 ? this.headBytes[0]! : Buffer.concat(this.headBytes);
    const end = all.indexOf('\r\n\r\n', Math.max(0, start - 3), 'latin1');
    if (end < 0) {
      if (this.headLength > MAX_HEAD_BYTES) {
        this.fail('the backend sent a response head over 64 KiB');
      }
      this.pending = undefined;
      return undefined;
    }
    const rest = all.subarray(end + 4);
    this.headBytes = [];
    this.headLength = 0;
    const head = parseHead(all.toString('latin1', 0, end));
    if (!head) {
      this.fail('the backend sent a malformed response head');
      return undefined;
    }
    if (head.status >= 100 && head.status < 200) return rest; // 100 Continue, 103: not for the client
    this.framing = framingOf(head, this.headRequest);
    const connection = head.headers['connection'];
    this.keepAlive = !(typeof connection === 'string' && /\bclose\b/i.test(connection));
    this.events.onHead(head);
    if (
      this.framing.kind === 'none' ||
      (this.framing.kind === 'length' && this.framing.remaining === 0)
    ) {
      this.finish(rest.length === 0);
      return undefined;
    }
    return rest;
  }

  /** One step of the body; 'wait' when a write to the client is in flight. */
  private bodyStep(bytes: Buffer): 'more' | 'wait' {
    const f = this.framing!;
    if (f.kind === 'length') {
      const n = Math.min(f.remaining, bytes.length);
      f.remaining -= n;
      const last = f.remaining === 0;
      return this.emit(bytes.subarray(0, n), bytes.subarray(n), last, bytes.length === n);
    }
    if (f.kind === 'close') return this.emit(bytes, Buffer.alloc(0), false, true);
    if (f.kind === 'chunked') {
      if (f.state === 'data') {
        const n = Math.min(f.remaining, bytes.length);
        f.remaining -= n;
        if (f.remaining === 0) f.state = 'data-crlf';
        return this.emit(bytes.subarray(0, n), bytes.subarray(n), false, true);
      }
      // size line, CRLF after data, trailers: line-oriented, small
      const nl = bytes.indexOf(10);
      if (nl < 0) {
        f.line += bytes.toString('latin1');
        if (f.line.length > 4096) this.fail('the backend sent a malformed chunked body');
        this.pending = undefined;
        return 'more';
      }
      const line = (f.line + bytes.toString('latin1', 0, nl)).replace(/\r$/, '');
      f.line = '';
      this.pending = bytes.subarray(nl + 1);
      if (f.state === 'data-crlf') {
        if (line !== '') this.fail('the backend sent a malformed chunked body');
        f.state = 'size';
      } else if (f.state === 'size') {
        const size = parseInt(line.split(';', 1)[0] ?? '', 16);
        if (!Number.isFinite(size) || size < 0) {
          this.fail('the backend sent a malformed chunk size');
        } else if (size === 0) {
          f.state = 'trailers';
        } else {
          f.state = 'data';
          f.remaining = size;
        }
      } else if (line === '') {
        this.finish(this.pending.length === 0);
      }
      return 'more';
    }
    return 'more';
  }

  /**
   * Hands `data` to the client; `rest` is what follows it in this read. Returns 'wait'
   * when the write is in flight (the read buffer stays untouched until its callback).
   */
  private emit(data: Buffer, rest: Buffer, last: boolean, restIsEmpty: boolean): 'more' | 'wait' {
    this.pending = rest;
    if (data.length === 0) {
      if (last) this.finish(restIsEmpty);
      return 'more';
    }
    let sync = true;
    let completed = false;
    this.events.onBody(data, (err) => {
      if (err) {
        this.fail(err.message);
        return;
      }
      if (last) this.finish(restIsEmpty);
      if (sync) {
        completed = true;
        return;
      }
      // The write finished later: carry on with the rest of this read, then read on.
      if (this.pump()) this.events.resume();
    });
    sync = false;
    return completed ? 'more' : 'wait';
  }

  private finish(reusable: boolean): void {
    if (this.done) return;
    this.done = true;
    this.pending = undefined;
    this.events.onEnd(reusable && this.keepAlive);
  }

  private fail(message: string): void {
    if (this.done) return;
    this.done = true;
    this.pending = undefined;
    const err: NodeJS.ErrnoException = new Error(message);
    err.code = 'RTP_BAD_RESPONSE';
    this.events.onError(err);
  }
}

function parseHead(text: string): UpstreamHead | undefined {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
  if (!status) return undefined;
  const headers: Record<string, string | string[]> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prev = headers[name];
    if (prev === undefined) headers[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else headers[name] = name === 'set-cookie' ? [prev, value] : `${prev}, ${value}`;
  }
  return { status: Number(status[1]), statusMessage: status[2] ?? '', headers };
}

function framingOf(head: UpstreamHead, headRequest: boolean): Framing {
  if (headRequest || head.status === 204 || head.status === 304) return { kind: 'none' };
  const te = head.headers['transfer-encoding'];
  if (typeof te === 'string' && /chunked\s*$/i.test(te)) {
    return { kind: 'chunked', state: 'size', remaining: 0, line: '' };
  }
  const length = head.headers['content-length'];
  if (typeof length === 'string' && /^\d+$/.test(length)) {
    return { kind: 'length', remaining: Number(length) };
  }
  return { kind: 'close' };
}
