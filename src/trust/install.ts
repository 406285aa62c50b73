/**
 * Does on this machine what the snippets of instructions.ts do: the same files, the
 * same modes (directories 0755, files 0644), each written to a temporary name and
 * renamed so that a client never reads half a CA file.
 */
import { execFileSync } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { RTPError } from '../errors.js';
import { checkTarget, type TrustTarget } from './instructions.js';
import {
  CLIENT_KINDS,
  CLIENT_PRESENCE,
  SYSTEM_STORES,
  absenceReason,
  anchorFileName,
  anchorFiles,
  clientFiles,
  type ClientKind,
  type PlannedFile,
  type SystemStore,
} from './layout.js';

export interface InstallOptions {
  kinds: ClientKind[];
  /** Prefix for every written path (tests, image builds); default '/'. */
  root?: string;
  /** Run update-ca-certificates / update-ca-trust for 'system'; default true. */
  runUpdate?: boolean;
  /** Where to look for those commands; default process.env.PATH. */
  searchPath?: string;
}

/**
 * @example installTrust(target, { kinds: ['docker', 'containerd'] })
 *   // → { written: ['/etc/docker/certs.d/registry.lan:5443/ca.crt', …], ran: [] }
 */
export function installTrust(
  t: TrustTarget,
  opts: InstallOptions,
): { written: string[]; ran: string[] } {
  const { hostPort, certs } = checkTarget(t);
  const root = opts.root ?? '/';
  const written: string[] = [];
  const ran: string[] = [];
  for (const kind of opts.kinds) {
    if (kind !== 'system') {
      for (const f of clientFiles(kind, hostPort, certs)) written.push(put(root, f));
      continue;
    }
    const { store, commandPath } = findSystemStore(opts.searchPath ?? process.env['PATH'] ?? '');
    removeStaleAnchors(join(root, store.anchorsDir), hostPort, certs.length);
    for (const f of anchorFiles(hostPort, certs)) {
      written.push(put(root, { path: `${store.anchorsDir}/${f.path}`, content: f.content }));
    }
    if (opts.runUpdate ?? true) {
      execFileSync(commandPath, [...store.args], { stdio: 'inherit' });
      ran.push([store.command, ...store.args].join(' '));
    }
  }
  return { written, ran };
}

function put(root: string, f: PlannedFile): string {
  const file = join(root, f.path);
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, f.content, { mode: 0o644 });
  chmodSync(tmp, 0o644); // the umask may have taken bits away
  renameSync(tmp, file);
  return file;
}

/**
 * The clients found on this host, as the served script's `all` finds them (layout.ts
 * CLIENT_PRESENCE): a command on the search path or a configuration directory under root.
 */
export function presentClients(opts: Omit<InstallOptions, 'kinds' | 'runUpdate'> = {}): {
  present: ClientKind[];
  skipped: Array<{ kind: ClientKind; reason: string }>;
} {
  const root = opts.root ?? '/';
  const searchPath = opts.searchPath ?? process.env['PATH'] ?? '';
  const present: ClientKind[] = [];
  const skipped: Array<{ kind: ClientKind; reason: string }> = [];
  for (const kind of CLIENT_KINDS) {
    const { commands, dirs } = CLIENT_PRESENCE[kind];
    const found =
      commands.some((c) => findCommand(c, searchPath) !== undefined) ||
      dirs.some((d) => existsSync(join(root, d)));
    if (found) present.push(kind);
    else skipped.push({ kind, reason: absenceReason(kind) });
  }
  return { present, skipped };
}

/** The executable `name` on the search path, like `command -v`. */
function findCommand(name: string, searchPath: string): string | undefined {
  for (const dir of searchPath.split(delimiter).filter(Boolean)) {
    const commandPath = join(dir, name);
    try {
      accessSync(commandPath, constants.X_OK);
      return commandPath;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** The first store whose update command is on the search path, as the snippets pick it. */
function findSystemStore(searchPath: string): { store: SystemStore; commandPath: string } {
  for (const store of SYSTEM_STORES) {
    const commandPath = findCommand(store.command, searchPath);
    if (commandPath !== undefined) return { store, commandPath };
  }
  throw new RTPError(
    'TRUST_NO_SYSTEM_STORE',
    'installing into the system trust store: neither update-ca-certificates nor update-ca-trust found; install the ca-certificates package',
  );
}

/** Anchors …-N.crt beyond the current bundle's length are left from an earlier, longer bundle. */
function removeStaleAnchors(dir: string, hostPort: string, count: number): void {
  const base = anchorFileName(hostPort, 1).replace(/\.crt$/, '');
  const keep = new Set(Array.from({ length: count }, (_, i) => anchorFileName(hostPort, i + 1)));
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // no directory yet, nothing stale
  }
  for (const name of names) {
    if (name.startsWith(`${base}-`) && name.endsWith('.crt') && !keep.has(name)) {
      rmSync(join(dir, name));
    }
  }
}
