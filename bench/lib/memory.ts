/**
 * Resident memory while many layer pulls stream at once, one of them through a
 * slow reader (curl --limit-rate): a proxy that does not pass backpressure on
 * buffers what the slow client has not read yet, and its RSS grows.
 */
import { curlBase, pullBlob, REPOSITORY, type Layer } from './blobs.js';
import { run, sleep } from './exec.js';
import { rssBytes } from './procfs.js';
import type { Target } from './servers.js';
import type { Settings } from './settings.js';

const SAMPLE_INTERVAL_MS = 50;
/** After the transfers, how long to wait before the "after" sample (GC, freed buffers). */
const SETTLE_MS = 1_000;

export interface MemoryResult {
  beforeBytes: number;
  peakBytes: number;
  afterBytes: number;
  growthBytes: number;
  /** Bytes streamed by all readers, the slow one included. */
  streamedBytes: number;
  slowBytes: number;
  /** Bytes the fast readers pulled, and how long they took (the slow reader ends later). */
  fastBytes: number;
  fastSeconds: number;
  /** Until the slow reader's last session ended too. */
  seconds: number;
}

export async function streamAndWatch(
  target: Target,
  caFile: string,
  layer: Layer,
  memory: Settings['memory'],
): Promise<MemoryResult> {
  target.assertRunning();
  const pids = target.pids();
  const beforeBytes = rssBytes(pids);
  let peakBytes = beforeBytes;
  const sampler = setInterval(() => {
    try {
      peakBytes = Math.max(peakBytes, rssBytes(pids));
    } catch {
      // The process is gone; assertRunning() says so after the transfers.
    }
  }, SAMPLE_INTERVAL_MS);
  const started = process.hrtime.bigint();
  try {
    let pullsLeft = Math.ceil(memory.totalBytes / layer.bytes);
    let fastBytes = 0;
    let fastDone = false;
    let fastSeconds = 0;
    const fastReader = async () => {
      while (pullsLeft > 0) {
        pullsLeft -= 1;
        const pulled = await pullBlob(target.origin, caFile, layer);
        fastBytes += pulled.bytes;
      }
    };
    const fast = Promise.all(Array.from({ length: memory.transfers - 1 }, fastReader)).finally(
      () => {
        fastDone = true;
        fastSeconds = Number(process.hrtime.bigint() - started) / 1e9;
      },
    );
    const slow = slowReader(target.origin, caFile, layer, memory, () => fastDone);
    const [, slowBytes] = await Promise.all([fast, slow]);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    target.assertRunning();
    await sleep(SETTLE_MS);
    const afterBytes = rssBytes(pids);
    return {
      beforeBytes,
      peakBytes,
      afterBytes,
      growthBytes: peakBytes - beforeBytes,
      streamedBytes: fastBytes + slowBytes,
      slowBytes,
      fastBytes,
      fastSeconds,
      seconds,
    };
  } finally {
    clearInterval(sampler);
  }
}

/** Reads at `slowRate`, reconnecting every `slowSessionSeconds`, until the fast readers are done. */
async function slowReader(
  origin: string,
  caFile: string,
  layer: Layer,
  memory: Settings['memory'],
  done: () => boolean,
): Promise<number> {
  let bytes = 0;
  do {
    const result = await run('curl', [
      ...curlBase(caFile),
      '--limit-rate',
      memory.slowRate,
      '--max-time',
      String(memory.slowSessionSeconds),
      '-o',
      '/dev/null',
      '-w',
      '%{size_download}',
      `${origin}/v2/${REPOSITORY}/blobs/${layer.digest}`,
    ]);
    // 28: --max-time reached, as intended for a reader slower than the session.
    if (result.code !== 0 && result.code !== 28) {
      throw new Error(`slow reader: curl exited ${result.code}: ${result.stderr}`);
    }
    bytes += Number(result.stdout.trim());
  } while (!done());
  return bytes;
}
