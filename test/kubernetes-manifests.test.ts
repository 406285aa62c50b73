/**
 * deploy/kubernetes: the kustomize base, each overlay, and the optional ServiceMonitor
 * component, rendered by `kubectl kustomize` as `kubectl apply -k` would render them,
 * then every object validated against the Kubernetes API schema (kubernetes-models; the
 * ServiceMonitor against the Prometheus Operator's). Then what the issue asks of them,
 * read from the rendered objects: replicas and anti-affinity, the pod's constraints,
 * the probes, the grace period against the drain, the CA from a read-only Secret, the
 * Service's traffic policy, and the NetworkPolicy around the registry. No cluster runs
 * here: test/ca-dir.test.ts runs the proxy under the Secret layout these mount.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { PersistentVolumeClaim, Service } from 'kubernetes-models/v1';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { DEFAULTS } from '../src/config/schema.js';
import { ROOT, tempDir } from './helpers/processes.js';

const KUBE = join(ROOT, 'deploy', 'kubernetes');
const OVERLAYS = ['loadbalancer', 'nodeport', 'proxy-protocol'] as const;

/** The API's model of each kind these manifests use; anything else fails the test. */
const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
};

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  spec: Record<string, unknown>;
}

function render(dir: string): K8sObject[] {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 });
  if (r.error) {
    // This machine's image ships kubectl 1.32 (kustomize 5.5); Debian's kubernetes-client
    // is 1.20, whose kustomize knows neither `labels` nor components.
    throw new Error(`kubectl kustomize: ${r.error.message}; install kubectl 1.27 or later`);
  }
  expect(r.status, r.stderr).toBe(0);
  return parseAllDocuments(r.stdout).map((d) => d.toJSON() as K8sObject);
}

