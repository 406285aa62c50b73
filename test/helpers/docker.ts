/**
 * The docker engine itself for end-to-end tests: a private dockerd in the root
 * namespace as /work/shared/TEST-ENV.md runs it (vfs, no iptables, no bridge), or
 * inside a test namespace with its own iptables and bridge (published ports, swarm),
 * with its own data root, exec root, socket and an empty daemon.json, so it
 * shares nothing with any other engine on the machine and has no
 * --insecure-registry. The client gets a private DOCKER_CONFIG, so logins never
 * touch ~/.docker. Images come from `docker import`, without any hub.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive, stopProcess, tempDir, waitForOutput } from './processes.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, for error text that may land in either. */
  output: string;
}

/** Runs a command to completion with a clean environment; never rejects on a non-zero exit. */
export function run(
  command: string,
  args: readonly string[],
  options: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, {
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: { PATH: basePath(), ...options.env },
    });
    let stdout = '';
    let stderr = '';
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => ((stdout += d), (output += d)));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => ((stderr += d), (output += d)));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolveRun({ code: code ?? (signal ? 128 : 1), stdout, stderr, output });
    });
    if (options.input !== undefined) {
      child.stdin?.on('error', () => {}); // it may exit without reading: its exit code tells
      child.stdin?.end(options.input);
    }
  });
}

function basePath(): string {
  const path = process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin';
  // dockerd looks for containerd and runc on PATH; they live in sbin on Debian.
  return [path, '/usr/local/sbin', '/usr/sbin', '/sbin'].join(':');
}

export interface Dockerd {
  /** DOCKER_HOST for clients: unix://TMP/docker.sock */
  host: string;
  /** The client's private DOCKER_CONFIG (config.json with logins lands here). */
  configDir: string;
  child: ChildProcess;
  /** Runs the docker client against this engine. */
  docker(
    args: readonly string[],
    options?: { input?: string; timeoutMs?: number; env?: Record<string, string> },
  ): Promise<RunResult>;
  /** dockerd's log so far. */
  output(): string;
  /** Stops the engine (and the containerd it started), removes its directories. Idempotent. */
  stop(): Promise<void>;
}

const DIR_PREFIX = 'rtp-dockerd-';

/** SIGKILLs the process in `pidFile` if its command line mentions `dir` (so never a stranger). */
function killByPidFile(pidFile: string, dir: string): void {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) {
      process.kill(pid, 'SIGKILL');
    }
  } catch {
    // no pid file, or the process is gone
  }
}

/** The containerd dockerd starts when the system has none keeps its pid file under exec-root. */
function killContainerd(dir: string): void {
  killByPidFile(join(dir, 'exec', 'containerd', 'containerd.pid'), dir);
}

/** Engines whose test process died without stopping them (e.g. a killed worker): kill, unmount, remove. */
async function sweepStale(): Promise<void> {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, 'owner'), 'utf8').trim());
    } catch {
      continue; // not ours to judge
    }
    if (!(owner > 0) || isAlive(owner)) continue;
    killByPidFile(join(dir, 'dockerd.pid'), dir);
    killContainerd(dir);
    await unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface DockerdOptions {
  /**
   * Runs the engine inside this network namespace (a test host's or a test LAN's), with
   * its iptables rules and a docker0 bridge there: published ports and swarm need them,
   * and they change only that namespace. Without it the engine runs in the root
   * namespace with iptables off and no bridge (containers use --network host or none).
   */
  netns?: string;
  /** docker0's address inside `netns` (a test-only range). */
  bridgeIp?: string;
  /** Default 'vfs' (works on any file system); 'overlay2' is faster where it works. */
  storageDriver?: 'vfs' | 'overlay2';
}

