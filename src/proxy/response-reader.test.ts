/**
 * The relay's own HTTP/1.1 response parser (kept over undici: bench/RESULTS.md, session 6).
 * Every error path by name, then a fuzz test: whatever a backend sends, in whatever pieces,
 * the reader ends exactly once (a response or an error), never throws, and a well-formed
 * response comes out byte for byte.
 */
import { describe, expect, it } from 'vitest';
import { ResponseReader } from './response-reader.js';

interface Outcome {
  head?: { status: number; headers: Record<string, string | string[]> };
  body: Buffer;
  /** onEnd's `reusable`, or the error's message. */
  end?: { reusable: boolean } | { error: string; code: string | undefined };
  terminals: number;
}

/** Feeds `pieces` in order; body writes complete at once, or later when `async`. */
async function read(
  pieces: readonly Buffer[],
  opts: { head?: boolean; async?: boolean; eof?: boolean } = {},
): Promise<Outcome> {
  const out: Outcome = { body: Buffer.alloc(0), terminals: 0 };
  let paused = false;
  let resume: () => void = () => {};
  const reader = new ResponseReader(opts.head ?? false, {
    onHead: (head) => (out.head = { status: head.status, headers: head.headers }),
    onBody: (bytes, done) => {
      out.body = Buffer.concat([out.body, Buffer.from(bytes)]);
      if (opts.async) setImmediate(() => done());
      else done();
    },
    onEnd: (reusable) => {
      out.terminals++;
      out.end = { reusable };
    },
    onError: (err) => {
      out.terminals++;
      out.end = { error: err.message, code: err.code };
    },
    resume: () => resume(),
  });
  for (const piece of pieces) {
    if (out.terminals > 0) break;
    // The socket hands over a fresh read only once the reader asked to resume.
    if (!reader.feed(piece)) {
      paused = true;
      await new Promise<void>((r) => (resume = r));
      paused = false;
    }
  }
  expect(paused).toBe(false);
  if (opts.eof) reader.eof();
  return out;
}

const b = (s: string) => Buffer.from(s, 'latin1');
const fail = (message: string) => ({ error: message, code: 'RTP_BAD_RESPONSE' });

describe('ResponseReader: error paths', () => {
  it.each([
    ['a status line that is not HTTP/1.x', 'HTTP/2 200 OK\r\n\r\n', 'malformed response head'],
    ['a three-digit status missing', 'HTTP/1.1 OK\r\n\r\n', 'malformed response head'],
    [
      'a header line without a colon',
      'HTTP/1.1 200 OK\r\nno-colon\r\n\r\n',
      'malformed response head',
    ],
    [
      'a header line starting with a colon',
      'HTTP/1.1 200 OK\r\n: x\r\n\r\n',
      'malformed response head',
    ],
    [
      'a folded header (obs-fold)',
      'HTTP/1.1 200 OK\r\nA: 1\r\n  folded: 2\r\n\r\n',
      'malformed response head',
    ],
    [
      'a space before the colon',
      'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n',
      'malformed response head',
    ],
    [
      'a header name with a control character',
      'HTTP/1.1 200 OK\r\nA\x01B: 1\r\n\r\n',
      'malformed response head',
    ],
    ['a chunk size that is not hex', chunked('zz\r\n'), 'malformed chunk size'],
    ['a chunk size with a 0x prefix', chunked('0x10\r\n'), 'malformed chunk size'],
    ['a chunk size with trailing garbage', chunked('1g\r\nx\r\n0\r\n\r\n'), 'malformed chunk size'],
    ['a negative chunk size', chunked('-5\r\n'), 'malformed chunk size'],
    ['a chunk size beyond 2^53', chunked('fffffffffffffffff\r\n'), 'malformed chunk size'],
    [
      'chunk data not followed by CRLF',
      chunked('3\r\nabcXY\r\n0\r\n\r\n'),
      'malformed chunked body',
    ],
    ['a chunk-size line over 4 KiB', chunked('1' + ';x'.repeat(3000)), 'malformed chunked body'],
    [
      'two different Content-Lengths',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
      'conflicting Content-Length',
    ],
  ])('%s → RTP_BAD_RESPONSE', async (_name, response, message) => {
    const out = await read([b(response)]);
    expect(out.end).toEqual(fail(expect.stringContaining(message) as unknown as string));
    expect(out.terminals).toBe(1);
  });

  it('a head over 64 KiB without its end is refused before the backend sends more', async () => {
    const big = `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(70 * 1024)}`;
    const out = await read([b(big)]);
    expect(out.end).toEqual(fail('the backend sent a response head over 64 KiB'));
  });

  it('a body that runs until the connection closes ends at eof, not reusable', async () => {
    const out = await read([b('HTTP/1.1 200 OK\r\n\r\nabc'), b('def')], { eof: true });
    expect(out.body.toString()).toBe('abcdef');
    expect(out.end).toEqual({ reusable: false });
  });

  it('a body write that fails ends the exchange with that error', async () => {
    let ended: string | undefined;
    const reader = new ResponseReader(false, {
      onHead: () => {},
      onBody: (_bytes, done) => done(new Error('client gone')),
      onEnd: () => (ended = 'end'),
      onError: (err) => (ended = err.message),
      resume: () => {},
    });
    reader.feed(b('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc'));
    expect(ended).toBe('client gone');
  });
});

