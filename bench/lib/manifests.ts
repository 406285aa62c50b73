/**
 * Manifest requests under keep-alive load, with hey (Debian's `hey`): it times
 * HEAD, which wrk cannot (wrk waits for a body a HEAD answer never has).
 * hey does not verify certificates (its transport sets InsecureSkipVerify), so
 * every TLS target is verified against the CA when it starts (servers.ts) and
 * by curl in the blob transfers; hey only measures.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOK } from './exec.js';
import { cacheDir, curlBase, pushSmallBlob, REPOSITORY, type Layer } from './blobs.js';
import type { ManifestMethod } from './settings.js';

export const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const TAG = 'v1';

/** Pushes a config blob and an OCI manifest (config + the layer) as bench:v1. */
export async function pushManifest(origin: string, caFile: string, layer: Layer): Promise<void> {
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: [layer.digest] },
    }),
  );
  const configDigest = await pushSmallBlob(origin, caFile, config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST_TYPE,
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: configDigest,
      size: config.length,
    },
    layers: [
      {
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: layer.digest,
        size: layer.bytes,
      },
    ],
  });
  const file = join(cacheDir(), 'manifest.json');
  writeFileSync(file, manifest);
  const { stdout } = await runOK('curl', [
    ...curlBase(caFile),
    '-X',
    'PUT',
    '-H',
    `Content-Type: ${MANIFEST_TYPE}`,
    '--data-binary',
    `@${file}`,
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    `${origin}/v2/${REPOSITORY}/manifests/${TAG}`,
  ]);
  if (stdout.trim() !== '201') throw new Error(`PUT manifest: HTTP ${stdout.trim()}, expected 201`);
}

export interface LoadResult {
  requests: number;
  requestsPerSecond: number;
  /** Seconds; hey prints latencies to 0.1 ms. */
  p50: number;
  p99: number;
}

/** hey -n N -c C with keep-alive (its default): each worker holds one connection. */
export async function loadManifest(
  origin: string,
  method: ManifestMethod,
  concurrency: number,
  requests: number,
): Promise<LoadResult> {
  const url = `${origin}/v2/${REPOSITORY}/manifests/${TAG}`;
  const { stdout } = await runOK(
    'hey',
    ['-n', String(requests), '-c', String(concurrency), '-m', method, '-A', MANIFEST_TYPE, url],
    { timeoutMs: 300_000 },
  );
  return parseHey(stdout, requests, `hey ${method} -c ${concurrency} ${url}`);
}

/** Reads hey's summary; every request must have answered 200 and none may have failed. */
export function parseHey(output: string, requests: number, what: string): LoadResult {
  const number = (pattern: RegExp, name: string) => {
    const match = pattern.exec(output);
    if (!match?.[1]) throw new Error(`${what}: no ${name} in hey's output:\n${output}`);
    return Number(match[1]);
  };
  if (/Error distribution:/.test(output)) throw new Error(`${what}: requests failed:\n${output}`);
  const ok = number(/\[200\]\s+(\d+) responses/, '200 count');
  if (ok !== requests) throw new Error(`${what}: ${ok} of ${requests} answered 200:\n${output}`);
  return {
    requests,
    requestsPerSecond: number(/Requests\/sec:\s+([\d.]+)/, 'Requests/sec'),
    p50: number(/50% in ([\d.]+) secs/, 'p50'),
    p99: number(/99% in ([\d.]+) secs/, 'p99'),
  };
}
