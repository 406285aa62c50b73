/**
 * As ssh refuses a private key others can read: the proxy will not start with a
 * TLS directory others can write or a key others can read, and says which file,
 * its mode and the chmod that fixes it — every problem at once.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCLI, startProxy, tempDir } from './helpers/processes.js';

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

describe('key file permissions', () => {
  it('writes its own keys 0600 in a 0700 directory', async () => {
    await startsAndStops();
    expect(statSync(tlsDir).mode & 0o777).toBe(0o700);
    for (const key of ['ca.key', 'server.key']) {
      expect(statSync(join(tlsDir, key)).mode & 0o777).toBe(0o600);
    }
  });

  it('refuses to start with a world-writable tls.dir and world-readable keys, listing all three', () => {
    chmodSync(tlsDir, 0o777);
    chmodSync(join(tlsDir, 'ca.key'), 0o644);
    chmodSync(join(tlsDir, 'server.key'), 0o644);
    const result = runCLI(['serve'], env);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(
      /refusing to serve with keys other users can reach \(3 problems\)/,
    );
    expect(result.stderr).toContain(
      `tls.dir ${tlsDir} is writable by others (mode 0777): anyone on this machine could replace the CA or the server key; fix: chmod o-w ${tlsDir}`,
    );
    for (const key of ['ca.key', 'server.key']) {
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
    expect(result.stdout.match(/^fail +key permissions +/gm)).toHaveLength(3);
    expect(result.stdout).toContain(`fix: chmod 600 ${join(tlsDir, 'ca.key')}`);
  });

  it('starts once the modes are fixed', async () => {
    chmodSync(tlsDir, 0o755);
    chmodSync(join(tlsDir, 'ca.key'), 0o600);
    chmodSync(join(tlsDir, 'server.key'), 0o600);
    await startsAndStops();
  });

  it('refuses a supplied tls.key readable by others, and accepts it group-readable', async () => {
    const key = join(tmp.path, 'supplied.key');
    const cert = join(tmp.path, 'supplied.crt');
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
        ...['-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'],
        ...['-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
      ],
      { stdio: 'ignore' },
    );
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
});
