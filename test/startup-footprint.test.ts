/**
 * What a proxy without tls.acme loads at start-up. Two packages cost every proxy
 * resident memory it never uses unless they are loaded on first use:
 * - acme-client (with axios): about 20 MiB (src/acme/client-module.ts);
 * - dns-packet: an ESM import of it runs Node's CommonJS export scanner over 1,700
 *   lines, hot enough for V8 to optimise the scanner on its compiler threads, whose
 *   freed memory stays resident: 5–10 MiB (src/acme/dns/wire.ts).
 * Measured as RSS the figures are noisy; which files were compiled is exact.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { startProxy, tempDir } from './helpers/processes.js';

const tmp = tempDir('footprint');
afterAll(() => tmp.remove());

const RECORDER = join(import.meta.dirname, 'helpers', 'record-loaded.cjs');

/** The npm packages whose files a process compiled, by name. */
function packagesIn(list: string): Set<string> {
  const names = list
    .split('\n')
    .map((path) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1])
    .filter((name): name is string => name !== undefined);
  return new Set(names);
}

it('a proxy without tls.acme loads neither acme-client, axios nor dns-packet at start-up', async () => {
  const loaded = join(tmp.path, 'loaded.txt');
  writeFileSync(loaded, '');
  const proxy = await startProxy({
    backend: 'http://127.0.0.1:9',
    tlsDir: join(tmp.path, 'tls'),
    env: { NODE_OPTIONS: `--require ${RECORDER}`, LOADED_MODULES_FILE: loaded },
  });
  try {
    const packages = packagesIn(readFileSync(loaded, 'utf8'));
    // The recorder sees CommonJS packages the proxy imports as ESM: without this the
    // assertion below could pass with a recorder that records nothing.
    expect(packages).toContain('node-forge');
    expect(packages).toContain('prom-client');
    for (const lazy of ['acme-client', 'axios', 'dns-packet']) {
      expect([...packages], `${lazy} loaded at start-up`).not.toContain(lazy);
    }
  } finally {
    await proxy.stop();
  }
});
