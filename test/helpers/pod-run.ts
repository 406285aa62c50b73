/**
 * The proxy Deployment of deploy/kubernetes, rendered by kustomize, turned into the
 * `docker run` flags that give a container the pod's constraints: its uid, gid and
 * fsGroup, a read-only root, no capabilities, no privilege escalation, the default
 * seccomp profile (docker's default is the runtime default), the memory limit, the
 * environment as the kubelet expands it, an emptyDir as a tmpfs and the CA Secret as a
 * read-only directory. Read from the manifest, so that the test follows it.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './processes.js';

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

interface Container {
  name: string;
  env: EnvVar[];
  ports: Array<{ name: string; containerPort: number }>;
  resources: { limits: { memory: string } };
  securityContext: {
    allowPrivilegeEscalation: boolean;
    readOnlyRootFilesystem: boolean;
    capabilities: { drop: string[] };
  };
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}

interface PodSpec {
  securityContext: {
    runAsUser: number;
    runAsGroup: number;
    fsGroup: number;
    seccompProfile: { type: string };
  };
  containers: Container[];
  volumes: Array<{
    name: string;
    secret?: { secretName: string; defaultMode: number };
    emptyDir?: { medium?: string; sizeLimit?: string };
  }>;
}

export interface ProxyPod {
  spec: PodSpec;
  container: Container;
  /** Where the CA Secret is mounted, and its mode. */
  caMount: { path: string; mode: number; gid: number };
  /** The container port of `name` (https, admin). */
  port(name: string): number;
}

/** The rendered proxy Deployment's pod (kubectl kustomize deploy/kubernetes/base). */
export function proxyPod(): ProxyPod {
  const rendered = execFileSync('kubectl', ['kustomize', join(ROOT, 'deploy/kubernetes/base')], {
    encoding: 'utf8',
  });
  const deployment = parseAllDocuments(rendered)
    .map((d) => d.toJS() as { kind: string; metadata: { name: string }; spec: unknown })
    .find((d) => d.kind === 'Deployment' && d.metadata.name === 'registry-tls-proxy');
  if (!deployment) throw new Error('no Deployment registry-tls-proxy in the kustomize base');
  const spec = (deployment.spec as { template: { spec: PodSpec } }).template.spec;
  const container = spec.containers.find((c) => c.name === 'proxy');
  if (!container) throw new Error('no container "proxy" in the Deployment');
  const caVolume = spec.volumes.find((v) => v.secret);
  const caMount = container.volumeMounts.find((m) => m.name === caVolume?.name);
  if (!caVolume?.secret || !caMount) throw new Error('the Deployment mounts no Secret');
  return {
    spec,
    container,
    caMount: {
      path: caMount.mountPath,
      mode: caVolume.secret.defaultMode,
      gid: spec.securityContext.fsGroup,
    },
    port: (name) => {
      const port = container.ports.find((p) => p.name === name);
      if (!port) throw new Error(`no container port ${name}`);
      return port.containerPort;
    },
  };
}

/** The kubelet's $(VAR) expansion: only variables defined earlier in the list. */
export function podEnv(pod: ProxyPod, fields: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of pod.container.env) {
    if (v.valueFrom?.fieldRef) {
      const field = fields[v.valueFrom.fieldRef.fieldPath];
      if (field === undefined) throw new Error(`no value for ${v.valueFrom.fieldRef.fieldPath}`);
      env[v.name] = field;
    } else {
      env[v.name] = (v.value ?? '').replace(
        /\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g,
        (all, name: string) => (name in env ? (env[name] as string) : all),
      );
    }
  }
  return env;
}

/** Kubernetes quantities as docker takes them: 1Mi → 1m, 384Mi → 384m. */
function dockerSize(quantity: string): string {
  const match = /^(\d+)(Ki|Mi|Gi)$/.exec(quantity);
  if (!match) throw new Error(`unexpected quantity ${quantity}`);
  return `${match[1]}${{ Ki: 'k', Mi: 'm', Gi: 'g' }[match[2] as 'Ki' | 'Mi' | 'Gi']}`;
}

/** `docker run` flags for the pod's constraints, with the Secret's data at `caHostDir`. */
export function podRunFlags(pod: ProxyPod, env: Record<string, string>, caHostDir: string) {
  const { securityContext: podSecurity, volumes } = pod.spec;
  const { securityContext: security, resources, volumeMounts } = pod.container;
  if (podSecurity.seccompProfile.type !== 'RuntimeDefault') {
    throw new Error(`seccomp ${podSecurity.seccompProfile.type}: docker runs RuntimeDefault only`);
  }
  const flags = [
    `--user=${podSecurity.runAsUser}:${podSecurity.runAsGroup}`,
    `--group-add=${podSecurity.fsGroup}`,
    `--memory=${dockerSize(resources.limits.memory)}`,
    ...security.capabilities.drop.map((cap) => `--cap-drop=${cap}`),
  ];
  if (security.readOnlyRootFilesystem) flags.push('--read-only');
  if (!security.allowPrivilegeEscalation) flags.push('--security-opt=no-new-privileges');
  for (const mount of volumeMounts) {
    const volume = volumes.find((v) => v.name === mount.name);
    if (volume?.secret) {
      flags.push(`--volume=${caHostDir}:${mount.mountPath}:ro`);
    } else if (volume?.emptyDir) {
      // An emptyDir is 0777; with medium Memory it is a tmpfs in the kubelet too.
      const size = volume.emptyDir.sizeLimit
        ? `,size=${dockerSize(volume.emptyDir.sizeLimit)}`
        : '';
      flags.push(`--tmpfs=${mount.mountPath}:mode=0777${size}`);
    } else {
      throw new Error(`volume ${mount.name}: neither a Secret nor an emptyDir`);
    }
  }
  for (const [name, value] of Object.entries(env)) flags.push(`--env=${name}=${value}`);
  return flags;
}
