/**
 * A real multi-layer OCI image layout on disk (index.json, oci-layout, blobs),
 * with gzip'd tar layers made by tar(1), for skopeo to push.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface OCIImage {
  /** skopeo reference, e.g. oci:/tmp/x/layout:v1 */
  ref: string;
  layerDigests: string[];
  manifestDigest: string;
}

function sha256(data: Buffer): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** An OCI image manifest (gzip'd tar layers) naming these blobs. */
export function ociManifest(
  config: { digest: string; size: number },
  layers: ReadonlyArray<{ digest: string; size: number }>,
): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: layers.map((l) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: l.digest,
        size: l.size,
      })),
    }),
  );
}

/** Writes an image whose layers hold random files of the given sizes (bytes). */
export function buildOCIImage(dir: string, tag: string, layerSizes: number[]): OCIImage {
  const layout = join(dir, 'layout');
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const writeBlob = (data: Buffer): string => {
    const digest = sha256(data);
    writeFileSync(join(blobs, digest.slice(7)), data);
    return digest;
  };
  const layers = layerSizes.map((size, i) => {
    const src = join(dir, `layer-src-${i}`);
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, `file-${i}.bin`), randomBytes(size));
    const tgz = execFileSync('tar', ['-C', src, '-czf', '-', '.'], { maxBuffer: 1 << 30 });
    const uncompressed = execFileSync('tar', ['-C', src, '-cf', '-', '.'], { maxBuffer: 1 << 30 });
    return { digest: writeBlob(tgz), size: tgz.length, diffID: sha256(uncompressed) };
  });
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffID) },
    }),
  );
  const manifest = ociManifest({ digest: writeBlob(config), size: config.length }, layers);
  const manifestDigest = writeBlob(manifest);
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  return { ref: `oci:${layout}:${tag}`, layerDigests: layers.map((l) => l.digest), manifestDigest };
}

/** The bytes of a blob in an OCI layout or a skopeo dir: copy. */
export function readBlob(dir: string, digest: string, layoutKind: 'oci' | 'dir'): Buffer {
  const hex = digest.replace(/^sha256:/, '');
  return readFileSync(layoutKind === 'oci' ? join(dir, 'blobs', 'sha256', hex) : join(dir, hex));
}
