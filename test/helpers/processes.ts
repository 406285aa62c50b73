/**
 * Real processes for end-to-end tests: the distribution registry (Debian's
 * docker-registry) and this proxy's built CLI, each on free loopback ports in
 * a temporary directory, stopped and removed after the test.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { eventually } from './eventually.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'dist', 'cli.js');

/** Runs the built CLI to completion (a one-off command such as `ca rotate`), with only PATH and `env`. */
export function runCLI(
  args: readonly string[],
  env: Record<string, string> = {},
): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env },
  });
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `rtp-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Resolves with the error code of a TCP connection attempt ('connected' when it is accepted). */
export function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/*
 * Ports for the processes a test starts. Asking the kernel for port 0 and
 * closing it raced twice over in CI: the kernel handed the same port to two
 * calls in one file (admin.listen = listen), and outgoing connections from
 * the other worker took a port between our close and the child's bind. So
 * ports come from below the ephemeral range (32768+ here, never handed to
 * outgoing connections), from a block of its own for each vitest worker,
 * and never twice from one file; a bind check skips ports still held by an
 * earlier file's processes.
 */
const PORT_BLOCK = 2_000;
const PORT_BASE = 20_000;
const poolId = Number(process.env['VITEST_POOL_ID'] ?? '1');
const blockStart = PORT_BASE + ((Math.max(poolId, 1) - 1) % 6) * PORT_BLOCK;
let nextOffset = Math.floor(Math.random() * PORT_BLOCK);

function canBind(port: number): Promise<boolean> {
  return new Promise((resolveBind) => {
    const server = createServer();
    server.once('error', () => resolveBind(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      server.close(() => resolveBind(true));
    });
  });
}

export async function freePort(): Promise<number> {
  for (let tries = 0; tries < PORT_BLOCK; tries++) {
    const port = blockStart + (nextOffset++ % PORT_BLOCK);
    if (await canBind(port)) return port;
  }
  throw new Error(`freePort: no free port in ${blockStart}-${blockStart + PORT_BLOCK - 1}`);
}

/** Resolves when `pattern` appears in the process's output; rejects if it exits first. */
export function waitForOutput(
  child: ChildProcess,
  output: () => string,
  pattern: RegExp,
  timeoutMs = 30_000,
): Promise<void> {
  return new Promise((resolveWait, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out waiting for ${pattern}; output so far:\n${output()}`));
    }, timeoutMs);
    const check = () => {
      if (pattern.test(output())) {
        cleanup();
        resolveWait();
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`process exited (${code}) before ${pattern}; output:\n${output()}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', check);
      child.stderr?.off('data', check);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('exit', onExit);
    check();
  });
}

/**
 * Runs every clean-up step even when some fail (a dead engine must not leave a
 * namespace behind), then throws the first failure.
 */
export async function tearDown(...steps: Array<() => unknown>): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) throw errors[0];
}

/** A process's resident memory in MiB (VmRSS). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024;
}

/** Where the heap probe lives: pass {@link heapProbeEnv} to {@link startProxy} to load it. */
const HEAP_PROBE = join(import.meta.dirname, 'heap-probe.cjs');

/** The environment that loads the heap probe (heap-probe.cjs) into a proxy. */
export function heapProbeEnv(file: string): Record<string, string> {
  return { NODE_OPTIONS: `--require ${HEAP_PROBE}`, HEAP_PROBE_FILE: file };
}

/** MiB of memory a proxy started with {@link heapProbeEnv} still holds after a full collection. */
export interface HeldMemory {
  heap: number;
  buffers: number;
  rss: number;
}

/** Asks the heap probe in `child` for a collection and what is held after it. */
export async function heldAfterCollection(child: ChildProcess, file: string): Promise<HeldMemory> {
  const read = () => {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>;
    } catch {
      return undefined;
    }
  };
  const before = read()?.['n'] ?? 0;
  child.kill('SIGUSR2');
  const m = await eventually('the heap probe to answer SIGUSR2', () => {
    const now = read();
    return now && now['n']! > before ? now : undefined;
  });
  const mib = (bytes: number | undefined) => Number(bytes) / 1024 / 1024;
  return { heap: mib(m['heapUsed']), buffers: mib(m['arrayBuffers']), rss: mib(m['rss']) };
}

/** Whether a process with this pid exists (EPERM: it does, but is not ours to signal). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pids of a process's children (a cluster primary's workers). */
export function childPids(parent: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(parent)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when there are none
  }
}

export function stopProcess(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolveStop) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', (code) => {
      clearTimeout(kill);
      resolveStop(code);
    });
    child.kill(signal);
  });
}

function captureOutput(child: ChildProcess): () => string {
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (text += d));
  return () => text;
}

export type RegistryAuth =
  | { kind: 'none' }
  | { kind: 'htpasswd'; user: string; password: string }
  /** `realm` may contain {self}, replaced by the registry's own http://127.0.0.1:PORT. */
  | { kind: 'token'; realm: string; service: string; issuer: string };

export interface RegistryOptions {
  auth: RegistryAuth;
  /** The registry's http.host: the address it puts in absolute URLs ('self': its own http://127.0.0.1:PORT). */
  httpHost?: string;
  /** A command prefix to run the registry under, e.g. ['ip', 'netns', 'exec', NAME]. */
  wrap?: readonly string[];
  /**
   * A fixed port (default: a free one). With the same `dir` (hence the same storage), this
   * replaces a stopped registry at the same address with other settings, e.g. its auth.
   */
  port?: number;
}

export interface Registry {
  port: number;
  url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  output(): string;
  /** The running registry's process id (for SIGSTOP/SIGCONT fault tests). */
  pid(): number | undefined;
}

/** A distribution registry on 127.0.0.1 (not started until `start()`). */
export async function createRegistry(options: RegistryOptions, dir: string): Promise<Registry> {
  const port = options.port ?? (await freePort());
  const lines = [
    'version: 0.1',
    'log: { level: info }',
    `storage: { filesystem: { rootdirectory: ${join(dir, 'storage')} }, delete: { enabled: true } }`,
    `http:`,
    `  addr: 127.0.0.1:${port}`,
    ...(options.httpHost
      ? [`  host: ${options.httpHost === 'self' ? `http://127.0.0.1:${port}` : options.httpHost}`]
      : []),
    `  secret: e2e-test-secret`,
  ];
  if (options.auth.kind === 'htpasswd') {
    const htpasswd = join(dir, 'htpasswd');
    writeFileSync(
      htpasswd,
      execFileSync('htpasswd', ['-Bbn', options.auth.user, options.auth.password]),
    );
    lines.push(`auth: { htpasswd: { realm: e2e, path: ${htpasswd} } }`);
  } else if (options.auth.kind === 'token') {
    const bundle = join(dir, 'token-root.crt');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        join(dir, 'token-root.key'),
        '-out',
        bundle,
        '-subj',
        '/CN=e2e token issuer',
        '-days',
        '2',
      ],
      { stdio: 'ignore' },
    );
    const { service, issuer } = options.auth;
    const realm = options.auth.realm.replace('{self}', `http://127.0.0.1:${port}`);
    lines.push(
      `auth: { token: { realm: "${realm}", service: ${service}, issuer: ${issuer}, rootcertbundle: ${bundle} } }`,
    );
  }
  const config = join(dir, 'registry.yml');
  writeFileSync(config, lines.join('\n') + '\n');
  let child: ChildProcess | undefined;
  let output = () => '';
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    async start() {
      const [command, ...args] = [...(options.wrap ?? []), 'docker-registry', 'serve', config];
      child = spawn(command as string, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      output = captureOutput(child);
      await waitForOutput(child, output, /listening on/);
    },
    async stop() {
      if (child) await stopProcess(child, 'SIGKILL');
    },
    output: () => output(),
    pid: () => child?.pid,
  };
}

