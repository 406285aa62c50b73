/**
 * Hostile PROXY headers from the trusted peer (truncated, oversized, slow, garbage,
 * lying about their lengths, and 200 random mutations sent in pieces): each closes
 * that one connection, logged and counted, while other clients are served. Also a
 * header at a proxy with proxyProtocol off, and the keys changed by a SIGHUP reload.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpsGet } from './helpers/https.js';
import { readCA, startProxy, tempDir, type Proxy } from './helpers/processes.js';
import {
  HEADERS_MS,
  TRUSTED,
  headerValues,
  refusalLine,
  refusedCount,
  requestWithHeader,
  sendRaw,
  started,
} from './helpers/proxy-protocol.js';
import {
  startRecordingBackend,
  useRecordingBackendBehindProxy,
  type RecordingBackend,
} from './helpers/recording-backend.js';
import { reloadCounter } from './helpers/reloads.js';

/** One proxy trusting 127.0.0.1; after each hostile connection, clients are still served. */
describe('hostile PROXY headers from the trusted peer', () => {
  const tmp = tempDir('proxyproto-hostile');
  let backend: RecordingBackend | undefined;
  let proxy: Proxy | undefined;

  beforeAll(async () => {
    backend = await startRecordingBackend();
    proxy = await startProxy({
      backend: `http://127.0.0.1:${backend.port}`,
      tlsDir: join(tmp.path, 'tls'),
      env: {
        RTP_HEALTH_INTERVAL: '1h',
        RTP_PROXY_PROTOCOL_TRUSTED_FROM: TRUSTED,
        RTP_TIMEOUTS_HEADERS_MS: String(HEADERS_MS),
        // An HTTP proxy in front of haproxy, known by the address the header names.
        RTP_TRUSTED_PROXIES: '198.18.0.77',
      },
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await backend?.close();
    tmp.remove();
  });

  const v2Prefix = (lengthField: number, rest: Buffer) => {
    const fixed = Buffer.from([0x21, 0x11, 0, 0]);
    fixed.writeUInt16BE(lengthField, 2);
    return Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), fixed, rest]);
  };
  const addresses = Buffer.from([198, 18, 0, 9, 127, 0, 0, 1, 0x9c, 0x40, 0x15, 0x43]);

  const CASES = [
    {
      name: 'a v1 header cut short by the client closing',
      chunks: [Buffer.from('PROXY TCP4 198.18.0.9 127.0')],
      end: true,
      reason: 'truncated',
    },
    {
      name: 'a v1 line longer than 107 bytes',
      chunks: [Buffer.from(`PROXY TCP4 ${'9'.repeat(200)}\r\n`)],
      reason: 'too_long',
    },
    {
      name: 'a v2 header claiming 60,000 bytes',
      chunks: [v2Prefix(60_000, addresses)],
      reason: 'too_long',
    },
    {
      name: 'a v2 TLV claiming more than its block holds',
      chunks: [v2Prefix(16, Buffer.concat([addresses, Buffer.from([0x05, 0x01, 0x00, 0x41])]))],
      reason: 'malformed',
    },
    {
      name: 'a v2 header claiming a block it never sends',
      chunks: [v2Prefix(200, addresses)],
      reason: 'timeout',
    },
    {
      name: 'a v1 header sent one byte at a time, slower than timeouts.headersMs',
      chunks: [...Buffer.from('PROXY TCP4 198.18.0.9 127.0.0.1 1 2\r\n')].map((b) =>
        Buffer.from([b]),
      ),
      gapMs: 100,
      reason: 'timeout',
    },
    {
      name: 'garbage after the v2 signature',
      chunks: [v2Prefix(12, Buffer.alloc(12)).fill(0xff, 12)],
      reason: 'malformed',
    },
  ] as const;

  it.each(CASES)('closes the connection on $name, and serves clients meanwhile', async (c) => {
    const proxyPort = started(proxy).port;
    const startedAt = Date.now();
    const hostile = sendRaw(proxyPort, c.chunks, {
      ...('gapMs' in c ? { gapMs: c.gapMs } : {}),
      ...('end' in c ? { end: c.end } : {}),
    });
    // While the hostile connection is open, a good client (with a header) is served.
    const good = await requestWithHeader(proxyPort, readCA(started(proxy)));
    expect(good).toBe(200);
    const result = await hostile;
    expect(result.closed).toBe(true);
    expect(result.received).toBe('');
    if (c.reason === 'timeout') {
      // Within headersMs (plus the timer's slack), not the 30 s first-byte limit.
      expect(Date.now() - startedAt).toBeLessThan(HEADERS_MS + 2000);
    }
    const line = await refusalLine(started(proxy), c.reason);
    expect(line['peer']).toBe(TRUSTED);
    expect(await refusedCount(started(proxy), c.reason)).toBeGreaterThanOrEqual(1);
  });

  it('survives 200 connections of mutated headers in random pieces, each closed in time', async () => {
    const port = started(proxy).port;
    const v1 = Buffer.from(`PROXY TCP4 198.18.0.9 127.0.0.1 40000 ${port}\r\n`);
    const valid = [v1, v2Prefix(12, addresses)];
    const random = (n: number) => Math.floor(Math.random() * n);
    const connections = Array.from({ length: 200 }, (_, i) => {
      // Every 7th: an unmutated v1 header cut before its CRLF, left open (the deadline closes it).
      const stalled = i % 7 === 0;
      let bytes = Buffer.from(stalled ? v1.subarray(0, 1 + random(v1.length - 2)) : valid[i % 2]!);
      if (!stalled) {
        for (let n = 0; n < 1 + (i % 4); n++) bytes[random(bytes.length)] = random(256);
        if (i % 3 === 0) bytes = bytes.subarray(0, random(bytes.length));
      }
      const pieces: Buffer[] = [];
      for (let at = 0, size = 0; at < bytes.length; at += size) {
        size = 1 + random(8);
        pieces.push(bytes.subarray(at, at + size));
      }
      // The rest half-close once sent: a header that survived its mutation is then complete, and
      // its connection (now waiting for a ClientHello) ends instead of idling for 30 s.
      return sendRaw(port, pieces, { gapMs: 5, end: !stalled });
    });
    const startedAt = Date.now();
    const results = await Promise.all(connections);
    expect(results.every((r) => r.closed)).toBe(true);
    // The stalled ones were closed by the header deadline (headersMs), not the 30 s first-byte limit.
    expect(Date.now() - startedAt).toBeLessThan(HEADERS_MS + 4000);
    expect(await requestWithHeader(port, readCA(started(proxy)))).toBe(200);
  });

  it("decides trustedProxies by the header's address, not the TCP peer's", async () => {
    const ca = readCA(started(proxy));
    const port = started(proxy).port;
    const forwardedFor = (path: string) =>
      started(backend)
        .requests.filter((r) => r.url === path)
        .map((r) => headerValues(r.rawHeaders, 'x-forwarded-for'));
    const spoofed = 'X-Forwarded-For: 203.0.113.1\r\n';
    // From the trusted proxy's address, its X-Forwarded-For is kept and its address appended.
    expect(await requestWithHeader(port, ca, { path: '/v2/tp/a', headers: spoofed })).toBe(200);
    expect(forwardedFor('/v2/tp/a')).toEqual([['203.0.113.1, 198.18.0.77']]);
    // From any other client address, it is replaced by that address.
    expect(
      await requestWithHeader(port, ca, {
        source: '198.18.0.78',
        path: '/v2/tp/b',
        headers: spoofed,
      }),
    ).toBe(200);
    expect(forwardedFor('/v2/tp/b')).toEqual([['198.18.0.78']]);
  });

  it('lets the trusted peer connect without a header when required is false', async () => {
    const r = await httpsGet(`${started(proxy).origin}/v2/`, { ca: readCA(started(proxy)) });
    expect(r.status).toBe(200);
  });
});

