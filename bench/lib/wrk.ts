/**
 * Manifest GETs the way most people measure a proxy: `wrk` with 32 connections for a
 * fixed time (issue 17's independent figures). wrk, like hey, does not verify
 * certificates; every target was verified against the CA when it started.
 */
import { runOK } from './exec.js';
import { MANIFEST_TYPE, TAG } from './manifests.js';
import { REPOSITORY } from './blobs.js';

export interface WrkResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  /** Seconds. */
  p50: number;
  p99: number;
}

/** wrk -t THREADS -c CONNECTIONS -d SECONDS --latency against the bench manifest. */
export async function wrkManifest(
  origin: string,
  connections: number,
  seconds: number,
  threads: number,
): Promise<WrkResult> {
  const url = `${origin}/v2/${REPOSITORY}/manifests/${TAG}`;
  const args = [
    '-t',
    String(threads),
    '-c',
    String(connections),
    '-d',
    `${seconds}s`,
    '--latency',
    '-H',
    `Accept: ${MANIFEST_TYPE}`,
    url,
  ];
  const { stdout } = await runOK('wrk', args, { timeoutMs: (seconds + 60) * 1000 });
  return parseWrk(stdout, `wrk ${args.join(' ')}`);
}

const UNIT_SECONDS: Readonly<Record<string, number>> = { us: 1e-6, ms: 1e-3, s: 1, m: 60 };

/** Reads wrk's summary; a single non-2xx answer or socket error fails the measurement. */
export function parseWrk(output: string, what: string): WrkResult {
  if (/Non-2xx or 3xx responses:/.test(output)) {
    throw new Error(`${what}: some answers were not 2xx/3xx:\n${output}`);
  }
  if (/Socket errors:/.test(output)) throw new Error(`${what}: socket errors:\n${output}`);
  const summary = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(output);
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(output);
  const latency = (percentile: string) => {
    const match = new RegExp(`^\\s+${percentile}%\\s+([\\d.]+)(us|ms|s|m)$`, 'm').exec(output);
    if (!match?.[1] || !match[2]) throw new Error(`${what}: no ${percentile}% latency:\n${output}`);
    return Number(match[1]) * (UNIT_SECONDS[match[2]] ?? NaN);
  };
  if (!summary?.[1] || !summary[2] || !summary[3] || !rate?.[1]) {
    throw new Error(`${what}: no request summary in wrk's output:\n${output}`);
  }
  const requests = Number(summary[1]);
  if (requests === 0) throw new Error(`${what}: no request completed:\n${output}`);
  return {
    requests,
    seconds: Number(summary[2]) * (UNIT_SECONDS[summary[3]] ?? NaN),
    requestsPerSecond: Number(rate[1]),
    p50: latency('50'),
    p99: latency('99'),
  };
}
