/**
 * What the registry is told about the client: X-Forwarded-*, X-Real-IP and
 * Forwarded are the proxy's own unless the peer is a trusted proxy
 * (trustedProxies), asserted on the headers the backend actually received, on
 * the relay path and the http-proxy path.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { httpsGet } from './helpers/https.js';
import { exchangeRaw, statusOf } from './helpers/raw-tls.js';
import {
  useRecordingBackendBehindProxy,
  type RecordingBackendBehindProxy,
  type ReceivedRequest,
} from './helpers/recording-backend.js';

/** [name, method, path]: the relay takes the first five (relay.ts), http-proxy the rest. */
const REQUESTS: Array<[string, string, string]> = [
  ['relay', 'GET', '/v2/'],
  ['relay', 'GET', '/v2/app/manifests/1.0'],
  ['relay', 'HEAD', '/v2/app/manifests/1.0'],
  ['relay', 'GET', '/v2/app/blobs/sha256:0123abcd'],
  ['relay', 'HEAD', '/v2/app/blobs/sha256:0123abcd'],
  ['http-proxy', 'POST', '/v2/app/blobs/uploads/'],
  ['http-proxy', 'GET', '/v2/_catalog'],
];

/** A balancer's (or a forger's) forwarding headers, in odd casing and repeated. */
const FORWARDING_LINES =
  'x-FORWARDED-for: 203.0.113.9\r\n' +
  'X-Forwarded-For: 198.51.100.4\r\n' +
  'X-FORWARDED-PROTO: https\r\n' +
  'x-forwarded-host: registry.example.com\r\n' +
  'X-Forwarded-Host: other.example\r\n' +
  'x-Forwarded-Port: 443\r\n' +
  'X-REAL-IP: 203.0.113.9\r\n' +
  'forwarded: for=203.0.113.9;host=registry.example.com;proto=https\r\n' +
  'X-Forwarded-Prefix: /evil\r\n';

const FORWARDING_NAMES = [
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-real-ip',
  'forwarded',
  'x-forwarded-prefix',
];

/** Sends one request with the forwarding headers; returns the backend's view of it. */
async function forwardedRequest(
  env: RecordingBackendBehindProxy,
  method: string,
  path: string,
): Promise<{ request: ReceivedRequest; headers: Record<string, string[]> }> {
  const url = `${path}?case=${Math.random().toString(36).slice(2)}`;
  const body = method === 'POST' ? 'Content-Length: 0\r\n' : '';
  const response = await exchangeRaw(
    env.proxy.port,
    env.ca,
    `${method} ${url} HTTP/1.1\r\nHost: localhost:${env.proxy.port}\r\n${FORWARDING_LINES}${body}Connection: close\r\n\r\n`,
  );
  expect(statusOf(response)).toBeLessThan(300);
  const request = env.backend.requests.find((r) => r.url === url);
  if (!request) throw new Error(`the backend never received ${method} ${url}`);
  const headers: Record<string, string[]> = {};
  for (let i = 0; i < request.rawHeaders.length; i += 2) {
    const name = (request.rawHeaders[i] as string).toLowerCase();
    (headers[name] ??= []).push(request.rawHeaders[i + 1] as string);
  }
  return { request, headers };
}

describe('forwarding headers from an untrusted client are overwritten', () => {
  const env = useRecordingBackendBehindProxy('forwarding');

  it.each(REQUESTS)('%s: %s %s', async (_path, method, path) => {
    const { headers } = await forwardedRequest(env, method, path);
    const ours = {
      'x-forwarded-for': ['127.0.0.1'],
      'x-real-ip': ['127.0.0.1'],
      'x-forwarded-proto': ['https'],
      'x-forwarded-host': [`localhost:${env.proxy.port}`],
      'x-forwarded-port': [String(env.proxy.port)],
    };
    for (const name of FORWARDING_NAMES) {
      expect(headers[name], name).toEqual(ours[name as keyof typeof ours]);
    }
    expect(headers['host']).toEqual([`localhost:${env.proxy.port}`]);
  });

  it('no spoofed value reached the backend in any request', () => {
    expect(env.backend.requests.length).toBeGreaterThan(REQUESTS.length);
    expect(env.backend.bytes()).not.toMatch(/203\.0\.113\.9|198\.51\.100\.4|\.example|\/evil/);
  });
});

/** What a trusted balancer's headers become: its chain plus its address, the rest as sent. */
const PASSED_ON = (peer: string) => ({
  'x-forwarded-for': [`203.0.113.9, 198.51.100.4, ${peer}`],
  // The right-most address that is not a trusted proxy (nginx's real_ip_recursive).
  'x-real-ip': ['198.51.100.4'],
  'x-forwarded-proto': ['https'],
  // Repeated lines reach the registry joined; it takes the first (registry/api/v2/urls.go).
  'x-forwarded-host': ['registry.example.com, other.example'],
  'x-forwarded-port': ['443'],
  forwarded: ['for=203.0.113.9;host=registry.example.com;proto=https'],
  'x-forwarded-prefix': undefined,
});

