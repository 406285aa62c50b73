/**
 * The suite runs on the Node it claims: `npm test` runs it on the machine's Node and
 * again on the one the Dockerfile pins (test/run-on-image-node.sh sets TEST_EXPECT_NODE).
 * The proxies and CLIs the tests start (process.execPath, `node` on PATH) must be
 * that Node too, or the second run proves nothing about the image.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/processes.js';

const expected = process.env['TEST_EXPECT_NODE'] ?? process.version;
const version = (node: string) => execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();

describe('the Node the suite runs on', () => {
  it('is the one asked for, in the test workers and in every node a test starts', () => {
    expect(process.version).toBe(expected);
    expect(version(process.execPath)).toBe(expected);
    expect(version('node')).toBe(expected);
  });

  it('the Dockerfile pins one exact version, used by every stage', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^ARG NODE_VERSION=\d+\.\d+\.\d+$/m);
    const froms = dockerfile.match(/^FROM .*$/gm) ?? [];
    expect(froms.length).toBeGreaterThan(0);
    for (const from of froms) expect(from).toMatch(/^FROM node:\$\{NODE_VERSION\}-bookworm-slim\b/);
  });
});
