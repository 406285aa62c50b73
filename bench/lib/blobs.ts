/**
 * The layer and its transfers. curl is the client for every target (the same
 * client, so only the server side differs): pull is one GET to /dev/null, push
 * is what docker does: POST to open an upload, one PATCH that streams the whole
 * layer with chunked transfer encoding, and PUT ?digest= to commit it.
 */
import { createHash, randomFillSync } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runOK } from './exec.js';
import { MiB } from './settings.js';

export const REPOSITORY = 'bench';

export interface Layer {
  file: string;
  bytes: number;
  digest: string;
}

/** Generated files kept between runs (the layer takes seconds to make and hash). */
export function cacheDir(): string {
  const dir = join(tmpdir(), 'rtp-bench-cache');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Random (incompressible) data, made once per size and kept in the system temp dir. */
export function ensureLayer(bytes: number): Layer {
  const file = join(cacheDir(), `layer-${bytes}.bin`);
  const digestFile = `${file}.sha256`;
  if (existsSync(file) && existsSync(digestFile)) {
    return { file, bytes, digest: readFileSync(digestFile, 'utf8').trim() };
  }
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(MiB);
  const partial = `${file}.partial`;
  const fd = openSync(partial, 'w');
  try {
    for (let written = 0; written < bytes; written += chunk.length) {
      const piece = chunk.subarray(0, Math.min(chunk.length, bytes - written));
      randomFillSync(piece);
      hash.update(piece);
      writeSync(fd, piece);
    }
  } finally {
    closeSync(fd);
  }
  const digest = `sha256:${hash.digest('hex')}`;
  renameSync(partial, file);
  writeFileSync(digestFile, digest + '\n');
  return { file, bytes, digest };
}

/** Options every curl call shares: quiet, errors shown, the proxy's CA for https. */
export function curlBase(caFile: string): string[] {
  return ['-sS', '--cacert', caFile];
}

export interface Transfer {
  bytes: number;
  /** Wall time of the data transfer (curl's time_total of the GET or the PATCH). */
  seconds: number;
}

const WRITE_OUT = '%{http_code} %{size_download} %{size_upload} %{time_total}';

function parseWriteOut(stdout: string, what: string, expected: number) {
  const [code, down, up, total] = stdout.trim().split(' ').map(Number);
  if (code !== expected) throw new Error(`${what}: HTTP ${code}, expected ${expected}`);
  return { down: down ?? 0, up: up ?? 0, seconds: total ?? 0 };
}

export async function pullBlob(origin: string, caFile: string, layer: Layer): Promise<Transfer> {
  const url = `${origin}/v2/${REPOSITORY}/blobs/${layer.digest}`;
  const { stdout } = await runOK('curl', [
    ...curlBase(caFile),
    '-o',
    '/dev/null',
    '-w',
    WRITE_OUT,
    url,
  ]);
  const out = parseWriteOut(stdout, `GET ${url}`, 200);
  if (out.down !== layer.bytes)
    throw new Error(`GET ${url}: ${out.down} bytes, expected ${layer.bytes}`);
  return { bytes: out.down, seconds: out.seconds };
}

/** POST …/blobs/uploads/: the upload's URL from the Location header. */
async function startUpload(origin: string, caFile: string): Promise<string> {
  const opened = await runOK('curl', [
    ...curlBase(caFile),
    ...['-X', 'POST', '-o', '/dev/null', '-D', '-'],
    `${origin}/v2/${REPOSITORY}/blobs/uploads/`,
  ]);
  return locationOf(opened.stdout, origin, 'POST blobs/uploads/');
}

export async function pushBlob(origin: string, caFile: string, layer: Layer): Promise<Transfer> {
  const uploadURL = await startUpload(origin, caFile);
  // -T streams the file (--data-binary would read it all into memory); an empty Expect
  // header stops curl's 100-continue wait, which docker does not do either.
  const patched = await runOK('curl', [
    ...curlBase(caFile),
    '-X',
    'PATCH',
    '-T',
    layer.file,
    '-H',
    'Transfer-Encoding: chunked',
    '-H',
    'Content-Type: application/octet-stream',
    '-H',
    'Expect:',
    '-o',
    '/dev/null',
    '-D',
    '-',
    '-w',
    `\n${WRITE_OUT}`,
    uploadURL,
  ]);
  const lines = patched.stdout.trimEnd().split('\n');
  const out = parseWriteOut(lines.at(-1) ?? '', `PATCH ${uploadURL}`, 202);
  // curl's size_upload counts the chunk framing too; the registry's Range says what it stored.
  const range = /^range:\s*0-(\d+)\s*$/im.exec(patched.stdout)?.[1];
  if (Number(range) + 1 !== layer.bytes) {
    throw new Error(`PATCH: the registry holds "0-${range}", expected 0-${layer.bytes - 1}`);
  }
  const commitURL = new URL(locationOf(patched.stdout, origin, 'PATCH'));
  commitURL.searchParams.set('digest', layer.digest);
  const committed = await runOK('curl', [
    ...curlBase(caFile),
    '-X',
    'PUT',
    '-o',
    '/dev/null',
    '-w',
    WRITE_OUT,
    commitURL.href,
  ]);
  parseWriteOut(committed.stdout, 'PUT ?digest=', 201);
  return { bytes: layer.bytes, seconds: out.seconds };
}

/** A small blob (the image config): POST to open an upload, then one PUT with the body and digest. */
export async function pushSmallBlob(origin: string, caFile: string, body: Buffer): Promise<string> {
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  const file = join(cacheDir(), `${digest.slice(7)}.blob`);
  writeFileSync(file, body);
  const commitURL = new URL(await startUpload(origin, caFile));
  commitURL.searchParams.set('digest', digest);
  const { stdout } = await runOK('curl', [
    ...curlBase(caFile),
    '-X',
    'PUT',
    '--data-binary',
    `@${file}`,
    '-H',
    'Content-Type: application/octet-stream',
    '-o',
    '/dev/null',
    '-w',
    WRITE_OUT,
    commitURL.href,
  ]);
  parseWriteOut(stdout, 'PUT ?digest= (config blob)', 201);
  return digest;
}

function locationOf(headers: string, origin: string, what: string): string {
  const match = /^location:\s*(\S+)\s*$/im.exec(headers);
  if (!match?.[1]) throw new Error(`${what}: no Location in the answer:\n${headers}`);
  return new URL(match[1], origin).href;
}