describe('ResponseReader: well-formed answers', () => {
  it.each([
    ['Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', 'hello', true],
    [
      'chunked with extension and trailer',
      chunked('5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n'),
      'hello',
      true,
    ],
    [
      'a 100 Continue first',
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n',
      '',
      true,
    ],
    [
      'Connection: close',
      'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok',
      'ok',
      false,
    ],
    ['a 204 without a body', 'HTTP/1.1 204 No Content\r\n\r\n', '', true],
    [
      'equal repeated Content-Lengths',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok',
      'ok',
      true,
    ],
    ['uppercase hex chunk size', chunked('A\r\n0123456789\r\n0\r\n\r\n'), '0123456789', true],
  ])('%s', async (_name, response, body, reusable) => {
    for (let split = 1; split < response.length; split++) {
      const out = await read([b(response.slice(0, split)), b(response.slice(split))], {
        async: split % 2 === 0,
      });
      expect(out.body.toString('latin1')).toBe(body);
      expect(out.end).toEqual({ reusable });
    }
  });

  it('a HEAD answer has no body whatever its Content-Length says', async () => {
    const out = await read([b('HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n')], { head: true });
    expect(out.end).toEqual({ reusable: true });
    expect(out.body.length).toBe(0);
  });

  it('bytes after a complete answer make the connection unusable', async () => {
    const out = await read([b('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxEXTRA')]);
    expect(out.end).toEqual({ reusable: false });
  });
});

function chunked(body: string): string {
  return `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${body}`;
}

/** A small seeded PRNG (mulberry32): a failure names its seed and replays exactly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEEDS = [
  'HTTP/1.1 200 OK\r\nContent-Length: 11\r\nDocker-Distribution-API-Version: registry/2.0\r\n\r\nhello world',
  chunked('4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\nTrailer: 1\r\n\r\n'),
  'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nLocation: /v2/x/blobs/uploads/1\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\n\r\nuntil close',
];
const NOISE = [
  '\r',
  '\n',
  '\r\n',
  ':',
  ' ',
  '\t',
  '\0',
  '0',
  'f',
  '-',
  ';',
  'ÿ',
  'HTTP/1.1 ',
  '\r\n\r\n',
];

/** Deletes, duplicates or inserts a few bytes, then cuts the result into random reads. */
function mutate(rand: () => number, text: string): string[] {
  let s = text;
  const edits = 1 + Math.floor(rand() * 4);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(rand() * (s.length + 1));
    const what = rand();
    if (what < 0.33) s = s.slice(0, at) + s.slice(at + 1 + Math.floor(rand() * 4));
    else if (what < 0.66)
      s = s.slice(0, at) + NOISE[Math.floor(rand() * NOISE.length)] + s.slice(at);
    else
      s = s.slice(0, at) + s.slice(at, at + 8).repeat(2 + Math.floor(rand() * 3)) + s.slice(at + 8);
  }
  const pieces: string[] = [];
  while (s.length > 0) {
    const n = 1 + Math.floor(rand() * Math.min(s.length, 24));
    pieces.push(s.slice(0, n));
    s = s.slice(n);
  }
  return pieces;
}

describe('ResponseReader: fuzzed backend answers', () => {
  it('ends at most once, never throws, and reports errors as RTP_BAD_RESPONSE (5,000 cases)', async () => {
    for (let seed = 1; seed <= 5000; seed++) {
      const rand = prng(seed);
      const base = SEEDS[seed % SEEDS.length] as string;
      const pieces = mutate(rand, base).map(b);
      const out = await read(pieces, { async: rand() < 0.3, eof: true, head: rand() < 0.1 });
      const where = `seed ${seed}: ${JSON.stringify(pieces.map((p) => p.toString('latin1')).join(''))}`;
      expect(out.terminals, where).toBeLessThanOrEqual(1);
      if (out.end && 'error' in out.end) expect(out.end.code, where).toBe('RTP_BAD_RESPONSE');
      if (out.head) expect(out.head.status, where).toBeGreaterThanOrEqual(200);
    }
  });
});
