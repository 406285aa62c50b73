/**
 * Every snippet is run for real by dash under a temporary root, with stub
 * update-ca-certificates / update-ca-trust commands that only record their call.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
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
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCA } from '../pki/issue.js';
import { formatTrustReport, trustInstructions, type TrustTarget } from './instructions.js';
import { assertHostPort } from './layout.js';

const tmp = mkdtempSync(join(tmpdir(), 'rtp-trust-instructions-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A PATH directory holding only `tools` (links to the real ones) and recording stubs. */
function toolDir(name: string, tools: string[], stubs: string[]): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  for (const tool of tools) {
    const real = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    symlinkSync(real, join(dir, tool));
  }
  for (const stub of stubs) {
    writeFileSync(join(dir, stub), `#!/bin/sh\necho "${stub} $*" >> "$STUB_LOG"\n`, {
      mode: 0o755,
    });
  }
  return dir;
}

const SNIPPET_TOOLS = ['sh', 'mkdir', 'cat', 'chmod', 'mv', 'rm'];

function run(
  snippet: string,
  path: string,
): { status: number | null; stderr: string; log: string } {
  const log = join(tmp, `stub-${Math.random()}.log`);
  const result = spawnSync(join(path, 'sh'), [], {
    input: snippet,
    env: { PATH: path, STUB_LOG: log },
    encoding: 'utf8',
  });
  return {
    status: result.status,
    stderr: result.stderr,
    log: existsSync(log) ? readFileSync(log, 'utf8') : '',
  };
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** Two CAs, as during a rotation; canonical PEM (LF, 64 columns) so bytes compare exactly. */
let bundle: string;
let fingerprints: string[];
let forgePEM: string;
beforeAll(async () => {
  const cas = await Promise.all(
    [1, 2].map((n) => createCA({ commonName: `test CA ${n}`, lifetimeMs: 30 * DAY_MS })),
  );
  forgePEM = cas[0]!.certPEM;
  const certs = cas.map((ca) => new X509Certificate(ca.certPEM));
  bundle = certs.map((c) => c.toString()).join('');
  fingerprints = certs.map((c) => c.fingerprint256);
});

function target(hostPort: string): TrustTarget {
  return { hostPort, caBundlePEM: bundle, fingerprints };
}

/** Enough TOML for hosts.toml: top-level keys and [host."…"] tables of string/array values. */
function parseHostsTOML(text: string): Record<string, Record<string, string>> {
  const tables: Record<string, Record<string, string>> = { '': {} };
  let table = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[host\."([^"]+)"\]$/.exec(line);
    if (header) {
      table = header[1]!;
      tables[table] = {};
      continue;
    }
    const pair = /^([a-z_]+) = ("[^"]*"|\[[^\]]*\])$/.exec(line);
    if (!pair) throw new Error(`not TOML this test understands: ${line}`);
    tables[table]![pair[1]!] = pair[2]!.startsWith('"') ? pair[2]!.slice(1, -1) : pair[2]!;
  }
  return tables;
}

describe.each(['registry.lan:5443', '10.0.0.5:5443', '[fd00::5]:5443'])('snippets for %s', (hp) => {
  let root: string;
  let path: string;
  beforeAll(() => {
    const name = hp.replace(/[^A-Za-z0-9]/g, '_');
    root = join(tmp, `root-${name}`);
    path = toolDir(`bin-${name}`, SNIPPET_TOOLS, ['update-ca-certificates']);
  });

  it.each(['docker', 'containers'] as const)(
    '%s: ca.crt is the bundle, 0644 in 0755 dirs',
    (kind) => {
      const result = run(trustInstructions(target(hp), root)[kind], path);
      expect(result.status, result.stderr).toBe(0);
      const file = join(root, `/etc/${kind}/certs.d/${hp}/ca.crt`);
      expect(readFileSync(file, 'utf8')).toBe(bundle);
      expect(statSync(file).mode & 0o777).toBe(0o644);
      expect(statSync(join(file, '..')).mode & 0o777).toBe(0o755);
      expect(readdirSync(join(file, '..'))).toEqual(['ca.crt']); // no temp file left
    },
  );

  it('containerd: ca.crt plus a hosts.toml whose server and ca point at it', () => {
    const result = run(trustInstructions(target(hp), root).containerd, path);
    expect(result.status, result.stderr).toBe(0);
    const dir = join(root, `/etc/containerd/certs.d/${hp}`);
    expect(readFileSync(join(dir, 'ca.crt'), 'utf8')).toBe(bundle);
    const toml = parseHostsTOML(readFileSync(join(dir, 'hosts.toml'), 'utf8'));
    expect(toml['']).toEqual({ server: `https://${hp}` });
    // The real path, not the test root: containerd on the client reads it.
    expect(toml[`https://${hp}`]).toMatchObject({ ca: `/etc/containerd/certs.d/${hp}/ca.crt` });
    expect(statSync(join(dir, 'hosts.toml')).mode & 0o777).toBe(0o644);
  });

  it('system (Debian): one anchor per certificate, stale ones removed, update run', () => {
    const anchors = join(root, '/usr/local/share/ca-certificates');
    const base = `registry-tls-proxy-${hp.replace(/[^A-Za-z0-9.-]/g, '_')}`;
    mkdirSync(anchors, { recursive: true });
    writeFileSync(join(anchors, `${base}-3.crt`), 'left from an older bundle');
    writeFileSync(join(anchors, 'someone-else.crt'), 'not ours');
    const result = run(trustInstructions(target(hp), root).system, path);
    expect(result.status, result.stderr).toBe(0);
    expect(readdirSync(anchors).sort()).toEqual([
      `${base}-2.crt`,
      `${base}.crt`,
      'someone-else.crt',
    ]);
    const written = readFileSync(join(anchors, `${base}.crt`), 'utf8');
    expect(written + readFileSync(join(anchors, `${base}-2.crt`), 'utf8')).toBe(bundle);
    expect(new X509Certificate(written).fingerprint256).toBe(fingerprints[0]);
    expect(result.log).toBe('update-ca-certificates \n');
  });
});

