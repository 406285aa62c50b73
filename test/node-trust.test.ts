/**
 * The Kubernetes node-trust DaemonSet (deploy/kubernetes/node-trust.yaml, and what
 * `trust --address H:P --client kubernetes` prints). No cluster can run here, so:
 *  - both are validated against the Kubernetes API schema (kubernetes-models), and the
 *    fields the container's behaviour depends on are read back from the parsed YAML;
 *  - the container's command, taken from the printed manifest (not copied), runs under
 *    the host's /bin/sh with a PATH like the image's (curl + busybox applets, no
 *    openssl), against a temporary directory standing in for the node's /etc (the
 *    hostPath), and a real proxy serving the CA.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nodeTrustExample } from '../src/trust/node-trust-manifest.js';
import { eventually } from './helpers/eventually.js';
import {
  parseNodeTrust as parseManifest,
  startNodeTrust,
  type NodeTrustContainer,
  type NodeTrustManifest,
} from './helpers/node-trust.js';
import {
  ROOT,
  freePort,
  readCA,
  runCLI,
  startProxy,
  tempDir,
  type Proxy,
} from './helpers/processes.js';

const tmp = tempDir('node-trust');
const tlsDir = join(tmp.path, 'tls');

let port = 0;
let hostPort = '';
let ca = '';
let printed = '';
let proxy: Proxy | undefined;
const running: NodeTrustContainer[] = [];

beforeAll(async () => {
  // The first start creates the CA; the test then runs the container before the proxy is up.
  port = await freePort();
  hostPort = `127.0.0.1:${port}`;
  proxy = await startProxy({ backend: 'http://127.0.0.1:9', tlsDir, port });
  ca = readCA(proxy);
  await proxy.stop();
  proxy = undefined;
  const trust = runCLI(['trust', '--address', hostPort, '--client', 'kubernetes'], {
    RTP_TLS_DIR: tlsDir,
    RTP_BACKEND: 'http://127.0.0.1:9',
  });
  expect(trust.status, trust.stderr).toBe(0);
  printed = trust.stdout;
});

afterEach(() => {
  for (const container of running.splice(0)) container.stop();
});
afterAll(async () => {
  await proxy?.stop();
  tmp.remove();
});

/** The container's command as written, with the node's / at `nodeRoot`, retrying every second. */
function startContainer(m: NodeTrustManifest, nodeRoot: string, env: Record<string, string> = {}) {
  const container = startNodeTrust(m, nodeRoot, { RETRY_SECONDS: '1', ...env });
  running.push(container);
  return container;
}

describe('node-trust DaemonSet', () => {
  it('deploy/kubernetes/node-trust.yaml is valid, and is what the code generates', () => {
    const text = readFileSync(join(ROOT, 'deploy/kubernetes/node-trust.yaml'), 'utf8');
    expect(text, 'regenerate it from nodeTrustExample()').toBe(nodeTrustExample());
    const m = parseManifest(text);
    expect(m.env['FINGERPRINT']).toMatch(/^SET-ME/);
    expect(m.env['REGISTRY']).toBe('registry.lan:5443');
  });

  it('what trust --client kubernetes prints is valid and filled in for this proxy', () => {
    const m = parseManifest(printed);
    expect(m.daemonSet.metadata?.name).toBe(`registry-tls-proxy-trust-127-0-0-1-${port}`);
    expect(m.env['REGISTRY']).toBe(hostPort);
    expect(m.env['FINGERPRINT']).toBe(new X509Certificate(ca).fingerprint256);
    expect(m.pod.hostNetwork).toBe(true); // the registry by the node's names and routes
    expect(m.pod.dnsPolicy).toBe('Default');
    expect(m.pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(m.daemonSet.spec?.selector.matchLabels).toEqual(
      m.daemonSet.spec?.template.metadata?.labels,
    );
    expect(printed).toMatch(
      /# containerd reads \/etc\/containerd\/certs\.d only when its CRI config sets config_path/,
    );
  });

  it('the container waits for the proxy, then writes ca.crt and hosts.toml on the node', async () => {
    const m = parseManifest(printed);
    const node = join(tmp.path, 'node-a', 'etc-root');
    const container = startContainer(m, node);
    await eventually('the container to say it is waiting for the proxy', () =>
      /waiting for https:\/\/127\.0\.0\.1:\d+ to serve the CA/.test(container.output()),
    );
    expect(existsSync(join(node, 'etc'))).toBe(false);
    proxy = await startProxy({ backend: 'http://127.0.0.1:9', tlsDir, port });
    const dir = join(node, 'etc/containerd/certs.d', hostPort);
    await eventually(
      'ca.crt and hosts.toml on the node',
      () => container.output().includes('done: ') && readdirSync(dir).sort().join(),
      { timeoutMs: 15_000 },
    );
    expect(readdirSync(dir).sort()).toEqual(['ca.crt', 'hosts.toml']);
    const installed = readFileSync(join(dir, 'ca.crt'), 'utf8');
    expect(new X509Certificate(installed).raw.equals(new X509Certificate(ca).raw)).toBe(true);
    const toml = readFileSync(join(dir, 'hosts.toml'), 'utf8');
    expect(toml).toContain(`[host."https://${hostPort}"]`);
    expect(toml).toContain(`ca = "/etc/containerd/certs.d/${hostPort}/ca.crt"`);
    expect(container.output()).not.toMatch(/@[A-Z][A-Z0-9_]*@/);
    expect(container.exitCode()).toBeNull(); // it stays up, re-checking hourly
  });

  it('a wrong fingerprint: refuses on every try, writes nothing, keeps waiting', async () => {
    proxy ??= await startProxy({ backend: 'http://127.0.0.1:9', tlsDir, port });
    const m = parseManifest(printed);
    const right = m.env['FINGERPRINT']!;
    const wrong = right.replace(/^../, right.startsWith('00') ? '11' : '00');
    const node = join(tmp.path, 'node-b', 'etc-root');
    const container = startContainer(m, node, { FINGERPRINT: wrong });
    await eventually(
      'two refusals',
      () => (container.output().match(/REFUSING the CA served at/g)?.length ?? 0) >= 2,
      { timeoutMs: 15_000 },
    );
    expect(container.output()).toContain(right);
    expect(container.output()).toContain(`to serve the CA with fingerprint ${wrong}; retrying`);
    expect(existsSync(node)).toBe(false);
    expect(container.exitCode()).toBeNull();
  });
});
