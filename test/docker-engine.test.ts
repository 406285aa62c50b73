/**
 * The docker engine itself, end to end, with no --insecure-registry anywhere: the
 * real registry (htpasswd auth) and the proxy live on a test host in a network
 * namespace at 198.18.0.2, so dockerd (which treats 127.0.0.0/8 as insecure and
 * would skip verification) must verify the proxy's certificate. It refuses the
 * proxy until the CA is trusted the way a user trusts it, in
 * /etc/docker/certs.d/HOST:PORT/ca.crt, then logs in, pushes and pulls back the
 * same image.
 *
 * Needs root (namespaces, dockerd, /etc/docker/certs.d), docker.io and iproute2.
 */
import { randomUUID, X509Certificate } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importTinyImage, run, startDockerd, type Dockerd } from './helpers/docker.js';
import { ownNamespaces, type TestHost } from './helpers/netns.js';
import { registryAndProxyOnTestHost } from './helpers/fixture.js';
import {
  CLI,
  readCA,
  startProxy,
  tempDir,
  waitForOutput,
  type Proxy,
  type Registry,
  tearDown,
} from './helpers/processes.js';

const USER = 'dora';
const PASSWORD = 'engine-e2e-pa55word';
const ETC_DOCKER = '/etc/docker';
const CERTS_D = join(ETC_DOCKER, 'certs.d');

// dockerd starts in seconds, but vfs copies every layer: generous limits for slow, shared machines.
const SLOW = { timeout: 300_000 };

