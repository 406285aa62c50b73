/**
 * /install-ca-macos.sh, fetched from the running proxy with curl and run the way the
 * one-liner runs it (`curl -fsSk … | sudo sh -s -- --fingerprint FP`). No Mac here:
 * `security` and `id` are stand-ins on PATH. The `security` stand-in records its argv
 * and keeps a copy of the certificate file it was handed (the script deletes its
 * temporary directory on exit), so the test sees exactly what macOS would be asked to
 * trust. Everything else (sh, curl, openssl, sed, …) is the real tool.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { httpsGet } from './helpers/https.js';
import { readCA, runCLI, startProxy, tempDir, type Proxy } from './helpers/processes.js';
import { runToEnd, toolDir, which } from './helpers/tool-dir.js';

const tmp = tempDir('install-ca-macos');
/** What the script uses besides `security` and `id`; all present on macOS. */
const MAC_TOOLS = ['sh', 'mktemp', 'mkdir', 'cat', 'rm', 'tr', 'sed', 'grep', 'curl', 'openssl'];
const KEYCHAIN = '/Library/Keychains/System.keychain';

let proxy: Proxy;
let ca: string;
let runs = 0;

beforeAll(async () => {
  // Nothing listens at the backend: /ca.crt and the installers are the proxy's own.
  proxy = await startProxy({ backend: 'http://127.0.0.1:9', tlsDir: join(tmp.path, 'tls') });
  ca = readCA(proxy);
});
afterAll(async () => {
  await proxy.stop();
  tmp.remove();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** One line per `security` call: its arguments, the file argument as certs/N.pem. */
  calls: string[];
  /** Copies of the files `security` was handed, by the name used in `calls`. */
  cert(name: string): string;
}

/**
 * The one-liner from a PATH holding MAC_TOOLS and the stand-ins: `id -u` prints `uid`,
 * `security` records and answers `securityExit`.
 */
async function runInstaller(
  args: string[],
  opts: { uid?: number; securityExit?: number; shell?: string } = {},
): Promise<Run> {
  const dir = join(tmp.path, `run-${++runs}`);
  const certs = join(dir, 'certs');
  const log = join(dir, 'security.log');
  const security = [
    'n=0; out=',
    'for a in "$@"; do',
    // The last argument is the certificate file: keep a copy under a stable name.
    `  if [ -f "$a" ]; then n=$(ls '${certs}' | wc -l); cp "$a" '${certs}'/$n.pem; out="$out certs/$n.pem"; else out="$out $a"; fi`,
    'done',
    `echo "\${out# }" >> '${log}'`,
    `[ ${opts.securityExit ?? 0} -eq 0 ] || echo 'SecTrustSettingsSetTrustSettings: The authorization was denied since no user interaction was possible.' >&2`,
    `exit ${opts.securityExit ?? 0}`,
    '',
  ].join('\n');
  const path = toolDir(join(dir, 'bin'), {
    tools: [...MAC_TOOLS, 'bash', 'ls', 'wc', 'cp'],
    standIns: {
      security,
      id: `[ "$1" = -u ] && echo ${opts.uid ?? 0} && exit 0\necho "id stand-in: unexpected $*" >&2; exit 1\n`,
    },
  });
  spawnSync('mkdir', ['-p', certs]);
  const url = `${proxy.origin}/install-ca-macos.sh`;
  const run = await runToEnd(
    '/bin/sh',
    [
      '-c',
      `u=$1; shift; ${which('curl')} -fsSk "$u" | ${opts.shell ?? 'sh'} -s -- "$@"`,
      'sh',
      url,
      ...args,
    ],
    { PATH: path },
  );
  const calls = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
  return { ...run, calls, cert: (name) => readFileSync(join(dir, name), 'utf8') };
}

const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256;

describe('/install-ca-macos.sh', () => {
  it('right fingerprint: adds exactly our CA to the System keychain as a trusted root, then asks for a Docker Desktop restart', async () => {
    const run = await runInstaller(['--fingerprint', fingerprintOf(ca)]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.calls).toEqual([`add-trusted-cert -d -r trustRoot -k ${KEYCHAIN} certs/0.pem`]);
    const handed = run.cert('certs/0.pem');
    expect(handed.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    expect(new X509Certificate(handed).raw.equals(new X509Certificate(ca).raw)).toBe(true);
    expect(run.stdout).toMatch(/Restart Docker Desktop/);
    expect(run.stdout).toContain(`done: ${proxy.origin} is trusted`);
  });

  it("under bash in POSIX mode (macOS's /bin/sh is bash 3.2 as sh): the same", async () => {
    const run = await runInstaller(['--fingerprint', fingerprintOf(ca)], {
      shell: 'bash --posix',
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.calls).toEqual([`add-trusted-cert -d -r trustRoot -k ${KEYCHAIN} certs/0.pem`]);
    expect(fingerprintOf(run.cert('certs/0.pem'))).toBe(fingerprintOf(ca));
  });

  it('any spelling of the fingerprint works (lower case, no colons)', async () => {
    const run = await runInstaller([
      '--fingerprint',
      fingerprintOf(ca).replace(/:/g, '').toLowerCase(),
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.calls).toHaveLength(1);
  });

  it('wrong fingerprint: refuses, names both fingerprints, never calls security', async () => {
    const right = fingerprintOf(ca);
    const wrong = right.replace(/^../, right.startsWith('00') ? '11' : '00');
    const run = await runInstaller(['--fingerprint', wrong]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/REFUSING the CA served at .*someone may be intercepting/is);
    expect(run.stderr).toContain(right);
    expect(run.stderr).toContain(wrong);
    expect(run.stderr).toContain('Nothing was installed.');
    expect(run.calls).toEqual([]);
  });

  it('no fingerprint, or not as root: refuses before downloading anything', async () => {
    const none = await runInstaller([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--fingerprint is required/);
    const user = await runInstaller(['--fingerprint', fingerprintOf(ca)], { uid: 501 });
    expect(user.code).toBe(1);
    expect(user.stderr).toMatch(/needs root: run it with sudo/);
    expect(user.calls).toEqual([]);
  });

  it('security refusing the trust change (e.g. over ssh): exit 1 with what to do', async () => {
    const run = await runInstaller(['--fingerprint', fingerprintOf(ca)], { securityExit: 1 });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/add-trusted-cert failed .*run it in Terminal on the Mac/);
    expect(run.stdout).not.toMatch(/done:/);
  });

  it('passes shellcheck as POSIX sh', async () => {
    const script = (await httpsGet(`${proxy.origin}/install-ca-macos.sh`, { ca })).body;
    expect(script).toMatch(/^#!\/bin\/sh\n/);
    const result = spawnSync('shellcheck', ['-s', 'sh', '-'], { input: script, encoding: 'utf8' });
    expect(result.status, result.stdout).toBe(0);
  });

  it('during a CA rotation: both CAs are added, the next one authenticated by TLS to the pinned one', async () => {
    const rotate = runCLI(['ca', 'rotate'], { RTP_TLS_DIR: proxy.tlsDir });
    expect(rotate.status, rotate.stderr).toBe(0);
    const bundle = await eventually('the proxy to serve both CAs at /ca.crt', async () => {
      const body = (await httpsGet(`${proxy.origin}/ca.crt`, { ca })).body;
      return body.match(/BEGIN CERTIFICATE/g)?.length === 2 && body;
    });
    const run = await runInstaller(['--fingerprint', fingerprintOf(ca)]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.calls).toEqual([
      `add-trusted-cert -d -r trustRoot -k ${KEYCHAIN} certs/0.pem`,
      `add-trusted-cert -d -r trustRoot -k ${KEYCHAIN} certs/1.pem`,
    ]);
    const handed = ['certs/0.pem', 'certs/1.pem'].map((f) => fingerprintOf(run.cert(f)));
    const served = bundle.split(/(?<=-----END CERTIFICATE-----\r?\n)/).filter((c) => c.trim());
    expect(handed).toEqual(served.map(fingerprintOf));
  });
});
