/**
 * Issue 14 item 3: every way of getting the command gives a working one. Real npm
 * against a copy of the repository as a fresh clone has it (no node_modules, no dist/):
 * `npm install -g .`, the tarball of `npm pack`, and `npm ci --omit=dev && npm start`.
 * Messages name the command as it was run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, freePort, tempDir, waitForOutput } from './helpers/processes.js';

const tmp = tempDir('install');
afterAll(() => tmp.remove());

const version = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
/** The caller's npm settings (npx vitest sets npm_config_*) stay out of these installs. */
const env = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)),
) as Record<string, string>;

/** The repository as a fresh clone has it: what git tracks, nothing built or installed. */
function freshClone(name: string): string {
  const dir = join(tmp.path, name);
  const skip = new Set(['node_modules', 'dist', 'data', '.git', 'coverage']);
  cpSync(ROOT, dir, {
    recursive: true,
    filter: (src) =>
      !relative(ROOT, src)
        .split('/')
        .some((part) => skip.has(part)),
  });
  return dir;
}

function run(command: string, args: string[], cwd: string) {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 240_000 });
  return { ...result, output: `${result.stdout}${result.stderr}` };
}

describe('installing the command', () => {
  const clone = freshClone('clone');

  it('npm install -g . from a fresh clone gives a working registry-tls-proxy', () => {
    const prefix = join(tmp.path, 'global-from-clone');
    const install = run('npm', ['install', '-g', '--prefix', prefix, '.'], clone);
    expect(install.status, install.output).toBe(0);
    const bin = join(prefix, 'bin', 'registry-tls-proxy');
    const v = run(bin, ['version'], tmp.path);
    expect(v.stdout).toBe(`${version}\n`);
    const help = run(bin, ['--help'], tmp.path);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^ {2}registry-tls-proxy serve --config config\/default\.yaml$/m);
  }, 300_000);

  it('npm install -g of the npm pack tarball gives one too, and its messages name it', () => {
    const pack = run('npm', ['pack', '--pack-destination', tmp.path], clone);
    expect(pack.status, pack.output).toBe(0);
    const tarball = join(tmp.path, `registry-tls-proxy-${version}.tgz`);
    const prefix = join(tmp.path, 'global-from-pack');
    const install = run('npm', ['install', '-g', '--prefix', prefix, tarball], tmp.path);
    expect(install.status, install.output).toBe(0);
    const bin = join(prefix, 'bin', 'registry-tls-proxy');
    expect(run(bin, ['version'], tmp.path).stdout).toBe(`${version}\n`);
    // A usage error names the command as installed…
    const installed = run(bin, ['issue-client'], tmp.path);
    expect(installed.status).toBe(2);
    expect(installed.stderr).toContain('usage: registry-tls-proxy issue-client NAME');
    // …and run from the clone, as it was run there.
    const fromClone = run(process.execPath, ['dist/cli.js', 'issue-client'], clone);
    expect(fromClone.stderr).toContain('usage: node dist/cli.js issue-client NAME');
  }, 300_000);
});

describe('npm ci --omit=dev && npm start from a fresh clone', () => {
  it('installs production dependencies only, builds dist/, and starts the proxy', async () => {
    const clone = freshClone('omit-dev');
    const ci = run('npm', ['ci', '--omit=dev'], clone);
    expect(ci.status, ci.output).toBe(0);
    expect(existsSync(join(clone, 'node_modules', 'typescript'))).toBe(false);
    expect(existsSync(join(clone, 'dist', 'cli.js'))).toBe(true);
    const port = await freePort();
    const child = spawn('npm', ['start'], {
      cwd: clone,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: npm start runs sh, which runs node; SIGTERM goes to all three.
      detached: true,
      env: {
        ...env,
        RTP_LISTEN: `127.0.0.1:${port}`,
        RTP_ADMIN_LISTEN: '',
        RTP_WORKERS: '1',
        RTP_TLS_DIR: join(clone, 'tls'),
      },
    });
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (text += d));
    try {
      await waitForOutput(child, () => text, /"msg":"proxying https:\/\/127\.0\.0\.1:/, 60_000);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      if (child.exitCode === null) process.kill(-(child.pid as number), 'SIGTERM');
      await exited;
    }
  }, 300_000);
});
