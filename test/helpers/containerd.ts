/**
 * containerd itself for end-to-end tests: a private daemon in the root namespace
 * with its own root, state, temp dir, socket and config.toml, so it shares
 * nothing with a system containerd (or the one dockerd starts). It loads only
 * what pulling needs: no CRI plugin, and of the snapshotters only `native`
 * (plain directories: no overlay, btrfs, zfs or devmapper from the kernel).
 *
 * `ctr` runs with a clean environment and this daemon's socket. In containerd
 * 1.6, `ctr images pull` resolves and fetches in the ctr process itself and
 * writes into the daemon's content store over gRPC, so TLS is verified by ctr,
 * with the hosts directory given by --hosts-dir.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, unmountUnder, type RunResult } from './docker.js';
import { stopProcess, tempDir, waitForOutput } from './processes.js';

export const SNAPSHOTTER = 'native';

export interface Containerd {
  /** The daemon's gRPC socket (ctr --address). */
  socket: string;
  /** The private directory holding root, state, temp, config and socket. */
  dir: string;
  /** Runs `ctr --address SOCKET args…` to completion. */
  ctr(args: readonly string[], options?: { timeoutMs?: number }): Promise<RunResult>;
  /** containerd's log so far. */
  output(): string;
  /** Stops the daemon, unmounts what is left below its directory, removes it. Idempotent. */
  stop(): Promise<void>;
}

/** TOML basic strings: the paths are ours (a mkdtemp name), but quote them properly anyway. */
const tomlString = (s: string) => JSON.stringify(s);

/** Snapshotters and services a pull does not need, or that want more of the machine than a test. */
const DISABLED_PLUGINS = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.overlayfs',
  'io.containerd.snapshotter.v1.zfs',
];

/** Pids of live processes whose command line mentions `dir` (so only ever ours). */
export function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmdline.includes(dir)) pids.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Starts a private containerd and waits until ctr gets an answer on its socket. */
export async function startContainerd(): Promise<Containerd> {
  const tmp = tempDir('ctrd'); // short: the socket path must fit in 108 bytes
  const dir = tmp.path;
  const socket = join(dir, 'containerd.sock');
  const root = join(dir, 'root');
  const state = join(dir, 'state');
  const config = join(dir, 'config.toml');
  writeFileSync(
    config,
    [
      'version = 2',
      `root = ${tomlString(root)}`,
      `state = ${tomlString(state)}`,
      // Where the differ mounts snapshots while unpacking (default: the system temp dir).
      `temp = ${tomlString(join(dir, 'tmp'))}`,
      `disabled_plugins = ${JSON.stringify(DISABLED_PLUGINS)}`,
      '',
      '[grpc]',
      `  address = ${tomlString(socket)}`,
      '',
      // Its default is /opt/containerd, outside the test's directory.
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${tomlString(join(dir, 'opt'))}`,
      '',
    ].join('\n'),
  );

  // No HTTP(S)_PROXY anywhere: ctr must talk to the test host directly.
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
  const child = spawn(
    'containerd',
    ['--root', root, '--state', state, '--address', socket, '--config', config],
    { stdio: ['ignore', 'pipe', 'pipe'], env },
  );
  let log = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (log += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (log += d));
  const output = () => log;

  const ctr: Containerd['ctr'] = (args, options = {}) =>
    run('ctr', ['--address', socket, ...args], { ...options, env });

  const onExit = () => {
    // The worker is exiting without stop(): leave no daemon behind.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.on('exit', onExit);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.off('exit', onExit);
    await stopProcess(child, 'SIGTERM');
    await unmountUnder(dir);
    tmp.remove();
  };

  try {
    await waitForOutput(child, output, /containerd successfully booted/, 90_000);
    const version = await ctr(['version']);
    if (version.code !== 0) throw new Error(`ctr version failed:\n${version.output}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { socket, dir, ctr, output, stop };
}
