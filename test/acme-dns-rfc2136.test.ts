/**
 * dns-01 by RFC 2136 against a real BIND 9: the TXT record appears and goes, each wrong
 * part of the TSIG key gets the error that names it, a zone without allow-update is
 * REFUSED, a tampered answer is caught by its signature, a server that is down or silent
 * fails fast, and the propagation check sees what named serves.
 */
import { createServer, connect, type Server as NetServer } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  findAuthoritativeServers,
  propagationOptionsFor,
  txtWriterFor,
  waitForTxt,
  type DnsConfig,
} from '../src/acme/dns/index.js';
import { KEY_ALGORITHMS, startBind9, type Bind9 } from './helpers/bind9.js';
import { freePort } from './helpers/processes.js';

let bind: Bind9;
let logText = '';
const log = pino(
  { level: 'trace' },
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      logText += chunk.toString();
      done();
    },
  }),
);

beforeAll(async () => {
  bind = await startBind9();
});
afterAll(async () => {
  await bind?.stop();
});

function rfc2136(overrides: Partial<NonNullable<DnsConfig['rfc2136']>> = {}): DnsConfig {
  return {
    rfc2136: {
      server: bind.server,
      keyName: bind.key.name,
      keyAlgorithm: bind.key.algorithm,
      keySecret: bind.key.secret,
      ...overrides,
    },
  };
}

/** A secret of the same length and form as the real one, but another. */
function otherSecret(secret: string): string {
  const bytes = Buffer.from(secret, 'base64');
  bytes[0] = (bytes[0] ?? 0) ^ 0xff;
  return bytes.toString('base64');
}

async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a rejection, but it resolved');
}

