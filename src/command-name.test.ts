import { describe, expect, it } from 'vitest';
import { commandName } from './command-name.js';

describe('commandName', () => {
  it.each([
    ['/usr/local/bin/registry-tls-proxy', '/home/u', '', 'registry-tls-proxy'],
    ['/tmp/p/node_modules/.bin/registry-tls-proxy', '/tmp/p', 'exec', 'npx registry-tls-proxy'],
    ['/srv/rtp/dist/cli.js', '/srv/rtp', 'start', 'node dist/cli.js'],
    ['/srv/rtp/dist/cli.js', '/home/u', '', 'node /srv/rtp/dist/cli.js'],
    ['/srv/my rtp/dist/cli.js', '/home/u', '', 'node "/srv/my rtp/dist/cli.js"'],
  ])('%s from %s (npm %s) → %s', (script, cwd, npm, expected) => {
    expect(commandName(script, cwd, npm)).toBe(expected);
  });
});
