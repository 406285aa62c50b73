/**
 * The relay's HTTP/1.1 response parser (relay.ts): one response from the bytes of a
 * backend socket — the head (1xx answers skipped), then the body by Content-Length,
 * chunked encoding, or until the connection closes. Body bytes are handed on as
 * views of the socket's read buffer, never copied; a read whose bytes are still
 * being written to the client pauses the socket.
 */

const MAX_HEAD_BYTES = 64 * 1024;

export interface ResponseHead {
  status: number;
  statusMessage: string;
  headers: Record<string, string | string[]>;
}

export interface ReaderEvents {
  onHead(head: ResponseHead): void;
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

/** Parses one response; one reader per request sent. */
export class ResponseReader {
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
    const framing = framingOf(head, this.headRequest);
    if (framing === 'bad length') {
      this.fail('the backend sent an invalid or conflicting Content-Length');
      return undefined;
    }
    this.framing = framing;
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
        const size = chunkSize(line);
        if (size === undefined) {
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

export function parseHead(text: string): ResponseHead | undefined {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
  if (!status) return undefined;
  const headers: Record<string, string | string[]> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    // A name is a token, nothing around it: "Content-Length : 5" or a folded line
    // (leading whitespace) is refused, as RFC 9112 §5.1 and §5.2 ask, not guessed at.
    const name = line.slice(0, colon).toLowerCase();
    if (colon <= 0 || !TOKEN.test(name)) return undefined;
    const value = line.slice(colon + 1).trim();
    const prev = headers[name];
    if (prev === undefined) headers[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else headers[name] = name === 'set-cookie' ? [prev, value] : `${prev}, ${value}`;
  }
  return { status: Number(status[1]), statusMessage: status[2] ?? '', headers };
}

function framingOf(head: ResponseHead, headRequest: boolean): Framing | 'bad length' {
  if (headRequest || head.status === 204 || head.status === 304) return { kind: 'none' };
  const te = head.headers['transfer-encoding'];
  if (typeof te === 'string' && /chunked\s*$/i.test(te)) {
    return { kind: 'chunked', state: 'size', remaining: 0, line: '' };
  }
  const length = head.headers['content-length'];
  if (length === undefined) return { kind: 'close' };
  // Repeated headers arrive joined ("5, 5"): equal values are one length (RFC 9112 §6.3),
  // different ones leave the body's end unknown, so the answer is refused.
  const values = new Set(
    String(length)
      .split(',')
      .map((v) => v.trim()),
  );
  const only = values.size === 1 ? [...values][0] : undefined;
  if (only === undefined || !/^\d{1,15}$/.test(only)) return 'bad length';
  return { kind: 'length', remaining: Number(only) };
}

/** RFC 9110 §5.6.2 token characters. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/**
 * A chunk-size line's size: hex digits only (no sign, no "0x", no trailing garbage,
 * which parseInt would accept), at most 15 of them so the size stays an exact number.
 */
function chunkSize(line: string): number | undefined {
  const digits = (line.split(';', 1)[0] ?? '').replace(/[ \t]+$/, '');
  return /^[0-9a-fA-F]{1,15}$/.test(digits) ? parseInt(digits, 16) : undefined;
}
