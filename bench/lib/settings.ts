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
 * Goals, as proxy ÷ nginx. The example: CPU per GiB within 1.3× of nginx.
 * Rows without an entry are reported without a pass/fail mark.
 */
export const TARGETS: Readonly<Record<string, { max: number }>> = {
  'pull.cpuPerGiB': { max: 1.3 },
  'push.cpuPerGiB': { max: 1.3 },
};
