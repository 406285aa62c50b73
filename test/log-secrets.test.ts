/**
 * The proxy's log (at its most verbose, trace) never holds a credential or key
 * material: a real skopeo push and pull with a password, wrong passwords, bearer
 * tokens, cookies, tokens in query strings, and requests with credentials that fail
 * in every way the proxy logs (refused as malformed, backend down) — then the whole
 * output is searched for every secret in every form a client sent it.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { basicAuth, httpsGet } from './helpers/https.js';
import { buildOCIImage } from './helpers/oci.js';
import type { Proxy } from './helpers/processes.js';
import { tempDir } from './helpers/processes.js';
import { exchangeRaw } from './helpers/raw-tls.js';
import { skopeo } from './helpers/skopeo.js';

const USER = 'alice';
const PASSWORD = 'S3cret-Pa55word-never-logged';
const WRONG = 'Wr0ng-Pa55word-never-logged';
const BEARER = 'eyJhbGciOiJFUzI1NiJ9.bearer-token-never-logged.c2lnbmF0dXJl';
const COOKIE = 'session-cookie-never-logged';
const QUERY_TOKEN = 'query-token-never-logged';

describe('logs never contain credentials or key material', () => {
  const env = useRegistryBehindProxy(
    'log-secrets',
    { auth: { kind: 'htpasswd', user: USER, password: PASSWORD } },
    { RTP_LOG_LEVEL: 'trace' },
  );

  it('after pushes, pulls and failures with credentials, no secret appears in any form', async () => {
    const { proxy, ca } = env;
    const certDir = join(env.tmp, 'certs');
    mkdirSync(certDir, { recursive: true });
    writeFileSync(join(certDir, 'ca.crt'), ca);
    const image = buildOCIImage(join(env.tmp, 'image'), 'v1', [64 << 10]);
    const ref = `docker://127.0.0.1:${proxy.port}/secrets/app:v1`;

    // A real client with the right password, then with a wrong one.
    const push = await skopeo([
      'copy',
      '--dest-cert-dir',
      certDir,
      '--dest-creds',
      `${USER}:${PASSWORD}`,
      image.ref,
      ref,
    ]);
    expect(push.code, push.stderr).toBe(0);
    const pull = await skopeo([
      'copy',
      '--src-cert-dir',
      certDir,
      '--src-creds',
      `${USER}:${PASSWORD}`,
      ref,
      `dir:${join(env.tmp, 'pulled')}`,
    ]);
    expect(pull.code, pull.stderr).toBe(0);
    const denied = await skopeo([
      'inspect',
      '--cert-dir',
      certDir,
      '--creds',
      `${USER}:${WRONG}`,
      ref,
    ]);
    expect(denied.code).not.toBe(0);

    // Credentials in every header and in the query string, on both proxy paths.
    const headers = {
      authorization: `Bearer ${BEARER}`,
      'proxy-authorization': basicAuth(USER, PASSWORD),
      cookie: `session=${COOKIE}`,
    };
    for (const path of [
      '/v2/',
      `/v2/_catalog?access_token=${QUERY_TOKEN}&password=${PASSWORD}`,
      `/v2/secrets/app/manifests/v1?token=${QUERY_TOKEN}`,
      `/v2/secrets/app/blobs/uploads/?password=${PASSWORD}`,
    ]) {
      const res = await httpsGet(`${proxy.origin}${path}`, {
        ca,
        headers,
        method: path.includes('uploads') ? 'POST' : 'GET',
      });
      expect(res.status).toBe(401);
    }

    // Refused before proxying: a framing attack and a malformed header, each with a password.
    const auth = basicAuth(USER, PASSWORD);
    for (const raw of [
      `POST /v2/?password=${PASSWORD} HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`,
      `GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nBad Header: ${PASSWORD}\r\n\r\n`,
      `GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    ]) {
      expect(await exchangeRaw(proxy.port, ca, raw)).toMatch(/^HTTP\/1\.1 4\d\d /);
    }

    // The backend down: the proxy logs the failed request (warn) — still no secret.
    await env.registry.stop();
    const down = await httpsGet(`${proxy.origin}/v2/?password=${PASSWORD}`, {
      ca,
      headers: { authorization: basicAuth(USER, PASSWORD) },
    });
    expect(down.status).toBe(502);
    await env.registry.start();

    const lines = proxy.logLines();
    // The scan means something: the log saw these requests, at trace level.
    expect(lines.some((l) => l['msg'] === 'request' && l['status'] === 201)).toBe(true);
    expect(lines.some((l) => l['msg'] === 'request' && l['status'] === 401)).toBe(true);
    expect(lines.some((l) => l['msg'] === 'backend request failed')).toBe(true);
    expect(lines.some((l) => l['level'] === 'debug' || l['level'] === 'trace')).toBe(true);

    expectNoSecret(proxy, []);
  });
});

/** Every secret the tests sent, in every form a client sent it, plus the keys in tls.dir and `more`. */
function expectNoSecret(proxy: Proxy, more: readonly string[]): void {
  const log = proxy.output();
  const keyBodies = ['ca.key', 'server.key', 'server-rsa.key'].map((name) =>
    readFileSync(join(proxy.tlsDir, name), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('-----'))
      .slice(0, 3),
  );
  const secrets = [
    PASSWORD,
    WRONG,
    BEARER,
    COOKIE,
    QUERY_TOKEN,
    Buffer.from(`${USER}:${PASSWORD}`).toString('base64'),
    Buffer.from(`${USER}:${WRONG}`).toString('base64'),
    encodeURIComponent(PASSWORD),
    'PRIVATE KEY',
    ...keyBodies.flat(),
    ...more,
  ];
  for (const secret of secrets) expect(log.includes(secret), `log contains ${secret}`).toBe(false);
}

