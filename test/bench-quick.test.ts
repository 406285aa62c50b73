/**
 * The benchmark's smoke variant (issue 5: "`npm run bench -- --quick`, under a minute, runs
 * in CI to keep the script working"). Not a performance test: no figure is judged, only that
 * the script runs end to end against the real registry, nginx and the proxy, and reports
 * every metric for both.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from './helpers/processes.js';

interface Row {
  id: string;
  kind: 'cost' | 'rate' | 'latency' | 'memory' | 'check';
  direct: number | null;
  nginx: number | boolean | null;
  proxy: number | boolean | null;
}

const EXPECTED_ROWS = [
  ...['pull', 'push'].flatMap((kind) => [`${kind}.cpuPerGiB`, `${kind}.throughput`]),
  ...['GET', 'HEAD'].flatMap((method) =>
    ['c1', 'c32'].flatMap((c) =>
      ['rps', 'cpuPer1k', 'p50Added', 'p99Added', 'cpuPer1kQuiet'].map(
        (metric) => `manifest.${method}.${c}.${metric}`,
      ),
    ),
  ),
  'tls.full.rate',
  'tls.full.cpu',
  'tls.resumed.rate',
  'tls.resumed.cpu',
  'tls.tls12Reconnect',
  'tls.tls13Ticket',
  'memory.growth',
  'memory.peak',
  'memory.throughput',
  ...['workers', 'default'].flatMap((pair) =>
    ['rps', 'cpuPer1k', 'p99'].map((metric) => `wrk.${pair}.${metric}`),
  ),
  // bench/plain-node-proxy.mjs, the plain Node proxy, in the proxy's column.
  'pull.cpuPerGiB.plainNode',
  'push.cpuPerGiB.plainNode',
  'tls.full.rate.plainNode',
  'tls.resumed.rate.plainNode',
  'wrk.workers.rps.plainNode',
  'wrk.workers.cpuPer1k.plainNode',
  'memory.peak.plainNode',
];

describe('npm run bench -- --quick', () => {
  const tmp = tempDir('bench-quick');
  afterAll(() => tmp.remove());

  it('measures every metric for nginx and the proxy and writes JSON, SVG and Markdown', () => {
    execFileSync('npx', ['tsc', '-p', join('bench', 'tsconfig.json')], { cwd: ROOT });
    const out = join(tmp.path, 'quick');
    const run = spawnSync(
      process.execPath,
      [join(ROOT, 'bench', 'build', 'run.js'), '--quick', '--out', out],
      { cwd: ROOT, encoding: 'utf8', timeout: 110_000 },
    );
    expect(run.status, `${run.stderr}\n${run.stdout}`).toBe(0);
    expect(run.stdout).toMatch(/proxy÷nginx/);

    const report = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as { rows: Row[] };
    expect(report.rows.map((r) => r.id).sort()).toEqual([...EXPECTED_ROWS].sort());
    for (const row of report.rows) {
      for (const value of [row.nginx, row.proxy]) {
        if (row.kind === 'check') expect(typeof value, row.id).toBe('boolean');
        else if (row.kind === 'rate') expect(value, row.id).toBeGreaterThan(0);
        // A smoke run's loads are short: nginx's CPU can stay under one clock tick (10 ms).
        else if (row.kind === 'cost') expect(value, row.id).toBeGreaterThanOrEqual(0);
        else expect(Number.isFinite(value), row.id).toBe(true);
      }
      if (row.kind === 'rate' && row.direct !== null) expect(row.direct, row.id).toBeGreaterThan(0);
    }
    expect(readFileSync(`${out}.svg`, 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*<rect[\s\S]*<\/svg>\n$/);
    expect(readFileSync(`${out}.md`, 'utf8')).toMatch(/\| metric \| direct \| nginx \| proxy \|/);
  }, 150_000);
});
