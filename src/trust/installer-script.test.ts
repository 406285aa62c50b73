/**
 * The served installer, run for real the way users run it:
 *   curl -fsSk https://HOST:PORT/install-ca.sh | sh -s -- --fingerprint FP
 * against an HTTPS server (loopback only) whose certificate a test CA issued. Each run
 * gets a PATH holding only the tools it may use, with a recording stub for
 * update-ca-certificates, and RTP_INSTALL_ROOT pointing into a temporary directory.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCA, issueServerCertificate, type IssuedCertificate } from '../pki/issue.js';
import { installTrust } from './install.js';
import { runToEnd } from '../../test/helpers/tool-dir.js';
import { installerScript } from './installer-script.js';

const tmp = mkdtempSync(join(tmpdir(), 'rtp-trust-installer-'));
const DAY_MS = 24 * 60 * 60 * 1000;
const BASE_TOOLS = ['sh', 'mktemp', 'mkdir', 'cat', 'chmod', 'mv', 'rm', 'tr', 'sed', 'grep'];
const FALLBACK_TOOLS = ['base64', 'sha256sum'];

function which(tool: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
  if (!found) throw new Error(`${tool} is needed by this test: apt-get install -y ${tool}`);
  return found;
}

let dirs = 0;
/** Stand-ins that make `all` find every client on the host the script runs on. */
const CLIENT_COMMANDS = ['docker', 'containerd', 'podman'];

/**
 * A PATH directory: links to the real `tools` (or to busybox applets), a stub
 * update-ca-certificates and (unless `clients` is false) stand-ins for the clients.
 */
function toolDir(tools: string[], opts: { busybox?: string[]; clients?: boolean } = {}): string {
  const dir = join(tmp, `bin-${++dirs}`);
  mkdirSync(dir);
  for (const tool of tools) symlinkSync(which(tool), join(dir, tool));
  for (const applet of opts.busybox ?? []) symlinkSync(which('busybox'), join(dir, applet));
  const stub = `#!/bin/sh\necho "update-ca-certificates $*" >> "${dir}/calls.log"\n`;
  writeFileSync(join(dir, 'update-ca-certificates'), stub, { mode: 0o755 });
  for (const client of opts.clients === false ? [] : CLIENT_COMMANDS) {
    writeFileSync(join(dir, client), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  }
  return dir;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  root: string;
  calls: string;
}

/** The user's one-liner; async, since the server answering it lives in this process. */
async function install(
  url: string,
  args: string[],
  path: string,
  curlFlags = '-fsSk',
  root = join(tmp, `root-${++dirs}`),
): Promise<Run> {
  // curl by its full path: it fetches the script even where the tested PATH has none.
  const oneLiner = `u=$1 r=$2; shift 2; ${which('curl')} ${curlFlags} "$u" | RTP_INSTALL_ROOT="$r" sh -s -- "$@"`;
  const run = await runToEnd('/bin/sh', ['-c', oneLiner, 'sh', url, root, ...args], { PATH: path });
  const log = join(path, 'calls.log');
  const calls = existsSync(log) ? readFileSync(log, 'utf8') : '';
  rmSync(log, { force: true });
  return { ...run, root, calls };
}

/** Every file under `root`: relative path → [content, mode]. */
function tree(root: string): Record<string, [string, number]> {
  const out: Record<string, [string, number]> = {};
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = join(entry.parentPath, entry.name);
    out[relative(root, file)] = [readFileSync(file, 'utf8'), statSync(file).mode & 0o777];
  }
  return out;
}

let caA: IssuedCertificate; // signs the server's certificate
let caB: IssuedCertificate; // the next CA of a rotation
let fpA: string;
let fpB: string;
let served: string; // what /ca.crt answers
const servers: Server[] = [];
let v4: string; // 127.0.0.1:PORT
let v6: string; // [::1]:PORT

async function listen(host: string, hostPort: (port: number) => string): Promise<string> {
  const leaf = await issueServerCertificate({
    ca: { certPEM: caA.certPEM, key: createPrivateKey(caA.keyPEM) },
    sans: { dns: ['localhost'], ips: ['127.0.0.1', '::1'] },
    lifetimeMs: DAY_MS,
  });
  let self = '';
  const server = createServer({ cert: leaf.certPEM, key: leaf.keyPEM }, (req, res) => {
    if (req.url === '/ca.crt') return void res.end(served);
    if (req.url === '/install-ca.sh') return void res.end(installerScript(self));
    res.statusCode = 404;
    res.end();
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  self = hostPort((server.address() as AddressInfo).port);
  return self;
}

beforeAll(async () => {
  [caA, caB] = await Promise.all([
    createCA({ commonName: 'installer test CA A', lifetimeMs: 30 * DAY_MS }),
    createCA({ commonName: 'installer test CA B', lifetimeMs: 30 * DAY_MS }),
  ]);
  fpA = new X509Certificate(caA.certPEM).fingerprint256;
  fpB = new X509Certificate(caB.certPEM).fingerprint256;
  v4 = await listen('127.0.0.1', (port) => `127.0.0.1:${port}`);
  v6 = await listen('::1', (port) => `[::1]:${port}`);
});

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  rmSync(tmp, { recursive: true, force: true });
});

