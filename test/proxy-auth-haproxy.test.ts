/**
 * haproxy's registry-style check (GET /v2/, expect 401) against a proxy whose own
 * logins (auth.htpasswd) protect an open registry: the proxy stays in rotation,
 * a logged-in pull through haproxy works, and when the registry behind it goes
 * down the proxy's /v2/ says 503, so haproxy takes it out.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHAProxy, type HAProxy, type ServerState } from './helpers/haproxy.js';
import { buildOCIImage } from './helpers/oci.js';
import {
  createRegistry,
  startProxy,
  tempDir,
  type Proxy,
  type Registry,
} from './helpers/processes.js';
import { skopeo } from './helpers/skopeo.js';

const USER = 'alice';
const PASSWORD = 'haproxy-login-pa55';
const DEADLINE_MS = 30_000;

describe('haproxy expecting 401 on GET /v2/ in front of the proxy with logins', () => {
  const tmp = tempDir('auth-haproxy');
  const certDir = join(tmp.path, 'certs');
  const htpasswd = join(tmp.path, 'htpasswd');
  let registry: Registry | undefined;
  let proxy: Proxy | undefined;
  let haproxy: HAProxy | undefined;
  const balancer = () => {
    if (!haproxy || !proxy) throw new Error('not started');
    return { haproxy, proxy };
  };

  beforeAll(async () => {
    writeFileSync(htpasswd, execFileSync('htpasswd', ['-Bbn', USER, PASSWORD]));
    registry = await createRegistry({ auth: { kind: 'none' } }, tmp.path);
    await registry.start();
    proxy = await startProxy({
      backend: registry.url,
      tlsDir: join(tmp.path, 'tls'),
      env: {
        RTP_AUTH_HTPASSWD: htpasswd,
        RTP_HEALTH_INTERVAL: '1s',
        RTP_HEALTH_TIMEOUT: '800ms',
      },
    });
    mkdirSync(certDir);
    writeFileSync(join(certDir, 'ca.crt'), readFileSync(proxy.caFile));
    mkdirSync(join(tmp.path, 'haproxy'));
    haproxy = await startHAProxy({
      dir: join(tmp.path, 'haproxy'),
      servers: [{ name: 'p1', port: proxy.port }],
      caFile: proxy.caFile,
      checks: ['option httpchk GET /v2/', 'http-check expect status 401'],
    });
  });

  afterAll(async () => {
    await haproxy?.stop();
    await proxy?.stop();
    await registry?.stop();
    tmp.remove();
  });

  it('keeps the proxy in rotation (401) and lets a logged-in push and pull through', async () => {
    const { haproxy } = balancer();
    const up = (s: ServerState) =>
      s.status === 'UP' && s.checkStatus === 'L7OK' && s.checkCode === 401;
    await haproxy.waitForServers(up, 'UP with 401', DEADLINE_MS);
    const image = buildOCIImage(join(tmp.path, 'image'), 'v1', [100_000]);
    const ref = `docker://127.0.0.1:${haproxy.port}/e2e/balanced:v1`;
    const creds = `${USER}:${PASSWORD}`;
    const push = await skopeo([
      'copy',
      '--dest-cert-dir',
      certDir,
      '--dest-creds',
      creds,
      image.ref,
      ref,
    ]);
    expect(push.code, push.stderr).toBe(0);
    const pull = await skopeo([
      'copy',
      '--src-cert-dir',
      certDir,
      '--src-creds',
      creds,
      ref,
      `dir:${join(tmp.path, 'pulled')}`,
    ]);
    expect(pull.code, pull.stderr).toBe(0);
    await haproxy.serversStay(up, 'UP with 401', 3_000);
  });

  it('takes the proxy out when the registry behind it is down (503), and back once it returns', async () => {
    const { haproxy } = balancer();
    await registry?.stop();
    await haproxy.waitForServers(
      (s) => s.status === 'DOWN' && s.checkCode === 503,
      'DOWN with 503',
      DEADLINE_MS,
    );
    await registry?.start();
    await haproxy.waitForServers(
      (s) => s.status === 'UP' && s.checkCode === 401,
      'UP with 401 again',
      DEADLINE_MS,
    );
  });
});
