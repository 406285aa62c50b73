/**
 * Every launcher we ship starts Node the same way: `npm start`, the image's ENTRYPOINT
 * and the systemd unit all pass --max-semi-space-size=2 (V8's young generation: with a
 * larger one an upload's dead Buffers pile up for tens of MiB before a collection, and
 * the process keeps that memory). The benchmark reads the flags from `npm start`, so
 * what it measures is what these run; one launcher without them would run a different
 * proxy.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/processes.js';

const FLAG = '--max-semi-space-size=2';
const read = (...path: string[]) => readFileSync(join(ROOT, ...path), 'utf8');

describe('the Node flags of every launcher', () => {
  it('npm start passes them to node before dist/cli.js', () => {
    const start = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts
      .start;
    expect(start).toMatch(new RegExp(`\\bnode ${FLAG} dist/cli\\.js serve\\b`));
  });

  it('the image’s ENTRYPOINT passes them', () => {
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'))?.[1];
    expect(JSON.parse(entrypoint ?? 'null')).toEqual(['node', FLAG, 'dist/cli.js']);
  });

  it('the systemd unit sets them in NODE_OPTIONS for the installed command', () => {
    const unit = read('deploy', 'systemd', 'registry-tls-proxy.service');
    const environment = [...unit.matchAll(/^Environment=(.*)$/gm)].flatMap((m) =>
      (m[1] ?? '').split(/\s+/),
    );
    expect(environment).toContain(`NODE_OPTIONS=${FLAG}`);
  });
});
