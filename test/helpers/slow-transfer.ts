/**
 * Transfers that take as long as a test needs them to: a blob upload streamed at a
 * set pace, and a download read at a set pace — so that a signal can arrive while
 * they are in flight. Both over verified TLS (the proxy's CA only).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

const MIB = 1 << 20;

/** A blob of `mib` MiB (one random MiB repeated), known by digest without holding it all. */
export function repeatedBlob(mib: number): { chunk: Buffer; mib: number; digest: string } {
  const chunk = randomBytes(MIB);
  const hash = createHash('sha256');
  for (let i = 0; i < mib; i++) hash.update(chunk);
  return { chunk, mib, digest: `sha256:${hash.digest('hex')}` };
}

export interface SlowUpload {
  /** MiB written so far. */
  sent(): number;
  /** The response, or the error when the connection was cut. */
  done: Promise<{ status: number; headers: IncomingHttpHeaders }>;
}

/** PUTs `blob` to `url` (an upload's Location plus ?digest=), one MiB every `msPerMiB`. */
export function putSlowly(
  url: string,
  ca: string,
  blob: { chunk: Buffer; mib: number },
  msPerMiB: number,
): SlowUpload {
  let sent = 0;
  const done = new Promise<{ status: number; headers: IncomingHttpHeaders }>((resolve, reject) => {
    const req = httpsRequest(url, {
      method: 'PUT',
      ca,
      agent: false,
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(blob.mib * MIB),
      },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    void (async () => {
      for (let i = 0; i < blob.mib && !req.destroyed; i++) {
        if (!req.write(blob.chunk)) await new Promise((r) => req.once('drain', r));
        sent++;
        await new Promise((r) => setTimeout(r, msPerMiB));
      }
      req.end();
    })();
  });
  return { sent: () => sent, done };
}

/** GETs `url`, pausing `msPerMiB` after every MiB read; resolves with the status and the body's digest. */
export function getSlowly(
  url: string,
  ca: string,
  msPerMiB: number,
): { received(): number; done: Promise<{ status: number; digest: string; bytes: number }> } {
  let received = 0;
  const done = new Promise<{ status: number; digest: string; bytes: number }>((resolve, reject) => {
    const req = httpsRequest(url, { ca, agent: false }, (res) => {
      const hash = createHash('sha256');
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        const before = Math.floor(received / MIB);
        received += chunk.length;
        if (Math.floor(received / MIB) === before) return;
        res.pause();
        setTimeout(() => res.resume(), msPerMiB);
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          digest: `sha256:${hash.digest('hex')}`,
          bytes: received,
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  return { received: () => received, done };
}

/** Starts an upload on `origin` (POST) and returns the URL to PUT `digest` to. */
export async function startUpload(
  origin: string,
  repo: string,
  digest: string,
  ca: string,
): Promise<string> {
  const location = await new Promise<string>((resolve, reject) => {
    const req = httpsRequest(
      `${origin}/v2/${repo}/blobs/uploads/`,
      { method: 'POST', ca, agent: false },
      (res) => {
        res.resume();
        if (res.statusCode !== 202) reject(new Error(`upload start answered ${res.statusCode}`));
        else resolve(res.headers.location ?? '');
      },
    );
    req.on('error', reject);
    req.end();
  });
  const url = new URL(location, origin);
  url.searchParams.set('digest', digest);
  return url.toString();
}