describe('rfc2136 against BIND 9', () => {
  it('present adds the TXT record; cleanup removes only that value', async () => {
    const writer = txtWriterFor(rfc2136(), log);
    const fqdn = '_acme-challenge.registry.acme.test';
    await writer.present(fqdn, 'first-value');
    await writer.present(`${fqdn}.`, 'second-value');
    expect(bind.digTXT(fqdn).sort()).toEqual(['first-value', 'second-value']);

    await writer.cleanup(fqdn, 'first-value');
    expect(bind.digTXT(fqdn)).toEqual(['second-value']);
    await writer.cleanup(fqdn, 'second-value');
    expect(bind.digTXT(fqdn)).toEqual([]);
    // Neither the secret nor its bytes in another spelling reach the log.
    expect(logText).toContain('dns-01: TXT record added');
    expect(logText).not.toContain(bind.key.secret);
    expect(logText).not.toContain(Buffer.from(bind.key.secret, 'base64').toString('hex'));
  });

  it('a wrong secret is refused with BADSIG and the key named; nothing is written', async () => {
    const writer = txtWriterFor(rfc2136({ keySecret: otherSecret(bind.key.secret) }), log);
    const err = await rejection(writer.present('_acme-challenge.wrong.acme.test', 'v'));
    expect(err.message).toBe(
      `the TSIG key rtp-acme-key was refused by ${bind.server} (BADSIG): check that keyName, keySecret and keyAlgorithm match the key in named.conf`,
    );
    expect(err.code).toBe('DNS_TSIG_REFUSED');
    expect(bind.digTXT('_acme-challenge.wrong.acme.test')).toEqual([]);
  });

  it.each([
    ['a wrong algorithm', { keyAlgorithm: 'hmac-sha512' }],
    ['an unknown key name', { keyName: 'no-such-key' }],
  ])('%s is refused with BADKEY', async (_what, overrides) => {
    const writer = txtWriterFor(rfc2136(overrides), log);
    const err = await rejection(writer.present('_acme-challenge.wrong.acme.test', 'v'));
    expect(err.code).toBe('DNS_TSIG_REFUSED');
    expect(err.message).toContain(
      `refused by ${bind.server} (BADKEY): check that keyName, keySecret and keyAlgorithm`,
    );
  });

  it("BIND's algorithm spelling with a trailing dot works", async () => {
    const writer = txtWriterFor(rfc2136({ keyAlgorithm: 'HMAC-SHA256.' }), log);
    await writer.present('_acme-challenge.dot.acme.test', 'dot');
    expect(bind.digTXT('_acme-challenge.dot.acme.test')).toEqual(['dot']);
    await writer.cleanup('_acme-challenge.dot.acme.test', 'dot');
  });

  it.each(KEY_ALGORITHMS.slice(1))('a key made with tsig-keygen -a %s works', async (algorithm) => {
    const key = bind.keys[algorithm];
    if (!key) throw new Error(`no ${algorithm} key`);
    const writer = txtWriterFor(
      rfc2136({ keyName: key.name, keyAlgorithm: algorithm, keySecret: key.secret }),
      log,
    );
    const fqdn = `_acme-challenge.${algorithm}.acme.test`;
    await writer.present(fqdn, algorithm);
    expect(bind.digTXT(fqdn)).toEqual([algorithm]);
    await writer.cleanup(fqdn, algorithm);
    expect(bind.digTXT(fqdn)).toEqual([]);
  });

  it("docs/acme-dns.md's update-policy grant lets the key write the challenge name, and nothing else", async () => {
    const writer = txtWriterFor(rfc2136(), log);
    await writer.present('_acme-challenge.registry.policy.test', 'granted');
    expect(bind.digTXT('_acme-challenge.registry.policy.test')).toEqual(['granted']);
    await writer.cleanup('_acme-challenge.registry.policy.test', 'granted');
    const err = await rejection(writer.present('_acme-challenge.other.policy.test', 'not-granted'));
    expect(err.code).toBe('DNS_UPDATE_REFUSED');
    expect(err.message).toContain(`${bind.server} refused the update for policy.test`);
  });

  it('a zone without allow-update is REFUSED, with the named.conf line to add', async () => {
    const writer = txtWriterFor(rfc2136(), log);
    const err = await rejection(writer.present('_acme-challenge.registry.locked.test', 'v'));
    expect(err.code).toBe('DNS_UPDATE_REFUSED');
    expect(err.message).toContain(`${bind.server} refused the update for locked.test`);
    expect(err.message).toContain('allow-update { key "rtp-acme-key"; }');
  });

  it('a name in no zone of the server says so', async () => {
    const writer = txtWriterFor(rfc2136(), log);
    const err = await rejection(writer.present('_acme-challenge.registry.example.org', 'v'));
    expect(err.code).toBe('DNS_NO_ZONE');
    expect(err.message).toContain(`${bind.server} is not authoritative for any zone above`);
  });

  it("a tampered answer (REFUSED rewritten to NOERROR) fails the server's signature check", async () => {
    const relay = await tamperingRelay(bind.port);
    try {
      const writer = txtWriterFor(rfc2136({ server: `127.0.0.1:${relay.port}` }), log);
      const err = await rejection(writer.present('_acme-challenge.registry.locked.test', 'v'));
      expect(err.code).toBe('DNS_RESPONSE_FORGED');
      expect(err.message).toContain('its TSIG MAC does not verify with our key');
      expect(relay.tampered()).toBeGreaterThan(0);
    } finally {
      await new Promise((r) => relay.server.close(r));
    }
  });
});

