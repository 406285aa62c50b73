/**
 * Every launcher we ship starts Node the same way: `npm start`, the image's ENTRYPOINT
 * and the installed command (dist/cli.js's first line, which the systemd unit runs) all
 * pass --max-semi-space-size=2 (V8's young generation: with a larger one an upload's dead
 * Buffers pile up for tens of MiB before a collection, and the process keeps that memory)
 * and --initial-old-space-size=32 (below it, an upload's Buffers set off a full collection
 * every ~80 ms in some pushes). The benchmark reads the flags from `npm start`, so what it
 * measures is what these run; one launcher without them would run a different proxy.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from './helpers/processes.js';

const FLAGS = ['--max-semi-space-size=2', '--initial-old-space-size=32'];
const FLAG = FLAGS.join(' ');
const read = (...path: string[]) => readFileSync(join(ROOT, ...path), 'utf8');

describe('the Node flags of every launcher', () => {
  const tmp = tempDir('launchers');
  afterAll(() => tmp.remove());

  it('npm start passes them to node before dist/cli.js', () => {
    const start = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts
      .start;
    expect(start).toMatch(new RegExp(`\\bnode ${FLAG} dist/cli\\.js serve\\b`));
  });

  it('the image’s ENTRYPOINT passes them', () => {
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'))?.[1];
    expect(JSON.parse(entrypoint ?? 'null')).toEqual(['node', ...FLAGS, 'dist/cli.js']);
  });

  it('the installed command (the systemd unit’s ExecStart) passes them in its first line', () => {
    const unit = read('deploy', 'systemd', 'registry-tls-proxy.service');
    expect(unit).toMatch(/^ExecStart=\/usr\/local\/bin\/registry-tls-proxy serve /m);
    // NODE_OPTIONS refuses --initial-old-space-size: a unit that set it would not start.
    expect(unit).not.toMatch(/^Environment=NODE_OPTIONS=.*--initial-old-space-size/m);
    const cli = read('dist', 'cli.js');
    expect(cli.split('\n')[0]).toBe(`#!/usr/bin/env -S node ${FLAG}`);
    // What the kernel and env make of that line: the same line over a script that prints
    // Node's own flags.
    const script = join(tmp.path, 'first-line.js');
    writeFileSync(script, `${cli.split('\n')[0]}\nconsole.log(process.execArgv.join(' '));\n`);
    chmodSync(script, 0o755);
    expect(execFileSync(script, { encoding: 'utf8' }).trim()).toBe(FLAG);
  });
});
