/** The CLI as an operator meets it: bad configuration stops it at start-up with every problem listed. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, runCLI, tempDir } from './helpers/processes.js';

const tmp = tempDir('cli');
afterAll(() => tmp.remove());

const run = runCLI;

describe('registry-tls-proxy CLI', () => {
  it('refuses a bad configuration with exit code 2, listing every problem with its path', () => {
    const file = join(tmp.path, 'bad.yaml');
    writeFileSync(
      file,
      [
        'listen: "0.0.0.0:99999"',
        'backend: https://registry.internal:5000',
        'tls:',
        '  nmaes: [registry.lan]',
        '  certLifetime: 3 weeks',
        'timeouts:',
        '  clientIdleMs: soon',
        'log:',
        '  level: loud',
      ].join('\n'),
    );
    const result = run(['serve', '--config', file], { RTP_ADMIN_LISTEN: 'nowhere' });
    expect(result.status).toBe(2);
    const lines = [
      /- listen: must be host:port/,
      /- backend: must use http:\/\/ \(this proxy adds the TLS/,
      /- tls\.nmaes: unknown key; did you mean tls\.names\?/,
      /- tls\.certLifetime: must be a duration like 90d, 12h, 30m, 45s or 500ms, got string "3 weeks"/,
      /- timeouts\.clientIdleMs: must be a whole number, got string "soon"/,
      /- log\.level: must be one of fatal, error, warn, info, debug, trace, silent/,
      /- admin\.listen: must be host:port/,
    ];
    for (const line of lines) expect(result.stderr).toMatch(line);
    expect(result.stderr).toMatch(/has 7 problems/);
  });

  it('suggests the RTP_ variable a misspelt one was meant to be, as for YAML keys', () => {
    const result = run(['serve'], { RTP_BACKND: 'http://127.0.0.1:5000' });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(
      /- \$RTP_BACKND: unknown environment override; did you mean RTP_BACKEND\?\n/,
    );
  });

  it("refuses a backend that is the proxy's own port, saying what to do", async () => {
    const port = await freePort();
    const result = run(['serve'], {
      RTP_LISTEN: `0.0.0.0:${port}`,
      RTP_BACKEND: `http://localhost:${port}`,
      RTP_TLS_DIR: join(tmp.path, 'tls-self'),
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(
      `- backend: http://localhost:${port} is this proxy's own port (listen: 0.0.0.0:${port}): every request would come back to the proxy; point backend at the registry's plain-HTTP address`,
    );
  });

  it('names a missing --config file', () => {
    const result = run(['serve', '--config', join(tmp.path, 'absent.yaml')]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/absent\.yaml: file not found/);
  });

  it('explains a port that is already in use', async () => {
    const { createServer } = await import('node:net');
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    const result = run(['serve'], {
      RTP_LISTEN: `127.0.0.1:${port}`,
      RTP_ADMIN_LISTEN: '',
      RTP_TLS_DIR: join(tmp.path, 'tls'),
    });
    blocker.close();
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(`listening on 127\\.0\\.0\\.1:${port} \\(listen\\): the port is in use`),
    );
  });

  it('says only that the port is in use, with two workers, every time (once, no EPIPE stack trace)', async () => {
    const { createServer } = await import('node:net');
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    const env = {
      RTP_LISTEN: `127.0.0.1:${port}`,
      RTP_ADMIN_LISTEN: '',
      RTP_WORKERS: '2',
      RTP_TLS_DIR: join(tmp.path, 'tls-cluster'),
    };
    // The stack trace came in 2 of 12 runs: a worker still starting wrote to a primary that had exited.
    const stderrs = Array.from({ length: 20 }, () => {
      // spawnSync returns once every process holding the pipes (the workers too) has closed them.
      const result = run(['serve'], env);
      expect(result.status).toBe(1);
      return result.stderr;
    });
    blocker.close();
    const inUse = `registry-tls-proxy: listening on 127.0.0.1:${port} (listen): the port is in use; stop what holds it or choose another port`;
    for (const stderr of stderrs) {
      // Said once, by the primary, however many workers found the port taken.
      expect(stderr).toBe(`${inUse}\n`);
    }
  }, 120_000);

  it('prints usage with examples', () => {
    const result = run(['help']);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^  node dist\/cli\.js serve --config config\/default\.yaml$/m);
  });
});

describe('registry-tls-proxy ca', () => {
  it('shows the CA and the server certificate, and exports a 0600 backup once', async () => {
    const { startProxy } = await import('./helpers/processes.js');
    const { X509Certificate } = await import('node:crypto');
    const { readFileSync, statSync } = await import('node:fs');
    const tlsDir = join(tmp.path, 'ca-tls');
    const proxy = await startProxy({
      backend: 'http://127.0.0.1:9',
      tlsDir,
      env: { RTP_TLS_NAMES: 'registry.test,10.9.8.7' },
    });
    await proxy.stop();
    const env = { RTP_TLS_DIR: tlsDir };
    const caPEM = readFileSync(join(tlsDir, 'ca.crt'), 'utf8');
    const show = run(['ca', 'show'], env);
    expect(show.status, show.stderr).toBe(0);
    expect(show.stdout).toContain(new X509Certificate(caPEM).fingerprint256);
    expect(show.stdout).toMatch(/DNS names: registry\.test, /);
    expect(show.stdout).toMatch(/IP addresses: 10\.9\.8\.7, /);
    expect(show.stdout).toContain('-----BEGIN CERTIFICATE-----');
    expect(show.stdout).not.toContain('PRIVATE KEY');

    const out = join(tmp.path, 'ca-backup.pem');
    const exported = run(['ca', 'export', '--out', out], env);
    expect(exported.status, exported.stderr).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readFileSync(out, 'utf8')).toContain('PRIVATE KEY');
    expect(readFileSync(out, 'utf8')).toMatch(/^# the CA: restore the certificate as ca\.crt/);
    const again = run(['ca', 'export', '--out', out], env);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/never overwritten/);

    // During a rotation the backup holds the next CA too, and its key matches it.
    expect(run(['ca', 'rotate'], env).status).toBe(0);
    const during = join(tmp.path, 'ca-backup-rotation.pem');
    expect(run(['ca', 'export', '--out', during], env).status).toBe(0);
    const text = readFileSync(during, 'utf8');
    expect(text).toContain('restore the certificate as ca-next.crt and the key as ca-next.key');
    const blocks = text.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? [];
    expect(blocks).toHaveLength(4);
    const { createPrivateKey } = await import('node:crypto');
    const nextCert = new X509Certificate(blocks[2]!);
    expect(nextCert.fingerprint256).toBe(
      new X509Certificate(readFileSync(join(tlsDir, 'ca-next.crt'))).fingerprint256,
    );
    expect(nextCert.checkPrivateKey(createPrivateKey(blocks[3]!))).toBe(true);
  });
});
