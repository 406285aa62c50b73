/**
 * The node-trust DaemonSet's container, run without a cluster: the manifest is parsed
 * and validated against the Kubernetes API schema (kubernetes-models), and its command
 * runs as written under the host's /bin/sh with a PATH like the image's (curl and
 * busybox applets, no openssl). A directory stands in for the node's / (the hostPath
 * is the node's /etc/containerd/certs.d; pass '' for this machine's own).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { expect } from 'vitest';
import { parse } from 'yaml';
import { toolDir } from './tool-dir.js';

/** What curlimages/curl has: busybox applets and curl (install-ca.sh then uses base64 + sha256sum). */
const BUSYBOX = ['sh', 'mktemp', 'mkdir', 'cat', 'chmod', 'mv', 'rm', 'tr', 'sed', 'grep'];

export type NodeTrustManifest = ReturnType<typeof parseNodeTrust>;

/** The parsed DaemonSet; throws, naming the path, on what the API schema rejects. */
export function parseNodeTrust(text: string) {
  const daemonSet = new DaemonSet(parse(text) as ConstructorParameters<typeof DaemonSet>[0]);
  daemonSet.validate();
  const pod = daemonSet.spec!.template.spec!;
  const container = pod.containers[0]!;
  const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? '']));
  return { daemonSet, pod, container, env };
}

export interface NodeTrustContainer {
  output(): string;
  exitCode(): number | null;
  /** Kills the container's process group (the loop's sleep outlives a killed sh), removes its /tmp. */
  stop(): void;
}

/**
 * Starts the container's command with the node's / at `nodeRoot`; `env` overrides the
 * manifest's (e.g. RETRY_SECONDS for a quicker test). Stop it with stop().
 */
export function startNodeTrust(
  m: NodeTrustManifest,
  nodeRoot: string,
  env: Record<string, string> = {},
): NodeTrustContainer {
  const mount = m.container.volumeMounts?.find((v) => v.name === 'containerd-certs');
  const volume = m.pod.volumes?.find((v) => v.name === 'containerd-certs');
  // install-ca.sh writes under RTP_INSTALL_ROOT + /etc/containerd/certs.d: that must be
  // where the node's directory of the same path is mounted.
  expect(mount?.mountPath).toBe(`${m.env['RTP_INSTALL_ROOT']}/etc/containerd/certs.d`);
  expect(volume?.hostPath?.path).toBe('/etc/containerd/certs.d');
  const scratch = mkdtempSync(join(tmpdir(), 'rtp-node-trust-')); // the emptyDir at /tmp
  const path = toolDir(join(scratch, 'bin'), {
    tools: ['curl'],
    busybox: [...BUSYBOX, 'base64', 'sha256sum', 'sleep'],
  });
  mkdirSync(join(scratch, 'tmp'));
  const [command, ...args] = [...(m.container.command ?? []), ...(m.container.args ?? [])];
  const child: ChildProcess = spawn(command!, args, {
    detached: true,
    env: { ...m.env, PATH: path, TMPDIR: join(scratch, 'tmp'), RTP_INSTALL_ROOT: nodeRoot, ...env },
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  return {
    output: () => output,
    exitCode: () => child.exitCode,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null && child.pid) {
        process.kill(-child.pid, 'SIGKILL');
      }
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