describe('the docker engine verifies the proxy strictly, then trusts its CA', SLOW, () => {
  const tmp = tempDir('docker-engine');
  let host: TestHost | undefined;
  let registry: Registry | undefined;
  let proxy: Proxy | undefined;
  /** A second proxy on the same tls.dir with tls.clientAuth on. */
  let mtlsProxy: Proxy | undefined;
  let mtlsTrustDir = '';
  let engine: Dockerd | undefined;
  /** HOST:PORT of the proxy on the test host, e.g. 198.18.0.2:41234 */
  let registryHost = '';
  /** /etc/docker/certs.d/HOST:PORT */
  let trustDir = '';
  let imageRef = '';
  let imageId = '';
  let pushedDigest = '';
  /** /etc/docker and /etc/docker/certs.d when they did not exist before this test. */
  let etcDirsToRemove: string[] = [];
  const homeDockerConfig = join(homedir(), '.docker', 'config.json');
  let homeDockerConfigBefore: string | null = null;

  const proxyCA = () => readCA(proxy as Proxy);
  /** rtp_tls_handshakes_total{certificate}, from the admin port inside the test host. */
  const handshakes = async (certificate: string) => {
    const scraped = await run('ip', [
      ...['netns', 'exec', host!.name, 'curl', '-sf'],
      `http://127.0.0.1:${proxy!.adminPort}/metrics`,
    ]);
    expect(scraped.code, scraped.output).toBe(0);
    const series = `rtp_tls_handshakes_total{certificate="${certificate}"} `;
    const line = scraped.stdout.split('\n').find((l) => l.startsWith(series));
    return Number(line?.slice(series.length));
  };
  const docker = (args: string[], input?: string) =>
    (engine as Dockerd).docker(args, input === undefined ? {} : { input });
  const clientConfig = () =>
    JSON.parse(readFileSync(join((engine as Dockerd).configDir, 'config.json'), 'utf8')) as {
      auths?: Record<string, unknown>;
    };

  /** Removes the trust this test put in /etc/docker, and only that. Idempotent. */
  const removeTrust = () => {
    for (const dir of [trustDir, mtlsTrustDir]) {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
    for (const dir of etcDirsToRemove) {
      try {
        if (readdirSync(dir).length === 0) rmdirSync(dir);
      } catch {
        // gone already, or something else put files there meanwhile
      }
    }
  };

  beforeAll(async () => {
    if (process.getuid?.() !== 0) {
      throw new Error('docker-engine.test.ts needs root (network namespaces, dockerd, certs.d)');
    }
    homeDockerConfigBefore = existsSync(homeDockerConfig)
      ? readFileSync(homeDockerConfig, 'utf8')
      : null;
    etcDirsToRemove = [CERTS_D, ETC_DOCKER].filter((dir) => !existsSync(dir));

    ({ host, registry, proxy } = await registryAndProxyOnTestHost('dock', tmp.path, {
      kind: 'htpasswd',
      user: USER,
      password: PASSWORD,
    }));
    registryHost = `${host.address}:${proxy.port}`;
    trustDir = join(CERTS_D, registryHost);
    imageRef = `${registryHost}/e2e/tiny:v1`;

    engine = await startDockerd();
    imageId = await importTinyImage(engine, imageRef, tmp.path, `e2e ${randomUUID()}\n`);
  }, 300_000);

  afterAll(async () => {
    await tearDown(
      () => engine?.stop(),
      () => proxy?.stop(),
      () => mtlsProxy?.stop(),
      () => registry?.stop(),
      () => host?.destroy(),
      removeTrust,
      () => tmp.remove(),
    );
    expect(ownNamespaces()).toEqual([]);
  }, 120_000);

  it('refuses the proxy with "certificate signed by unknown authority" while the CA is not trusted', async () => {
    expect(existsSync(trustDir)).toBe(false);
    // The certificate does name the test host: the only thing missing is trust in its CA.
    const cert = new X509Certificate(readFileSync(join(proxy!.tlsDir, 'server.crt')));
    expect(cert.subjectAltName).toContain(`IP Address:${host!.address}`);
    expect(cert.checkIssued(new X509Certificate(proxyCA()))).toBe(true);
    // No --insecure-registry: the engine treats only loopback as insecure.
    const info = await docker(['info', '--format', '{{json .RegistryConfig}}']);
    expect(info.code, info.output).toBe(0);
    const registryConfig = JSON.parse(info.stdout) as {
      InsecureRegistryCIDRs: string[] | null;
      IndexConfigs: Record<string, { Secure: boolean }>;
    };
    for (const cidr of registryConfig.InsecureRegistryCIDRs ?? []) {
      expect(['127.0.0.0/8', '::1/128']).toContain(cidr);
    }
    expect(registryConfig.IndexConfigs[registryHost]).toBeUndefined();

    const login = await docker(
      ['login', registryHost, '--username', USER, '--password-stdin'],
      PASSWORD,
    );
    expect(login.code, login.output).not.toBe(0);
    // The engine itself refused it (the client only relays the daemon's error).
    expect(login.output).toMatch(
      /Error response from daemon: .*certificate signed by unknown authority/,
    );
    expect(login.output).not.toMatch(/Login Succeeded/);
    const auths = existsSync(join(engine!.configDir, 'config.json')) ? clientConfig().auths : {};
    expect(auths ?? {}).not.toHaveProperty([registryHost]);

    const pull = await docker(['pull', imageRef]);
    expect(pull.code, pull.output).not.toBe(0);
    expect(pull.output).toMatch(
      /Error response from daemon: .*certificate signed by unknown authority/,
    );
  });

  it('trusts the CA with `registry-tls-proxy trust --install --client docker`', async () => {
    const trust = await run(
      process.execPath,
      [CLI, 'trust', '--address', registryHost, '--install', '--client', 'docker'],
      { env: { RTP_TLS_DIR: proxy!.tlsDir } },
    );
    expect(trust.code, trust.output).toBe(0);
    // The same certificate (the PEM's line endings are the installer's business), and nothing secret.
    const installed = readFileSync(join(trustDir, 'ca.crt'), 'utf8');
    expect(new X509Certificate(installed).fingerprint256).toBe(
      new X509Certificate(proxyCA()).fingerprint256,
    );
    expect(installed).not.toMatch(/PRIVATE KEY/);
  });

  it('then logs in through the proxy', async () => {
    const login = await docker(
      ['login', registryHost, '--username', USER, '--password-stdin'],
      PASSWORD,
    );
    expect(login.code, login.output).toBe(0);
    expect(login.output).toMatch(/Login Succeeded/);
    expect(clientConfig().auths).toHaveProperty([registryHost]);
  });

  it('pushes the image, removes it, and pulls back the same image', async () => {
    const before = { ecdsa: await handshakes('ecdsa'), rsa: await handshakes('rsa') };
    const push = await docker(['push', imageRef]);
    expect(push.code, push.output).toBe(0);
    const pushed = /v1: digest: (sha256:[0-9a-f]{64})/.exec(push.stdout);
    expect(pushed, push.output).not.toBeNull();
    pushedDigest = pushed![1]!;

    const rmi = await docker(['rmi', imageRef]);
    expect(rmi.code, rmi.output).toBe(0);
    const gone = await docker(['image', 'inspect', imageRef]);
    expect(gone.code).not.toBe(0);

    const pull = await docker(['pull', imageRef]);
    expect(pull.code, pull.output).toBe(0);
    expect(pull.stdout).toContain(`Digest: ${pushedDigest}`);
    const inspect = await docker(['image', 'inspect', '--format', '{{json .}}', imageRef]);
    expect(inspect.code, inspect.output).toBe(0);
    const image = JSON.parse(inspect.stdout) as { Id: string; RepoDigests: string[] };
    expect(image.Id).toBe(imageId);
    expect(image.RepoDigests).toContain(`${registryHost}/e2e/tiny@${pushedDigest}`);

    // It really went through the proxy, from the engine in the root namespace, into the registry.
    const requests = proxy!.logLines().filter((l) => l['msg'] === 'request');
    const fromEngine = requests.filter((l) => String(l['client']).endsWith(host!.hostAddress));
    expect(fromEngine.some((l) => l['method'] === 'PUT' && l['status'] === 201)).toBe(true);
    expect(fromEngine.some((l) => l['method'] === 'GET' && l['status'] === 200)).toBe(true);
    expect(
      existsSync(
        join(tmp.path, 'storage', 'docker', 'registry', 'v2', 'repositories', 'e2e', 'tiny'),
      ),
    ).toBe(true);
    expect(proxy!.output()).not.toContain(PASSWORD);
    // The engine (Go) offers ECDSA, so it got the ECDSA certificate, never the RSA one.
    expect(await handshakes('ecdsa')).toBeGreaterThan(before.ecdsa);
    expect(await handshakes('rsa')).toBe(before.rsa);
  });

  it('with tls.clientAuth, refuses the engine until it holds a certificate from issue-client', async () => {
    mtlsProxy = await startProxy({
      backend: registry!.url,
      tlsDir: proxy!.tlsDir,
      wrap: host!.wrap,
      host: host!.address,
      env: { RTP_TLS_CLIENT_AUTH: 'true' },
    });
    const mtlsHost = `${host!.address}:${mtlsProxy.port}`;
    const mtlsRef = `${mtlsHost}/e2e/tiny:mtls`;
    mtlsTrustDir = join(CERTS_D, mtlsHost);
    mkdirSync(mtlsTrustDir, { recursive: true });
    writeFileSync(join(mtlsTrustDir, 'ca.crt'), proxyCA());

    // The CA alone is not enough: the proxy wants a client certificate. The engine says
    // "remote error: tls: certificate required" (TLS 1.3's alert).
    const refused = await docker(
      ['login', mtlsHost, '--username', USER, '--password-stdin'],
      PASSWORD,
    );
    expect(refused.code, refused.output).not.toBe(0);
    expect(refused.output).toMatch(
      /Error response from daemon: .*remote error: tls: certificate required/,
    );
    await waitForOutput(mtlsProxy.child, mtlsProxy.output, /"reason":"client_cert_missing"/);
    const logged = mtlsProxy.logLines().find((l) => l['reason'] === 'client_cert_missing');
    expect(logged?.['client']).toBe(host!.hostAddress);

    // What issue-client wrote, copied where docker reads it: client.cert + client.key beside ca.crt.
    const issuedDir = join(tmp.path, 'issued', 'engine');
    const issued = await run(
      process.execPath,
      [CLI, 'issue-client', 'docker-engine', '--out', issuedDir],
      { env: { RTP_TLS_DIR: proxy!.tlsDir } },
    );
    expect(issued.code, issued.output).toBe(0);
    for (const file of ['client.cert', 'client.key']) {
      copyFileSync(join(issuedDir, file), join(mtlsTrustDir, file));
    }

    const login = await docker(
      ['login', mtlsHost, '--username', USER, '--password-stdin'],
      PASSWORD,
    );
    expect(login.code, login.output).toBe(0);
    expect((await docker(['tag', imageRef, mtlsRef])).code).toBe(0);
    const push = await docker(['push', mtlsRef]);
    expect(push.code, push.output).toBe(0);
    expect(push.stdout).toContain(`mtls: digest: ${pushedDigest}`);
    expect((await docker(['rmi', mtlsRef])).code).toBe(0);
    const pull = await docker(['pull', mtlsRef]);
    expect(pull.code, pull.output).toBe(0);
    expect(pull.stdout).toContain(`Digest: ${pushedDigest}`);
    const fromEngine = mtlsProxy
      .logLines()
      .filter((l) => l['msg'] === 'request' && String(l['client']).endsWith(host!.hostAddress));
    expect(fromEngine.some((l) => l['method'] === 'GET' && l['status'] === 200)).toBe(true);
  });

  it('removes the trust it installed and never touched ~/.docker', () => {
    removeTrust();
    expect(existsSync(trustDir)).toBe(false);
    expect(existsSync(mtlsTrustDir)).toBe(false);
    const homeNow = existsSync(homeDockerConfig) ? readFileSync(homeDockerConfig, 'utf8') : null;
    expect(homeNow).toBe(homeDockerConfigBefore);
  });
});
