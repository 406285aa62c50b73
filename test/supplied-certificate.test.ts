/**
 * Bring your own certificate: chains built with openssl, served only when
 * complete, replaced files reloaded, a bad replacement never served.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { byoChain } from './helpers/byo-chain.js';
import {
  CLI,
  createRegistry,
  startProxy,
  tempDir,
  waitForOutput,
  type Proxy,
  type Registry,
} from './helpers/processes.js';
import { skopeo } from './helpers/skopeo.js';

const tmp = tempDir('byo');
const d = (name: string) => join(tmp.path, name);

const { build: buildChain, issueLeaf } = byoChain(tmp.path);

/** `serve` with a supplied certificate that must be refused: exit 1, stderr naming the problem. */
function serveRefused(env: Record<string, string>) {
  return spawnSync(process.execPath, [CLI, 'serve'], {
    encoding: 'utf8',
    timeout: 30_000,
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin',
      RTP_LISTEN: '127.0.0.1:0',
      RTP_ADMIN_LISTEN: '',
      RTP_TLS_DIR: d('tls-refused'),
      ...env,
    },
  });
}

function servedSubject(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca }, () => {
      resolve(String(socket.getPeerCertificate().subject.CN));
      socket.end();
    });
    socket.on('error', reject);
  });
}