describe('rfc2136 with the server unreachable', () => {
  it('a port nobody listens on fails at once, naming the server', async () => {
    const server = `127.0.0.1:${await freePort()}`;
    const writer = txtWriterFor(rfc2136({ server }), log);
    const started = Date.now();
    const err = await rejection(writer.present('_acme-challenge.x.acme.test', 'v'));
    expect(err.code).toBe('DNS_UNREACHABLE');
    expect(err.message).toContain(`cannot reach DNS server ${server} (ECONNREFUSED)`);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('a server that accepts and never answers times out after exchangeTimeoutMs', async () => {
    const sockets: import('node:net').Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as { port: number };
    try {
      const writer = txtWriterFor(rfc2136({ server: `127.0.0.1:${port}` }), log, {
        exchangeTimeoutMs: 500,
      });
      const started = Date.now();
      const err = await rejection(writer.present('_acme-challenge.x.acme.test', 'v'));
      expect(err.code).toBe('DNS_TIMEOUT');
      expect(err.message).toContain(`DNS server 127.0.0.1:${port} did not answer within 500 ms`);
      expect(Date.now() - started).toBeGreaterThanOrEqual(450);
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});

describe('waitForTxt against BIND 9', () => {
  it('resolves once the value is served (asked directly, as for rfc2136.server)', async () => {
    const writer = txtWriterFor(rfc2136(), log);
    const fqdn = '_acme-challenge.wait.acme.test';
    const waiting = waitForTxt(fqdn, 'late-value', {
      timeoutMs: 10_000,
      intervalMs: 100,
      servers: [bind.server],
    });
    let settled = false;
    void waiting.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((r) => setTimeout(r, 400));
    expect(settled).toBe(false); // not before the record exists
    await writer.present(fqdn, 'late-value');
    await waiting;
    await writer.cleanup(fqdn, 'late-value');
  });

  it("finds the zone's name servers from NS records and asks each", async () => {
    const found = await findAuthoritativeServers('_acme-challenge.registry.acme.test', {
      resolvers: [bind.server],
      nameServerPort: bind.port,
    });
    expect(found).toEqual({ zone: 'acme.test', servers: [{ host: '127.0.0.1', port: bind.port }] });

    const writer = txtWriterFor(rfc2136(), log);
    await writer.present('_acme-challenge.ns.acme.test', 'via-ns');
    await waitForTxt('_acme-challenge.ns.acme.test', 'via-ns', {
      timeoutMs: 5000,
      intervalMs: 100,
      resolvers: [bind.server],
      nameServerPort: bind.port,
    });
    await writer.cleanup('_acme-challenge.ns.acme.test', 'via-ns');
  });

  it("falls back to rfc2136.server when the zone's NS set cannot be found", async () => {
    const config = rfc2136();
    const writer = txtWriterFor(config, log);
    await writer.present('_acme-challenge.internal.acme.test', 'internal');
    await waitForTxt('_acme-challenge.internal.acme.test', 'internal', {
      timeoutMs: 5000,
      intervalMs: 100,
      resolvers: [`127.0.0.1:${await freePort()}`], // no resolver there: the NS lookup fails
      ...propagationOptionsFor(config),
    });
    await writer.cleanup('_acme-challenge.internal.acme.test', 'internal');
  });

  it('stops waiting at once when its signal aborts', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const waiting = rejection(
      waitForTxt('_acme-challenge.aborted.acme.test', 'never', {
        timeoutMs: 30_000,
        intervalMs: 5000,
        servers: [bind.server],
        signal: controller.signal,
      }),
    );
    setTimeout(() => controller.abort(new Error('order cancelled')), 200);
    const err = await waiting;
    expect(err.code).toBe('DNS_ABORTED');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('times out naming the servers that lack the value, and what they answered', async () => {
    const writer = txtWriterFor(rfc2136(), log);
    await writer.present('_acme-challenge.never.acme.test', 'some-other-value');
    const started = Date.now();
    const err = await rejection(
      waitForTxt('_acme-challenge.never.acme.test', 'expected-value', {
        timeoutMs: 1000,
        intervalMs: 200,
        servers: [bind.server],
      }),
    );
    expect(Date.now() - started).toBeLessThan(4000);
    expect(err.message).toContain(
      `TXT _acme-challenge.never.acme.test = "expected-value" was not visible on ${bind.server} (1 other TXT value(s)) within 1 s`,
    );
    await writer.cleanup('_acme-challenge.never.acme.test', 'some-other-value');
  });
});

/**
 * A man in the middle: relays DNS over TCP to named and turns every REFUSED answer into
 * NOERROR, as a spoofer would to make us believe an update happened.
 */
async function tamperingRelay(
  upstreamPort: number,
): Promise<{ server: NetServer; port: number; tampered(): number }> {
  let tampered = 0;
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: upstreamPort });
    client.pipe(upstream);
    let buffered = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 2 || buffered.length < 2 + buffered.readUInt16BE(0)) return;
      const flags = buffered.readUInt16BE(4);
      if ((flags & 0xf) === 5) {
        buffered.writeUInt16BE(flags & ~0xf, 4);
        tampered++;
      }
      client.write(buffered);
      buffered = Buffer.alloc(0);
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, tampered: () => tampered };
}
