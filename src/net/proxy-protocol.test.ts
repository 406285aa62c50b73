import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  MAX_HEADER_BYTES,
  ProxyHeaderError,
  V1_MAX_BYTES,
  V2_SIGNATURE,
  looksLikeProxyHeader,
  parseProxyHeader,
} from './proxy-protocol.js';

const CLIENT_HELLO_START = Buffer.from('160301', 'hex');

function v2(opts: {
  command?: number;
  family?: number;
  block?: Buffer;
  lengthField?: number;
}): Buffer {
  const block = opts.block ?? Buffer.alloc(0);
  const fixed = Buffer.alloc(4);
  fixed[0] = 0x20 | (opts.command ?? 1);
  fixed[1] = opts.family ?? 0x11;
  fixed.writeUInt16BE(opts.lengthField ?? block.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, block]);
}

function ipv4Block(
  src: number[],
  dst: number[],
  sport: number,
  dport: number,
  tlvs = Buffer.alloc(0),
) {
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(sport, 0);
  ports.writeUInt16BE(dport, 2);
  return Buffer.concat([Buffer.from(src), Buffer.from(dst), ports, tlvs]);
}

function tlv(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3);
  head[0] = type;
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}

const V2_TCP4 = v2({ block: ipv4Block([198, 18, 0, 2], [127, 0, 0, 1], 40000, 5443) });
const V2_WITH_TLVS = v2({
  block: ipv4Block(
    [198, 18, 0, 6],
    [127, 0, 0, 1],
    1,
    2,
    Buffer.concat([
      tlv(0x05, Buffer.from('unique-id')),
      tlv(0x04, Buffer.alloc(10)), // NOOP padding
      tlv(0xea, Buffer.from('vpce-0123')), // AWS's VPC endpoint id
    ]),
  ),
});
const V2_TCP6 = (() => {
  const src = Buffer.from('20010db8000000000000000000000005', 'hex');
  const dst = Buffer.from('00000000000000000000000000000001', 'hex');
  const ports = Buffer.from([0x9c, 0x40, 0x15, 0x43]);
  return v2({ family: 0x21, block: Buffer.concat([src, dst, ports]) });
})();
const V1_TCP4 = Buffer.from('PROXY TCP4 198.18.0.2 127.0.0.1 40000 5443\r\n');
const V1_TCP6 = Buffer.from('PROXY TCP6 2001:db8::5 ::1 40000 5443\r\n');
const VALID = [V1_TCP4, V1_TCP6, Buffer.from('PROXY UNKNOWN\r\n'), V2_TCP4, V2_WITH_TLVS, V2_TCP6];

