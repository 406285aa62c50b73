/**
 * From raw rounds to the table of issue 5: one row per metric with the medians
 * for direct, nginx and the proxy, proxy ÷ nginx, and the goal where there is one.
 */
import {
  manifestKey,
  type LoadSample,
  type PerTarget,
  type HandshakeSample,
  type Raw,
  type TransferSample,
  type WrkSample,
} from './measure.js';
import type { TargetName } from './servers.js';
import { median, pairedRatio } from './stats.js';
import { CONCURRENCIES, GiB, METHODS, MiB, TARGETS, type Settings } from './settings.js';

export type RowKind = 'cost' | 'rate' | 'latency' | 'memory' | 'check';

export interface Row {
  id: string;
  section: string;
  label: string;
  unit: string;
  kind: RowKind;
  better: 'lower' | 'higher';
  direct: number | null;
  nginx: number | boolean | null;
  proxy: number | boolean | null;
  /** proxy ÷ nginx (median of per-round ratios where rounds pair up). */
  ratio: number | null;
  target: string | null;
  pass: boolean | null;
  /** Drawn in the chart (the table has every row). */
  chart: boolean;
}

type Values<T> = { [K in TargetName]?: readonly T[] };

interface NumericRow<T> {
  id: string;
  section: string;
  label: string;
  unit: string;
  kind: RowKind;
  better: 'lower' | 'higher';
  samples: Values<T & { round: number }>;
  metric: (sample: T) => number;
  withDirect: boolean;
  chart?: boolean;
  /** Which targets' samples stand in the proxy and nginx columns (default: proxy, nginx). */
  proxyTarget?: TargetName;
  nginxTarget?: TargetName;
}

function numericRow<T>(spec: NumericRow<T>): Row {
  const values = (name: TargetName) => (spec.samples[name] ?? []).map(spec.metric);
  const proxyName = spec.proxyTarget ?? 'proxy';
  const nginxName = spec.nginxTarget ?? 'nginx';
  const ratio = pairedRatio(
    spec.samples[nginxName] ?? [],
    spec.samples[proxyName] ?? [],
    spec.metric,
  );
  return withTarget({
    id: spec.id,
    section: spec.section,
    label: spec.label,
    unit: spec.unit,
    kind: spec.kind,
    better: spec.better,
    direct: spec.withDirect ? median(values('direct')) : null,
    nginx: median(values(nginxName)),
    proxy: median(values(proxyName)),
    ratio,
    target: null,
    pass: null,
    chart: spec.chart ?? true,
  });
}

/** The row with its goal from TARGETS; `workers` divides an absolute memory goal. */
function withTarget(row: Row, workers = 1): Row {
  const goal = TARGETS[row.id];
  if (!goal) return row;
  if ('maxMiBPerWorker' in goal) {
    const perWorker = typeof row.proxy === 'number' ? row.proxy / workers : null;
    const target = `≤ ${goal.maxMiBPerWorker} MiB/worker`;
    return { ...row, target, pass: perWorker === null ? null : perWorker <= goal.maxMiBPerWorker };
  }
  const target = 'max' in goal ? `≤ ${goal.max}×` : `≥ ${goal.min}×`;
  if (row.ratio === null) return { ...row, target, pass: null };
  return { ...row, target, pass: 'max' in goal ? row.ratio <= goal.max : row.ratio >= goal.min };
}

/**
 * Rows that put bench/plain-node-proxy.mjs in the proxy's column: Node's HTTPS server
 * piping to the registry through http.request and nothing else, a Node.js proxy as
 * most are written.
 */
const PLAIN_NODE = 'plain Node proxy (bench/plain-node-proxy.mjs) in the proxy column';

const MIN_LATENCY_FOR_RATIO_MS = 0.5;

/** Latency a proxy adds: its percentile minus direct's in the same round (hey: 0.1 ms steps). */
function addedLatencyRow(
  key: string,
  samples: PerTarget<LoadSample>,
  percentile: 'p50' | 'p99',
  section: string,
): Row {
  const direct = samples.direct ?? [];
  const added = (name: TargetName) =>
    (samples[name] ?? []).flatMap((s) => {
      const d = direct.find((x) => x.round === s.round);
      return d ? [(s[percentile] - d[percentile]) * 1000] : [];
    });
  const nginx = median(added('nginx'));
  const proxy = median(added('proxy'));
  const directMs = median(direct.map((s) => s[percentile] * 1000));
  return {
    id: `manifest.${key.replace(' c=', '.c')}.${percentile}Added`,
    section,
    label: `${percentile} latency added over direct (direct: its own ${percentile})`,
    unit: 'ms',
    kind: 'latency',
    better: 'lower',
    direct: directMs,
    nginx,
    proxy,
    // hey reports 0.1 ms steps: a ratio to fewer than MIN_LATENCY_FOR_RATIO_MS of them is noise.
    ratio:
      nginx !== null && proxy !== null && nginx >= MIN_LATENCY_FOR_RATIO_MS ? proxy / nginx : null,
    target: null,
    pass: null,
    chart: percentile === 'p50',
  };
}

