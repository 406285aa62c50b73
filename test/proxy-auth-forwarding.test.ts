/**
 * What the backend sees of the proxy's logins: with auth.htpasswd the Authorization
 * header is consumed at the proxy and never forwarded; without it, it passes
 * untouched (the registry's own auth needs it). And a SIGHUP reload that turns the
 * logins on takes effect for new requests.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { basicAuth, httpsGet } from './helpers/https.js';
import { startProxy, tempDir, type Proxy } from './helpers/processes.js';
import {
  startRecordingBackend,
  useRecordingBackendBehindProxy,
  type RecordingBackend,
} from './helpers/recording-backend.js';
import { reloadCounter } from './helpers/reloads.js';

const USER = 'alice';
const PASSWORD = 'forwarding-pa55word';
const files = tempDir('auth-forwarding');
const htpasswd = join(files.path, 'htpasswd');
writeFileSync(htpasswd, execFileSync('htpasswd', ['-Bbn', USER, PASSWORD]));
afterAll(() => files.remove());

/** The Authorization values the backend received for `path`. */
function authorizationsSeen(backend: RecordingBackend, path: string): string[] {
  return backend.requests
    .filter((r) => r.url === path)
    .flatMap((r) =>
      r.rawHeaders.filter(
        (_, i) => i % 2 === 1 && /^authorization$/i.test(r.rawHeaders[i - 1] ?? ''),
      ),
    );
}

describe.each([
  {
    name: 'with auth.htpasswd, Authorization stays at the proxy',
    env: { RTP_AUTH_HTPASSWD: htpasswd },
    forwarded: false,
  },
  {
    name: 'without logins, Authorization reaches the registry untouched',
    env: {},
    forwarded: true,
  },
])('$name', ({ env, forwarded }) => {
  const behind = useRecordingBackendBehindProxy('auth-fwd', env);

  it('forwards the logged-in request as it should', async () => {
    const authorization = basicAuth(USER, PASSWORD);
    const path = '/v2/e2e/app/manifests/v1';
    const res = await httpsGet(`${behind.proxy.origin}${path}`, {
      ca: behind.ca,
      headers: { authorization },
    });
    expect(res.status).toBe(200);
    await eventually('the backend to record it', () =>
      behind.backend.requests.some((r) => r.url === path && r.complete),
    );
    expect(authorizationsSeen(behind.backend, path)).toEqual(forwarded ? [authorization] : []);
  });
});

describe('a SIGHUP reload that turns the logins on', () => {
  const dir = tempDir('auth-reload');
  const config = join(dir.path, 'config.yaml');
  let backend: RecordingBackend | undefined;
  let proxy: Proxy | undefined;
  let ca = '';

  beforeAll(async () => {
    backend = await startRecordingBackend();
    writeFileSync(config, `backend: http://127.0.0.1:${backend.port}\n`);
    proxy = await startProxy({ tlsDir: join(dir.path, 'tls'), args: ['--config', config] });
    ca = readFileSync(proxy.caFile, 'utf8');
  });
  afterAll(async () => {
    await proxy?.stop();
    await backend?.close();
    dir.remove();
  });

  it('asks for a login from then on, and accepts the file’s user', async () => {
    const ping = (authorization?: string) =>
      httpsGet(`${proxy!.origin}/v2/`, {
        ca,
        ...(authorization ? { headers: { authorization } } : {}),
      });
    expect((await ping()).status).toBe(200);
    const reloads = reloadCounter(proxy!);
    writeFileSync(
      config,
      `backend: http://127.0.0.1:${backend!.port}\nauth:\n  htpasswd: ${htpasswd}\n  realm: reloaded\n`,
    );
    await reloads.reload();
    const challenged = await ping();
    expect(challenged.status).toBe(401);
    expect(challenged.headers['www-authenticate']).toBe('Basic realm="reloaded"');
    expect((await ping(basicAuth(USER, PASSWORD))).status).toBe(200);
  });
});
