/**
 * `npm run bench [-- --quick]`: the distribution registry, nginx and this proxy
 * side by side on loopback (issue 5). Prints a table of proxy ÷ nginx ratios
 * (medians over rounds) and writes the results as JSON, an SVG chart and a
 * Markdown table.
 *
 * @example
 *   npm run bench                 # full run, several minutes → bench/results/latest.*
 *   npm run bench -- --quick      # smoke run, under a minute  → bench/results/quick.*
 *   node bench/build/run.js --rounds 3 --out /tmp/try
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pushBlob, ensureLayer } from './lib/blobs.js';
import { renderChart } from './lib/chart.js';
import { runOK } from './lib/exec.js';
import { describeMachine, machineLine } from './lib/machine.js';
import { pushManifest } from './lib/manifests.js';
import {
  measureHandshakes,
  measureManifests,
  measureMemory,
  measureTransfers,
  measureWrk,
  type Raw,
} from './lib/measure.js';
import { pidsNamed, rssBytes } from './lib/procfs.js';
import { buildRows } from './lib/rows.js';
import { NOTES, renderMarkdownTable, renderTable } from './lib/table.js';
import { nginxBinary, startServers, type Servers, type Target } from './lib/servers.js';
import { FULL, QUICK, type Settings } from './lib/settings.js';

const USAGE = `usage: node bench/build/run.js [--quick] [--rounds N] [--workers N] [--out PATH] [--proxy DIR]
  --quick      smoke run: tiny sizes, one round (CI)
  --rounds N   rounds per measurement (default: 5 full, 1 quick)
  --workers N  processes serving the port, the same for both: nginx worker_processes N,
               the proxy RTP_WORKERS=N (default 1: one core each)
  --out PATH   write PATH.json, PATH.svg and PATH.md
               (default: bench/results/latest, or bench/results/quick with --quick)
  --proxy DIR  measure the proxy built in another checkout (DIR/dist/cli.js), e.g. a
               baseline: git worktree add /tmp/base main && (cd /tmp/base && npm ci && npm run build)`;

const REQUIRED_TOOLS = ['docker-registry', 'curl', 'openssl', 'hey', 'wrk', 'getconf'];

interface Options {
  settings: Settings;
  out: string;
  /** The checkout whose dist/ is measured. */
  proxyRoot: string;
}

function parseArgs(argv: readonly string[], root: string): Options | 'help' {
  let quick = false;
  let rounds: number | undefined;
  let out: string | undefined;
  let proxyRoot = root;
  let workers = 1;
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--quick') quick = true;
    else if (arg === '--help' || arg === '-h') return 'help';
    else if (['--rounds', '--workers', '--out', '--proxy'].includes(arg ?? '')) {
      const value = argv[(i += 1)];
      if (value === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      if (arg === '--out') out = resolve(value);
      else if (arg === '--proxy') proxyRoot = resolve(value);
      else {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 1)
          throw new Error(`${arg}: a whole number ≥ 1, not "${value}"`);
        if (arg === '--rounds') rounds = n;
        else workers = n;
      }
    } else throw new Error(`unknown argument "${arg}"\n${USAGE}`);
  }
  const base = quick ? QUICK : FULL;
  return {
    settings: { ...base, rounds: rounds ?? base.rounds, workers },
    out: out ?? join(root, 'bench', 'results', quick ? 'quick' : 'latest'),
    proxyRoot,
  };
}

/** The repository root: the nearest directory up whose package.json is this project's. */
function findRoot(from: string): string {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (
      existsSync(manifest) &&
      /"name":\s*"registry-tls-proxy"/.test(readFileSync(manifest, 'utf8'))
    ) {
      return dir;
    }
  }
  throw new Error(`no registry-tls-proxy package.json above ${from}`);
}

async function checkTools(proxyRoot: string): Promise<void> {
  const missing: string[] = [];
  for (const tool of [...REQUIRED_TOOLS, nginxBinary()]) {
    try {
      await runOK('sh', ['-c', `command -v "${tool}"`]);
    } catch {
      missing.push(tool);
    }
  }
  if (missing.length > 0) {
    throw new Error(`missing: ${missing.join(', ')}; run: sh bench/install-deps.sh`);
  }
  if (!existsSync(join(proxyRoot, 'dist', 'cli.js'))) {
    throw new Error(`${join(proxyRoot, 'dist', 'cli.js')} is missing; run: npm run build`);
  }
}

/** The commit the proxy was built from, and whether its tree had uncommitted changes. */
function describeCheckout(dir: string): string {
  const git = (...args: string[]) =>
    spawnSync('git', ['-C', dir, ...args], { encoding: 'utf8' }).stdout?.trim() ?? '';
  const commit = git('rev-parse', '--short', 'HEAD');
  if (commit === '') return 'unknown (not a git checkout)';
  const dirty = git('status', '--porcelain', '--', 'src', 'package-lock.json') !== '';
  return dirty ? `${commit} with uncommitted changes in src/` : commit;
}

const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

