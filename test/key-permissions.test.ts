/**
 * As ssh refuses a private key others can read: the proxy will not start with a
 * TLS directory others can write or a key others can read, and says which file,
 * its mode and the chmod that fixes it — every problem at once.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeAtomically } from './helpers/atomic-writer.js';
import { CLI, runCLI, startProxy, tempDir } from './helpers/processes.js';

const tmp = tempDir('key-permissions');
afterAll(() => tmp.remove());

const tlsDir = join(tmp.path, 'tls');
/** Nothing listens there: these tests are about starting, not proxying. */
const backend = 'http://127.0.0.1:9';
const env = {
  RTP_LISTEN: '127.0.0.1:0',
  RTP_ADMIN_LISTEN: '',
  RTP_BACKEND: backend,
  RTP_TLS_DIR: tlsDir,
  RTP_WORKERS: '1',
};

async function startsAndStops(extraEnv: Record<string, string> = {}): Promise<void> {
  const proxy = await startProxy({ backend, tlsDir, env: { RTP_ADMIN_LISTEN: '', ...extraEnv } });
  expect(await proxy.stop()).toBe(0);
}

/** A self-signed certificate for localhost and its key, in a directory of their own. */
function selfSigned(name: string): { cert: string; key: string } {
  const dir = join(tmp.path, name);
  mkdirSync(dir);
  const key = join(dir, 'tls.key');
  const cert = join(dir, 'tls.crt');
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
      ...['-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'],
      ...['-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

describe('key file permissions', () => {
  it('writes its own keys 0600 in a 0700 directory', async () => {
    await startsAndStops();
    expect(statSync(tlsDir).mode & 0o777).toBe(0o700);
    for (const key of ['ca.key', 'server.key', 'server-rsa.key']) {
      expect(statSync(join(tlsDir, key)).mode & 0o777).toBe(0o600);
    }
  });

  it('refuses to start with a world-writable tls.dir and world-readable keys, listing all four', () => {
    chmodSync(tlsDir, 0o777);
    chmodSync(join(tlsDir, 'ca.key'), 0o644);
    chmodSync(join(tlsDir, 'server.key'), 0o644);
    chmodSync(join(tlsDir, 'server-rsa.key'), 0o644);
    const result = runCLI(['serve'], env);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(
      /refusing to serve with keys other users can reach \(4 problems\)/,
    );
    expect(result.stderr).toContain(
      `tls.dir ${tlsDir} is writable by others (mode 0777): anyone on this machine could replace the CA or the server key; fix: chmod o-w ${tlsDir}`,
    );
    for (const key of ['ca.key', 'server.key', 'server-rsa.key']) {
      const file = join(tlsDir, key);
      expect(result.stderr).toContain(
        `${file} is a private key readable by others (mode 0644); fix: chmod 600 ${file}`,
      );
    }
    // Refused before touching anything: the modes are as the operator left them.
    expect(statSync(tlsDir).mode & 0o777).toBe(0o777);
  });

  it('says the same in `check`', () => {
    const result = runCLI(['check'], env);
    expect(result.status).toBe(1);
    expect(result.stdout.match(/^fail +key permissions +/gm)).toHaveLength(4);
    expect(result.stdout).toContain(`fix: chmod 600 ${join(tlsDir, 'ca.key')}`);
  });

  it('starts once the modes are fixed', async () => {
    chmodSync(tlsDir, 0o755);
    chmodSync(join(tlsDir, 'ca.key'), 0o600);
    chmodSync(join(tlsDir, 'server.key'), 0o600);
    chmodSync(join(tlsDir, 'server-rsa.key'), 0o600);
    await startsAndStops();
  });

  it('refuses a supplied tls.key readable by others, and accepts it group-readable', async () => {
    const { cert, key } = selfSigned('supplied');
    chmodSync(key, 0o644);
    const supplied = { RTP_TLS_CERT: cert, RTP_TLS_KEY: key };
    const result = runCLI(['serve'], { ...env, ...supplied });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(
      `tls.key ${key} is a private key readable by others (mode 0644); fix: chmod o-rwx ${key}`,
    );
    chmodSync(key, 0o640);
    await startsAndStops(supplied);
  });

  it('names defaultMode, not chmod, for a key in a Kubernetes Secret volume (mode 0644 by default)', () => {
    const { cert, key } = selfSigned('for-secret');
    const mount = join(tmp.path, 'secret');
    writeAtomically(mount, {
      'tls.crt': { data: readFileSync(cert), mode: 0o644 },
      'tls.key': { data: readFileSync(key), mode: 0o644 },
    });
    const file = join(mount, 'tls.key');
    const result = runCLI(['serve'], {
      ...env,
      RTP_TLS_CERT: join(mount, 'tls.crt'),
      RTP_TLS_KEY: file,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(
      `tls.key ${file} is a private key readable by others (mode 0644); fix: the key is in a Kubernetes Secret volume, where chmod cannot change it: set defaultMode: 0440 on the Secret volume and the pod's securityContext.fsGroup to the group the proxy runs as (1000 in the image), or defaultMode: 0400 if it runs as root`,
    );
    expect(result.stderr).not.toMatch(/chmod o-rwx/);
  });

  it('says chmod cannot help when the key is on a read-only file system', () => {
    const { cert, key } = selfSigned('read-only');
    chmodSync(key, 0o644);
    const dir = join(key, '..');
    // Read-only in a mount namespace of the proxy's own: nothing is left mounted afterwards.
    const result = spawnSync(
      'unshare',
      [
        ...[
          '--mount',
          'sh',
          '-c',
          'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"',
        ],
        ...[dir, process.execPath, CLI, 'serve'],
      ],
      {
        encoding: 'utf8',
        timeout: 60_000,
        env: {
          PATH: process.env['PATH'] ?? '/usr/bin:/bin',
          ...env,
          RTP_TLS_CERT: cert,
          RTP_TLS_KEY: key,
        },
      },
    );
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toContain(
      `tls.key ${key} is a private key readable by others (mode 0644); fix: the file system is read-only, so chmod cannot change it: make the key private where it comes from (a Kubernetes Secret volume: set defaultMode: 0440`,
    );
    expect(result.stderr).not.toMatch(/chmod o-rwx/);
  });
});
