/**
 * The deployments, on real docker engines: the image this checkout's Dockerfile
 * builds, run (1) under the Kubernetes Deployment's pod constraints, two "pods" sharing
 * one CA Secret that is rotated kubelet-style; (2) as docker-compose.yml; (3) as
 * deploy/swarm/stack.yml on a two-node swarm. Each ends in strict skopeo pushes and
 * pulls from the root namespace, trusting only the CA.
 *
 * The engines live on a test LAN (test/helpers/test-lan.ts): two namespaces, each
 * with its own dockerd, iptables and bridge, networks on 198.19.0.0/16 only, and no
 * route out; the image is built on a root-namespace engine and loaded into both.
 * Needs root, docker.io, docker-compose, debootstrap (first run), kubectl, skopeo.
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { writeAtomically } from './helpers/atomic-writer.js';
import { run, type Dockerd } from './helpers/docker.js';
import {
  buildImages,
  copyImages,
  IMAGE,
  mustDocker,
  REGISTRY_IMAGE,
  startDeployEngine,
} from './helpers/deploy.js';
import { eventually } from './helpers/eventually.js';
import { httpsGet } from './helpers/https.js';
import { buildOCIImage } from './helpers/oci.js';
import { podEnv, podRunFlags, proxyPod } from './helpers/pod-run.js';
import { ROOT, runCLI, tempDir } from './helpers/processes.js';
import { skopeoPull, skopeoPush } from './helpers/skopeo.js';
import { createTestLan, type TestLan } from './helpers/test-lan.js';

const USER = 'ops';
const PASSWORD = 'deploy-e2e-pa55word';
const CREDS = `${USER}:${PASSWORD}`;

describe('deployments on real docker engines', { timeout: 900_000 }, () => {
  const tmp = tempDir('deploy');
  let lan: TestLan | undefined;
  let builder: Dockerd | undefined;
  const nodes: Dockerd[] = [];
  const node = (i: number) => nodes[i] as Dockerd;
  const address = (i: number) => (lan as TestLan).hosts[i]?.address as string;

  const cli = (args: string[], env: Record<string, string> = {}) => {
    const r = runCLI(args, env);
    expect(r.status, r.stderr).toBe(0);
    return r.stdout;
  };
  const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;
  const certDir = (name: string, ca: string) => {
    const dir = join(tmp.path, `certs-${name}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'ca.crt'), ca);
    return dir;
  };
  /** skopeo pushes through `via[0]` (HOST:PORT) and pulls back through `via[1]`, trusting only `ca`. */
  const pushThenPull = async (tag: string, via: [string, string], ca: string) => {
    const certs = certDir(tag, ca);
    const image = buildOCIImage(join(tmp.path, `image-${tag}`), tag, [200_000]);
    const push = await skopeoPush(image.ref, `${via[0]}/deploy/app:${tag}`, certs, CREDS);
    expect(push.code, push.stderr).toBe(0);
    const pulled = join(tmp.path, `pulled-${tag}`);
    const pull = await skopeoPull(`${via[1]}/deploy/app:${tag}`, `dir:${pulled}`, certs, CREDS);
    expect(pull.code, pull.stderr).toBe(0);
    return pulled;
  };
  /** An htpasswd file (bcrypt) for the registry's login, in `dir`. */
  const htpasswd = async (dir: string) => {
    mkdirSync(dir, { recursive: true });
    const made = await run('htpasswd', ['-Bbn', USER, PASSWORD]);
    expect(made.code, made.output).toBe(0);
    writeFileSync(join(dir, 'htpasswd'), made.stdout);
    return join(dir, 'htpasswd');
  };
  /** HTTPS GET of `path` on HOST:PORT, verified against `ca` only. */
  const get = (hostPort: string, path: string, ca: string) =>
    httpsGet(`https://${hostPort}${path}`, { ca, timeoutMs: 10_000 });

  beforeAll(async () => {
    lan = createTestLan('deploy', 2);
    builder = await startDeployEngine();
    await buildImages(builder);
    for (const [i, host] of lan.hosts.entries()) {
      nodes.push(await startDeployEngine({ netns: host.name, bridgeIp: `198.19.${250 + i}.1/24` }));
    }
    await copyImages(builder, nodes, tmp.path);
    await builder.stop();
  }, 2_400_000);

  afterAll(async () => {
    for (const engine of [...nodes, builder]) await engine?.stop();
    lan?.destroy();
    tmp.remove();
  }, 300_000);

  describe("the image under the Kubernetes Deployment's pod constraints", () => {
    const pod = proxyPod();
    const admin = join(tmp.path, 'ca-admin');
    const volume = join(tmp.path, 'ca-secret-volume');
    const pods = ['pod-a', 'pod-b'];
    /** Each pod's HTTPS port published on node 0: 5443 and 5444. */
    const published = (i: number) => `${address(0)}:${5443 + i}`;
    const adminCA = (name = 'ca.crt') => readFileSync(join(admin, name), 'utf8');
    /** `ca export --kubernetes-secret`, applied as the kubelet does, with the pod's mode and fsGroup. */
    const applySecret = () => {
      const secret = parse(
        cli(['ca', 'export', '--kubernetes-secret', 'rtp-ca'], { RTP_TLS_DIR: admin }),
      ) as { data: Record<string, string> };
      const { mode, gid } = pod.caMount;
      const files = Object.entries(secret.data).map(([f, b64]) => [
        f,
        { data: Buffer.from(b64, 'base64'), mode, gid },
      ]);
      writeAtomically(volume, Object.fromEntries(files));
    };

    beforeAll(async () => {
      const engine = node(0);
      cli(['ca', 'init', '--out', admin]);
      applySecret();
      const auth = await htpasswd(join(tmp.path, 'pod-auth'));
      await mustDocker(engine, ['network', 'create', '--subnet', '198.19.20.0/24', 'pods']);
      await mustDocker(engine, [
        ...['run', '-d', '--name', 'registry', '--network', 'pods'],
        ...['-e', 'REGISTRY_AUTH=htpasswd', '-e', 'REGISTRY_AUTH_HTPASSWD_REALM=registry'],
        ...['-e', 'REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd', '-v', `${auth}:/auth/htpasswd:ro`],
        REGISTRY_IMAGE,
      ]);
      const env = podEnv(pod, { 'metadata.namespace': 'default' });
      // The LoadBalancer overlay adds the public name; here, the node's address.
      env['RTP_TLS_NAMES'] = `${address(0)},${env['RTP_TLS_NAMES']}`;
      for (const [i, name] of pods.entries()) {
        await mustDocker(engine, [
          ...['run', '-d', '--name', name, '--hostname', name, '--network', 'pods'],
          ...['-p', `${5443 + i}:${pod.port('https')}`],
          ...podRunFlags(pod, env, volume),
          IMAGE,
        ]);
      }
    });
    afterAll(async () => {
      for (const name of [...pods, 'registry']) await node(0)?.docker(['rm', '-f', name]);
      await node(0)?.docker(['network', 'rm', 'pods']);
    });

    it('runs read-only as uid 1000 with no capabilities, each pod with its own certificate from the Secret', async () => {
      for (const [i, name] of pods.entries()) {
        const answer = await eventually(
          `${name} to answer over HTTPS trusting only the Secret's CA`,
          () => get(published(i), '/v2/', adminCA()),
          { timeoutMs: 60_000, intervalMs: 500 },
        );
        expect(answer.status).toBe(401);
        const inspect = JSON.parse(await mustDocker(node(0), ['inspect', name]))[0];
        expect(inspect.HostConfig.ReadonlyRootfs).toBe(true);
        expect(inspect.HostConfig.CapDrop).toEqual(['ALL']);
        expect(inspect.HostConfig.SecurityOpt).toContain('no-new-privileges');
        const status = await mustDocker(node(0), ['exec', name, 'cat', '/proc/1/status']);
        expect(status).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
        expect(status).toMatch(/^CapEff:\s+0+$/m);
        expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
        expect(status).toMatch(/^Seccomp:\s+2$/m); // filter mode: docker's default profile
        const write = await node(0).docker(['exec', name, 'touch', '/app/x']);
        expect(write.output).toMatch(/Read-only file system/);
      }
      // The liveness probe's endpoint, reached the way the kubelet reaches it: the pod's IP.
      const ip = await mustDocker(node(0), [
        ...['inspect', '-f', '{{(index .NetworkSettings.Networks "pods").IPAddress}}', 'pod-a'],
      ]);
      const live = await run('nsenter', [
        `--net=/run/netns/${(lan as TestLan).hosts[0]?.name}`,
        ...['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}'],
        `http://${ip}:${pod.port('admin')}/healthz`,
      ]);
      expect(live.stdout).toBe('200');
      const ready = await get(published(1), '/_proxy/health', adminCA());
      expect(ready.status).toBe(200);
      await pushThenPull('pods-v1', [published(0), published(1)], adminCA());
    });

    it('a CA rotation written into the mounted Secret kubelet-style reaches both running pods', async () => {
      const old = adminCA();
      cli(['ca', 'rotate'], { RTP_TLS_DIR: admin });
      const next = adminCA('ca-next.crt');
      applySecret();
      for (const i of [0, 1]) {
        await eventually(
          `${pods[i]} to serve both CAs at /ca.crt`,
          async () => {
            const bundle = (await get(published(i), '/ca.crt', old)).body;
            const served = bundle.match(
              /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g,
            );
            return served?.map(fingerprint).join() === [old, next].map(fingerprint).join();
          },
          { timeoutMs: 15_000, intervalMs: 250 },
        );
      }
      cli(['ca', 'switch'], { RTP_TLS_DIR: admin });
      applySecret();
      for (const i of [0, 1]) {
        await eventually(
          `${pods[i]} to serve a certificate from the new CA`,
          async () => (await get(published(i), '/v2/', next)).status === 401,
          { timeoutMs: 15_000, intervalMs: 250 },
        );
      }
      await pushThenPull('pods-v2', [published(1), published(0)], next);
      for (const name of pods) {
        const restarts = await mustDocker(node(0), ['inspect', '-f', '{{.RestartCount}}', name]);
        expect(restarts).toBe('0');
      }
    });
  });

  describe('docker-compose.yml', () => {
    const project = join(tmp.path, 'compose');
    const hostPort = () => `${address(0)}:6443`;
    const compose = (args: string[]) =>
      run(
        'docker-compose',
        [
          ...['-p', 'rtpdeploy', '--project-directory', project],
          ...['-f', join(project, 'docker-compose.yml'), '-f', join(project, 'test-ranges.yml')],
          ...args,
        ],
        {
          env: {
            DOCKER_HOST: node(0).host,
            DOCKER_CONFIG: node(0).configDir,
            HOME: project,
            RTP_PUBLISH: '6443',
            RTP_TLS_NAMES: address(0),
            REGISTRY_HTTP_SECRET: 'deploy-e2e-http-secret',
          },
          timeoutMs: 600_000,
        },
      );
    const proxyContainer = async () => {
      const ps = await compose(['ps', '-q', 'proxy']);
      expect(ps.code, ps.output).toBe(0);
      return ps.stdout.trim();
    };

    beforeAll(async () => {
      mkdirSync(project);
      writeFileSync(
        join(project, 'docker-compose.yml'),
        readFileSync(join(ROOT, 'docker-compose.yml')),
      );
      // Test-only ranges for the file's two networks: an override replaces a network whole.
      writeFileSync(
        join(project, 'test-ranges.yml'),
        [
          "version: '3.8'",
          'networks:',
          '  internal:',
          '    internal: true',
          '    ipam: { config: [{ subnet: 198.19.10.0/24 }] }',
          '  public:',
          '    ipam: { config: [{ subnet: 198.19.11.0/24 }] }',
          '',
        ].join('\n'),
      );
      await htpasswd(join(project, 'auth'));
      const up = await compose(['up', '-d', '--no-build']);
      expect(up.code, up.output).toBe(0);
    });
    afterAll(async () => {
      if (nodes.length > 0) await compose(['down', '-v']);
    });

    it('turns healthy, and serves a strict push and pull through the published port', async () => {
      const id = await proxyContainer();
      const t = Date.now();
      await eventually(
        "the image's HEALTHCHECK to turn healthy",
        async () => {
          const state = await mustDocker(node(0), [
            'inspect',
            '-f',
            '{{.State.Health.Status}}',
            id,
          ]);
          expect(state).not.toBe('unhealthy');
          return state === 'healthy';
        },
        { timeoutMs: 180_000, intervalMs: 1000 },
      );
      console.log(`deploy: compose proxy healthy after ${((Date.now() - t) / 1000).toFixed(0)} s`);
      // The operator's way to the CA: the fingerprint the log shows, the file from /ca.crt.
      const logs = await compose(['logs', '--no-color', 'proxy']);
      const logged = /"caFingerprint256":"((?:[0-9A-F]{2}:){31}[0-9A-F]{2})"/.exec(logs.output);
      expect(logged, logs.output).not.toBeNull();
      const ca = await mustDocker(node(0), [
        'exec',
        id,
        'cat',
        '/var/lib/registry-tls-proxy/tls/ca.crt',
      ]);
      expect(fingerprint(ca)).toBe(logged?.[1]);
      const anonymous = await get(hostPort(), '/v2/', ca);
      expect(anonymous.status).toBe(401);
      await pushThenPull('compose', [hostPort(), hostPort()], ca);
      const registry = await compose(['ps', '-q', 'registry']);
      const ports = await mustDocker(node(0), ['port', registry.stdout.trim()]);
      expect(ports).toBe(''); // the registry publishes nothing: only the proxy reaches it
    });

    it('`down -v` leaves no container, network or volume of the project', async () => {
      const down = await compose(['down', '-v']);
      expect(down.code, down.output).toBe(0);
      for (const kind of ['ps -a', 'network ls', 'volume ls']) {
        const left = await mustDocker(node(0), [
          ...kind.split(' '),
          '--filter',
          'label=com.docker.compose.project=rtpdeploy',
          '-q',
        ]);
        expect(left, kind).toBe('');
      }
    });
  });

  describe('deploy/swarm/stack.yml on a two-node swarm', () => {
    const stack = join(tmp.path, 'stack');
    const ca = () => readFileSync(join(stack, 'ca', 'ca.crt'), 'utf8');
    const published = (i: number) => `${address(i)}:5443`;
    const deployEnv = () => ({
      REGISTRY_HTTP_SECRET: 'deploy-e2e-http-secret',
      RTP_TLS_NAMES: `${address(0)},${address(1)}`,
    });
    /** The proxy task's container on node `i`, once one runs there. */
    const proxyTask = async (i: number) =>
      (await mustDocker(node(i), [
        'ps',
        '-q',
        '--filter',
        'label=com.docker.swarm.service.name=rtp_proxy',
      ])) || undefined;

    beforeAll(async () => {
      const [manager, worker] = [node(0), node(1)];
      await mustDocker(manager, [
        ...['swarm', 'init', '--advertise-addr', address(0)],
        ...['--default-addr-pool', '198.19.128.0/17'],
      ]);
      const token = await mustDocker(manager, ['swarm', 'join-token', '-q', 'worker']);
      await mustDocker(worker, [
        ...['swarm', 'join', '--token', token, '--advertise-addr', address(1)],
        `${address(0)}:2377`,
      ]);
      const self = await mustDocker(manager, ['info', '-f', '{{.Swarm.NodeID}}']);
      await mustDocker(manager, ['node', 'update', '--label-add', 'registry=true', self]);
      mkdirSync(stack);
      writeFileSync(join(stack, 'stack.yml'), readFileSync(join(ROOT, 'deploy/swarm/stack.yml')));
      cli(['ca', 'init', '--out', join(stack, 'ca')]);
      await htpasswd(join(stack, 'auth'));
      const deployed = await manager.docker(
        ['stack', 'deploy', '-c', join(stack, 'stack.yml'), 'rtp'],
        { env: deployEnv() },
      );
      expect(deployed.code, deployed.output).toBe(0);
    });
    afterAll(async () => {
      await node(0)?.docker(['stack', 'rm', 'rtp']);
      for (const engine of [...nodes].reverse()) await engine.docker(['swarm', 'leave', '--force']);
    });

    it('runs one healthy proxy per node, each serving a strict push and pull', async () => {
      for (const i of [0, 1]) {
        const answer = await eventually(
          `the proxy replica on node ${i} to answer, trusting only the CA from the secrets`,
          () => get(published(i), '/v2/', ca()),
          { timeoutMs: 300_000, intervalMs: 1000 },
        );
        expect(answer.status).toBe(401);
        await eventually(
          `the replica on node ${i} to be healthy`,
          async () => {
            const id = await proxyTask(i);
            return (
              id &&
              (await mustDocker(node(i), ['inspect', '-f', '{{.State.Health.Status}}', id])) ===
                'healthy'
            );
          },
          { timeoutMs: 180_000, intervalMs: 1000 },
        );
      }
      await pushThenPull('swarm-v1', [published(0), published(1)], ca());
      // Host-mode ports: the proxy logs the client's own address, not the ingress network's.
      const logs = await mustDocker(node(0), ['service', 'logs', '--raw', 'rtp_proxy']);
      expect(logs).toContain(`"client":"${(lan as TestLan).hostAddress}"`);
    });

    it('a killed replica task is replaced; the other node serves meanwhile, and both serve after', async () => {
      const killed = (await proxyTask(0)) as string;
      const other = await proxyTask(1);
      await mustDocker(node(0), ['kill', killed]);
      await pushThenPull('swarm-meanwhile', [published(1), published(1)], ca());
      const replacement = await eventually(
        'swarm to start a new proxy task on node 0',
        async () => {
          const id = await proxyTask(0);
          return id && !killed.startsWith(id) && id;
        },
        { timeoutMs: 120_000, intervalMs: 1000 },
      );
      await eventually('the new task to answer', () => get(published(0), '/v2/', ca()), {
        timeoutMs: 120_000,
        intervalMs: 1000,
      });
      expect(killed.startsWith(replacement)).toBe(false);
      await pushThenPull('swarm-v2', [published(0), published(1)], ca());
      const tasks = async (state: string) =>
        (
          await mustDocker(node(0), [
            ...['service', 'ps', 'rtp_proxy', '--filter', `desired-state=${state}`],
            ...['--format', '{{.CurrentState}} {{.Error}}'],
          ])
        ).split('\n');
      // Swarm counts a task with a HEALTHCHECK as running once it is healthy.
      await eventually(
        'both proxy tasks running',
        async () => {
          const running = await tasks('running');
          return running.filter((t) => t.startsWith('Running')).length === 2;
        },
        { timeoutMs: 180_000, intervalMs: 1000 },
      );
      expect(await proxyTask(1)).toBe(other); // the other node's replica was left alone
      const ended = await tasks('shutdown');
      expect(ended.join('\n')).toMatch(/^Failed .*exit \(137\)/m); // the SIGKILLed one
    });

    it('an update whose new tasks fail is rolled back, and both nodes serve again', async () => {
      const inspect = (format: string) =>
        mustDocker(node(0), ['service', 'inspect', '-f', format, 'rtp_proxy']);
      await mustDocker(node(0), [
        ...['service', 'update', '--detach', '--env-add', 'RTP_LISTEN=no-such-address'],
        'rtp_proxy',
      ]);
      await eventually(
        'the update to be rolled back',
        async () => (await inspect('{{.UpdateStatus.State}}')) === 'rollback_completed',
        { timeoutMs: 300_000, intervalMs: 1000 },
      );
      expect(await inspect('{{json .Spec.TaskTemplate.ContainerSpec.Env}}')).not.toContain(
        'no-such-address',
      );
      // The failed task said why: start-up refused the setting, naming it.
      const logs = await node(0).docker(['service', 'logs', '--raw', 'rtp_proxy']);
      expect(logs.output).toMatch(/listen: must be host:port .*got "no-such-address"/);
      for (const i of [0, 1]) {
        await eventually(
          `node ${i} to serve after the rollback`,
          () => get(published(i), '/v2/', ca()),
          {
            timeoutMs: 120_000,
            intervalMs: 1000,
          },
        );
      }
      await pushThenPull('swarm-v3', [published(1), published(0)], ca());
    });

    it("a CA rotation as the README's swarm steps do it: secrets under new names, rolled out", async () => {
      const admin = { RTP_TLS_DIR: join(stack, 'ca') };
      const old = ca();
      cli(['ca', 'rotate'], admin);
      const next = readFileSync(join(stack, 'ca', 'ca-next.crt'), 'utf8');
      const update = ['service', 'update', '--detach'];
      for (const [file, mode] of [
        ['ca-next.crt', '0444'],
        ['ca-next.key', '0400'],
      ] as const) {
        const name = `registry-tls-proxy-${file}-1`;
        await mustDocker(node(0), ['secret', 'create', name, join(stack, 'ca', file)]);
        update.push('--secret-add', `source=${name},target=${file},uid=1000,gid=1000,mode=${mode}`);
      }
      await mustDocker(node(0), [...update, 'rtp_proxy']);
      const bothCAs = [old, next].map(fingerprint).join();
      for (const i of [0, 1]) {
        await eventually(
          `node ${i} to serve both CAs at /ca.crt`,
          async () => {
            const bundle = (await get(published(i), '/ca.crt', old)).body;
            const served = bundle.match(
              /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g,
            );
            return served?.map(fingerprint).join() === bothCAs;
          },
          { timeoutMs: 300_000, intervalMs: 1000 },
        );
      }
      cli(['ca', 'switch'], admin);
      const redeployed = await node(0).docker(
        ['stack', 'deploy', '-c', join(stack, 'stack.yml'), 'rtp'],
        { env: { ...deployEnv(), RTP_CA_VERSION: '2' } },
      );
      expect(redeployed.code, redeployed.output).toBe(0);
      for (const i of [0, 1]) {
        await eventually(
          `node ${i} to serve a certificate from the new CA`,
          async () => (await get(published(i), '/v2/', next)).status === 401,
          { timeoutMs: 300_000, intervalMs: 1000 },
        );
      }
      await pushThenPull('swarm-rotated', [published(0), published(1)], next);
    });
  });
});