describe('parseProxyHeader', () => {
  it.each([
    ['v1 TCP4', V1_TCP4, 1, { address: '198.18.0.2', port: 40000 }],
    ['v1 TCP6', V1_TCP6, 1, { address: '2001:db8::5', port: 40000 }],
    ['v2 TCP4', V2_TCP4, 2, { address: '198.18.0.2', port: 40000 }],
    ['v2 TCP4 with TLVs', V2_WITH_TLVS, 2, { address: '198.18.0.6', port: 1 }],
    ['v2 TCP6', V2_TCP6, 2, { address: '2001:db8::5', port: 40000 }],
  ])('reads %s and where the header ends', (_name, header, version, source) => {
    const after = Buffer.concat([header, CLIENT_HELLO_START]);
    expect(parseProxyHeader(after)).toEqual({
      kind: 'header',
      version,
      length: header.length,
      source,
    });
  });

  it.each([
    ['v2 LOCAL (haproxy health checks)', v2({ command: 0, family: 0x00 })],
    [
      'v2 LOCAL with an address block',
      v2({ command: 0, block: ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2) }),
    ],
    ['v2 PROXY over AF_UNSPEC', v2({ family: 0x00 })],
    ['v2 PROXY over AF_UNIX', v2({ family: 0x31, block: Buffer.alloc(216) })],
    ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n')],
  ])('gives no source for %s: the connection is the client', (_name, header) => {
    const result = parseProxyHeader(header);
    expect(result).toMatchObject({ kind: 'header', length: header.length });
    expect(result).not.toHaveProperty('source');
  });

  it('maps an IPv4-mapped IPv6 source to IPv4, as socket addresses are logged', () => {
    const line = Buffer.from('PROXY TCP6 ::ffff:198.18.0.2 ::1 1 2\r\n');
    expect(parseProxyHeader(line)).toMatchObject({ source: { address: '198.18.0.2' } });
  });

  it.each([
    ['TLS', CLIENT_HELLO_START],
    ['plain HTTP', Buffer.from('GET /v2/ HTTP/1.1\r\n')],
    ['PUT (shares a P)', Buffer.from('PUT /')],
  ])('says %s is no PROXY header', (_name, bytes) => {
    expect(parseProxyHeader(bytes)).toEqual({ kind: 'absent' });
  });

  it('asks for more at every cut of a valid header', () => {
    for (const header of VALID) {
      for (let n = 1; n < header.length; n++) {
        expect(
          parseProxyHeader(header.subarray(0, n)),
          `${n} bytes of ${header.toString('latin1')}`,
        ).toEqual({ kind: 'incomplete' });
      }
    }
  });

  it.each([
    ['v1 without CRLF within 107 bytes', Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`), 'too_long'],
    ['v1 with a NUL', Buffer.from('PROXY TCP4 1.2.3.4\0'), 'malformed'],
    ['v1 with a bad protocol', Buffer.from('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), 'malformed'],
    ['v1 TCP4 with an IPv6 address', Buffer.from('PROXY TCP4 ::1 ::1 1 2\r\n'), 'malformed'],
    [
      'v1 with a port above 65535',
      Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'),
      'malformed',
    ],
    [
      'v1 with a leading-zero port',
      Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'),
      'malformed',
    ],
    ['v1 with a field missing', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'), 'malformed'],
    ['v1 with a field too many', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'), 'malformed'],
    ['v1 with a double space', Buffer.from('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'), 'malformed'],
    ['v2 version 1', Buffer.concat([V2_SIGNATURE, Buffer.from([0x11, 0x11, 0, 0])]), 'malformed'],
    ['v2 command 2', v2({ command: 2 }), 'malformed'],
    ['v2 family 4', v2({ family: 0x41 }), 'malformed'],
    ['v2 claiming 64 KiB', v2({ lengthField: 0xffff }), 'too_long'],
    ['v2 claiming one byte over the cap', v2({ lengthField: MAX_HEADER_BYTES - 15 }), 'too_long'],
    ['v2 TCP4 block of 4 bytes', v2({ block: Buffer.alloc(4) }), 'malformed'],
    ['v2 TCP6 block of 12 bytes', v2({ family: 0x21, block: Buffer.alloc(12) }), 'malformed'],
    [
      'v2 TLV claiming more than its block',
      v2({
        block: ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, Buffer.from([0x05, 0x00, 0x20, 0x41])),
      }),
      'malformed',
    ],
    [
      'v2 TLV header cut short',
      v2({ block: ipv4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, Buffer.from([0x05, 0x00])) }),
      'malformed',
    ],
  ])('refuses %s', (_name, bytes, reason) => {
    expect(() => parseProxyHeader(bytes)).toThrow(ProxyHeaderError);
    try {
      parseProxyHeader(bytes);
    } catch (err) {
      expect((err as ProxyHeaderError).reason).toBe(reason);
    }
  });

  it('refuses a v2 length beyond the cap before its bytes arrive', () => {
    expect(() => parseProxyHeader(v2({ lengthField: 5000 }).subarray(0, 16))).toThrow(/5016 bytes/);
  });

  it('keeps v1 within 107 bytes, CRLF included', () => {
    const longest = `PROXY TCP6 ${'ffff:'.repeat(7)}ffff ${'ffff:'.repeat(7)}ffff 65535 65535\r\n`;
    expect(longest.length).toBeLessThanOrEqual(V1_MAX_BYTES);
    expect(parseProxyHeader(Buffer.from(longest))).toMatchObject({ kind: 'header' });
  });
});

describe('looksLikeProxyHeader', () => {
  it.each([
    [V1_TCP4, true],
    [V2_TCP4.subarray(0, 4), true],
    [Buffer.from('PROXY'), true],
    [Buffer.from('POST /'), false],
    [CLIENT_HELLO_START, false],
    [Buffer.alloc(0), false],
  ])('%#', (bytes, expected) => {
    expect(looksLikeProxyHeader(bytes)).toBe(expected);
  });
});

/**
 * Fuzz: mutations, truncations and extensions of valid headers, and random bytes behind
 * either signature. The parser must answer or throw a ProxyHeaderError (never anything
 * else), never claim a header longer than the bytes it was given or than the cap, and
 * stay fast. A seedable generator, so a failure names the case that reproduces it.
 */
describe('parseProxyHeader under fuzzing', () => {
  const ROUNDS = 60_000;

  function rng(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function mutate(base: Buffer, random: () => number): Buffer {
    const bytes = Buffer.from(base);
    const int = (n: number) => Math.floor(random() * n);
    switch (int(6)) {
      case 0: // flip bytes
        for (let i = 0, n = 1 + int(4); i < n; i++) bytes[int(bytes.length)] = int(256);
        return bytes;
      case 1: // truncate
        return bytes.subarray(0, int(bytes.length));
      case 2: // random tail
        return Buffer.concat([bytes, randomBytesFrom(random, int(300))]);
      case 3: // lie about the v2 length
        if (bytes.length >= 16) bytes.writeUInt16BE(int(65536), 14);
        return bytes;
      case 4: // signature, then garbage
        return Buffer.concat([
          random() < 0.5 ? V2_SIGNATURE : Buffer.from('PROXY '),
          randomBytesFrom(random, int(400)),
        ]);
      default: // pure garbage
        return randomBytesFrom(random, int(200));
    }
  }

  function randomBytesFrom(random: () => number, n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(random() * 256);
    return out;
  }

  it(`survives ${ROUNDS} malformed inputs`, () => {
    const seed = randomBytes(4).readUInt32BE(0);
    const random = rng(seed);
    const counts = { incomplete: 0, absent: 0, header: 0, error: 0 };
    const started = performance.now();
    for (let round = 0; round < ROUNDS; round++) {
      const base = VALID[Math.floor(random() * VALID.length)] as Buffer;
      const input = mutate(base, random);
      const where = `seed ${seed} round ${round}: ${input.toString('hex')}`;
      let result;
      try {
        result = parseProxyHeader(input);
      } catch (err) {
        expect(err, where).toBeInstanceOf(ProxyHeaderError);
        counts.error++;
        continue;
      }
      counts[result.kind]++;
      if (result.kind === 'header') {
        expect(result.length, where).toBeLessThanOrEqual(input.length);
        expect(result.length, where).toBeLessThanOrEqual(MAX_HEADER_BYTES);
        if (result.source) expect(result.source.port, where).toBeLessThanOrEqual(65535);
      }
      if (result.kind === 'incomplete') expect(input.length, where).toBeLessThan(MAX_HEADER_BYTES);
    }
    // Every outcome was reached: the mutations exercise the parser, not just its first check.
    for (const [kind, n] of Object.entries(counts))
      expect(n, `${kind} (seed ${seed})`).toBeGreaterThan(100);
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});