export function buildRows(raw: Raw, settings: Settings): Row[] {
  const rows: Row[] = [];
  const size =
    settings.layerBytes >= GiB
      ? `${settings.layerBytes / GiB} GiB`
      : `${settings.layerBytes / MiB} MiB`;
  for (const kind of ['pull', 'push'] as const) {
    const section =
      kind === 'pull'
        ? `1. blob pull (GET of a ${size} layer)`
        : `2. blob push (POST, one chunked PATCH, PUT of a ${size} layer)`;
    const cpuPerGiB = {
      section,
      unit: 'CPU-s/GiB',
      kind: 'cost',
      better: 'lower',
      samples: raw[kind],
      metric: (s: TransferSample) => s.cpuSeconds / (s.bytes / GiB),
      withDirect: false,
    } as const;
    rows.push(
      numericRow({ ...cpuPerGiB, id: `${kind}.cpuPerGiB`, label: 'CPU-seconds per GiB' }),
      numericRow({
        id: `${kind}.throughput`,
        section,
        label: 'throughput',
        unit: 'MiB/s',
        kind: 'rate',
        better: 'higher',
        samples: raw[kind],
        metric: (s) => s.bytes / MiB / s.seconds,
        withDirect: true,
      }),
      numericRow({
        ...cpuPerGiB,
        id: `${kind}.cpuPerGiB.plainNode`,
        label: `CPU-seconds per GiB, ${PLAIN_NODE}`,
        chart: false,
        proxyTarget: 'plainNode',
      }),
    );
  }
  for (const method of METHODS) {
    for (const concurrency of CONCURRENCIES) {
      const key = manifestKey(method, concurrency);
      const samples = raw.manifest[key] ?? {};
      const section = `3. manifest ${method}, keep-alive, ${concurrency} connection${concurrency > 1 ? 's' : ''}`;
      const id = `manifest.${method}.c${concurrency}`;
      const cpuPer1k = (s: LoadSample) => (s.cpuSeconds * 1000 * 1000) / s.requests;
      rows.push(
        numericRow({
          id: `${id}.rps`,
          section,
          label: 'requests per second',
          unit: 'req/s',
          kind: 'rate',
          better: 'higher',
          samples,
          metric: (s) => s.requestsPerSecond,
          withDirect: true,
        }),
        numericRow({
          id: `${id}.cpuPer1k`,
          section,
          label: 'CPU per 1,000 requests',
          unit: 'CPU-ms',
          kind: 'cost',
          better: 'lower',
          samples,
          metric: cpuPer1k,
          withDirect: false,
        }),
        addedLatencyRow(key, samples, 'p50', section),
        addedLatencyRow(key, samples, 'p99', section),
        numericRow({
          id: `${id}.cpuPer1kQuiet`,
          section,
          label: 'CPU per 1,000 requests, proxy at log level warn',
          unit: 'CPU-ms',
          kind: 'cost',
          better: 'lower',
          samples,
          metric: cpuPer1k,
          withDirect: false,
          chart: false,
          proxyTarget: 'proxyQuiet',
        }),
      );
    }
  }
  const tls = '4. TLS handshakes (s_time, each connection sends GET /v2/)';
  for (const mode of ['full', 'resumed'] as const) {
    const samples = raw.handshakes[mode];
    const count = (s: { full: number; resumed: number }) => (mode === 'full' ? s.full : s.resumed);
    const rate = {
      section: tls,
      unit: '/s',
      kind: 'rate',
      better: 'higher',
      samples,
      metric: (s: HandshakeSample) => count(s) / s.seconds,
      withDirect: false,
    } as const;
    rows.push(
      numericRow({ ...rate, id: `tls.${mode}.rate`, label: `${mode} handshakes per second` }),
      numericRow({
        id: `tls.${mode}.cpu`,
        section: tls,
        label: `CPU per ${mode} handshake (server side)`,
        unit: 'CPU-ms',
        kind: 'cost',
        better: 'lower',
        samples,
        metric: (s) => (s.cpuSeconds * 1000) / (s.full + s.resumed),
        withDirect: false,
      }),
      numericRow({
        ...rate,
        id: `tls.${mode}.rate.plainNode`,
        label: `${mode} handshakes per second, ${PLAIN_NODE}`,
        chart: false,
        proxyTarget: 'plainNode',
      }),
    );
  }
  for (const [field, label] of [
    ['tls12Reconnect', 'TLS 1.2 resumption: s_client -reconnect says "Reused"'],
    ['tls13Ticket', 'TLS 1.3 resumption: ticket from -sess_out, -sess_in says "Reused"'],
  ] as const) {
    const nginx = raw.resumption.nginx?.[field] ?? null;
    const proxy = raw.resumption.proxy?.[field] ?? null;
    rows.push({
      id: `tls.${field}`,
      section: tls,
      label,
      unit: 'yes/no',
      kind: 'check',
      better: 'higher',
      direct: null,
      nginx,
      proxy,
      ratio: null,
      target: 'yes',
      pass: proxy,
      chart: false,
    });
  }
  const memorySection = `5. memory while streaming ${settings.memory.totalBytes / GiB} GiB through ${settings.memory.transfers} transfers (1 slow reader at ${settings.memory.slowRate}B/s)`;
  const memory = raw.memory;
  const medianOf = (
    name: TargetName,
    metric: (s: { growthBytes: number; peakBytes: number }) => number,
  ) => median((memory[name] ?? []).map(metric));
  for (const [id, label, metric, chart] of [
    [
      'memory.growth',
      'resident memory growth (peak − before)',
      (s: { growthBytes: number }) => s.growthBytes / MiB,
      true,
    ],
    ['memory.peak', 'peak resident memory', (s: { peakBytes: number }) => s.peakBytes / MiB, false],
    [
      'memory.peak.plainNode',
      `peak resident memory, ${PLAIN_NODE}`,
      (s: { peakBytes: number }) => s.peakBytes / MiB,
      false,
    ],
  ] as const) {
    const nginx = medianOf('nginx', metric);
    const proxy = medianOf(id.endsWith('.plainNode') ? 'plainNode' : 'proxy', metric);
    const row: Row = {
      id,
      section: memorySection,
      label,
      unit: 'MiB',
      kind: 'memory',
      better: 'lower',
      direct: null,
      nginx,
      proxy,
      // Ratio of medians: a growth near zero is noise, not a baseline to divide by.
      ratio: nginx !== null && proxy !== null && nginx >= 1 ? proxy / nginx : null,
      target: null,
      pass: null,
      chart,
    };
    rows.push(withTarget(row, settings.workers));
  }
  rows.push(
    numericRow({
      id: 'memory.throughput',
      section: memorySection,
      label: 'aggregate throughput of the fast readers',
      unit: 'MiB/s',
      kind: 'rate',
      better: 'higher',
      samples: memory,
      metric: (s) => s.fastBytes / MiB / s.fastSeconds,
      withDirect: false,
      chart: false,
    }),
  );
  rows.push(...wrkRows(raw.wrk, settings));
  return rows;
}

