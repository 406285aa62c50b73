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
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCA } from '../pki/issue.js';
import { installTrust, presentClients } from './install.js';
import { installerScript } from './installer-script.js';
import { CLIENT_KINDS } from './layout.js';
import { trustInstructions, type TrustTarget } from './instructions.js';

const tmp = mkdtempSync(join(tmpdir(), 'rtp-trust-install-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const DAY_MS = 24 * 60 * 60 * 1000;

let t: TrustTarget;
beforeAll(async () => {
  const cas = await Promise.all(
    [1, 2].map((n) => createCA({ commonName: `CA ${n}`, lifetimeMs: 30 * DAY_MS })),
  );
  const certs = cas.map((ca) => new X509Certificate(ca.certPEM));
  t = {
    hostPort: '[fd00::5]:5443',
    caBundlePEM: certs.map((c) => c.toString()).join(''),
    fingerprints: certs.map((c) => c.fingerprint256),
  };
});

/** A directory holding recording stubs of `commands`, to pass as the search path. */
function stubs(name: string, commands: string[]): { dir: string; log: string } {
  const dir = join(tmp, name);
  const log = join(dir, 'calls.log');
  mkdirSync(dir);
  for (const c of commands) {
    writeFileSync(join(dir, c), `#!/bin/sh\necho "${c} $*" >> '${log}'\n`, { mode: 0o755 });
  }
  return { dir, log };
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

describe('installTrust', () => {
  it('writes every client file under root, 0644 in 0755 directories, without running anything', () => {
    const root = join(tmp, 'all');
    const { dir, log } = stubs('debian', ['update-ca-certificates']);
    const result = installTrust(t, {
      kinds: ['docker', 'containerd', 'containers', 'system'],
      root,
      runUpdate: false,
      searchPath: dir,
    });
    const hp = '[fd00::5]:5443';
    expect(result.written.map((f) => relative(root, f))).toEqual([
      `etc/docker/certs.d/${hp}/ca.crt`,
      `etc/containerd/certs.d/${hp}/ca.crt`,
      `etc/containerd/certs.d/${hp}/hosts.toml`,
      `etc/containers/certs.d/${hp}/ca.crt`,
      'usr/local/share/ca-certificates/registry-tls-proxy-_fd00__5__5443.crt',
      'usr/local/share/ca-certificates/registry-tls-proxy-_fd00__5__5443-2.crt',
    ]);
    expect(result.ran).toEqual([]);
    expect(existsSync(log)).toBe(false);
    for (const file of result.written) {
      expect(statSync(file).mode & 0o777).toBe(0o644);
      expect(statSync(join(file, '..')).mode & 0o777).toBe(0o755);
    }
    expect(readFileSync(result.written[0]!, 'utf8')).toBe(t.caBundlePEM);
    expect(readFileSync(result.written[2]!, 'utf8')).toContain(
      `ca = "/etc/containerd/certs.d/${hp}/ca.crt"`,
    );
  });

  it('writes exactly what the snippets write, byte for byte', () => {
    const { dir } = stubs('same', ['update-ca-certificates']);
    const byNode = join(tmp, 'by-node');
    installTrust(t, {
      kinds: ['docker', 'containerd', 'containers', 'system'],
      root: byNode,
      searchPath: dir,
    });
    const bySh = join(tmp, 'by-sh');
    for (const snippet of Object.values(trustInstructions(t, bySh))) {
      const result = spawnSync('sh', [], {
        input: snippet,
        env: { PATH: `${dir}:/usr/bin:/bin` },
        encoding: 'utf8',
      });
      expect(result.status, result.stderr).toBe(0);
    }
    expect(tree(byNode)).toEqual(tree(bySh));
  });

  it('picks update-ca-trust when that is what exists, and runs it', () => {
    const root = join(tmp, 'rhel');
    const { dir, log } = stubs('rhel', ['update-ca-trust']);
    const result = installTrust(t, { kinds: ['system'], root, searchPath: dir });
    expect(result.ran).toEqual(['update-ca-trust extract']);
    expect(readFileSync(log, 'utf8')).toBe('update-ca-trust extract\n');
    expect(readdirSync(join(root, 'etc/pki/ca-trust/source/anchors'))).toHaveLength(2);
  });

  it('removes anchors left from a longer bundle, keeps other files', () => {
    const root = join(tmp, 'stale');
    const anchors = join(root, 'usr/local/share/ca-certificates');
    mkdirSync(anchors, { recursive: true });
    writeFileSync(join(anchors, 'registry-tls-proxy-_fd00__5__5443-3.crt'), 'old');
    writeFileSync(join(anchors, 'other.crt'), 'other');
    const { dir } = stubs('stale-bin', ['update-ca-certificates']);
    installTrust(t, { kinds: ['system'], root, runUpdate: false, searchPath: dir });
    expect(readdirSync(anchors).sort()).toEqual([
      'other.crt',
      'registry-tls-proxy-_fd00__5__5443-2.crt',
      'registry-tls-proxy-_fd00__5__5443.crt',
    ]);
  });

  it('fails with what to install when no system store command exists', () => {
    const { dir } = stubs('empty', []);
    expect(() =>
      installTrust(t, { kinds: ['system'], root: join(tmp, 'none'), searchPath: dir }),
    ).toThrow(/install the ca-certificates package/);
  });
});

describe('presentClients (trust --install without --client)', () => {
  /** What the served install-ca.sh's `present` says for each client, run by sh on the same host. */
  function bySh(root: string, searchPath: string): string[] {
    const script = installerScript('registry.lan:5443');
    const fns = /^have\(\) [\s\S]*?\n\}$/m.exec(script)?.[0] ?? '';
    const loop = `for k in ${CLIENT_KINDS.join(' ')}; do if present $k; then echo $k; fi; done`;
    const run = spawnSync('/bin/sh', ['-c', `ROOT="$1"\n${fns}\n${loop}`, 'sh', root], {
      env: { PATH: searchPath },
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    return run.stdout.split('\n').filter(Boolean);
  }

  it.each([
    ['nothing', [], [], []],
    ['podman only', ['podman'], [], ['containers']],
    ['dockerd only', ['dockerd'], [], ['docker']],
    [
      '/etc/docker and /etc/containerd, no commands',
      [],
      ['etc/docker', 'etc/containerd'],
      ['docker', 'containerd'],
    ],
    [
      'RHEL store, skopeo, /etc/containers',
      ['update-ca-trust', 'skopeo'],
      ['etc/containers'],
      ['containers', 'system'],
    ],
    [
      'everything',
      ['docker', 'containerd', 'buildah', 'update-ca-certificates'],
      [],
      [...CLIENT_KINDS],
    ],
  ])('%s: the same clients as install-ca.sh finds', (name, commands, dirs, expected) => {
    const root = join(tmp, `present-${name.replace(/\W+/g, '-')}`);
    for (const d of dirs) mkdirSync(join(root, d), { recursive: true });
    mkdirSync(root, { recursive: true });
    const { dir } = stubs(`present-bin-${name.replace(/\W+/g, '-')}`, commands);
    const { present, skipped } = presentClients({ root, searchPath: dir });
    expect(present).toEqual(expected);
    expect(bySh(root, dir)).toEqual(expected);
    expect([...present, ...skipped.map((s) => s.kind)].sort()).toEqual([...CLIENT_KINDS].sort());
    for (const { reason } of skipped) expect(reason).toMatch(/^not found on this host \(no /);
  });
});
