/**
 * Issue 14, a new user's first hour: the start-up log's client command, pasted as it
 * is, makes a client trust the proxy (as root without sudo too); it names each address
 * a client could use, tls.names first; a cluster says it once.
 */
import { spawnSync } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { buildOCIImage } from './helpers/oci.js';
import { freePort, startProxy, tempDir } from './helpers/processes.js';
import { skopeoPush } from './helpers/skopeo.js';

const USER = 'nova';
const PASSWORD = 'first-hour-pa55';

describe('the trust command in the start-up log', () => {
  const env = useRegistryBehindProxy('first-hour', {
    auth: { kind: 'htpasswd', user: USER, password: PASSWORD },
  });

  it('pasted into a root shell (no sudo here), installs the CA; skopeo then pushes with verification', async () => {
    const line = env.proxy.logLines().find((l) => Array.isArray(l['trustOnClient']));
    const commands = line?.['trustOnClient'] as string[];
    const hostPort = `127.0.0.1:${env.proxy.port}`;
    // It listens on loopback only: that is the one address a client can use.
    expect(commands).toHaveLength(1);
    const command = commands[0] as string;
    expect(command).toContain(`https://${hostPort}/install-ca.sh`);
    expect(command).toContain(`--fingerprint ${String(line?.['caFingerprint256'])}`);
    const root = join(env.tmp, 'client-root');
    // As a user pastes it; --client containers keeps the machine's own trust store out of it.
    const pasted = spawnSync('sh', ['-c', `${command} --client containers`], {
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', RTP_INSTALL_ROOT: root },
    });
    expect(pasted.stderr).toBe('');
    expect(pasted.status).toBe(0);
    const certDir = join(root, 'etc/containers/certs.d', hostPort);
    const image = buildOCIImage(join(env.tmp, 'image'), 'v1', [200_000]);
    const push = await skopeoPush(
      image.ref,
      `${hostPort}/first/hour:v1`,
      certDir,
      `${USER}:${PASSWORD}`,
    );
    expect(push.stderr).toBe('');
    expect(push.code).toBe(0);
  });
});

describe('a cluster of two workers listening on every address', () => {
  const tmp = tempDir('first-hour-cluster');
  let stop: (() => Promise<unknown>) | undefined;
  afterAll(async () => {
    await stop?.();
    tmp.remove();
  });

  it('logs the trust commands once, tls.names first, then each non-loopback IPv4 address', async () => {
    const port = await freePort();
    const proxy = await startProxy({
      backend: 'http://127.0.0.1:9',
      tlsDir: join(tmp.path, 'tls'),
      env: {
        RTP_WORKERS: '2',
        RTP_LISTEN: `0.0.0.0:${port}`,
        RTP_TLS_NAMES: 'registry.first-hour.test',
      },
    });
    stop = () => proxy.stop();
    const lines = proxy.logLines().filter((l) => 'trustOnClient' in l);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.['worker']).toBeUndefined();
    expect(proxy.logLines().filter((l) => l['msg'] === 'serving certificate')).toHaveLength(1);
    const ipv4 = Object.values(networkInterfaces())
      .flatMap((list) => list ?? [])
      .filter(
        (nic) => !nic.internal && nic.family === 'IPv4' && !nic.address.startsWith('169.254.'),
      )
      .map((nic) => nic.address);
    const hosts = (lines[0]?.['trustOnClient'] as string[]).map(
      (c) => /https:\/\/(.+?)\/install-ca\.sh/.exec(c)?.[1],
    );
    // 0.0.0.0 takes IPv4 only; loopback is no address for another machine.
    expect(hosts).toEqual(
      ['registry.first-hour.test', ...ipv4].slice(0, 4).map((h) => `${h}:${port}`),
    );
    expect(String(lines[0]?.['msg'])).toMatch(
      new RegExp(
        `^proxying https://registry\\.first-hour\\.test:${port} to http://127\\.0\\.0\\.1:9; `,
      ),
    );
  });
});
