/**
 * Seeing at once that a watched file was replaced, however it was replaced:
 * renamed over (ACME clients, `mv`), written in place, or swapped by a symlink
 * somewhere on its path. The kubelet updates a Secret volume by renaming a
 * `..data_tmp` symlink over `..data` (tls.crt -> ..data/tls.crt stays as it is),
 * certbot by pointing live/NAME/fullchain.pem at a new archive file.
 * https://github.com/kubernetes/kubernetes/blob/master/pkg/volume/util/atomic_writer.go
 *
 * So directories are watched, not files (a watch on a file follows its inode and
 * dies with it, DELETE_SELF): every directory in which resolving a watched path
 * passes a symlink or reaches the file. An event counts when it names an entry
 * passed on the way. When a burst of them has settled, the paths are resolved
 * again (the watched directories follow the links) and `changed` is called once.
 */
import { lstatSync, readlinkSync, watch, type FSWatcher } from 'node:fs';
import { join, resolve, sep } from 'node:path';

/** Replacing a chain and its key takes several renames: report once they are done. */
export const WATCH_SETTLE_MS = 1000;

/** Linux gives up after 40 symlinks in one lookup (MAXSYMLINKS); so does this. */
const MAX_SYMLINKS = 40;

export interface FileWatch {
  /** Resolves the paths again: watches a directory that has appeared, drops one that went away. */
  refresh(): void;
  close(): void;
}

export interface Resolution {
  /** Every entry passed while resolving the path: links, directories, the file. */
  entries: string[];
  /** Where those entries can change: each link's directory and the file's. */
  dirs: string[];
}

/**
 * Follows `file` component by component, as the kernel resolves it.
 *
 * @example
 * resolution('/etc/tls/tls.crt') // a Secret volume:
 * // entries: […, '/etc/tls/tls.crt', '/etc/tls/..data', '/etc/tls/..2026_12_01_22_40_00.1234', '/etc/tls/..2026_12_01_22_40_00.1234/tls.crt']
 * // dirs: ['/etc/tls', '/etc/tls/..2026_12_01_22_40_00.1234']
 */
export function resolution(file: string): Resolution {
  const entries = new Set<string>();
  const dirs = new Set<string>();
  let pending = components(resolve(file));
  let at: string = sep;
  let links = 0;
  while (pending.length > 0) {
    const entry = join(at, pending.shift() as string);
    entries.add(entry);
    let target: string | undefined;
    try {
      target = lstatSync(entry).isSymbolicLink() ? readlinkSync(entry) : undefined;
    } catch {
      dirs.add(at); // not there (yet): its directory is where it will appear
      break;
    }
    if (target === undefined) {
      if (pending.length === 0) dirs.add(at);
      at = entry;
      continue;
    }
    dirs.add(at);
    if (++links > MAX_SYMLINKS) break;
    // `at` holds no links, so a relative target's `..` can be resolved by name.
    pending = [...components(resolve(at, target)), ...pending];
    at = sep;
  }
  return { entries: [...entries], dirs: [...dirs] };
}

function components(path: string): string[] {
  return path.split(sep).filter((c) => c !== '');
}

export function watchFiles(
  files: readonly string[],
  changed: () => void,
  settleMs = WATCH_SETTLE_MS,
): FileWatch {
  let relevant = new Set<string>();
  const watchers = new Map<string, FSWatcher>();
  let settle: NodeJS.Timeout | undefined;
  const onEvent = (dir: string, name: string | null) => {
    // A null name: the kernel's queue overflowed, anything may have changed.
    if (name !== null && !relevant.has(join(dir, name))) return;
    clearTimeout(settle);
    settle = setTimeout(() => {
      refresh();
      changed();
    }, settleMs);
    settle.unref();
  };
  const refresh = () => {
    const resolved = files.map(resolution);
    relevant = new Set(resolved.flatMap((r) => r.entries));
    const dirs = new Set(resolved.flatMap((r) => r.dirs));
    for (const [dir, watcher] of watchers) {
      if (dirs.has(dir)) continue;
      watcher.close();
      watchers.delete(dir);
    }
    for (const dir of dirs) {
      if (watchers.has(dir)) continue;
      const watcher = watchDirectory(dir, onEvent, (gone) => {
        if (watchers.get(dir) === gone) watchers.delete(dir);
      });
      if (watcher) watchers.set(dir, watcher);
    }
  };
  refresh();
  return {
    refresh,
    close: () => {
      clearTimeout(settle);
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
    },
  };
}

function watchDirectory(
  dir: string,
  onEvent: (dir: string, name: string | null) => void,
  onGone: (watcher: FSWatcher) => void,
): FSWatcher | undefined {
  try {
    const watcher = watch(dir, { persistent: false }, (_event, name) =>
      onEvent(dir, name === null ? null : String(name)),
    );
    // The directory went away: the next refresh watches whatever replaced it.
    watcher.on('error', () => {
      watcher.close();
      onGone(watcher);
    });
    return watcher;
  } catch {
    return undefined; // no such directory (yet), or no inotify: polling covers it
  }
}