it('every snippet passes shellcheck as POSIX sh', () => {
  for (const snippet of Object.values(trustInstructions(target('[fd00::5]:5443')))) {
    const result = spawnSync('shellcheck', ['-s', 'sh', '-'], {
      input: snippet,
      encoding: 'utf8',
    });
    expect(result.status, result.stdout).toBe(0);
  }
});

describe('system store choice', () => {
  it('RHEL/Fedora when only update-ca-trust exists', () => {
    const root = join(tmp, 'root-rhel');
    const path = toolDir('bin-rhel', SNIPPET_TOOLS, ['update-ca-trust']);
    const result = run(trustInstructions(target('registry.lan:5443'), root).system, path);
    expect(result.status, result.stderr).toBe(0);
    expect(readdirSync(join(root, '/etc/pki/ca-trust/source/anchors')).sort()).toEqual([
      'registry-tls-proxy-registry.lan_5443-2.crt',
      'registry-tls-proxy-registry.lan_5443.crt',
    ]);
    expect(result.log).toBe('update-ca-trust extract\n');
  });

  it('neither command: exit 1, says what to install, writes nothing', () => {
    const root = join(tmp, 'root-none');
    const path = toolDir('bin-none', SNIPPET_TOOLS, []);
    const result = run(trustInstructions(target('registry.lan:5443'), root).system, path);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/install ca-certificates/);
    expect(existsSync(root)).toBe(false);
  });
});

describe('input checks', () => {
  it.each([
    'a;rm -rf /:5443',
    '$(id):5443',
    "it's:5443",
    'a\n:5443',
    'registry.lan',
    'registry.lan:0',
    'registry.lan:65536',
    ':5443',
    '-x:5443',
    'reg istry:5443',
    'fd00::5:5443',
    '[fd00::5:5443',
    '[zz::1]:5443',
    '[fd00::5]',
  ])('rejects host:port %j', (hp) => {
    expect(() => assertHostPort(hp)).toThrow(/not a host:port/);
    expect(() => trustInstructions({ ...target('x:1'), hostPort: hp })).toThrow(/not a host:port/);
  });

  it('rejects a fingerprint that is not in the bundle', () => {
    const wrong = fingerprints[0]!.replace(/^../, fingerprints[0]!.startsWith('00') ? '11' : '00');
    expect(() => trustInstructions({ ...target('x:1'), fingerprints: [wrong] })).toThrow(
      /not one of the bundle's/,
    );
    expect(() => trustInstructions({ ...target('x:1'), fingerprints: [] })).toThrow(
      /no CA fingerprint/,
    );
  });

  it('rejects a bundle with non-certificate text inside a block', () => {
    const evil = bundle.replace(/\n(?=-----END)/, '\nRTP_EOF\nrm -rf /\n');
    expect(() => trustInstructions({ ...target('x:1'), caBundlePEM: evil })).toThrow(
      /non-base64 line/,
    );
    expect(() => trustInstructions({ ...target('x:1'), caBundlePEM: 'hello' })).toThrow(
      /no complete/,
    );
  });

  it('normalises a CRLF bundle (as node-forge writes it) to LF with the same certificate', () => {
    const fp = new X509Certificate(forgePEM).fingerprint256;
    const t = {
      hostPort: 'x:1',
      caBundlePEM: `junk before\r\n${forgePEM}trailing`,
      fingerprints: [fp],
    };
    const snippet = trustInstructions(t).docker;
    expect(snippet).not.toMatch(/\r|junk|trailing/);
    expect(snippet).toContain(new X509Certificate(forgePEM).toString());
  });
});

describe('formatTrustReport', () => {
  it('leads with the fingerprints and the one-step command, then each client by hand', () => {
    const t = target('[fd00::5]:5443');
    const report = formatTrustReport(t);
    const snippets = trustInstructions(t);
    expect(report).toContain(`${fingerprints[0]}\n  ${fingerprints[1]}\n`);
    expect(report).toContain(
      `curl -fsSkg https://[fd00::5]:5443/install-ca.sh | $(command -v sudo) sh -s -- --fingerprint ${fingerprints[0]}`,
    );
    const titles = [...report.matchAll(/^== (.+) ==$/gm)].map((m) => m[1]);
    expect(titles).toEqual([
      'docker',
      'containerd',
      'podman, skopeo, buildah',
      'system trust store',
    ]);
    for (const snippet of Object.values(snippets)) {
      expect(report).toContain(`$(command -v sudo) sh <<'RTP_TRUST'\n${snippet}\nRTP_TRUST\n`);
    }
  });
});