/** The same bytes installTrust (and so the snippets) would write for this bundle. */
function expectedTree(
  hostPort: string,
  bundle: string,
  fingerprint: string,
): ReturnType<typeof tree> {
  const root = join(tmp, `expected-${++dirs}`);
  installTrust(
    { hostPort, caBundlePEM: bundle, fingerprints: [fingerprint] },
    {
      kinds: ['docker', 'containerd', 'containers', 'system'],
      root,
      runUpdate: false,
      searchPath: toolDir([]),
    },
  );
  return tree(root);
}

const url = (hostPort: string): string => `https://${hostPort}/install-ca.sh`;

describe('install-ca.sh', () => {
  it('right fingerprint: installs for every client what installTrust would, runs the update', async () => {
    served = caA.certPEM; // as node-forge writes it: CRLF line ends
    const run = await install(
      url(v4),
      ['--fingerprint', fpA, '--client', 'all'],
      toolDir([...BASE_TOOLS, 'curl', 'openssl']),
    );
    expect(run.code, run.stderr).toBe(0);
    expect(tree(run.root)).toEqual(expectedTree(v4, caA.certPEM, fpA));
    expect(run.calls).toBe('update-ca-certificates \n');
    expect(run.stdout).toContain(`wrote ${run.root}/etc/docker/certs.d/${v4}/ca.crt`);
  });

  it('wrong fingerprint: exit 1, names both, warns of interception, writes nothing', async () => {
    served = caA.certPEM;
    const run = await install(
      url(v4),
      ['--fingerprint', fpB, '--client', 'all'],
      toolDir([...BASE_TOOLS, 'curl', 'openssl']),
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/someone may be intercepting/i);
    expect(run.stderr).toContain(fpA);
    expect(run.stderr).toContain(fpB);
    expect(existsSync(run.root)).toBe(false);
    expect(run.calls).toBe('');
  });

  it('no --fingerprint: refuses with the usage text', async () => {
    const run = await install(
      url(v4),
      ['--client', 'docker'],
      toolDir([...BASE_TOOLS, 'curl', 'openssl']),
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--fingerprint is required/);
    expect(run.stderr).toMatch(/^usage: /m);
    expect(existsSync(run.root)).toBe(false);
  });

  it('without openssl: fingerprints by base64 + sha256sum, same result', async () => {
    served = caA.certPEM;
    const path = toolDir([...BASE_TOOLS, ...FALLBACK_TOOLS, 'curl']);
    expect(existsSync(join(path, 'openssl'))).toBe(false);
    const lower = fpA.toLowerCase().replace(/:/g, ''); // any spelling of the fingerprint works
    const run = await install(url(v4), ['--fingerprint', lower], path);
    expect(run.code, run.stderr).toBe(0);
    expect(tree(run.root)).toEqual(expectedTree(v4, caA.certPEM, fpA));
    const wrong = await install(url(v4), ['--fingerprint', fpB], path);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(fpA); // the fallback computed the served CA's fingerprint
  });

  it('rotation: the next CA is installed too, authenticated by TLS to the fingerprinted one', async () => {
    served = caA.certPEM + caB.certPEM;
    const run = await install(
      url(v4),
      ['--fingerprint', fpA, '--client', 'all'],
      toolDir([...BASE_TOOLS, 'curl', 'openssl']),
    );
    expect(run.code, run.stderr).toBe(0);
    expect(tree(run.root)).toEqual(expectedTree(v4, served, fpA));
    const docker = readFileSync(join(run.root, `etc/docker/certs.d/${v4}/ca.crt`), 'utf8');
    expect(docker.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
  });

  it('rotation: a fingerprint of a bundle CA that does not sign the server is refused', async () => {
    served = caA.certPEM + caB.certPEM;
    const run = await install(
      url(v4),
      ['--fingerprint', fpB],
      toolDir([...BASE_TOOLS, 'curl', 'openssl']),
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/does not verify/);
    expect(existsSync(run.root)).toBe(false);
  });

  it('IPv6: fetched from [::1]:PORT, installs under that directory name', async () => {
    served = caA.certPEM;
    const path = toolDir([...BASE_TOOLS, 'curl', 'openssl']);
    const run = await install(url(v6), ['--fingerprint', fpA, '--client', 'all'], path, '-fsSkg');
    expect(run.code, run.stderr).toBe(0);
    expect(tree(run.root)).toEqual(expectedTree(v6, caA.certPEM, fpA));
  });

  it('--registry overrides the default, and is validated before anything runs', async () => {
    served = caA.certPEM;
    const path = toolDir([...BASE_TOOLS, 'curl', 'openssl']);
    const port = v4.split(':')[1]!;
    const run = await install(
      url(v4),
      ['--fingerprint', fpA, '--client', 'docker', '--registry', `localhost:${port}`],
      path,
    );
    expect(run.code, run.stderr).toBe(0);
    expect(readdirSync(join(run.root, 'etc/docker/certs.d'))).toEqual([`localhost:${port}`]);
    const marker = join(tmp, 'injected');
    const evil = await install(
      url(v4),
      ['--fingerprint', fpA, '--registry', `a;touch ${marker}:1`],
      path,
    );
    expect(evil.code).toBe(2);
    expect(evil.stderr).toMatch(/not a host:port/);
    expect(existsSync(marker)).toBe(false);
  });

  it('wget instead of curl (GNU wget), verification included', async () => {
    served = caA.certPEM + caB.certPEM;
    const path = toolDir([...BASE_TOOLS, 'wget', 'openssl']);
    const run = await install(url(v4), ['--fingerprint', fpA, '--client', 'docker'], path);
    expect(run.code, run.stderr).toBe(0);
    const wrong = await install(url(v4), ['--fingerprint', fpB, '--client', 'docker'], path);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/does not verify/);
  });

  it('busybox sh and applets, no openssl', async () => {
    served = caA.certPEM;
    const path = toolDir(['curl'], { busybox: [...BASE_TOOLS, ...FALLBACK_TOOLS] });
    const run = await install(url(v4), ['--fingerprint', fpA, '--client', 'all'], path);
    expect(run.code, run.stderr).toBe(0);
    expect(tree(run.root)).toEqual(expectedTree(v4, caA.certPEM, fpA));
  });

  it('all (the default): installs for the clients present, says what it skipped and why', async () => {
    served = caA.certPEM;
    const path = toolDir([...BASE_TOOLS, 'curl', 'openssl'], { clients: false });
    const root = join(tmp, `root-${++dirs}`);
    mkdirSync(join(root, 'etc/docker'), { recursive: true }); // docker's directory, no command
    const run = await install(url(v4), ['--fingerprint', fpA], path, '-fsSk', root);
    expect(run.code, run.stderr).toBe(0);
    expect(Object.keys(tree(run.root)).sort()).toEqual([
      `etc/docker/certs.d/${v4}/ca.crt`,
      `usr/local/share/ca-certificates/registry-tls-proxy-${v4.replace(':', '_')}.crt`,
    ]);
    expect(run.stdout).toMatch(
      /^skipped containerd: not found on this host \(no containerd command, no \/etc\/containerd\); --client containerd installs it anyway$/m,
    );
    expect(run.stdout).toMatch(/^skipped containers: not found on this host/m);
    expect(run.stdout).not.toMatch(/skipped (docker|system)/);
    expect(run.calls).toBe('update-ca-certificates \n');
  });

  it('a named client is installed even where it is not found', async () => {
    served = caA.certPEM;
    const path = toolDir([...BASE_TOOLS, 'curl', 'openssl'], { clients: false });
    const run = await install(url(v4), ['--fingerprint', fpA, '--client', 'containerd'], path);
    expect(run.code, run.stderr).toBe(0);
    expect(Object.keys(tree(run.root)).sort()).toEqual([
      `etc/containerd/certs.d/${v4}/ca.crt`,
      `etc/containerd/certs.d/${v4}/hosts.toml`,
    ]);
    expect(run.stdout).not.toMatch(/skipped/);
  });

  it('all, with no client on the host: says so and installs nothing', async () => {
    served = caA.certPEM;
    const path = toolDir([...BASE_TOOLS, 'curl', 'openssl'], { clients: false });
    rmSync(join(path, 'update-ca-certificates'));
    const run = await install(url(v4), ['--fingerprint', fpA], path);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /found none of docker, containerd.*name the client to install for with --client/,
    );
    expect(existsSync(run.root)).toBe(false);
  });

  it('passes shellcheck as POSIX sh', () => {
    const result = spawnSync('shellcheck', ['-s', 'sh', '-'], {
      input: installerScript('[fd00::5]:5443'),
      encoding: 'utf8',
    });
    expect(result.status, result.stdout).toBe(0);
  });

  it('is only generated for a strict host:port', () => {
    expect(() => installerScript("x'; rm -rf /:1")).toThrow(/not a host:port/);
  });
});
