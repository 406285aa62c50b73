/**
 * The five measurements of issue 5, each over several rounds in which nginx and
 * the proxy take turns going first, with the CPU time of the measured server's
 * processes read before and after every run.
 */
import { pullBlob, pushBlob, type Layer } from './blobs.js';
import {
  checkResumption,
  countHandshakes,
  type HandshakeCount,
  type Resumption,
} from './handshakes.js';
import { loadManifest, type LoadResult } from './manifests.js';
import { streamAndWatch, type MemoryResult } from './memory.js';
import { wrkManifest, type WrkResult } from './wrk.js';
import { cpuSeconds } from './procfs.js';
import type { Servers, Target, TargetName } from './servers.js';
import { CONCURRENCIES, METHODS, type Settings } from './settings.js';

export interface Measured {
  round: number;
  /** CPU-seconds of the target's processes during the run (0 for direct). */
  cpuSeconds: number;
}
export type TransferSample = Measured & { bytes: number; seconds: number };
export type LoadSample = Measured & LoadResult;
/** `processes`: how many the target ran (nginx master + workers; the proxy, + its workers). */
export type WrkSample = Measured & WrkResult & { processes: number };
export type HandshakeSample = Measured & HandshakeCount;
export type MemorySample = MemoryResult & { round: number };
export type PerTarget<T> = Partial<Record<TargetName, T[]>>;

export interface Raw {
  pull: PerTarget<TransferSample>;
  push: PerTarget<TransferSample>;
  /** Keyed by manifestKey(method, concurrency). */
  manifest: Record<string, PerTarget<LoadSample>>;
  /** Section 6: both at --workers, and both at their default process counts. */
  wrk: { workers: PerTarget<WrkSample>; default: PerTarget<WrkSample> };
  handshakes: { full: PerTarget<HandshakeSample>; resumed: PerTarget<HandshakeSample> };
  resumption: Partial<Record<TargetName, Resumption>>;
  memory: PerTarget<MemorySample>;
}

export type Progress = (line: string) => void;

export function manifestKey(method: string, concurrency: number): string {
  return `${method} c=${concurrency}`;
}

/** `first` in order, then the others, swapped on odd rounds (alternation cancels drift). */
export function roundOrder<T>(round: number, first: readonly T[], others: readonly T[]): T[] {
  return [...first, ...(round % 2 === 0 ? others : [...others].reverse())];
}

/** A server restarted after a neighbour killed it gets this many more tries per measurement. */
const MAX_REVIVALS = 3;

/**
 * Runs `work`. If it failed because another process killed one of the servers (the
 * machine is shared), restarts that server, warms it with one discarded run, and
 * repeats; any other failure is thrown at once.
 */
async function withRevival<T>(
  servers: Servers,
  progress: Progress,
  what: string,
  work: () => Promise<T>,
): Promise<T> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await work();
    } catch (err) {
      const revived = await servers.reviveKilled();
      if (revived.length === 0 || attempt >= MAX_REVIVALS) throw err;
      progress(
        `${what}: ${revived.join(', ')} was stopped by another process; restarted, repeating`,
      );
      await work().catch(() => undefined);
    }
  }
}

async function measured<T extends object>(
  servers: Servers,
  progress: Progress,
  target: Target,
  round: number,
  work: () => Promise<T>,
): Promise<T & Measured> {
  return withRevival(servers, progress, `${target.name} round ${round + 1}`, async () => {
    target.assertRunning();
    const pids = target.pids();
    const before = pids.length > 0 ? cpuSeconds(pids) : 0;
    const result = await work();
    target.assertRunning();
    const used = pids.length > 0 ? cpuSeconds(pids) - before : 0;
    return { ...result, round, cpuSeconds: used };
  });
}

/** What most sections measure in turn: nginx, the proxy, and the plain Node proxy. */
function sideBySide(servers: Servers): Target[] {
  return [servers.nginx, servers.proxy, servers.plainNode];
}

