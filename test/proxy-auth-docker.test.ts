/**
 * The docker engine against the proxy's own logins (auth.htpasswd, anonymous:
 * pull) in front of an open registry (`docker run registry:2`): both on a test host
 * in a network namespace (198.18.0.2), so dockerd verifies the proxy strictly
 * against /etc/docker/certs.d/HOST:PORT/ca.crt. A wrong password is "unauthorized";
 * the right one logs in, pushes and pulls; logged out, a push is refused.
 *
 * Needs root (namespaces, dockerd, /etc/docker/certs.d), docker.io and iproute2.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importTinyImage, startDockerd, type Dockerd } from './helpers/docker.js';
import { ownNamespaces, type TestHost } from './helpers/netns.js';
import { registryAndProxyOnTestHost } from './helpers/fixture.js';
import { readCA, tearDown, tempDir, type Proxy, type Registry } from './helpers/processes.js';

const USER = 'dora';
const PASSWORD = 'proxy-login-e2e-pa55';
const ETC_DOCKER = '/etc/docker';
const CERTS_D = join(ETC_DOCKER, 'certs.d');
const SLOW = { timeout: 300_000 };

describe('docker login, push and pull against the proxy’s own logins', SLOW, () => {
  const tmp = tempDir('auth-docker');
  let host: TestHost | undefined;
  let registry: Registry | undefined;
  let proxy: Proxy | undefined;
  let engine: Dockerd | undefined;
  let registryHost = '';
  let trustDir = '';
  let imageRef = '';
  let pushedDigest = '';
  let etcDirsToRemove: string[] = [];
  const docker = (args: string[], input?: string) =>
    (engine as Dockerd).docker(args, input === undefined ? {} : { input });
  const login = (password: string) =>
    docker(['login', registryHost, '--username', USER, '--password-stdin'], password);

  const removeTrust = () => {
    if (trustDir) rmSync(trustDir, { recursive: true, force: true });
    for (const dir of etcDirsToRemove) {
      try {
        if (readdirSync(dir).length === 0) rmdirSync(dir);
      } catch {
        // gone already, or something else put files there meanwhile
      }
    }
  };

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('proxy-auth-docker.test.ts needs root');
    etcDirsToRemove = [CERTS_D, ETC_DOCKER].filter((dir) => !existsSync(dir));
    const htpasswd = join(tmp.path, 'htpasswd');
    writeFileSync(htpasswd, execFileSync('htpasswd', ['-Bbn', '-C', '10', USER, PASSWORD]));
    ({ host, registry, proxy } = await registryAndProxyOnTestHost(
      'dauth',
      tmp.path,
      { kind: 'none' },
      { RTP_AUTH_HTPASSWD: htpasswd, RTP_AUTH_ANONYMOUS: 'pull' },
    ));
    registryHost = `${host.address}:${proxy.port}`;
    trustDir = join(CERTS_D, registryHost);
    mkdirSync(trustDir, { recursive: true });
    writeFileSync(join(trustDir, 'ca.crt'), readCA(proxy));
    imageRef = `${registryHost}/e2e/guarded:v1`;
    engine = await startDockerd();
    await importTinyImage(engine, imageRef, tmp.path, `auth e2e ${randomUUID()}\n`);
  }, 300_000);

  afterAll(async () => {
    await tearDown(
      () => engine?.stop(),
      () => proxy?.stop(),
      () => registry?.stop(),
      () => host?.destroy(),
      removeTrust,
      () => tmp.remove(),
    );
    expect(ownNamespaces()).toEqual([]);
  }, 120_000);

  it('refuses a wrong password with "unauthorized"', async () => {
    const wrong = await login('not-the-password');
    expect(wrong.code, wrong.output).not.toBe(0);
    // The daemon's words: "login attempt to https://HOST/v2/ failed with status: 401 Unauthorized".
    expect(wrong.output).toMatch(/401 Unauthorized/);
    expect(wrong.output).not.toMatch(/Login Succeeded/);
  });

  it('logs in with the right password, pushes, and pulls back the same image', async () => {
    const ok = await login(PASSWORD);
    expect(ok.code, ok.output).toBe(0);
    expect(ok.output).toMatch(/Login Succeeded/);
    const push = await docker(['push', imageRef]);
    expect(push.code, push.output).toBe(0);
    const pushed = /v1: digest: (sha256:[0-9a-f]{64})/.exec(push.stdout);
    expect(pushed, push.output).not.toBeNull();
    pushedDigest = pushed![1]!;
    expect((await docker(['rmi', imageRef])).code).toBe(0);
    const pull = await docker(['pull', imageRef]);
    expect(pull.code, pull.output).toBe(0);
    expect(pull.stdout).toContain(`Digest: ${pushedDigest}`);
    const fromEngine = proxy!
      .logLines()
      .filter((l) => l['msg'] === 'request' && String(l['client']).endsWith(host!.hostAddress));
    expect(fromEngine.some((l) => l['method'] === 'PUT' && l['user'] === USER)).toBe(true);
    expect(proxy!.output()).not.toContain(PASSWORD);
  });

  it('logged out, cannot push: nothing new reaches the registry', async () => {
    expect((await docker(['logout', registryHost])).code).toBe(0);
    const otherRef = `${registryHost}/e2e/guarded:anonymous`;
    expect((await docker(['tag', imageRef, otherRef])).code).toBe(0);
    const push = await docker(['push', otherRef]);
    expect(push.code, push.output).not.toBe(0);
    // docker gives up itself after the Basic challenge of GET /v2/ when it holds no login
    // (its client's "no basic auth credentials"): the same reason it cannot pull
    // anonymously from a Basic realm (see README, auth.anonymous).
    expect(push.output).toMatch(/no basic auth credentials|denied|unauthorized/);
    const tags = join(
      tmp.path,
      'storage',
      'docker',
      'registry',
      'v2',
      'repositories',
      'e2e',
      'guarded',
      '_manifests',
      'tags',
    );
    expect(readdirSync(tags)).toEqual(['v1']);
  });
});
