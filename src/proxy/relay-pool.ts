/**
 * The relay's keep-alive connections to the backend (relay.ts), each with its own
 * reusable read buffers. A connection belongs to one exchange at a time (its owner)
 * or lies idle in the pool; bytes that arrive on an idle one mean it is out of step,
 * and it is closed.
 */
import { connect, type Socket } from 'node:net';
import { keepAliveLimitMs } from '../net/backend-keepalive.js';

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

/** Whoever uses a connection now (relay.ts), told what happens on its socket. */
export interface ConnOwner {
  /** Bytes read, valid until the next read; false pauses reading (resume with socket.resume()). */
  feed(bytes: Buffer): boolean;
  /** The socket ended or failed. */
  gone(err: NodeJS.ErrnoException): void;
  /** The socket was idle past its timeout: a silent backend. */
  timedOut(): void;
}

/** A backend connection, its reusable read buffers, and whoever consumes its bytes now. */
export interface Conn {
  socket: Socket;
  owner: ConnOwner | undefined;
  reused: boolean;
  /** The buffers reads go to: the big one while the client keeps up, else the small one. */
  big: Buffer | undefined;
  small: Buffer | undefined;
  /** Bytes the client took promptly since its last slow write; below FAST_AFTER_BYTES = slow. */
  promptBytes: number;
}

export class RelayPool {
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
    conn.owner = undefined;
    conn.promptBytes = 0; // the next client starts with small reads
    const idleMs = Math.min(this.idleMs, keepAliveLimitMs(keepAliveHint));
    if (
      !reusable ||
      idleMs <= 0 ||
      this.closed ||
      conn.socket.destroyed ||
      this.idle.length >= this.maxIdle
    ) {
      conn.socket.setTimeout(0);
      conn.socket.destroy();
      return;
    }
    conn.socket.setTimeout(idleMs); // idle too long: closed, and 'close' takes it out of the pool
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
      owner: undefined,
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
            if (!conn.owner) {
              // Bytes nobody asked for (an idle keep-alive socket): the connection is out of step.
              conn.socket.destroy();
              return false;
            }
            return conn.owner.feed(buf.subarray(0, nread));
          },
        },
      }),
    });
    const gone = (err?: NodeJS.ErrnoException) => {
      const i = this.idle.indexOf(conn);
      if (i >= 0) this.idle.splice(i, 1);
      const owner = conn.owner;
      conn.owner = undefined; // told once: 'end', 'error' and 'close' may all follow
      owner?.gone(
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
    // Owned: the backend is silent; idle in the pool: kept long enough.
    conn.socket.on('timeout', () => (conn.owner ? conn.owner.timedOut() : conn.socket.destroy()));
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
export function notePace(conn: Pick<Conn, 'promptBytes'>, bytes: number, ms: number): void {
  conn.promptBytes = ms < SLOW_WRITE_MS ? conn.promptBytes + bytes : 0;
}