function push<T>(table: PerTarget<T>, name: TargetName, sample: T): void {
  (table[name] ??= []).push(sample);
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** 1 and 2: one layer pulled (GET) or pushed (POST, PATCH, PUT) per target per round. */
export async function measureTransfers(
  kind: 'pull' | 'push',
  servers: Servers,
  layer: Layer,
  settings: Settings,
  progress: Progress,
): Promise<PerTarget<TransferSample>> {
  const transfer = kind === 'pull' ? pullBlob : pushBlob;
  const table: PerTarget<TransferSample> = {};
  for (let round = 0; round < settings.rounds; round += 1) {
    for (const target of roundOrder(round, [servers.direct], sideBySide(servers))) {
      const sample = await measured(servers, progress, target, round, () =>
        transfer(target.origin, servers.caFile, layer),
      );
      push(table, target.name, sample);
      progress(
        `${kind} round ${round + 1}/${settings.rounds} ${target.name}: ` +
          `${(sample.bytes / MiB / sample.seconds).toFixed(0)} MiB/s` +
          (target.pids().length > 0
            ? `, ${(sample.cpuSeconds / (sample.bytes / GiB)).toFixed(2)} CPU-s/GiB`
            : ''),
      );
    }
  }
  return table;
}

/** 3: manifest GET and HEAD at each concurrency; the quiet proxy shows what its request log costs. */
export async function measureManifests(
  servers: Servers,
  settings: Settings,
  progress: Progress,
): Promise<Record<string, PerTarget<LoadSample>>> {
  const targets = [servers.direct, servers.nginx, servers.proxy, servers.proxyQuiet];
  // Warm-up: connections, caches and the proxy's JIT, for every target.
  for (const target of targets) {
    await withRevival(servers, progress, `${target.name} warm-up`, () =>
      loadManifest(target.origin, 'GET', 32, 32 * 20),
    );
  }
  const tables: Record<string, PerTarget<LoadSample>> = {};
  for (let round = 0; round < settings.rounds; round += 1) {
    for (const method of METHODS) {
      for (const concurrency of CONCURRENCIES) {
        const key = manifestKey(method, concurrency);
        const table = (tables[key] ??= {});
        const requests = settings.manifestRequests[concurrency];
        const order = roundOrder(
          round,
          [servers.direct],
          [servers.nginx, servers.proxy, servers.proxyQuiet],
        );
        for (const target of order) {
          const sample = await measured(servers, progress, target, round, () =>
            loadManifest(target.origin, method, concurrency, requests),
          );
          push(table, target.name, sample);
          progress(
            `manifest ${key} round ${round + 1}/${settings.rounds} ${target.name}: ` +
              `${sample.requestsPerSecond.toFixed(0)} req/s, p50 ${(sample.p50 * 1000).toFixed(1)} ms` +
              (target.pids().length > 0
                ? `, ${((sample.cpuSeconds * 1000 * 1000) / requests).toFixed(0)} CPU-ms/1k`
                : ''),
          );
        }
      }
    }
  }
  return tables;
}

/**
 * 6: manifest GETs with wrk for a fixed time, as most people measure a proxy: once with
 * both at --workers, once with both at their defaults (nginx `worker_processes auto`,
 * the proxy without `workers`). CPU of every process of each.
 */
export async function measureWrk(
  servers: Servers,
  settings: Settings,
  progress: Progress,
): Promise<Raw['wrk']> {
  const { connections, seconds, threads } = settings.wrk;
  const pairs = {
    workers: sideBySide(servers),
    default: [servers.nginxDefault, servers.proxyDefault],
  } as const;
  for (const target of [...pairs.workers, ...pairs.default]) {
    await withRevival(servers, progress, `${target.name} warm-up`, () =>
      wrkManifest(target.origin, connections, 1, threads),
    );
  }
  const wrk: Raw['wrk'] = { workers: {}, default: {} };
  for (let round = 0; round < settings.rounds; round += 1) {
    for (const key of ['workers', 'default'] as const) {
      for (const target of roundOrder(round, [], pairs[key])) {
        const sample = await measured(servers, progress, target, round, async () => ({
          ...(await wrkManifest(target.origin, connections, seconds, threads)),
          processes: target.pids().length,
        }));
        push(wrk[key], target.name, sample);
        progress(
          `wrk ${key} round ${round + 1}/${settings.rounds} ${target.name} (${sample.processes} processes): ` +
            `${sample.requestsPerSecond.toFixed(0)} req/s, ` +
            `${((sample.cpuSeconds * 1000 * 1000) / sample.requests).toFixed(0)} CPU-ms/1k`,
        );
      }
    }
  }
  return wrk;
}

/** 4: full and resumed handshakes per second, and whether resumption works at all. */
export async function measureHandshakes(
  servers: Servers,
  settings: Settings,
  dir: string,
  progress: Progress,
): Promise<Pick<Raw, 'handshakes' | 'resumption'>> {
  const resumption: Raw['resumption'] = {};
  for (const target of [servers.nginx, servers.proxy]) {
    const result = await withRevival(servers, progress, `${target.name} resumption`, () =>
      checkResumption(target.port, servers.caFile, dir),
    );
    resumption[target.name] = result;
    progress(
      `resumption ${target.name}: TLS 1.2 -reconnect ${result.tls12Reconnect ? 'Reused' : 'NOT reused'}, ` +
        `TLS 1.3 ticket ${result.tls13Ticket ? 'Reused' : 'NOT reused'}`,
    );
  }
  const handshakes: Raw['handshakes'] = { full: {}, resumed: {} };
  const targets = sideBySide(servers);
  for (const target of targets) {
    await withRevival(servers, progress, `${target.name} warm-up`, () =>
      countHandshakes(target.port, servers.caFile, '-new', 1, 1),
    );
  }
  for (let round = 0; round < settings.rounds; round += 1) {
    for (const mode of ['-new', '-reuse'] as const) {
      const table = mode === '-new' ? handshakes.full : handshakes.resumed;
      for (const target of roundOrder(round, [], targets)) {
        const sample = await measured(servers, progress, target, round, () =>
          countHandshakes(
            target.port,
            servers.caFile,
            mode,
            settings.handshakeSeconds,
            settings.handshakeClients,
          ),
        );
        push(table, target.name, sample);
        const count = mode === '-new' ? sample.full : sample.resumed;
        progress(
          `handshakes ${mode === '-new' ? 'full' : 'resumed'} round ${round + 1}/${settings.rounds} ` +
            `${target.name}: ${(count / sample.seconds).toFixed(0)}/s` +
            ` (${sample.full} full, ${sample.resumed} resumed)`,
        );
      }
    }
  }
  return { handshakes, resumption };
}

/** 5: RSS of nginx and of the proxy while the layer streams to 8 readers, one of them slow. */
export async function measureMemory(
  servers: Servers,
  layer: Layer,
  settings: Settings,
  progress: Progress,
): Promise<PerTarget<MemorySample>> {
  const table: PerTarget<MemorySample> = {};
  for (let round = 0; round < settings.memory.rounds; round += 1) {
    for (const target of roundOrder(round, [], sideBySide(servers))) {
      const result = await withRevival(servers, progress, `${target.name} memory`, () =>
        streamAndWatch(target, servers.caFile, layer, settings.memory),
      );
      push(table, target.name, { ...result, round });
      progress(
        `memory round ${round + 1}/${settings.memory.rounds} ${target.name}: ` +
          `RSS ${(result.beforeBytes / MiB).toFixed(0)} → peak ${(result.peakBytes / MiB).toFixed(0)} MiB ` +
          `(+${(result.growthBytes / MiB).toFixed(0)}) over ${(result.streamedBytes / GiB).toFixed(2)} GiB ` +
          `(fast readers: ${(result.fastBytes / GiB).toFixed(2)} GiB in ${result.fastSeconds.toFixed(1)} s)`,
      );
    }
  }
  return table;
}