/** 6: wrk, both at --workers, then both at their defaults (how many each ran, in the title). */
function wrkRows(wrk: Raw['wrk'], settings: Settings): Row[] {
  const { connections, seconds } = settings.wrk;
  const count = (samples: PerTarget<WrkSample>, name: TargetName) =>
    median((samples[name] ?? []).map((s) => s.processes));
  const pairs = [
    {
      key: 'workers',
      names: ['nginx', 'proxy'],
      title: `${settings.workers} worker${settings.workers > 1 ? 's' : ''} each`,
    },
    {
      key: 'default',
      names: ['nginxDefault', 'proxyDefault'],
      title:
        `each at its default: nginx worker_processes auto (${count(wrk.default, 'nginxDefault') ?? '?'} processes), ` +
        `the proxy without workers (${count(wrk.default, 'proxyDefault') ?? '?'})`,
    },
  ] as const;
  return pairs.flatMap(({ key, names, title }) => {
    const section = `6. manifest GET, wrk, ${connections} connections, ${seconds} s, ${title}`;
    const common = {
      section,
      samples: wrk[key],
      withDirect: false,
      nginxTarget: names[0],
      proxyTarget: names[1],
    };
    const rps = {
      ...common,
      unit: 'req/s',
      kind: 'rate',
      better: 'higher',
      metric: (s: WrkSample) => s.requestsPerSecond,
    } as const;
    const cpuPer1k = {
      ...common,
      unit: 'CPU-ms',
      kind: 'cost',
      better: 'lower',
      metric: (s: WrkSample) => (s.cpuSeconds * 1000 * 1000) / s.requests,
    } as const;
    const plainNode = { chart: false, proxyTarget: 'plainNode' } as const;
    return [
      numericRow({ ...rps, id: `wrk.${key}.rps`, label: 'requests per second' }),
      numericRow({
        ...cpuPer1k,
        id: `wrk.${key}.cpuPer1k`,
        label: 'CPU per 1,000 requests (every process of each)',
      }),
      numericRow({
        ...common,
        id: `wrk.${key}.p99`,
        label: 'p99 latency (wrk)',
        unit: 'ms',
        kind: 'latency',
        better: 'lower',
        metric: (s) => s.p99 * 1000,
        chart: false,
      }),
      // The plain Node proxy runs one process: beside nginx at --workers only.
      ...(key === 'workers'
        ? [
            numericRow({
              ...rps,
              ...plainNode,
              id: 'wrk.workers.rps.plainNode',
              label: `requests per second, ${PLAIN_NODE} (1 process)`,
            }),
            numericRow({
              ...cpuPer1k,
              ...plainNode,
              id: 'wrk.workers.cpuPer1k.plainNode',
              label: `CPU per 1,000 requests, ${PLAIN_NODE} (1 process)`,
            }),
          ]
        : []),
    ];
  });
}
