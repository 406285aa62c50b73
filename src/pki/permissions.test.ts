import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeAtomically } from '../../test/helpers/atomic-writer.js';
import { DEFAULTS, type Config } from '../config/schema.js';
import { assertPrivateKeys, permissionProblems } from './permissions.js';

const root = mkdtempSync(join(tmpdir(), 'rtp-permissions-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
/** A tls.dir holding the given files with the given modes; the directory itself gets `dirMode`. */
function tlsDir(dirMode: number, files: Record<string, number>): string {
  const dir = join(root, `tls-${n++}`);
  mkdirSync(dir);
  for (const [name, mode] of Object.entries(files)) {
    writeFileSync(join(dir, name), 'key');
    chmodSync(join(dir, name), mode);
  }
  chmodSync(dir, dirMode);
  return dir;
}

function config(tls: Partial<Config['tls']>): Config {
  return { ...DEFAULTS, tls: { ...DEFAULTS.tls, ...tls } };
}

describe('permissionProblems', () => {
  it('accepts what the proxy writes itself: a 0700 directory with 0600 keys', () => {
    const dir = tlsDir(0o700, { 'ca.key': 0o600, 'server.key': 0o600, 'ca.crt': 0o644 });
    expect(permissionProblems(config({ dir }))).toEqual([]);
  });

  it('accepts a missing directory (it is created 0700) and group bits', () => {
    expect(permissionProblems(config({ dir: join(root, 'absent') }))).toEqual([]);
    const dir = tlsDir(0o770, { 'ca.key': 0o640, 'server.key': 0o660 });
    expect(permissionProblems(config({ dir }))).toEqual([]);
  });

  it.each<[string, number, RegExp]>([
    ['ca.key', 0o644, /ca\.key is a private key readable by others \(mode 0644\); fix: chmod 600 /],
    ['server.key', 0o604, /server\.key is a private key readable by others \(mode 0604\)/],
    ['ca-next.key', 0o602, /ca-next\.key is a private key writable by others \(mode 0602\)/],
    ['ca-previous.key', 0o666, /ca-previous\.key is a private key readable and writable by/],
  ])('refuses %s with mode %o', (name, mode, message) => {
    const dir = tlsDir(0o700, { [name]: mode });
    const problems = permissionProblems(config({ dir }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(message);
    expect(problems[0]).toContain(`chmod 600 ${join(dir, name)}`);
  });

  it('refuses a directory others can write, naming the fix', () => {
    const dir = tlsDir(0o777, {});
    expect(permissionProblems(config({ dir }))).toEqual([
      `tls.dir ${dir} is writable by others (mode 0777): anyone on this machine could replace the CA or the server key; fix: chmod o-w ${dir}`,
    ]);
  });

  it('lists every problem at once, the supplied key among them', () => {
    const dir = tlsDir(0o757, { 'ca.key': 0o644, 'server.key': 0o644 });
    const key = join(dir, '..', `supplied-${n++}.key`);
    writeFileSync(key, 'key');
    chmodSync(key, 0o644);
    const problems = permissionProblems(
      config({ dir, cert: '/etc/x/fullchain.pem', key, clientAuth: true }),
    );
    expect(problems).toHaveLength(4);
    expect(problems[3]).toMatch(/^tls\.key .* readable by others \(mode 0644\); fix: chmod o-rwx /);
    expect(() => assertPrivateKeys(config({ dir }))).toThrow(/refusing to serve.*\(3 problems\)/);
  });

  it('ignores tls.dir when a supplied certificate is served without mutual TLS', () => {
    const dir = tlsDir(0o777, { 'ca.key': 0o644 });
    const key = join(root, `supplied-${n++}.key`);
    writeFileSync(key, 'key');
    chmodSync(key, 0o640);
    expect(permissionProblems(config({ dir, cert: '/etc/x/fullchain.pem', key }))).toEqual([]);
  });
  it.each([
    ['through the tls.key link', 'tls.key'],
    ['through ..data itself', '..data/tls.key'],
  ])(
    'names the Secret volume’s defaultMode for a key in the kubelet’s layout (%s)',
    (_how, path) => {
      const mount = join(root, `secret-${n++}`);
      writeAtomically(mount, { 'tls.key': { data: 'key', mode: 0o644 } });
      const problems = permissionProblems(
        config({ cert: '/etc/x/fullchain.pem', key: join(mount, path) }),
      );
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(
        /Kubernetes Secret volume, where chmod cannot change it: set defaultMode: 0440 .*fsGroup.*defaultMode: 0400/,
      );
      expect(problems[0]).not.toMatch(/chmod o-rwx/);
    },
  );
});