const find = (objects: K8sObject[], kind: string, name: string) => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} among ${objects.map((x) => x.kind).join(', ')}`);
  return o;
};

/** The proxy's pod template, typed as far as these checks read it. */
interface Container {
  name: string;
  env: Array<{ name: string; value?: string }>;
  readinessProbe: { httpGet: { path: string; port: string; scheme?: string } };
  livenessProbe: { httpGet: { path: string; port: string } };
  securityContext: Record<string, unknown> & { capabilities: { drop: string[] } };
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface PodSpec {
  terminationGracePeriodSeconds: number;
  securityContext: Record<string, unknown>;
  affinity: { podAntiAffinity: unknown };
  containers: Container[];
  volumes: Array<{ name: string; secret?: { secretName: string; defaultMode: number } }>;
}
const podOf = (d: K8sObject) => (d.spec['template'] as { spec: PodSpec }).spec;
const envOf = (c: Container) => Object.fromEntries(c.env.map((e) => [e.name, e.value]));

describe('the Kubernetes manifests', () => {
  const tmp = tempDir('kube');
  afterAll(() => tmp.remove());

  it.each(['base', ...OVERLAYS.map((o) => `overlays/${o}`)])(
    '%s renders, and every object passes the API schema',
    (dir) => {
      const objects = render(join(KUBE, dir));
      expect(objects.length).toBeGreaterThan(0);
      for (const o of objects) {
        const Model = MODELS[`${o.apiVersion}/${o.kind}`];
        expect(Model, `${o.apiVersion} ${o.kind}`).toBeDefined();
        expect(
          () => new Model!(o as never).validate(),
          `${o.kind} ${o.metadata.name}`,
        ).not.toThrow();
      }
    },
  );

  it('the ServiceMonitor component renders into an overlay and passes its schema', () => {
    const overlay = join(tmp.path, 'with-monitoring');
    mkdirSync(overlay);
    writeFileSync(
      join(overlay, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        `  - ${relative(overlay, join(KUBE, 'overlays', 'loadbalancer'))}`, // kustomize refuses absolute ones
        'components:',
        `  - ${relative(overlay, join(KUBE, 'components', 'servicemonitor'))}`,
        '',
      ].join('\n'),
    );
    const objects = render(overlay);
    const monitor = find(objects, 'ServiceMonitor', 'registry-tls-proxy');
    expect(() => new ServiceMonitor(monitor as never).validate()).not.toThrow();
    const metrics = find(objects, 'Service', 'registry-tls-proxy-metrics');
    expect(metrics.spec['type']).toBe('ClusterIP'); // the admin port stays inside the cluster
    for (const o of objects) {
      expect(() => new MODELS[`${o.apiVersion}/${o.kind}`]!(o as never).validate()).not.toThrow();
    }
  });

  it('runs two or more proxies, spread over nodes, non-root, read-only, no capabilities, RuntimeDefault seccomp', () => {
    const proxy = find(render(join(KUBE, 'base')), 'Deployment', 'registry-tls-proxy');
    expect(proxy.spec['replicas']).toBeGreaterThanOrEqual(2);
    const pod = podOf(proxy);
    expect(pod.affinity.podAntiAffinity).toBeDefined();
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const [container] = pod.containers;
    expect(container!.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(container!.resources.requests['memory']).toBeDefined();
    expect(container!.resources.limits['memory']).toBeDefined();
  });

  it('probes readiness on the public health path (HTTPS) and liveness on /healthz, and outlasts the drain', () => {
    const proxy = find(render(join(KUBE, 'base')), 'Deployment', 'registry-tls-proxy');
    const pod = podOf(proxy);
    const [container] = pod.containers;
    expect(container!.readinessProbe.httpGet).toEqual({
      path: DEFAULTS.health.publicPath,
      port: 'https',
      scheme: 'HTTPS',
    });
    expect(container!.livenessProbe.httpGet).toMatchObject({ path: '/healthz', port: 'admin' });
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(DEFAULTS.timeouts.drainMs);
  });

  it('reads one CA from a read-only Secret (0440) and issues into an emptyDir', () => {
    const proxy = find(render(join(KUBE, 'base')), 'Deployment', 'registry-tls-proxy');
    const pod = podOf(proxy);
    const env = envOf(pod.containers[0]!);
    const ca = pod.volumes.find((v) => v.secret?.secretName === 'registry-tls-proxy-ca');
    expect(ca?.secret?.defaultMode).toBe(0o440);
    const mount = pod.containers[0]!.volumeMounts.find((m) => m.name === ca?.name);
    expect(mount).toMatchObject({ mountPath: env['RTP_TLS_CA_DIR'], readOnly: true });
    expect(pod.securityContext['fsGroup']).toBe(1000);
    const tls = pod.containers[0]!.volumeMounts.find((m) =>
      (env['RTP_TLS_DIR'] ?? '').startsWith(m.mountPath),
    );
    expect(pod.volumes.find((v) => v.name === tls?.name)).toHaveProperty('emptyDir');
  });

  it('keeps client addresses: Local traffic policy, or PROXY protocol where the balancer sends it', () => {
    for (const overlay of ['loadbalancer', 'nodeport'] as const) {
      const service = find(
        render(join(KUBE, 'overlays', overlay)),
        'Service',
        'registry-tls-proxy',
      );
      expect(service.spec['externalTrafficPolicy']).toBe('Local');
      expect(service.spec['type']).toBe(overlay === 'nodeport' ? 'NodePort' : 'LoadBalancer');
    }
    const objects = render(join(KUBE, 'overlays', 'proxy-protocol'));
    const service = find(objects, 'Service', 'registry-tls-proxy');
    expect(service.metadata.annotations).toHaveProperty(
      'service.beta.kubernetes.io/aws-load-balancer-proxy-protocol',
    );
    const env = envOf(podOf(find(objects, 'Deployment', 'registry-tls-proxy')).containers[0]!);
    expect(env['RTP_PROXY_PROTOCOL_TRUSTED_FROM']).toMatch(/\/\d+$/);
  });

  it('lets only the proxy reach the registry, which shares its secret and storage across replicas', () => {
    const objects = render(join(KUBE, 'base'));
    const policy = find(objects, 'NetworkPolicy', 'registry-only-from-proxy');
    expect(policy.spec).toMatchObject({
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'registry' } },
      ingress: [
        {
          from: [
            { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'registry-tls-proxy' } } },
          ],
          ports: [{ port: 5000 }],
        },
      ],
    });
    const registry = podOf(find(objects, 'Deployment', 'registry'));
    const env = registry.containers[0]!.env as Array<{
      name: string;
      valueFrom?: { secretKeyRef?: { name: string } };
    }>;
    expect(env.find((e) => e.name === 'REGISTRY_HTTP_SECRET')?.valueFrom?.secretKeyRef?.name).toBe(
      'registry-http-secret',
    );
    const claim = find(objects, 'PersistentVolumeClaim', 'registry-storage');
    expect(claim.spec['accessModes']).toEqual(['ReadWriteMany']);
  });
});