describe('trustedProxies [127.0.0.1]: the peer’s forwarding headers pass on', () => {
  const env = useRecordingBackendBehindProxy('forwarding-trusted', {
    RTP_TRUSTED_PROXIES: '127.0.0.1',
  });

  it.each(REQUESTS)('%s: %s %s', async (_path, method, path) => {
    const { headers } = await forwardedRequest(env, method, path);
    for (const [name, value] of Object.entries(PASSED_ON('127.0.0.1'))) {
      expect(headers[name], name).toEqual(value);
    }
  });
});

describe('trustedProxies [10.0.0.0/8]: a peer outside it is overwritten', () => {
  const env = useRecordingBackendBehindProxy('forwarding-other', {
    RTP_TRUSTED_PROXIES: '10.0.0.0/8',
  });

  it.each(REQUESTS)('%s: %s %s', async (_path, method, path) => {
    const { headers } = await forwardedRequest(env, method, path);
    expect(headers['x-forwarded-for']).toEqual(['127.0.0.1']);
    expect(headers['x-real-ip']).toEqual(['127.0.0.1']);
    expect(headers['x-forwarded-host']).toEqual([`localhost:${env.proxy.port}`]);
    expect(headers['x-forwarded-port']).toEqual([String(env.proxy.port)]);
    expect(headers['forwarded']).toBeUndefined();
  });
});

describe('trustedProxies [127.0.0.0/8] on a dual-stack listener: IPv4-mapped peers match', () => {
  // Listening on [::], Node reports an IPv4 client as ::ffff:127.0.0.1.
  const env = useRecordingBackendBehindProxy(
    'forwarding-mapped',
    { RTP_TRUSTED_PROXIES: '127.0.0.0/8' },
    '::',
  );

  it('passes the peer’s headers on, appending 127.0.0.1', async () => {
    const { headers } = await forwardedRequest(env, 'GET', '/v2/');
    for (const [name, value] of Object.entries(PASSED_ON('127.0.0.1'))) {
      expect(headers[name], name).toEqual(value);
    }
  });
});

const LB = 'lb.example:7443';
const LB_HEADERS = {
  'x-forwarded-for': '203.0.113.9',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': LB,
};

/** A monolithic blob push as a client behind the balancer makes it; returns each Location. */
async function pushThroughBalancer(origin: string, ca: string): Promise<string[]> {
  const blob = Buffer.from('layer behind a balancer');
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const start = await httpsGet(`${origin}/v2/app/blobs/uploads/`, {
    ca,
    method: 'POST',
    headers: LB_HEADERS,
  });
  expect(start.status).toBe(202);
  const upload = new URL(start.headers.location ?? '');
  upload.searchParams.set('digest', digest);
  // The balancer forwards the client's request, addressed to it, to the proxy.
  const done = await httpsGet(`${origin}${upload.pathname}${upload.search}`, {
    ca,
    method: 'PUT',
    headers: { ...LB_HEADERS, 'content-type': 'application/octet-stream' },
    body: blob,
  });
  expect(done.status).toBe(201);
  const pulled = await httpsGet(`${origin}/v2/app/blobs/${digest}`, { ca });
  expect(pulled.body).toBe(blob.toString());
  return [start.headers.location ?? '', done.headers.location ?? ''];
}

describe('a push through a trusted balancer (real registry)', () => {
  const env = useRegistryBehindProxy(
    'trusted-lb',
    { auth: { kind: 'none' } },
    { RTP_TRUSTED_PROXIES: '127.0.0.1' },
  );

  it('the registry writes the balancer’s public address into Location, and the push completes', async () => {
    const [started, completed] = await pushThroughBalancer(env.proxy.origin, env.ca);
    expect(started).toMatch(new RegExp(`^https://${LB}/v2/app/blobs/uploads/[0-9a-f-]+\\?_state=`));
    expect(completed).toMatch(new RegExp(`^https://${LB}/v2/app/blobs/sha256:[0-9a-f]{64}$`));
  });
});

describe('a push through a trusted balancer to a registry that names its backend address', () => {
  // http.host makes the registry write its own plain-HTTP address; the proxy rewrites it.
  const env = useRegistryBehindProxy(
    'trusted-lb-http-host',
    { auth: { kind: 'none' }, httpHost: 'self' },
    { RTP_TRUSTED_PROXIES: '127.0.0.1' },
  );

  it('Location is rewritten to the balancer’s address, not the proxy’s own', async () => {
    const [started, completed] = await pushThroughBalancer(env.proxy.origin, env.ca);
    expect(started).toMatch(new RegExp(`^https://${LB}/v2/app/blobs/uploads/[0-9a-f-]+\\?_state=`));
    expect(completed).toMatch(new RegExp(`^https://${LB}/v2/app/blobs/sha256:[0-9a-f]{64}$`));
  });
});