describe('a PROXY header at a proxy with proxyProtocol off', () => {
  const off = useRecordingBackendBehindProxy('proxyproto-off');

  it('is refused and logged with the fix, not answered as plain HTTP', async () => {
    const header = Buffer.from('PROXY TCP4 203.0.113.9 127.0.0.1 1234 5443\r\n');
    const result = await sendRaw(off.proxy.port, [header]);
    expect(result).toEqual({ closed: true, received: '' });
    const line = await refusalLine(off.proxy, 'untrusted');
    expect(line['peer']).toBe(TRUSTED);
    expect(String(line['msg'])).toMatch(/add it to proxyProtocol\.trustedFrom/);
    // Clients without a header are served as before.
    const r = await httpsGet(`${off.proxy.origin}/v2/`, { ca: off.ca });
    expect(r.status).toBe(200);
    expect(headerValues(off.backend.requests.at(-1)?.rawHeaders ?? [], 'x-forwarded-for')).toEqual([
      TRUSTED,
    ]);
  });
});

describe('proxyProtocol changed by a SIGHUP reload', () => {
  const tmp = tempDir('proxyproto-reload');
  let backend: RecordingBackend | undefined;
  let proxy: Proxy | undefined;
  const configFile = join(tmp.path, 'config.yaml');
  beforeAll(async () => {
    backend = await startRecordingBackend();
    writeFileSync(configFile, 'proxyProtocol:\n  trustedFrom: []\n');
    proxy = await startProxy({
      backend: `http://127.0.0.1:${backend.port}`,
      tlsDir: join(tmp.path, 'tls'),
      args: ['--config', configFile],
      env: { RTP_HEALTH_INTERVAL: '1h' },
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await backend?.close();
    tmp.remove();
  });

  it('reads headers from the peers the new configuration trusts', async () => {
    const p = started(proxy);
    const ca = readCA(p);
    await expect(requestWithHeader(p.port, ca, { path: '/v2/before' })).rejects.toThrow();
    await refusalLine(p, 'untrusted');

    writeFileSync(configFile, `proxyProtocol:\n  trustedFrom: [${TRUSTED}]\n  required: true\n`);
    await reloadCounter(p).reload();
    expect(await requestWithHeader(p.port, ca, { source: '198.18.0.80', path: '/v2/after' })).toBe(
      200,
    );
    const seen = started(backend).requests.filter((r) => r.url === '/v2/after');
    expect(seen.map((r) => headerValues(r.rawHeaders, 'x-forwarded-for'))).toEqual([
      ['198.18.0.80'],
    ]);
    // required: true now, so a connection without a header is refused.
    await expect(httpsGet(`${p.origin}/v2/`, { ca, timeoutMs: 5000 })).rejects.toThrow();
    await refusalLine(p, 'missing');
  });
});