async function main(): Promise<void> {
  const root = findRoot(import.meta.dirname);
  const options = parseArgs(process.argv.slice(2), root);
  if (options === 'help') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const { settings, out, proxyRoot } = options;
  await checkTools(proxyRoot);
  const proxyVersion = describeCheckout(proxyRoot);
  const others = pidsNamed('nginx');
  if (others.length > 0) {
    progress(
      `warning: nginx processes not started by the benchmark are running (${others.join(', ')}); they share the cores`,
    );
  }
  const machine = describeMachine();
  const date = new Date().toISOString();
  progress(
    `${settings.mode} run, ${settings.rounds} round(s); ${machineLine(machine)}; load ${machine.loadAverage}`,
  );

  const dir = mkdtempSync(join(tmpdir(), 'rtp-bench-'));
  let servers: Servers | undefined;
  let keepLogs = false;
  const cleanUp = async () => {
    await servers?.stop();
    if (keepLogs) progress(`logs kept in ${dir} (registry.log, proxy*.log, nginx/*/error.log)`);
    else rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    void cleanUp().finally(() => process.kill(process.pid, signal));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const layer = ensureLayer(settings.layerBytes);
    progress(`layer ${layer.digest} (${layer.bytes} bytes, cached in ${dirname(layer.file)})`);
    progress(`proxy under test: ${proxyVersion}`);
    servers = await startServers(proxyRoot, dir, settings.workers);
    progress(
      `registry ${servers.direct.origin}, nginx ${servers.nginx.origin}, proxy ${servers.proxy.origin} ` +
        `(quiet: ${servers.proxyQuiet.origin}); files in ${dir}`,
    );
    // Set-up, not measured: the layer and a manifest in the registry, every path warmed once.
    await pushBlob(servers.direct.origin, servers.caFile, layer);
    await pushManifest(servers.direct.origin, servers.caFile, layer);

    // Section 5's "before" is where sections 1–4 left each server: say where that is.
    const s = servers;
    const rssLine = (after: string) =>
      progress(`resident memory after ${after}: proxy ${mib(s.proxy)}, nginx ${mib(s.nginx)} MiB`);
    const mib = (t: Target) => (rssBytes(t.pids()) / 2 ** 20).toFixed(1);
    rssLine('start-up');
    const pull = await measureTransfers('pull', servers, layer, settings, progress);
    rssLine('pulls');
    const push = await measureTransfers('push', servers, layer, settings, progress);
    rssLine('pushes');
    const manifest = await measureManifests(servers, settings, progress);
    rssLine('manifests');
    const handshakes = await measureHandshakes(servers, settings, dir, progress);
    rssLine('handshakes');
    const memory = await measureMemory(servers, layer, settings, progress);
    // After the memory section, which reads the RSS: the proxy's peak there is not what
    // wrk's load left behind.
    const wrk = await measureWrk(servers, settings, progress);
    const raw: Raw = { pull, push, manifest, wrk, ...handshakes, memory };
    const rows = buildRows(raw, settings);
    const title = `registry-tls-proxy vs nginx, fronting the same registry (${settings.mode} run, ${settings.workers} worker${settings.workers > 1 ? 's' : ''} each, nginx = 1)`;
    const subtitles = [
      `${date.slice(0, 16).replace('T', ' ')} UTC · proxy ${proxyVersion} · ${settings.rounds} round(s), medians`,
      machineLine(machine),
    ];

    const notes = [
      ...NOTES,
      ...(servers.revived.length > 0
        ? [`Restarted after another process killed them: ${servers.revived.join('; ')}.`]
        : []),
    ]
      .map((note) => `- ${note}`)
      .join('\n');
    process.stdout.write(
      `\n${title}\n${subtitles.join('\n')}\n\n${renderTable(rows)}\n\n${notes}\n\n`,
    );
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(
      `${out}.json`,
      JSON.stringify(
        {
          schema: 1,
          mode: settings.mode,
          date,
          machine,
          // The machine is shared: a load well above 0 during the run means noisier figures.
          loadAverageAtEnd: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
          proxy: proxyVersion,
          // Servers another process killed during the run, restarted by the benchmark.
          revived: servers.revived,
          settings,
          notes: NOTES,
          rows,
          raw,
        },
        null,
        2,
      ) + '\n',
    );
    writeFileSync(`${out}.svg`, renderChart(rows, title, subtitles));
    writeFileSync(
      `${out}.md`,
      [
        `Measured ${date.slice(0, 10)}, proxy at ${proxyVersion}, on ${machineLine(machine)} (\`npm run bench${settings.mode === 'quick' ? ' -- --quick' : ''}\`, ${settings.rounds} round(s), medians).`,
        '',
        renderMarkdownTable(rows),
        '',
        notes,
        '',
        `![proxy vs nginx vs direct](${basename(out)}.svg)`,
        '',
      ].join('\n'),
    );
    progress(`wrote ${out}.json, ${out}.svg and ${out}.md`);
  } catch (err) {
    keepLogs = true;
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanUp();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