describe('with logins at the proxy (auth.htpasswd), logs hold no password and no hash', () => {
  const files = tempDir('log-secrets-auth');
  afterAll(() => files.remove());
  const htpasswd = join(files.path, 'htpasswd');
  const line = execFileSync('htpasswd', ['-Bbn', USER, PASSWORD], { encoding: 'utf8' });
  writeFileSync(htpasswd, line);
  const hash = line.trim().split(':')[1] as string;
  const env = useRegistryBehindProxy(
    'log-secrets-auth',
    { auth: { kind: 'none' } },
    { RTP_LOG_LEVEL: 'trace', RTP_AUTH_HTPASSWD: htpasswd },
  );

  it('after logins, wrong passwords until 429, and a bad new htpasswd file', async () => {
    const { proxy, ca } = env;
    const certDir = join(env.tmp, 'certs');
    mkdirSync(certDir, { recursive: true });
    writeFileSync(join(certDir, 'ca.crt'), ca);
    const image = buildOCIImage(join(env.tmp, 'image'), 'v1', [64 << 10]);
    const ref = `docker://127.0.0.1:${proxy.port}/secrets/app:v1`;
    const push = await skopeo([
      'copy',
      '--dest-cert-dir',
      certDir,
      '--dest-creds',
      `${USER}:${PASSWORD}`,
      image.ref,
      ref,
    ]);
    expect(push.code, push.stderr).toBe(0);
    let limited = false;
    for (let n = 0; n < 15 && !limited; n++) {
      const res = await httpsGet(`${proxy.origin}/v2/`, {
        ca,
        headers: { authorization: basicAuth(USER, WRONG) },
      });
      limited = res.status === 429;
    }
    expect(limited).toBe(true);
    // A new version with an MD5 line: refused, logged, the previous users stay.
    const md5 = execFileSync('htpasswd', ['-mbn', 'mallory', PASSWORD], { encoding: 'utf8' });
    appendFileSync(htpasswd, md5);
    await eventually('the refused file to be logged', () =>
      proxy.output().includes('auth.htpasswd changed but cannot be used'),
    );
    const lines = proxy.logLines();
    expect(lines.some((l) => l['msg'] === 'request' && l['user'] === USER)).toBe(true);
    expect(lines.some((l) => /failed logins/.test(String(l['msg'])))).toBe(true);
    expectNoSecret(proxy, [hash, md5.trim().split(':')[1] as string]);
  });
});
