/**
 * Strict-Transport-Security on every response of the public port: proxied
 * (relay and http-proxy), the proxy's own endpoints, and the errors it writes
 * itself, whether through a response object or raw on a connection Node gave up on.
 */
import { describe, expect, it } from 'vitest';
import { httpsGet } from './helpers/https.js';
import { exchangeRaw, statusOf } from './helpers/raw-tls.js';
import {
  useRecordingBackendBehindProxy,
  type RecordingBackendBehindProxy,
} from './helpers/recording-backend.js';

const ONE_YEAR = 'max-age=31536000';

/** [what, how to get it] → the status and the head as the client read it (names lower-cased). */
const RESPONSES: Array<
  [string, number, (env: RecordingBackendBehindProxy) => Promise<{ status: number; head: string }>]
> = [
  ['GET /v2/ (relay)', 200, (env) => viaClient(env, 'GET', '/v2/')],
  ['POST an upload (http-proxy)', 202, (env) => viaClient(env, 'POST', '/v2/app/blobs/uploads/')],
  ['GET /ca.crt', 200, (env) => viaClient(env, 'GET', '/ca.crt')],
  ['GET /install-ca.sh', 200, (env) => viaClient(env, 'GET', '/install-ca.sh')],
  [
    'a request the proxy refuses (400)',
    400,
    (env) =>
      raw(
        env,
        'POST /v2/ HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n',
      ),
  ],
  [
    'a request Node cannot parse (431)',
    431,
    (env) =>
      raw(env, `GET /v2/ HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
  ],
  [
    'CONNECT (405)',
    405,
    (env) => raw(env, 'CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n'),
  ],
];

async function viaClient(env: RecordingBackendBehindProxy, method: string, path: string) {
  const res = await httpsGet(`${env.proxy.origin}${path}`, { ca: env.ca, method });
  const head = Object.entries(res.headers)
    .map(([name, value]) => `${name}: ${String(value)}`)
    .join('\r\n');
  return { status: res.status, head };
}

async function raw(env: RecordingBackendBehindProxy, request: string) {
  const response = await exchangeRaw(env.proxy.port, env.ca, request);
  return { status: statusOf(response), head: response.split('\r\n\r\n')[0]?.toLowerCase() ?? '' };
}

describe('Strict-Transport-Security (tls.hstsMaxAge default 365d)', () => {
  const env = useRecordingBackendBehindProxy('hsts');

  it.each(RESPONSES)('%s → %i with max-age=31536000', async (_name, status, get) => {
    const { status: got, head } = await get(env);
    expect(got).toBe(status);
    expect(head).toMatch(new RegExp(`(^|\r\n)strict-transport-security: ${ONE_YEAR}(\r\n|$)`));
  });
});

describe('tls.hstsMaxAge 0 turns it off', () => {
  const env = useRecordingBackendBehindProxy('hsts-off', { RTP_TLS_HSTS_MAX_AGE: '0' });

  it.each(RESPONSES)('%s → %i without the header', async (_name, status, get) => {
    const { status: got, head } = await get(env);
    expect(got).toBe(status);
    expect(head).not.toMatch(/strict-transport-security/i);
  });
});
