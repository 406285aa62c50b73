/**
 * Prometheus for end-to-end tests: a parser for the text exposition format
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), promtool, and
 * a real Prometheus server (Debian's `prometheus`) scraping a proxy's admin listener.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from './eventually.js';
import { freePort, stopProcess, waitForOutput } from './processes.js';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  text: string;
  /** # TYPE of each metric family: counter, gauge, histogram, … */
  types: Map<string, string>;
  samples: Sample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseScrape(text: string): Scrape {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1] as string, type[2] as string);
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (m[2] ?? '').matchAll(LABEL))
      labels[key as string] = value as string;
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return { text, types, samples };
}

/** The sum over the samples of `name` whose labels include `labels` (0 when none match). */
export function sampleSum(
  scrape: Scrape,
  name: string,
  labels: Record<string, string> = {},
): number {
  return scrape.samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

export async function fetchScrape(url: string): Promise<Scrape> {
  const res = await fetch(url).catch((err: Error & { cause?: { code?: string } }) => {
    throw new Error(`GET ${url}: ${err.message} (${err.cause?.code ?? 'no code'})`, { cause: err });
  });
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
  return parseScrape(await res.text());
}

/** Scrapes until `done` holds (counters such as handshake failures are counted asynchronously). */
export function scrapeUntil(
  url: string,
  what: string,
  done: (scrape: Scrape) => boolean,
  timeoutMs = 10_000,
): Promise<Scrape> {
  return eventually(
    `a scrape of ${url} with ${what}`,
    async () => {
      const scrape = await fetchScrape(url);
      return done(scrape) && scrape;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

export function promtool(
  args: readonly string[],
  input?: string,
): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, {
    encoding: 'utf8',
    timeout: 60_000,
    ...(input === undefined ? {} : { input }),
  });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

export interface PrometheusServer {
  url: string;
  /** An instant query's result vector. */
  query(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  alerts(): Promise<Array<{ labels: Record<string, string>; state: string }>>;
  stop(): Promise<void>;
}

/** Prometheus scraping `target` (host:port) every second as `job`, evaluating `ruleFiles` every second. */
export async function startPrometheus(opts: {
  dir: string;
  target: string;
  job: string;
  ruleFiles: readonly string[];
}): Promise<PrometheusServer> {
  mkdirSync(opts.dir, { recursive: true });
  const config = join(opts.dir, 'prometheus.yml');
  writeFileSync(
    config,
    JSON.stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: opts.ruleFiles,
      scrape_configs: [{ job_name: opts.job, static_configs: [{ targets: [opts.target] }] }],
    }),
  );
  const port = await freePort();
  const child = spawn(
    'prometheus',
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(opts.dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  await waitForOutput(child, () => output, /Server is ready to receive web requests/);
  const url = `http://127.0.0.1:${port}`;
  const api = async <T>(path: string): Promise<T> => {
    const body = (await (await fetch(`${url}${path}`)).json()) as { status: string; data: T };
    if (body.status !== 'success') {
      throw new Error(`Prometheus ${decodeURIComponent(path)}: ${JSON.stringify(body)}`);
    }
    return body.data;
  };
  return {
    url,
    query: async (expr) =>
      (
        await api<{ result: Array<{ metric: Record<string, string>; value: [number, string] }> }>(
          `/api/v1/query?query=${encodeURIComponent(expr)}`,
        )
      ).result,
    alerts: async () =>
      (
        await api<{ alerts: Array<{ labels: Record<string, string>; state: string }> }>(
          '/api/v1/alerts',
        )
      ).alerts,
    stop: async () => {
      await stopProcess(child);
    },
  };
}