export interface Proxy {
  port: number;
  adminPort: number;
  tlsDir: string;
  caFile: string;
  origin: string;
  child: ChildProcess;
  output(): string;
  /** Parsed JSON log lines so far. */
  logLines(): Array<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The built CLI serving on free loopback ports, configured through RTP_ environment overrides. */
export async function startProxy(opts: {
  /** RTP_BACKEND; leave it out to take the backend from a --config file in `args`. */
  backend?: string;
  tlsDir: string;
  /** More arguments to `serve`, e.g. ['--config', FILE]. */
  args?: readonly string[];
  env?: Record<string, string>;
  /** A command prefix to run the proxy under, e.g. ['ip', 'netns', 'exec', NAME]. */
  wrap?: readonly string[];
  /** The address to listen on (default 127.0.0.1); also the origin's host. */
  host?: string;
  /** A port chosen beforehand (an ACME test server must know it first); default a free one. */
  port?: number;
}): Promise<Proxy> {
  const port = opts.port ?? (await freePort());
  const adminPort = await freePort();
  const host = opts.host ?? '127.0.0.1';
  const hostPort = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const [command, ...args] = [
    ...(opts.wrap ?? []),
    process.execPath,
    CLI,
    'serve',
    ...(opts.args ?? []),
  ];
  const child = spawn(command as string, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      RTP_LISTEN: hostPort,
      RTP_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
      ...(opts.backend !== undefined ? { RTP_BACKEND: opts.backend } : {}),
      RTP_TLS_DIR: opts.tlsDir,
      // One process unless a test asks for a cluster: log lines and timings stay simple.
      RTP_WORKERS: '1',
      ...opts.env,
    },
  });
  const output = captureOutput(child);
  await waitForOutput(child, output, /"msg":"proxying /);
  return {
    port,
    adminPort,
    tlsDir: opts.tlsDir,
    caFile: join(opts.tlsDir, 'ca.crt'),
    origin: `https://${hostPort}`,
    child,
    output,
    logLines: () =>
      output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    stop: (signal) => stopProcess(child, signal),
  };
}

export function readCA(proxy: Proxy): string {
  return readFileSync(proxy.caFile, 'utf8');
}
