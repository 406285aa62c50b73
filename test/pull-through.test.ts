/**
 * Issue 14: the distribution registry as a pull-through cache in front of the proxy. It
 * logs in upstream only where the backend uses token auth (registry 2.8 keeps upstream
 * credentials for Bearer realms alone), so it works in front of a token-auth backend and
 * gets 401 in front of an htpasswd one — as the README says.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildOCIImage } from './helpers/oci.js';
import {
  createRegistry,
  freePort,
  startProxy,
  stopProcess,
  tempDir,
  waitForOutput,
  type Proxy,
  type Registry,
  type RegistryAuth,
} from './helpers/processes.js';
import { skopeo, skopeoPush } from './helpers/skopeo.js';
import { startTokenServer, type TokenServer } from './helpers/token-server.js';

const USER = 'cache-user';
const PASSWORD = 'cache-pa55word';

const tmp = tempDir('pull-through');
const stops: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
  tmp.remove();
});

/** A backend registry with `auth`, the proxy in front, an image pushed through it. */
async function backendWithImage(name: string, auth: (realm: string) => RegistryAuth) {
  const dir = join(tmp.path, name);
  mkdirSync(dir);
  const tokenPort = await freePort();
  const registry: Registry = await createRegistry(
    { auth: auth(`http://127.0.0.1:${tokenPort}/token`) },
    dir,
  );
  await registry.start();
  stops.push(() => registry.stop());
  let tokens: TokenServer | undefined;
  if (auth('').kind === 'token') {
    tokens = await startTokenServer({
      dir,
      port: tokenPort,
      service: 'backend',
      issuer: 'e2e-tokens',
      user: USER,
      password: PASSWORD,
    });
    stops.push(() => (tokens as TokenServer).stop());
  }
  const proxy: Proxy = await startProxy({ backend: registry.url, tlsDir: join(dir, 'tls') });
  stops.push(() => proxy.stop());
  const certDir = join(dir, 'certs');
  mkdirSync(certDir);
  writeFileSync(join(certDir, 'ca.crt'), readFileSync(proxy.caFile));
  const image = buildOCIImage(join(dir, 'image'), 'v1', [300_000]);
  const push = await skopeoPush(
    image.ref,
    `127.0.0.1:${proxy.port}/cached/app:v1`,
    certDir,
    `${USER}:${PASSWORD}`,
  );
  expect(push.stderr).toBe('');
  expect(push.code).toBe(0);
  return { dir, proxy, tokens };
}

/** distribution in proxy mode, upstream = the proxy, trusting its CA (Go reads SSL_CERT_FILE). */
async function startCache(dir: string, proxy: Proxy): Promise<number> {
  const port = await freePort();
  const config = join(dir, 'cache.yml');
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log: { level: info }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'cache-storage')} } }`,
      `http: { addr: 127.0.0.1:${port}, secret: cache-secret }`,
      `proxy: { remoteurl: "${proxy.origin}", username: ${USER}, password: ${PASSWORD} }`,
    ].join('\n') + '\n',
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', SSL_CERT_FILE: proxy.caFile },
  });
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (text += d));
  stops.push(() => stopProcess(child, 'SIGKILL'));
  await waitForOutput(child, () => text, /listening on/);
  return port;
}

const pullFromCache = (port: number, dir: string) =>
  skopeo([
    'copy',
    '--src-tls-verify=false',
    `docker://127.0.0.1:${port}/cached/app:v1`,
    `oci:${join(dir, 'pulled')}:v1`,
  ]);

describe('a pull-through cache in front of the proxy', () => {
  it('pulls through a token-auth backend, logging in with its proxy.username', async () => {
    const { dir, proxy, tokens } = await backendWithImage('token', (realm) => ({
      kind: 'token',
      realm,
      service: 'backend',
      issuer: 'e2e-tokens',
    }));
    const before = tokens?.issued() ?? 0;
    const cachePort = await startCache(dir, proxy);
    const pull = await pullFromCache(cachePort, dir);
    expect(pull.stderr).toBe('');
    expect(pull.code).toBe(0);
    // The cache asked the token server with its credentials.
    expect(tokens?.issued() ?? 0).toBeGreaterThan(before);
  }, 120_000);

  it('gets 401 from an htpasswd backend: registry 2.8 sends no Basic credentials upstream', async () => {
    const { dir, proxy } = await backendWithImage('htpasswd', () => ({
      kind: 'htpasswd',
      user: USER,
      password: PASSWORD,
    }));
    const pushed = proxy.logLines().length;
    const cachePort = await startCache(dir, proxy);
    const pull = await pullFromCache(cachePort, dir);
    // The cache turns its upstream 401 into "manifest unknown"…
    expect(pull.code).not.toBe(0);
    expect(pull.stderr).toMatch(/manifest unknown/);
    // …which the proxy answered to a manifest request that came without credentials.
    // Only reads: the push's own manifest PUT (201) can reach the log after `pushed`
    // was counted, since request lines are written when the response finishes.
    const unauthorized = proxy
      .logLines()
      .slice(pushed)
      .filter(
        (l) =>
          l['msg'] === 'request' &&
          l['path'] === '/v2/cached/app/manifests/v1' &&
          l['method'] !== 'PUT',
      )
      .map((l) => `${String(l['method'])} ${String(l['status'])}`);
    expect(unauthorized.length).toBeGreaterThan(0);
    expect(unauthorized.filter((l) => !l.endsWith(' 401'))).toEqual([]);
  }, 120_000);
});
