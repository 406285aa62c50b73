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
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { nodeTrustExample } from '../src/trust/node-trust-manifest.js';
import { eventually } from './helpers/eventually.js';
import {
  ROOT,
  freePort,
  readCA,
  runCLI,
  startProxy,
  tempDir,
  type Proxy,
} from './helpers/processes.js';
import { toolDir } from './helpers/tool-dir.js';

const tmp = tempDir('node-trust');
const tlsDir = join(tmp.path, 'tls');
/** What curlimages/curl has: busybox applets and curl (install-ca.sh falls back to base64 + sha256sum). */
const BUSYBOX = ['sh', 'mktemp', 'mkdir', 'cat', 'chmod', 'mv', 'rm', 'tr', 'sed', 'grep'];
const IMAGE_PATH = toolDir(join(tmp.path, 'image-bin'), {
  tools: ['curl'],
  busybox: [...BUSYBOX, 'base64', 'sha256sum', 'sleep'],
});

type Manifest = ReturnType<typeof parseManifest>;
function parseManifest(text: string) {
  const daemonSet = new DaemonSet(parse(text) as ConstructorParameters<typeof DaemonSet>[0]);
  daemonSet.validate(); // throws, naming the path, on what the API server would reject
  const pod = daemonSet.spec!.template.spec!;
  const container = pod.containers[0]!;
  const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? '']));
  return { daemonSet, pod, container, env };
}

let port = 0;
let hostPort = '';
let ca = '';
let printed = '';
let proxy: Proxy | undefined;
const running: ChildProcess[] = [];

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

afterEach(async () => {
  // The loop's sleep outlives a killed sh: stop the whole process group we started.
  for (const child of running.splice(0)) {
    if (child.exitCode === null && child.pid) process.kill(-child.pid, 'SIGKILL');
  }
});
afterAll(async () => {
  await proxy?.stop();
  tmp.remove();
});

/** Starts the container's command as written, with the node's /etc under `nodeRoot`. */
function startContainer(m: Manifest, nodeRoot: string, env: Record<string, string> = {}) {
  const mount = m.container.volumeMounts?.find((v) => v.name === 'containerd-certs');
  const volume = m.pod.volumes?.find((v) => v.name === 'containerd-certs');
  // The script writes under RTP_INSTALL_ROOT + /etc/containerd/certs.d: the mount point
  // of the node's directory of the same path.
  expect(mount?.mountPath).toBe(`${m.env['RTP_INSTALL_ROOT']}/etc/containerd/certs.d`);
  expect(volume?.hostPath?.path).toBe('/etc/containerd/certs.d');
  const [command, ...args] = [...(m.container.command ?? []), ...(m.container.args ?? [])];
  const scratch = join(nodeRoot, '..', 'tmp'); // the emptyDir at /tmp
  mkdirSync(scratch, { recursive: true });
  const child = spawn(command!, args, {
    detached: true,
    env: {
      ...m.env,
      PATH: IMAGE_PATH,
      TMPDIR: scratch,
      RTP_INSTALL_ROOT: nodeRoot,
      RETRY_SECONDS: '1', // the manifest's 10 s, shortened for the test
      ...env,
    },
  });
  running.push(child);
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  return { output: () => output, exited: () => child.exitCode };
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
    expect(container.exited()).toBeNull(); // it stays up, re-checking hourly
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
    expect(container.exited()).toBeNull();
  });
});
