/**
 * Writes a directory the way the kubelet updates a Secret (or ConfigMap) volume,
 * step for step as kubernetes pkg/volume/util/atomic_writer.go (AtomicWriter.Write):
 *
 *   tls.crt -> ..data/tls.crt
 *   ..data  -> ..2026_12_01_22_40_00.123456
 *
 * An update writes a new timestamped directory, points a `..data_tmp` symlink at
 * it, renames that over `..data` (the one atomic step) and deletes the old
 * directory. The user-visible links are never touched after the first write.
 * https://github.com/kubernetes/kubernetes/blob/master/pkg/volume/util/atomic_writer.go
 */
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';

const DATA_DIR = '..data';
const NEW_DATA_DIR = '..data_tmp';

export interface FileProjection {
  data: string | Buffer;
  /** The volume's defaultMode (or the item's mode); Kubernetes' default is 0644. */
  mode: number;
  /** The pod's fsGroup: the kubelet gives the files this group. */
  gid?: number;
}

/** `..2006_01_02_15_04_05.`, Go's layout of time.Now().UTC() that newTimestampDir uses. */
function timestampPrefix(now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return (
    `..${now.getUTCFullYear()}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}` +
    `_${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}.`
  );
}

function readLinkOrEmpty(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

/**
 * One AtomicWriter.Write of `payload` (top-level file names only) into `targetDir`.
 * Returns the new timestamped directory's name.
 */
export function writeAtomically(
  targetDir: string,
  payload: Readonly<Record<string, FileProjection>>,
): string {
  mkdirSync(targetDir, { recursive: true });
  // (2) the current timestamped directory
  const oldTsDir = readLinkOrEmpty(join(targetDir, DATA_DIR));
  // (5) a new one, 0755 whatever the umask
  const tsDir = mkdtempSync(join(targetDir, timestampPrefix()));
  chmodSync(tsDir, 0o755);
  // (6) the payload, each file chmod-ed to its mode
  for (const [name, { data, mode, gid }] of Object.entries(payload)) {
    writeFileSync(join(tsDir, name), data, { mode });
    if (gid !== undefined) chownSync(join(tsDir, name), 0, gid);
    chmodSync(join(tsDir, name), mode);
  }
  // (7) user-visible links, only where missing
  for (const name of Object.keys(payload)) {
    if (readLinkOrEmpty(join(targetDir, name)) === '') {
      symlinkSync(join(DATA_DIR, name), join(targetDir, name));
    }
  }
  // (8) ..data_tmp -> the new directory; (9) renamed over ..data
  symlinkSync(basename(tsDir), join(targetDir, NEW_DATA_DIR));
  renameSync(join(targetDir, NEW_DATA_DIR), join(targetDir, DATA_DIR));
  // (10) user-visible links of files no longer in the payload
  if (oldTsDir !== '') {
    for (const name of removedNames(join(targetDir, oldTsDir), payload)) {
      rmSync(join(targetDir, name), { force: true });
    }
    // (11) the previous timestamped directory
    rmSync(join(targetDir, oldTsDir), { recursive: true, force: true });
  }
  return basename(tsDir);
}

function removedNames(oldDir: string, payload: Readonly<Record<string, FileProjection>>): string[] {
  try {
    return readdirSync(oldDir).filter((name) => !(name in payload));
  } catch {
    return [];
  }
}