describe('a supplied certificate', () => {
  let registry: Registry;

  beforeAll(async () => {
    buildChain('leaf-one');
    registry = await createRegistry({ auth: { kind: 'none' } }, tmp.path);
    await registry.start();
  });

  afterAll(async () => {
    await registry?.stop();
    tmp.remove();
  });

  /** A proxy serving leaf-one from cert.pem and key.pem in a directory of their own; checkInterval 1h. */
  async function proxyOnLeafOne(name: string): Promise<{ dir: string; proxy: Proxy }> {
    const dir = d(name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'cert.pem'), readFileSync(d('leaf-one-fullchain.crt')));
    writeFileSync(join(dir, 'key.pem'), readFileSync(d('leaf-one.key')), { mode: 0o600 });
    const proxy = await startProxy({
      backend: registry.url,
      tlsDir: d(`tls-${name}`),
      env: {
        RTP_TLS_CERT: join(dir, 'cert.pem'),
        RTP_TLS_KEY: join(dir, 'key.pem'),
        RTP_TLS_CA: d('root.crt'),
        RTP_TLS_CHECK_INTERVAL: '1h',
      },
    });
    return { dir, proxy };
  }

  it('is refused at start-up when only the leaf is given, naming the fix', () => {
    const result = serveRefused({
      RTP_TLS_CERT: d('leaf-one.crt'),
      RTP_TLS_KEY: d('leaf-one.key'),
      // The private root is given: only the intermediate is missing.
      RTP_TLS_CA: d('root.crt'),
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/CHAIN_INCOMPLETE/);
    expect(result.stderr).toMatch(/serve the full chain/);
  });

  it('is refused at start-up when the key belongs to another certificate', () => {
    const result = serveRefused({
      RTP_TLS_CERT: d('leaf-one-fullchain.crt'),
      RTP_TLS_KEY: d('int.key'),
      RTP_TLS_CA: d('root.crt'),
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/KEY_MISMATCH/);
    expect(result.stderr).toContain(d('int.key'));
    expect(result.stderr).toMatch(/it is the key of [^\n]*BYO Intermediate/);
  });

  it('is refused at start-up when a configured address is not covered, quoting what clients would see', () => {
    const result = serveRefused({
      RTP_TLS_CERT: d('leaf-one-fullchain.crt'),
      RTP_TLS_KEY: d('leaf-one.key'),
      RTP_TLS_CA: d('root.crt'),
      RTP_TLS_NAMES: 'localhost,10.0.0.5',
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/NAME_NOT_COVERED/);
    expect(result.stderr).toMatch(/10\.0\.0\.5/);
    expect(result.stderr).toMatch(/certificate is valid for 127\.0\.0\.1, not 10\.0\.0\.5/);
    expect(result.stderr).not.toMatch(/- \[NAME_NOT_COVERED\][^\n]*localhost/);
  });

  it('is refused at start-up when expired', () => {
    issueLeaf('leaf-expired', -1);
    const result = serveRefused({
      RTP_TLS_CERT: d('leaf-expired-fullchain.crt'),
      RTP_TLS_KEY: d('leaf-expired.key'),
      RTP_TLS_CA: d('root.crt'),
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/EXPIRED/);
  });

  it('warns once (not on every check) that the certificate expires soon', async () => {
    const proxy = await startProxy({
      backend: registry.url,
      tlsDir: d('tls-expiring'),
      env: {
        RTP_TLS_CERT: d('leaf-one-fullchain.crt'),
        RTP_TLS_KEY: d('leaf-one.key'),
        RTP_TLS_CA: d('root.crt'),
        // The leaf lives 20 days: inside a 25-day warning window.
        RTP_TLS_CERT_WARN_BEFORE: '25d',
        RTP_TLS_CHECK_INTERVAL: '500ms',
        RTP_LOG_LEVEL: 'debug', // repeats are logged at debug: proof the checks went on
      },
    });
    try {
      const warnings = () => proxy.logLines().filter((l) => l['code'] === 'EXPIRING_SOON');
      await eventually('four more checks after the first', () => warnings().length >= 5, {
        timeoutMs: 10_000,
      });
      const levels = warnings().map((l) => l['level']);
      expect(levels[0]).toBe('warn');
      expect(levels.filter((l) => l !== 'debug')).toEqual(['warn']); // said once
      expect(String(warnings()[0]?.['msg'])).toMatch(/expires on/);
    } finally {
      await proxy.stop();
    }
  });

  it('notices a replaced certificate at once, without waiting for the next check', async () => {
    const { dir, proxy } = await proxyOnLeafOne('watched');
    try {
      const root = readFileSync(d('root.crt'), 'utf8');
      expect(await servedSubject(proxy.port, root)).toBe('leaf-one');
      issueLeaf('leaf-watched', 20);
      writeFileSync(join(dir, 'key.new'), readFileSync(d('leaf-watched.key')), { mode: 0o600 });
      writeFileSync(join(dir, 'cert.new'), readFileSync(d('leaf-watched-fullchain.crt')));
      renameSync(join(dir, 'key.new'), join(dir, 'key.pem'));
      renameSync(join(dir, 'cert.new'), join(dir, 'cert.pem'));
      await waitForOutput(proxy.child, proxy.output, /swapped in a new server certificate/, 10_000);
      expect(await servedSubject(proxy.port, root)).toBe('leaf-watched');
    } finally {
      await proxy.stop();
    }
  });

  it('never serves a half-written pair: keeps the old one until the new key arrives too', async () => {
    const { dir, proxy } = await proxyOnLeafOne('half-written');
    try {
      const root = readFileSync(d('root.crt'), 'utf8');
      issueLeaf('leaf-half', 20);
      // Written in place, one file after the other, as `cp` does: first the certificate.
      writeFileSync(join(dir, 'cert.pem'), readFileSync(d('leaf-half-fullchain.crt')));
      await waitForOutput(proxy.child, proxy.output, /KEY_MISMATCH/, 10_000);
      expect(await servedSubject(proxy.port, root)).toBe('leaf-one');
      writeFileSync(join(dir, 'key.pem'), readFileSync(d('leaf-half.key')));
      await waitForOutput(proxy.child, proxy.output, /swapped in a new server certificate/, 5000);
      expect(await servedSubject(proxy.port, root)).toBe('leaf-half');
    } finally {
      await proxy.stop();
    }
  });

  it('serves a full chain that skopeo verifies, reloads a replaced file, and keeps serving through a bad one', async () => {
    const dir = d('live');
    mkdirSync(dir);
    writeFileSync(join(dir, 'cert.pem'), readFileSync(d('leaf-one-fullchain.crt')));
    writeFileSync(join(dir, 'key.pem'), readFileSync(d('leaf-one.key')), { mode: 0o600 });
    writeFileSync(join(dir, 'ca.pem'), readFileSync(d('root.crt')));
    const proxy = await startProxy({
      backend: registry.url,
      tlsDir: d('tls-live'),
      env: {
        RTP_TLS_CERT: join(dir, 'cert.pem'),
        RTP_TLS_KEY: join(dir, 'key.pem'),
        RTP_TLS_CA: join(dir, 'ca.pem'),
        RTP_TLS_CHECK_INTERVAL: '500ms',
        RTP_LOG_LEVEL: 'debug', // a repeated check failure is logged at debug
      },
    });
    try {
      const root = readFileSync(d('root.crt'), 'utf8');
      const certDir = d('skopeo-certs');
      mkdirSync(certDir);
      writeFileSync(join(certDir, 'ca.crt'), root);
      const inspect = await skopeo([
        'inspect',
        '--cert-dir',
        certDir,
        '--raw',
        `docker://127.0.0.1:${proxy.port}/none/such:tag`,
      ]);
      // The registry answers "manifest unknown": TLS verified fine, which is the point.
      expect(inspect.stderr).not.toMatch(/x509|certificate/);
      expect(inspect.stderr).toMatch(/manifest unknown|not found/i);
      expect(await servedSubject(proxy.port, root)).toBe('leaf-one');

      // A renewed certificate replaces the files by rename (as ACME clients do): picked up.
      buildChain('leaf-two');
      writeFileSync(join(dir, 'key.new'), readFileSync(d('leaf-two.key')), { mode: 0o600 });
      writeFileSync(join(dir, 'cert.new'), readFileSync(d('leaf-two-fullchain.crt')));
      writeFileSync(join(dir, 'ca.new'), readFileSync(d('root.crt')));
      renameSync(join(dir, 'ca.new'), join(dir, 'ca.pem'));
      renameSync(join(dir, 'key.new'), join(dir, 'key.pem'));
      renameSync(join(dir, 'cert.new'), join(dir, 'cert.pem'));
      await waitForOutput(proxy.child, proxy.output, /swapped in a new server certificate/);
      const rootTwo = readFileSync(d('root.crt'), 'utf8');
      expect(await servedSubject(proxy.port, rootTwo)).toBe('leaf-two');

      // A bad replacement (leaf only) is refused and the good certificate keeps serving.
      writeFileSync(join(dir, 'cert.new'), readFileSync(d('leaf-two.crt')));
      renameSync(join(dir, 'cert.new'), join(dir, 'cert.pem'));
      await waitForOutput(
        proxy.child,
        proxy.output,
        /CHAIN_INCOMPLETE[\s\S]*still serving the current certificate|still serving the current certificate[\s\S]*CHAIN_INCOMPLETE/,
      );
      expect(await servedSubject(proxy.port, rootTwo)).toBe('leaf-two');
      // Said once, not on every check (500 ms) while the bad file stays.
      const failures = () =>
        proxy
          .logLines()
          .filter(
            (l) => l['msg'] === 'certificate check failed; still serving the current certificate',
          );
      await eventually('three more checks of the bad file', () => failures().length >= 4, {
        timeoutMs: 10_000,
      });
      expect(failures().filter((l) => l['level'] !== 'debug')).toHaveLength(1);
      expect(new X509Certificate(readFileSync(join(dir, 'cert.pem'))).subject).toContain(
        'leaf-two',
      );
    } finally {
      await proxy.stop();
    }
  });
});
