import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { prepareRequestHeaders, stripHopByHop, type ForwardingFacts } from './headers.js';

const FACTS: ForwardingFacts = {
  clientAddress: '10.1.2.3',
  host: 'registry.lan:5443',
  port: 5443,
};

function prepared(headers: IncomingHttpHeaders, facts: ForwardingFacts = FACTS) {
  prepareRequestHeaders(headers, facts);
  return headers;
}

describe('prepareRequestHeaders: forwarding headers are the proxy’s, never the client’s', () => {
  it.each<[string, string, string | undefined]>([
    ['x-forwarded-for', '6.6.6.6', '10.1.2.3'],
    ['x-forwarded-for', '6.6.6.6, 7.7.7.7', '10.1.2.3'],
    ['x-forwarded-proto', 'http', 'https'],
    ['x-forwarded-host', 'evil.example', 'registry.lan:5443'],
    ['x-forwarded-host', 'evil.example, registry.lan:5443', 'registry.lan:5443'],
    ['x-forwarded-port', '80', '5443'],
    ['x-real-ip', '6.6.6.6', '10.1.2.3'],
    // The registry prefers Forwarded over X-Forwarded-*; the client's must not reach it.
    ['forwarded', 'for=6.6.6.6;host=evil.example;proto=http', undefined],
    ['x-forwarded-prefix', '/evil', undefined],
    ['x-forwarded-ssl', 'off', undefined],
  ])('client %s: %j becomes %j', (name, clientValue, expected) => {
    const headers = prepared({ host: 'registry.lan:5443', [name]: clientValue });
    expect(headers[name]).toBe(expected);
  });

  it('sets the full set of forwarding headers', () => {
    expect(prepared({ host: 'evil.example' })).toEqual({
      host: 'registry.lan:5443',
      'x-forwarded-for': '10.1.2.3',
      'x-real-ip': '10.1.2.3',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'registry.lan:5443',
      'x-forwarded-port': '5443',
    });
  });

  it.each<[string | undefined, string | undefined]>([
    ['10.1.2.3', '10.1.2.3'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['::1', '::1'],
    [undefined, undefined],
  ])('client address %s → X-Forwarded-For %s', (clientAddress, expected) => {
    const headers = prepared(
      { host: 'registry.lan:5443', 'x-forwarded-for': '6.6.6.6', 'x-real-ip': '6.6.6.6' },
      { ...FACTS, clientAddress },
    );
    expect(headers['x-forwarded-for']).toBe(expected);
    expect(headers['x-real-ip']).toBe(expected);
  });

  // Node reports a link-local IPv6 peer with its zone (fe80::…%eth0) when listening on [::].
  it('handles a link-local IPv6 client address with a zone', () => {
    let headers: IncomingHttpHeaders = {};
    expect(() => {
      headers = prepared(
        { host: 'registry.lan:5443' },
        { ...FACTS, clientAddress: 'fe80::fc:ff:fe00:1%eth0' },
      );
    }).not.toThrow();
    expect(headers['x-forwarded-for']).toMatch(/^fe80::fc:ff:fe00:1(%eth0)?$/);
  });

  it.each<[string, number, string]>([
    ['registry.lan:5443', 5443, '5443'],
    ['registry.lan', 443, '443'],
    ['[::1]:5443', 5443, '5443'],
    ['10.0.0.5:5443', 5443, '5443'],
  ])('sets Host and X-Forwarded-Host to %s, X-Forwarded-Port to %s', (host, port, portHeader) => {
    const headers = prepared({ host: 'something-else:1' }, { ...FACTS, host, port });
    expect(headers.host).toBe(host);
    expect(headers['x-forwarded-host']).toBe(host);
    expect(headers['x-forwarded-port']).toBe(portHeader);
  });

  it('keeps end-to-end headers the registry needs', () => {
    const headers = prepared({
      host: 'registry.lan:5443',
      authorization: 'Basic YWxpY2U6cw==',
      'content-type': 'application/octet-stream',
      'content-length': '1048576',
      'content-range': '0-1048575',
      'user-agent': 'docker/27.0',
      accept: 'application/vnd.oci.image.manifest.v1+json',
      'docker-content-digest': 'sha256:00',
    });
    expect(headers).toMatchObject({
      authorization: 'Basic YWxpY2U6cw==',
      'content-type': 'application/octet-stream',
      'content-length': '1048576',
      'content-range': '0-1048575',
      'user-agent': 'docker/27.0',
      accept: 'application/vnd.oci.image.manifest.v1+json',
      'docker-content-digest': 'sha256:00',
    });
  });

  // Node has already answered 100-continue to the client; the backend must not wait for a body gate.
  it('removes Expect', () => {
    const headers = prepared({ host: 'registry.lan:5443', expect: '100-continue' });
    expect(headers).not.toHaveProperty('expect');
  });
});

describe('hop-by-hop headers', () => {
  it.each([
    'connection',
    'keep-alive',
    'te',
    'trailer',
    'transfer-encoding',
    'upgrade',
    'proxy-authorization',
    'proxy-authenticate',
    'proxy-connection',
  ])('prepareRequestHeaders removes %s', (name) => {
    const headers = prepared({ host: 'registry.lan:5443', [name]: 'x', authorization: 'Bearer t' });
    expect(headers).not.toHaveProperty(name);
    expect(headers.authorization).toBe('Bearer t');
  });

  it.each<[string, Record<string, string>, string[]]>([
    ['one custom header', { 'x-hop': '1' }, ['x-hop']],
    ['several, any case and spacing', { 'x-a': '1', 'x-b': '2' }, ['X-A', ' x-b ']],
    ['a standard header', { 'x-debug': '1', 'cache-control': 'no-cache' }, ['Cache-Control']],
  ])('removes headers named in Connection: %s', (_what, extra, named) => {
    const headers: IncomingHttpHeaders = {
      host: 'registry.lan:5443',
      connection: ['keep-alive', ...named].join(','),
      'keep-alive': 'timeout=5',
      'x-stays': 'yes',
      ...extra,
    };
    stripHopByHop(headers);
    for (const name of named) expect(headers).not.toHaveProperty(name.trim().toLowerCase());
    expect(headers).not.toHaveProperty('connection');
    expect(headers).not.toHaveProperty('keep-alive');
    expect(headers['x-stays']).toBe('yes');
    expect(headers.host).toBe('registry.lan:5443');
  });

  it.each(['host, content-length', 'Host,Content-Length', ' HOST , CONTENT-LENGTH ,'])(
    'Connection: %s does not remove Host or Content-Length',
    (connection) => {
      const headers: IncomingHttpHeaders = {
        host: 'registry.lan:5443',
        'content-length': '42',
        connection,
      };
      stripHopByHop(headers);
      expect(headers).toEqual({ host: 'registry.lan:5443', 'content-length': '42' });
    },
  );

  it('prepareRequestHeaders keeps Content-Length named in Connection', () => {
    const headers = prepared({
      host: 'registry.lan:5443',
      'content-length': '42',
      connection: 'content-length, host',
    });
    expect(headers['content-length']).toBe('42');
    expect(headers.host).toBe('registry.lan:5443');
  });

  it('strips a response’s hop-by-hop headers and keeps the registry’s', () => {
    const headers: OutgoingHttpHeaders = {
      connection: 'keep-alive, x-backend-hop',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      'x-backend-hop': '1',
      location: '/v2/r/blobs/uploads/u1',
      'docker-distribution-api-version': 'registry/2.0',
      'docker-upload-uuid': 'u1',
      range: '0-0',
      'content-length': 0,
    };
    stripHopByHop(headers);
    expect(headers).toEqual({
      location: '/v2/r/blobs/uploads/u1',
      'docker-distribution-api-version': 'registry/2.0',
      'docker-upload-uuid': 'u1',
      range: '0-0',
      'content-length': 0,
    });
  });
});

describe('prepareRequestHeaders: a trusted proxy’s forwarding headers pass on', () => {
  const isTrustedProxy = (address: string) => address.startsWith('10.');
  const TRUSTED: ForwardingFacts = { ...FACTS, isTrustedProxy };

  it('keeps the chain and appends the peer; the first untrusted hop is the real client', () => {
    const headers = prepared(
      {
        host: 'registry.lan:5443',
        'x-forwarded-for': '203.0.113.9, 10.9.9.9',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'registry.example.com',
        'x-forwarded-port': '443',
        forwarded: 'for=203.0.113.9;proto=https',
        'x-real-ip': '6.6.6.6',
        'x-forwarded-prefix': '/evil',
      },
      TRUSTED,
    );
    expect(headers).toEqual({
      host: 'registry.lan:5443',
      'x-forwarded-for': '203.0.113.9, 10.9.9.9, 10.1.2.3',
      'x-real-ip': '203.0.113.9',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'registry.example.com',
      'x-forwarded-port': '443',
      forwarded: 'for=203.0.113.9;proto=https',
    });
  });

  it.each<[string, Record<string, string>, Record<string, string | undefined>]>([
    [
      'nothing forwarded: the proxy’s own view',
      {},
      {
        'x-forwarded-for': '10.1.2.3',
        'x-real-ip': '10.1.2.3',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'registry.lan:5443',
        'x-forwarded-port': '5443',
      },
    ],
    [
      // The registry would otherwise put this proxy's port on the balancer's name.
      'its X-Forwarded-Host without a port: no X-Forwarded-Port of ours',
      { 'x-forwarded-host': 'registry.example.com' },
      { 'x-forwarded-host': 'registry.example.com', 'x-forwarded-port': undefined },
    ],
    [
      // The registry uses X-Forwarded-Proto verbatim.
      'a chained X-Forwarded-Proto: the first',
      { 'x-forwarded-proto': 'https, http' },
      { 'x-forwarded-proto': 'https' },
    ],
    [
      'a chain of garbage: the peer is the real client',
      { 'x-forwarded-for': 'unknown' },
      { 'x-forwarded-for': 'unknown, 10.1.2.3', 'x-real-ip': '10.1.2.3' },
    ],
    [
      'an IPv4-mapped hop is written plainly',
      { 'x-forwarded-for': '::ffff:203.0.113.9' },
      { 'x-real-ip': '203.0.113.9' },
    ],
  ])('%s', (_name, sent, expected) => {
    const headers = prepared({ host: 'registry.lan:5443', ...sent }, TRUSTED);
    for (const [name, value] of Object.entries(expected)) expect(headers[name], name).toBe(value);
  });

  it('a peer the check does not trust is overwritten as any client', () => {
    const headers = prepared(
      { host: 'registry.lan:5443', 'x-forwarded-for': '203.0.113.9', forwarded: 'for=x' },
      { ...TRUSTED, clientAddress: '192.0.2.1' },
    );
    expect(headers['x-forwarded-for']).toBe('192.0.2.1');
    expect(headers['forwarded']).toBeUndefined();
  });

  it('a mapped peer address is matched and appended in its IPv4 form', () => {
    const headers = prepared(
      { host: 'registry.lan:5443', 'x-forwarded-for': '203.0.113.9' },
      { ...TRUSTED, clientAddress: '::ffff:10.1.2.3' },
    );
    expect(headers['x-forwarded-for']).toBe('203.0.113.9, 10.1.2.3');
  });
});
