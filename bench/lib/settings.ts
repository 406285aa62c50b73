/**
 * How much the benchmark does: the full run (for people, several minutes) and
 * the quick smoke run (CI, well under a minute, tiny sizes, one round).
 */
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export interface Settings {
  mode: 'full' | 'quick';
  /** Rounds per measurement; nginx and the proxy swap order every round. */
  rounds: number;
  /** Processes serving the port, for each: nginx worker_processes, the proxy's RTP_WORKERS. */
  workers: number;
  /** The layer pushed and pulled (issue: ≥ 1 GiB). */
  layerBytes: number;
  /** hey requests per run, by concurrency (keep-alive; each worker holds one connection). */
  manifestRequests: Record<ManifestConcurrency, number>;
  /** Section 6: `wrk` against the manifest, as most people measure a proxy (issue 17). */
  wrk: { connections: number; seconds: number; threads: number };
  /** Seconds each `openssl s_time` client runs. */
  handshakeSeconds: number;
  /** Parallel `openssl s_time` clients (each one connects, handshakes, closes, sequentially). */
  handshakeClients: number;
  memory: {
    rounds: number;
    /** Bytes the fast readers pull in total (issue: 10 GiB). */
    totalBytes: number;
    /** Concurrent transfers, one of them the slow reader (issue: 8). */
    transfers: number;
    /** curl --limit-rate for the slow reader. */
    slowRate: string;
    /** The slow reader reconnects after this long (curl --max-time) until the fast readers are done. */
    slowSessionSeconds: number;
  };
}

export const CONCURRENCIES = [1, 32] as const;
export type ManifestConcurrency = (typeof CONCURRENCIES)[number];
export const METHODS = ['GET', 'HEAD'] as const;
export type ManifestMethod = (typeof METHODS)[number];

export const FULL: Settings = {
  mode: 'full',
  rounds: 5,
  workers: 1,
  layerBytes: 1 * GiB,
  manifestRequests: { 1: 2_000, 32: 6_400 },
  wrk: { connections: 32, seconds: 5, threads: 2 },
  handshakeSeconds: 3,
  handshakeClients: 2,
  memory: {
    rounds: 3,
    totalBytes: 10 * GiB,
    transfers: 8,
    slowRate: '20M',
    slowSessionSeconds: 10,
  },
};

export const QUICK: Settings = {
  mode: 'quick',
  rounds: 1,
  workers: 1,
  layerBytes: 32 * MiB,
  manifestRequests: { 1: 200, 32: 640 },
  wrk: { connections: 32, seconds: 1, threads: 2 },
  handshakeSeconds: 1,
  handshakeClients: 2,
  memory: {
    rounds: 1,
    totalBytes: 256 * MiB,
    transfers: 8,
    slowRate: '20M',
    slowSessionSeconds: 2,
  },
};

/**
 * Goals (issue 17). Most are proxy ÷ nginx, at most (`max`) or at least (`min`);
 * memory is absolute: the proxy's peak RSS divided by its serving processes. Rows
 * without an entry are reported without a pass/fail mark.
 */
export type Goal = { max: number } | { min: number } | { maxMiBPerWorker: number };

const MANIFEST_CPU: Goal = { max: 2.0 };
const MANIFEST_RATE: Goal = { min: 0.95 };

export const TARGETS: Readonly<Record<string, Goal>> = {
  'pull.cpuPerGiB': { max: 0.9 },
  'push.cpuPerGiB': { max: 1.5 },
  'manifest.GET.c32.cpuPer1k': MANIFEST_CPU,
  'manifest.GET.c32.rps': MANIFEST_RATE,
  'wrk.workers.cpuPer1k': MANIFEST_CPU,
  'wrk.workers.rps': MANIFEST_RATE,
  'wrk.default.cpuPer1k': MANIFEST_CPU,
  'wrk.default.rps': MANIFEST_RATE,
  'tls.full.rate': { min: 1.0 },
  'tls.resumed.rate': { min: 0.8 },
  'memory.peak': { maxMiBPerWorker: 64 },
};
