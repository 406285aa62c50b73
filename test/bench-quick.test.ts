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
  ratio: number | null;
  target: string | null;
  pass: boolean | null;
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

/** Issue 17's table: each of these rows is printed with its target, and no other row has one. */
const TARGET_ROWS: Record<string, string> = {
  'pull.cpuPerGiB': '≤ 0.9×',
  'push.cpuPerGiB': '≤ 1.5×',
  'manifest.GET.c32.rps': '≥ 0.95×',
  'manifest.GET.c32.cpuPer1k': '≤ 2×',
  'tls.full.rate': '≥ 1×',
  'tls.resumed.rate': '≥ 0.8×',
  'tls.tls12Reconnect': 'yes',
  'tls.tls13Ticket': 'yes',
  'memory.peak': '≤ 64 MiB/worker',
  'wrk.workers.rps': '≥ 0.95×',
  'wrk.workers.cpuPer1k': '≤ 2×',
  'wrk.default.rps': '≥ 0.95×',
  'wrk.default.cpuPer1k': '≤ 2×',
};

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

    const targeted = report.rows.filter((r) => r.target !== null);
    expect(Object.fromEntries(targeted.map((r) => [r.id, r.target]))).toEqual(TARGET_ROWS);
    const markdown = readFileSync(`${out}.md`, 'utf8');
    for (const row of targeted) {
      // A cost ratio can be missing in a smoke run (nginx under one clock tick); every other
      // targeted row always has its verdict, and the table shows it beside the target.
      if (row.kind !== 'cost' || row.ratio !== null) {
        expect(typeof row.pass, row.id).toBe('boolean');
        expect(markdown, row.id).toContain(`${row.target} ${row.pass ? 'pass' : 'FAIL'}`);
      } else expect(row.pass, row.id).toBeNull();
    }
    expect(readFileSync(`${out}.svg`, 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*<rect[\s\S]*<\/svg>\n$/);
    expect(markdown).toMatch(/\| metric \| direct \| nginx \| proxy \|/);
  }, 150_000);
});
