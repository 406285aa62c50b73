/**
 * Engines and images for the deployment tests (test/deploy-docker.test.ts): the image
 * is built once, from this checkout's Dockerfile, on a root-namespace engine (whose
 * `docker build --network host` reaches the npm registry) over the stand-in base
 * images of test/docker-standins.sh, and then loaded into engines on a test LAN,
 * where published ports and swarm have the iptables they need and no route out.
 */
import { join } from 'node:path';
import { ROOT } from './processes.js';
import { run, startDockerd, type Dockerd, type DockerdOptions } from './docker.js';

/** The tag docker-compose.yml and deploy/swarm/stack.yml run. */
export const IMAGE = 'registry-tls-proxy:latest';
export const REGISTRY_IMAGE = 'registry:2';

/**
 * An engine with overlay2 where this file system takes it (a build and two loads of
 * the image take minutes less than with vfs, which copies every layer), else vfs.
 */
export async function startDeployEngine(options: DockerdOptions = {}): Promise<Dockerd> {
  try {
    return await startDockerd({ ...options, storageDriver: 'overlay2' });
  } catch (err) {
    console.log(
      `overlay2 engine did not start, using vfs: ${(err as Error).message.slice(0, 300)}`,
    );
    return startDockerd({ ...options, storageDriver: 'vfs' });
  }
}

/**
 * `run` (docker.ts) with this process's whole environment plus `env`: the stand-in
 * script needs HOME (its cache) and whatever npm is configured with. Throws on a non-zero exit.
 */
async function mustRun(command: string, args: string[], env: Record<string, string>) {
  const host = Object.fromEntries(
    Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined),
  );
  const result = await run(command, args, { env: { ...host, ...env }, timeoutMs: 1_200_000 });
  if (result.code !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} exited ${result.code}:\n${result.output.slice(-4000)}`,
    );
  }
}

/** Seconds since `t`, for the timings the CI log shows. */
const since = (t: number) => ((Date.now() - t) / 1000).toFixed(0);

/**
 * The stand-ins (cached under ~/.cache/registry-tls-proxy/standins where the machine
 * keeps them) and `docker build` of this checkout, as docs/docker-verification.md does.
 */
export async function buildImages(builder: Dockerd): Promise<void> {
  const env = { DOCKER_HOST: builder.host, DOCKER_CONFIG: builder.configDir };
  let t = Date.now();
  await mustRun('sh', [join(ROOT, 'test', 'docker-standins.sh')], env);
  console.log(`deploy: stand-in base images ready in ${since(t)} s`);
  t = Date.now();
  // --network host: an engine without a bridge has no other network for the build's npm ci.
  await mustRun('docker', ['build', '--network', 'host', '-t', IMAGE, ROOT], env);
  console.log(`deploy: docker build of ${IMAGE} in ${since(t)} s`);
}

/** `docker save` on one engine, `docker load` into the others. */
export async function copyImages(from: Dockerd, to: Dockerd[], dir: string): Promise<void> {
  const t = Date.now();
  const file = join(dir, 'images.tar');
  const saved = await from.docker(['save', '-o', file, IMAGE, REGISTRY_IMAGE]);
  if (saved.code !== 0) throw new Error(`docker save failed:\n${saved.output}`);
  for (const engine of to) {
    const loaded = await engine.docker(['load', '-i', file], { timeoutMs: 600_000 });
    if (loaded.code !== 0) throw new Error(`docker load failed:\n${loaded.output}`);
  }
  console.log(`deploy: images loaded into ${to.length} engine(s) in ${since(t)} s`);
}

/** `docker …` that must succeed; returns its trimmed stdout. */
export async function mustDocker(engine: Dockerd, args: string[]): Promise<string> {
  const result = await engine.docker(args, { timeoutMs: 600_000 });
  if (result.code !== 0) throw new Error(`docker ${args.join(' ')} failed:\n${result.output}`);
  return result.stdout.trim();
}