/** Where the engine's networking lives: flags, and the command prefix that enters the namespace. */
function networkSetup(options: DockerdOptions): { prefix: string[]; flags: string[] } {
  if (options.netns === undefined) {
    return { prefix: [], flags: ['--iptables=false', '--ip-masq=false', '--bridge=none'] };
  }
  // nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup mounts dockerd needs.
  return {
    prefix: ['nsenter', `--net=/run/netns/${options.netns}`],
    flags: [
      `--bip=${options.bridgeIp ?? '198.19.255.1/24'}`,
      '--default-address-pool',
      'base=198.19.0.0/16,size=24',
    ],
  };
}

/** Starts a private dockerd and waits until it answers on its socket. */
export async function startDockerd(options: DockerdOptions = {}): Promise<Dockerd> {
  await sweepStale();
  const tmp = tempDir('dockerd'); // short: the socket path must fit in 108 bytes
  writeFileSync(join(tmp.path, 'owner'), `${process.pid}\n`);
  const data = join(tmp.path, 'data');
  const exec = join(tmp.path, 'exec');
  const configDir = join(tmp.path, 'client');
  const daemonJson = join(tmp.path, 'daemon.json');
  const socket = join(tmp.path, 'docker.sock');
  for (const dir of [data, exec, configDir]) mkdirSync(dir, { mode: 0o700 });
  writeFileSync(daemonJson, '{}\n'); // not /etc/docker/daemon.json: nothing configured from outside
  const host = `unix://${socket}`;

  // No HTTP(S)_PROXY in its environment: it must talk to the test host directly.
  const network = networkSetup(options);
  const [command = 'dockerd', ...prefixArgs] = [...network.prefix, 'dockerd'];
  const child = spawn(
    command,
    [
      ...prefixArgs,
      '--config-file',
      daemonJson,
      `--storage-driver=${options.storageDriver ?? 'vfs'}`,
      ...network.flags,
      '--data-root',
      data,
      '--exec-root',
      exec,
      '--pidfile',
      join(tmp.path, 'dockerd.pid'),
      '-H',
      host,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: basePath() } },
  );
  let log = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (log += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (log += d));
  const output = () => log;

  const clientEnv = { DOCKER_HOST: host, DOCKER_CONFIG: configDir, HOME: tmp.path };
  const docker: Dockerd['docker'] = (args, options = {}) =>
    run('docker', args, { ...options, env: { ...options.env, ...clientEnv } });

  let stopped = false;
  const onExit = () => {
    // The worker is exiting without stop(): leave no engine behind (the next start removes the dir).
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    killContainerd(tmp.path);
  };
  process.on('exit', onExit);
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.off('exit', onExit);
    await stopProcess(child, 'SIGTERM');
    killContainerd(tmp.path);
    await unmountUnder(tmp.path);
    tmp.remove();
  };

  try {
    await waitForOutput(child, output, /API listen on/, 90_000);
    const version = await docker(['version', '--format', '{{.Server.Version}}']);
    if (version.code !== 0) throw new Error(`docker version failed:\n${version.output}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host, configDir, child, docker, output, stop };
}

/** Lazily unmounts anything left mounted below `dir` (deepest first), so it can be removed. */
export async function unmountUnder(dir: string): Promise<void> {
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((point) => point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of mounts) await run('umount', ['-l', point]);
}

/**
 * `docker import`s a one-file rootfs as `ref` and returns the image id. The file
 * holds `content`, so every run's image (and its digest) is new to the registry.
 */
export async function importTinyImage(
  engine: Dockerd,
  ref: string,
  dir: string,
  content: string,
): Promise<string> {
  const rootfs = join(dir, 'rootfs');
  mkdirSync(join(rootfs, 'etc'), { recursive: true });
  writeFileSync(join(rootfs, 'etc', 'rtp-e2e'), content);
  const tar = join(dir, 'rootfs.tar');
  const made = await run('tar', [
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '-C',
    rootfs,
    '-cf',
    tar,
    '.',
  ]);
  if (made.code !== 0) throw new Error(`tar failed:\n${made.output}`);
  const imported = await engine.docker(['import', '--message', 'registry-tls-proxy e2e', tar, ref]);
  if (imported.code !== 0) throw new Error(`docker import failed:\n${imported.output}`);
  return imported.stdout.trim();
}
