/**
 * The usual end-to-end arrangement: a real registry behind the proxy's built
 * CLI, started before a describe's tests and removed after them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { createTestHost, type TestHost } from './netns.js';
import {
  createRegistry,
  startProxy,
  tempDir,
  type Proxy,
  type Registry,
  type RegistryOptions,
} from './processes.js';

export interface RegistryBehindProxy {
  readonly tmp: string;
  readonly registry: Registry;
  readonly proxy: Proxy;
  /** The proxy's CA certificate (PEM), the one thing clients trust. */
  readonly ca: string;
}

/** Registers beforeAll/afterAll hooks; read the fields inside tests or later hooks. */
export function useRegistryBehindProxy(
  name: string,
  registryOptions: RegistryOptions,
  proxyEnv: Record<string, string> = {},
): RegistryBehindProxy {
  const tmp = tempDir(name);
  let registry: Registry | undefined;
  let proxy: Proxy | undefined;
  let ca = '';
  beforeAll(async () => {
    registry = await createRegistry(registryOptions, tmp.path);
    await registry.start();
    proxy = await startProxy({
      backend: registry.url,
      tlsDir: join(tmp.path, 'tls'),
      env: proxyEnv,
    });
    ca = readFileSync(proxy.caFile, 'utf8');
  });
  afterAll(async () => {
    await proxy?.stop();
    await registry?.stop();
    tmp.remove();
  });
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is not started yet (use it inside a test)`);
    return value;
  };
  return {
    tmp: tmp.path,
    get registry() {
      return started(registry, 'the registry');
    },
    get proxy() {
      return started(proxy, 'the proxy');
    },
    get ca() {
      return ca;
    },
  };
}

/** A registry and the proxy in front of it, together on a test host (a network namespace). */
export interface OnTestHost {
  host: TestHost;
  registry: Registry;
  /** Listening on the test host's address, so clients reach it over the veth link. */
  proxy: Proxy;
}

/**
 * Starts a registry and the proxy on a new test host; undoes what it started if a step
 * fails. The caller stops both and destroys the host.
 */
export async function registryAndProxyOnTestHost(
  label: string,
  dir: string,
  auth: RegistryOptions['auth'],
  proxyEnv: Record<string, string> = {},
): Promise<OnTestHost> {
  const host = createTestHost(label);
  let registry: Registry | undefined;
  try {
    registry = await createRegistry({ auth, wrap: host.wrap }, dir);
    await registry.start();
    const proxy = await startProxy({
      backend: registry.url,
      tlsDir: join(dir, 'tls'),
      wrap: host.wrap,
      host: host.address,
      env: proxyEnv,
    });
    return { host, registry, proxy };
  } catch (err) {
    await registry?.stop();
    host.destroy();
    throw err;
  }
}
