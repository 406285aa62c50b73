/**
 * The processes under test, on free loopback ports in one temporary directory:
 * the distribution registry (plain HTTP, no auth), the proxy (the built CLI, at
 * its default log level and again at warn), and nginx with the proxy's own RSA
 * certificate and key; then nginx and the proxy once more at their default process
 * counts, for section 6; and bench/plain-node-proxy.mjs, a Node.js proxy written the usual way.
 */
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sleep, startServer, stopServer } from './exec.js';
import { renderNginxConfig } from './nginx.js';
import { processFamily } from './procfs.js';

export type TargetName =
  'direct' | 'nginx' | 'proxy' | 'proxyQuiet' | 'nginxDefault' | 'proxyDefault' | 'plainNode';

export interface Target {
  name: TargetName;
  /** http://127.0.0.1:PORT (direct) or https://127.0.0.1:PORT. */
  origin: string;
  port: number;
  /** The processes whose CPU and memory count (none for direct: the registry is shared). */
  pids(): number[];
  /** Throws if the server behind the target has exited. */
  assertRunning(): void;
}

export interface Servers {
  direct: Target;
  nginx: Target;
  proxy: Target;
  /** The proxy again, at RTP_LOG_LEVEL=warn: what its request log costs. */
  proxyQuiet: Target;
  /**
   * Both at their out-of-the-box process counts, as a user measures them: nginx at
   * `worker_processes auto` (Debian's nginx.conf), the proxy without `workers`.
   */
  nginxDefault: Target;
  proxyDefault: Target;
  /**
   * bench/plain-node-proxy.mjs, one process with the proxy's certificates, TLS settings and
   * Node flags: a Node.js proxy written the usual way (rows marked "plain Node proxy").
   */
  plainNode: Target;
  /** The proxy's CA; nginx serves the proxy's RSA certificate, so it verifies both. */
  caFile: string;
  /**
   * Restarts every server that another process stopped (SIGTERM, SIGINT or SIGHUP, or a
   * clean exit, which is how the proxy and nginx answer SIGTERM) and returns what it restarted. The machine is shared: a neighbour's
   * `pkill -f cli.js` should cost a repeated measurement, not the run. A server that
   * crashed (an exit code, SIGABRT, SIGSEGV) is not restarted: that is a finding.
   */
  reviveKilled(): Promise<string[]>;
  /** Every restart so far ("ISO time: name (pid, signal)"), for the results. */
  revived: string[];
  stop(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 60_000;
const SIGNALS_FROM_OUTSIDE: readonly string[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/** A server process behind a target, which can be started again on the same port. */
interface Managed extends Target {
  killedFromOutside(): string | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
}

function managed(
  name: TargetName,
  origin: string,
  spawnServer: () => ChildProcess,
  pidsOf: (pid: number) => number[],
  caFile?: string,
): Managed {
  let child: ChildProcess | undefined;
  const current = () => {
    if (!child) throw new Error(`${name} is not started`);
    return child;
  };
  return {
    name,
    origin,
    port: Number(new URL(origin).port),
    pids: () => pidsOf(current().pid ?? 0),
    assertRunning() {
      const c = current();
      if (c.exitCode === null && c.signalCode === null) return;
      throw new Error(
        `${name} (pid ${c.pid}) exited during the run (${c.signalCode ?? `exit code ${c.exitCode}`}); see its log`,
      );
    },
    killedFromOutside() {
      if (!child) return undefined;
      // The proxy and nginx shut down cleanly on SIGTERM (exit code 0); a crash exits non-zero.
      const stopped =
        child.exitCode === 0 ||
        (child.signalCode !== null && SIGNALS_FROM_OUTSIDE.includes(child.signalCode));
      return stopped
        ? `${name} (pid ${child.pid}, ${child.signalCode ?? 'exit code 0'})`
        : undefined;
    },
    async start() {
      child = spawnServer();
      await waitUntilServing(origin, child, caFile);
    },
    stop: async () => {
      if (child) await stopServer(child);
    },
  };
}

const NO_PIDS = () => [];

/**
 * Starts everything. `workers` processes serve each port: nginx's worker_processes and the
 * proxy's RTP_WORKERS (a build from before the cluster option runs one process, and says so
 * if asked for more).
 */
export async function startServers(root: string, dir: string, workers: number): Promise<Servers> {
  const proxyBuild = await inspectProxyBuild(root);
  if (workers > 1 && !proxyBuild.hasWorkers) {
    throw new Error(
      `${root}: this proxy build runs one process (no "workers" setting); use --workers 1`,
    );
  }
  const started: Managed[] = [];
  const stop = async () => {
    for (const server of [...started].reverse()) await server.stop();
  };
  const launch = async (server: Managed) => {
    started.push(server);
    await server.start();
    return server;
  };
  try {
    const registryPort = await freePort();
    const registryConfig = join(dir, 'registry.yml');
    writeFileSync(
      registryConfig,
      [
        'version: 0.1',
        // Quiet: the registry shares the cores with what is measured, the same for every target.
        'log: { level: warn, accesslog: { disabled: true } }',
        `storage: { filesystem: { rootdirectory: ${join(dir, 'storage')} }, cache: { blobdescriptor: inmemory } }`,
        'http:',
        `  addr: 127.0.0.1:${registryPort}`,
        '  secret: registry-tls-proxy-bench',
        '',
      ].join('\n'),
    );
    const direct = await launch(
      managed(
        'direct',
        `http://127.0.0.1:${registryPort}`,
        () => startServer('docker-registry', ['serve', registryConfig], join(dir, 'registry.log')),
        NO_PIDS,
      ),
    );

    const tlsDir = join(dir, 'tls');
    const caFile = join(tlsDir, 'ca.crt');
    /** `processes` undefined: the build's default `workers`. */
    const proxyServer = async (name: TargetName, logLevel: string, processes?: number) => {
      const port = await freePort();
      const env = {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        RTP_LISTEN: `127.0.0.1:${port}`,
        RTP_ADMIN_LISTEN: '',
        RTP_BACKEND: direct.origin,
        RTP_TLS_DIR: tlsDir,
        RTP_LOG_LEVEL: logLevel,
        ...(proxyBuild.hasWorkers && processes !== undefined
          ? { RTP_WORKERS: String(processes) }
          : {}),
      };
      // The first start creates the CA and the server certificate in tlsDir.
      return launch(
        managed(
          name,
          `https://127.0.0.1:${port}`,
          () =>
            startServer(
              process.execPath,
              [...proxyBuild.nodeFlags, join(root, 'dist', 'cli.js'), 'serve'],
              join(dir, `${name}.log`),
              env,
            ),
          // With RTP_WORKERS > 1, a primary and its cluster workers.
          processFamily,
          caFile,
        ),
      );
    };
    const proxy = await proxyServer('proxy', 'info', workers);
    const proxyQuiet = await proxyServer('proxyQuiet', 'warn', workers);
    const proxyDefault = await proxyServer('proxyDefault', 'info');
    const plainNode = await plainNodeServer(dir, direct.origin, tlsDir, proxyBuild, launch);

    const nginxDir = join(dir, 'nginx');
    mkdirSync(nginxDir);
    const chain = join(nginxDir, 'server-chain.crt');
    // nginx as the registry docs' recipe runs it: an RSA certificate (the proxy's own RSA
    // one, same names and CA), while the proxy serves its default (ECDSA, RSA beside it).
    // A build from before ECDSA has only server.crt, itself RSA.
    const rsa = existsSync(join(tlsDir, 'server-rsa.crt')) ? 'server-rsa' : 'server';
    writeFileSync(
      chain,
      readFileSync(join(tlsDir, `${rsa}.crt`), 'utf8').trimEnd() +
        '\n' +
        readFileSync(caFile, 'utf8'),
    );
    copyFileSync(join(tlsDir, `${rsa}.key`), join(nginxDir, 'server.key'));
    const nginxServer = async (name: TargetName, processes: number | 'auto') => {
      const nginxPort = await freePort();
      const nginxConfig = join(nginxDir, `${name}.conf`);
      const own = join(nginxDir, name);
      mkdirSync(own);
      writeFileSync(
        nginxConfig,
        renderNginxConfig({
          dir: own,
          workers: processes,
          listen: `127.0.0.1:${nginxPort}`,
          upstream: `127.0.0.1:${registryPort}`,
          certificateChain: chain,
          key: join(nginxDir, 'server.key'),
          ...proxyBuild.tls,
        }),
      );
      return launch(
        managed(
          name,
          `https://127.0.0.1:${nginxPort}`,
          () =>
            // -e: nginx otherwise opens /var/log/nginx/error.log before reading the config.
            startServer(
              nginxBinary(),
              ['-p', own, '-c', nginxConfig, '-e', join(own, 'error.log'), '-g', 'daemon off;'],
              join(own, 'stderr.log'),
            ),
          processFamily,
          caFile,
        ),
      );
    };
    const nginx = await nginxServer('nginx', workers);
    const nginxDefault = await nginxServer('nginxDefault', 'auto');
    const revived: string[] = [];
    const reviveKilled = async () => {
      const now: string[] = [];
      for (const server of started) {
        const killed = server.killedFromOutside();
        if (killed === undefined) continue;
        await server.start();
        now.push(killed);
        revived.push(`${new Date().toISOString()}: ${killed}`);
      }
      return now;
    };
    return {
      direct,
      nginx,
      proxy,
      proxyQuiet,
      nginxDefault,
      proxyDefault,
      plainNode,
      caFile,
      reviveKilled,
      revived,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** bench/plain-node-proxy.mjs on a free port, with what the proxy build uses for TLS and Node. */
async function plainNodeServer(
  dir: string,
  backend: string,
  tlsDir: string,
  build: Awaited<ReturnType<typeof inspectProxyBuild>>,
  launch: (server: Managed) => Promise<Managed>,
): Promise<Managed> {
  const port = await freePort();
  // bench/build/lib/servers.js → bench/plain-node-proxy.mjs (plain JavaScript, not compiled).
  const script = fileURLToPath(new URL('../../plain-node-proxy.mjs', import.meta.url));
  const env = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    // One list, TLS 1.3 suites first, as the proxy gives Node (tls/context.ts).
    CIPHERS: [...build.tls.tls13Ciphersuites, ...build.tls.tls12Ciphers].join(':'),
    CURVES: build.tls.curves,
  };
  return launch(
    managed(
      'plainNode',
      `https://127.0.0.1:${port}`,
      () =>
        startServer(
          process.execPath,
          [...build.nodeFlags, script, `127.0.0.1:${port}`, backend, tlsDir],
          join(dir, 'plainNode.log'),
          env,
        ),
      processFamily,
      join(tlsDir, 'ca.crt'),
    ),
  );
}

/** Debian installs nginx in /usr/sbin, which a non-root PATH may lack. */
export function nginxBinary(): string {
  const dirs = (process.env['PATH'] ?? '').split(':');
  return dirs.includes('/usr/sbin') ? 'nginx' : '/usr/sbin/nginx';
}

/**
 * What the proxy build offers (dist/, as built): its cipher lists and curves, which nginx
 * is given too, and whether it knows the `workers` setting (node:cluster).
 */
async function inspectProxyBuild(root: string) {
  const load = async <T>(file: string) =>
    (await import(pathToFileURL(join(root, 'dist', ...file.split('/'))).href)) as T;
  const context = await load<{
    TLS12_CIPHERS: readonly string[];
    TLS13_CIPHERSUITES: readonly string[];
    secureContextOptions(material: object): { ecdhCurve?: string };
  }>('tls/context.js');
  const schema = await load<{ DEFAULTS: object }>('config/schema.js');
  const options = context.secureContextOptions({
    serverKeyPEM: '',
    serverCertPEM: '',
    caCertPEM: '',
  });
  return {
    hasWorkers: 'workers' in schema.DEFAULTS,
    nodeFlags: startFlags(root),
    tls: {
      tls12Ciphers: context.TLS12_CIPHERS,
      tls13Ciphersuites: context.TLS13_CIPHERSUITES,
      curves: options.ecdhCurve ?? 'X25519:prime256v1:secp384r1',
    },
  };
}

/**
 * The Node flags `npm start` gives the proxy (package.json: `node FLAGS dist/cli.js`),
 * so that the proxy is measured as it is shipped (the image and the systemd unit pass
 * the same).
 */
function startFlags(root: string): string[] {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    scripts?: { start?: string };
  };
  const match = /\bnode((?:\s+--[\w-]+(?:=\S+)?)*)\s+dist\/cli\.js\b/.exec(
    manifest.scripts?.start ?? '',
  );
  return match?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Polls GET /v2/ until it answers 200. Over TLS the certificate must verify against
 * the proxy's CA: a target that does not verify is never measured.
 */
async function waitUntilServing(origin: string, child: ChildProcess, caFile?: string) {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${origin}: the server exited (${child.exitCode ?? child.signalCode}); see its log`,
      );
    }
    try {
      const status = await getStatus(`${origin}/v2/`, caFile);
      if (status === 200) return;
      last = `status ${status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(200);
  }
  throw new Error(`${origin}: not serving after ${STARTUP_TIMEOUT_MS} ms (${last})`);
}

function getStatus(url: string, caFile?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onResponse = (res: import('node:http').IncomingMessage) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    };
    const req = url.startsWith('https:')
      ? httpsGet(url, { ca: caFile ? readFileSync(caFile) : [], agent: false }, onResponse)
      : httpGet(url, { agent: false }, onResponse);
    req.setTimeout(2_000, () => req.destroy(new Error('timed out')));
    req.once('error', reject);
  });
}
