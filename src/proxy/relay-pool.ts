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
  /** When it went idle in the pool (performance.now()); undefined while owned. */
  idleSince?: number | undefined;
  /** Owned after lying idle this long (ms); undefined for a new connection. */
  reusedAfterMs?: number | undefined;
}

/**
 * The shortest idle limit learned: below this, keeping a connection saves next to
 * nothing, and a backend that closes sooner is better served by new connections.
 */
const MIN_LEARNED_IDLE_MS = 50;

/**
 * The idle limit to keep under a backend seen closing a connection `closedAfterMs`
 * into its idleness: a second less, as for a `Keep-Alive: timeout=N` hint, or half
 * of it when that is short (timers in two busy processes drift by tens of ms).
 */
export function idleLimitUnder(closedAfterMs: number): number {
  const limit = closedAfterMs > 2000 ? closedAfterMs - 1000 : closedAfterMs / 2;
  return Math.max(MIN_LEARNED_IDLE_MS, Math.floor(limit));
}

/**
 * Two idle closes at least this far apart confirm a timeout: a backend that restarts or
 * dies closes every idle connection in the same moment.
 */
const SEPARATE_CLOSES_MS = 100;

/**
 * Whether two idle ages are the same timeout. Generous: both processes' timers drift
 * under load (the close is seen when its 'end' is read), by tens of milliseconds on a
 * busy machine, and a restart's closes come at whatever ages the connections had.
 */
function sameTimeout(a: number, b: number): boolean {
  return Math.abs(a - b) <= Math.max(50, Math.min(a, b) / 2);
}

/**
 * Whether a connection that carried an exchange after lying idle `idleMs` disproves a
 * limit learned from a close after `closedAfterMs`: a backend with that timeout would
 * have closed it long before (twice as long, and more than timers drift).
 */
function disproves(idleMs: number, closedAfterMs: number): boolean {
  return idleMs > 2 * closedAfterMs + 50;
}

/** A backend's close of an idle connection: how long it had been idle, and when. */
interface IdleClose {
  afterMs: number;
  at: number;
}

export class RelayPool {
  private readonly idle: Conn[] = [];
  private activeCount = 0;
  private closed = false;
  /** The idle close that set safeIdleMs, while it stands; whether a second one confirmed it. */
  private learnedFrom: (IdleClose & { confirmed: boolean }) | undefined;

  /**
   * How long a connection may have been idle to carry an exchange that cannot be
   * replayed (an upload): `idleMs` until the backend is seen closing one sooner.
   */
  private safeIdleMs: number;

  /**
   * `idleMs`: how long an idle connection is kept (0 = never), below the backend's own
   * keep-alive timeout, so the backend never closes one just as an upload is sent on it
   * (that upload would fail, and cannot be retried). A backend that closes idle
   * connections sooner without saying so (no `Keep-Alive: timeout=N`) lowers the limit
   * for uploads at its first such close: that one cost nothing, the next could meet an
   * upload. `onLearned` is told once a second close, at another moment and after as long,
   * shows a timeout: a registry that restarts or is killed closes every idle connection
   * at once, at whatever age, and that teaches nothing. A GET that later gets its answer
   * on a connection idle for longer disproves the limit, and it is dropped. GETs and
   * HEADs keep reusing for `idleMs`: the relay sends them again on a new connection when
   * a reused one was closed under them.
   */
  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly maxIdle: number,
    private readonly idleMs: number,
    private readonly onLearned: (idleMs: number, closedAfterMs: number) => void = () => {},
  ) {
    this.safeIdleMs = idleMs;
  }

  /** How long an idle connection may have waited to carry an upload. */
  uploadIdleLimitMs(): number {
    return this.safeIdleMs;
  }

  stats(): { active: number; idle: number } {
    return { active: this.activeCount, idle: this.idle.length };
  }

  /**
   * A connection for one exchange. `replayable`: the exchange may be sent again if a
   * reused connection dies before answering (relay.ts: GET, HEAD), so any idle one
   * will do; anything else gets one idle for less than the backend was seen to allow,
   * or a new one.
   */
  acquire(replayable: boolean): Conn {
    this.activeCount++;
    const now = performance.now();
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const conn = this.idle[i]!;
      if (conn.socket.destroyed || !conn.socket.readable || !conn.socket.writable) {
        this.idle.splice(i, 1);
        continue;
      }
      if (!replayable && now - (conn.idleSince ?? now) >= this.safeIdleMs) continue;
      this.idle.splice(i, 1);
      conn.reused = true;
      conn.reusedAfterMs = now - (conn.idleSince ?? now);
      conn.idleSince = undefined;
      return conn;
    }
    return this.create();
  }

  /**
   * Back to the pool if it can carry another exchange, else closed. `keepAliveHint` is the
   * backend's `Keep-Alive` response header, whose `timeout=N` shortens the idle time.
   */
  release(conn: Conn, reusable: boolean, keepAliveHint?: string | string[]): void {
    this.activeCount--;
    if (reusable && conn.reusedAfterMs !== undefined) this.survived(conn.reusedAfterMs);
    conn.reusedAfterMs = undefined;
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
    conn.idleSince = performance.now();
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
      if (!conn.owner && conn.idleSince !== undefined) {
        this.learn(performance.now() - conn.idleSince);
      }
      conn.socket.destroy();
      gone();
    });
    conn.socket.on('close', () => gone());
    // Owned: the backend is silent; idle in the pool: kept long enough.
    conn.socket.on('timeout', () => (conn.owner ? conn.owner.timedOut() : conn.socket.destroy()));
    return conn;
  }

  /** The backend closed a connection idle for `closedAfterMs`, before our own limit did. */
  private learn(closedAfterMs: number): void {
    if (this.closed) return;
    const at = performance.now();
    const was = this.learnedFrom;
    const confirms =
      was !== undefined &&
      !was.confirmed &&
      at - was.at >= SEPARATE_CLOSES_MS &&
      sameTimeout(was.afterMs, closedAfterMs);
    const limit = idleLimitUnder(closedAfterMs);
    if (limit < this.safeIdleMs) {
      this.safeIdleMs = limit;
      this.learnedFrom = { afterMs: closedAfterMs, at, confirmed: false };
    }
    if (confirms) {
      this.learnedFrom!.confirmed = true;
      this.onLearned(this.safeIdleMs, closedAfterMs);
    }
  }

  /** A connection idle for `idleMs` carried an exchange through: the backend keeps them that long. */
  private survived(idleMs: number): void {
    const was = this.learnedFrom;
    if (!was || !disproves(idleMs, was.afterMs)) return;
    this.safeIdleMs = this.idleMs;
    this.learnedFrom = undefined;
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
