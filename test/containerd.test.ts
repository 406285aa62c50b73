/**
 * containerd itself (Debian's 1.6: the daemon and ctr), end to end, with no
 * --skip-verify or --plain-http anywhere: the real registry (htpasswd auth) and
 * the proxy live on a test host in a network namespace, skopeo pushes a small
 * image through the proxy, and `ctr images pull --hosts-dir /etc/containerd/certs.d`
 * refuses the proxy until `registry-tls-proxy trust --install --client containerd`
 * has written exactly the files containerd reads: certs.d/HOST:PORT/ca.crt and the
 * hosts.toml that points at it (https://github.com/containerd/containerd/blob/v1.6.20/docs/hosts.md).
 * Then the pull succeeds and containerd holds the image skopeo pushed, digest for digest.
 * The node-trust DaemonSet's container (test/helpers/node-trust.ts), with this machine
 * as the node, writes the same trust and the pull succeeds again.
 *
 * Needs root (namespaces, containerd, /etc/containerd/certs.d), containerd (a
 * dependency of docker.io), skopeo and iproute2.
 */
import { X509Certificate } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SNAPSHOTTER,
  processesUsing,
  startContainerd,
  type Containerd,
} from './helpers/containerd.js';
import { eventually } from './helpers/eventually.js';
import { ownNamespaces, type TestHost } from './helpers/netns.js';
import { registryAndProxyOnTestHost } from './helpers/fixture.js';
import { parseNodeTrust, startNodeTrust } from './helpers/node-trust.js';
import { buildOCIImage, type OCIImage } from './helpers/oci.js';
import {
  readCA,
  runCLI,
  tempDir,
  type Proxy,
  type Registry,
  tearDown,
} from './helpers/processes.js';
import { skopeo } from './helpers/skopeo.js';

const USER = 'cora';
const PASSWORD = 'containerd-e2e-pa55word';
const ETC_CONTAINERD = '/etc/containerd';
const CERTS_D = join(ETC_CONTAINERD, 'certs.d');

// containerd boots in well under a second, but shared machines can be slow.
const SLOW = { timeout: 300_000 };

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe(
  'containerd (ctr pull --hosts-dir) verifies the proxy strictly, then trusts its CA',
  SLOW,
  () => {
    const tmp = tempDir('containerd');
    let host: TestHost | undefined;
    let registry: Registry | undefined;
    let proxy: Proxy | undefined;
    let containerd: Containerd | undefined;
    /** The daemon's private directory, to look for leftover processes after it stopped. */
    let containerdDir = '';
    /** HOST:PORT of the proxy on the test host, e.g. 198.18.0.2:41234 */
    let registryHost = '';
    /** /etc/containerd/certs.d/HOST:PORT */
    let trustDir = '';
    let imageRef = '';
    let image: OCIImage | undefined;
    let pushedDigest = '';
    /** /etc/containerd and /etc/containerd/certs.d when they did not exist before this test. */
    let etcDirsToRemove: string[] = [];

    const ctr = (args: string[]) => (containerd as Containerd).ctr(args);
    const pull = (hostsDir: string) =>
      ctr([
        'images',
        'pull',
        '--snapshotter',
        SNAPSHOTTER,
        '--user',
        `${USER}:${PASSWORD}`,
        '--hosts-dir',
        hostsDir,
        imageRef,
      ]);
    /** Requests the proxy logged from the root namespace's end of the link (where ctr runs). */
    const requestsFromClient = () =>
      proxy!
        .logLines()
        .filter((l) => l['msg'] === 'request' && String(l['client']).endsWith(host!.hostAddress));

    /** Removes the trust this test put in /etc/containerd, and only that. Idempotent. */
    const removeTrust = () => {
      if (trustDir) rmSync(trustDir, { recursive: true, force: true });
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
        throw new Error('containerd.test.ts needs root (network namespaces, containerd, certs.d)');
      }
      etcDirsToRemove = [CERTS_D, ETC_CONTAINERD].filter((dir) => !existsSync(dir));

      ({ host, registry, proxy } = await registryAndProxyOnTestHost('ctrd', tmp.path, {
        kind: 'htpasswd',
        user: USER,
        password: PASSWORD,
      }));
      registryHost = `${host.address}:${proxy.port}`;
      trustDir = join(CERTS_D, registryHost);
      imageRef = `${registryHost}/e2e/tiny:v1`;
      image = buildOCIImage(join(tmp.path, 'image'), 'v1', [4096]);

      containerd = await startContainerd();
      containerdDir = containerd.dir;
    }, 300_000);

    afterAll(async () => {
      await tearDown(
        () => containerd?.stop(),
        () => proxy?.stop(),
        () => registry?.stop(),
        () => host?.destroy(),
        removeTrust,
        () => tmp.remove(),
      );
      if (containerdDir) {
        expect(processesUsing(containerdDir)).toEqual([]);
        expect(existsSync(containerdDir)).toBe(false);
      }
      expect(ownNamespaces()).toEqual([]);
    }, 120_000);

    it('skopeo pushes a small image through the proxy, trusting only its ca.crt', async () => {
      const certDir = join(tmp.path, 'skopeo-certs');
      mkdirSync(certDir);
      copyFileSync(proxy!.caFile, join(certDir, 'ca.crt'));
      const digestFile = join(tmp.path, 'pushed.digest');
      const push = await skopeo([
        'copy',
        '--dest-cert-dir',
        certDir,
        '--dest-tls-verify=true',
        '--dest-creds',
        `${USER}:${PASSWORD}`,
        '--digestfile',
        digestFile,
        image!.ref,
        `docker://${imageRef}`,
      ]);
      expect(push.code, push.stderr).toBe(0);
      pushedDigest = readFileSync(digestFile, 'utf8').trim();
      // An OCI manifest goes through unchanged: the registry holds the digest we built.
      expect(pushedDigest).toBe(image!.manifestDigest);
      expect(requestsFromClient().some((l) => l['method'] === 'PUT' && l['status'] === 201)).toBe(
        true,
      );
    });

    it('refuses the proxy with "x509: certificate signed by unknown authority" while the CA is not trusted', async () => {
      expect(existsSync(trustDir)).toBe(false);
      // containerd prefers HOST_PORT_ over HOST:PORT (config_unix.go hostPaths): neither may be there.
      const [address, port] = [host!.address, String(proxy!.port)];
      expect(existsSync(join(CERTS_D, `${address}_${port}_`))).toBe(false);
      // The certificate does name the test host: the only thing missing is trust in its CA.
      const cert = new X509Certificate(readFileSync(join(proxy!.tlsDir, 'server.crt')));
      expect(cert.subjectAltName).toContain(`IP Address:${host!.address}`);
      expect(cert.checkIssued(new X509Certificate(readCA(proxy!)))).toBe(true);

      const refused = await pull(CERTS_D);
      expect(refused.code, refused.output).not.toBe(0);
      const h = escapeRegExp(registryHost);
      // Go 1.20 and later put "tls: failed to verify certificate: " before the x509 text.
      const unknownAuthority =
        '(tls: failed to verify certificate: )?x509: certificate signed by unknown authority';
      // What the user reads: ctr's own resolver (in 1.6 it fetches in the ctr process, not the
      // daemon) logs the failed host, then exits with the error.
      expect(refused.stderr).toMatch(
        new RegExp(
          `level=info msg="trying next host" error="failed to do request: Head \\\\"https://${h}/v2/e2e/tiny/manifests/v1\\\\": ${unknownAuthority}" host="${h}"`,
        ),
      );
      expect(refused.stderr).toMatch(
        new RegExp(
          `ctr: failed to resolve reference "${h}/e2e/tiny:v1": failed to do request: Head "https://${h}/v2/e2e/tiny/manifests/v1": ${unknownAuthority}`,
        ),
      );
      // The refusal is ctr's: in 1.6 the daemon only stores what ctr fetched, and never names the host.
      expect(containerd!.output()).not.toContain(host!.address);
      const images = await ctr(['images', 'ls', '--quiet']);
      expect(images.code, images.output).toBe(0);
      expect(images.stdout.split('\n')).not.toContain(imageRef);

      // The proxy saw the same refusal: the client does not trust its CA.
      const handshake = proxy!.logLines().find((l) => l['reason'] === 'untrusted_ca');
      expect(handshake?.['client']).toBe(host!.hostAddress);
    });

    it('trusts the CA with `registry-tls-proxy trust --install --client containerd`', () => {
      const trust = runCLI(
        ['trust', '--address', registryHost, '--install', '--client', 'containerd'],
        {
          RTP_TLS_DIR: proxy!.tlsDir,
        },
      );
      expect(trust.status, trust.stdout + trust.stderr).toBe(0);
      const caFile = join(trustDir, 'ca.crt');
      const hostsFile = join(trustDir, 'hosts.toml');
      expect(trust.stdout).toContain(`wrote ${caFile}`);
      expect(trust.stdout).toContain(`wrote ${hostsFile}`);
      expect(readdirSync(trustDir).sort()).toEqual(['ca.crt', 'hosts.toml']);
      for (const file of [caFile, hostsFile]) expect(statSync(file).mode & 0o777).toBe(0o644);

      // The same certificate, and nothing secret.
      const installed = readFileSync(caFile, 'utf8');
      expect(new X509Certificate(installed).fingerprint256).toBe(
        new X509Certificate(readCA(proxy!)).fingerprint256,
      );
      expect(installed).not.toMatch(/PRIVATE KEY/);

      // hosts.toml sends HOST:PORT to itself over https, with that ca.crt as its CA.
      const hostsTOML = readFileSync(hostsFile, 'utf8');
      const lines = hostsTOML.split('\n').map((l) => l.trim());
      expect(lines).toContain(`server = "https://${registryHost}"`);
      expect(lines).toContain(`[host."https://${registryHost}"]`);
      expect(lines).toContain(`ca = "${caFile}"`);
      expect(hostsTOML).toMatch(/capabilities = \[[^\]]*"pull"[^\]]*"resolve"/);
    });

    it('then pulls the image skopeo pushed, over the installed trust', async () => {
      const pulled = await pull(CERTS_D);
      expect(pulled.code, pulled.output).toBe(0);
      // hosts.toml was read as it is (a decode error would fall back to *.crt files, silently working).
      expect(pulled.output).not.toMatch(/failed to decode hosts\.toml|trying next host|x509/);
      expect(pulled.stdout).toContain(`unpacking linux/amd64 ${pushedDigest}`);

      const images = await ctr(['images', 'ls']);
      expect(images.code, images.output).toBe(0);
      const row = images.stdout.split('\n').find((l) => l.startsWith(`${imageRef} `));
      expect(row, images.stdout).toBeDefined();
      const [, mediaType, digest] = row!.trim().split(/\s+/);
      expect(mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
      expect(digest).toBe(pushedDigest);
      // Every blob is in containerd's content store and the layers are unpacked.
      const check = await ctr(['images', 'check', '--snapshotter', SNAPSHOTTER]);
      expect(check.code, check.output).toBe(0);
      expect(check.stdout).toMatch(
        new RegExp(`${escapeRegExp(imageRef)} .* complete \\(2/2\\) .* true`),
      );

      // It really went through the proxy, from the root namespace's end of the link.
      const requests = requestsFromClient();
      const got = (path: string) =>
        requests.some((l) => l['method'] === 'GET' && l['path'] === path && l['status'] === 200);
      expect(got(`/v2/e2e/tiny/manifests/${pushedDigest}`)).toBe(true);
      for (const layer of image!.layerDigests)
        expect(got(`/v2/e2e/tiny/blobs/${layer}`)).toBe(true);
      expect(proxy!.output()).not.toContain(PASSWORD);
    });

    it('reads the CA through hosts.toml: that file alone, without ca.crt beside it, is enough', async () => {
      // When hosts.toml is missing or unreadable, containerd falls back to the *.crt files of the
      // directory (remotes/docker/config/hosts.go loadHostDir); this rules that path out.
      const scratch = join(tmp.path, 'hosts-only');
      mkdirSync(join(scratch, registryHost), { recursive: true });
      copyFileSync(join(trustDir, 'hosts.toml'), join(scratch, registryHost, 'hosts.toml'));
      const removed = await ctr(['images', 'rm', '--sync', imageRef]);
      expect(removed.code, removed.output).toBe(0);
      const blobGETsBefore = requestsFromClient().filter((l) =>
        String(l['path']).startsWith('/v2/e2e/tiny/blobs/'),
      ).length;

      const pulled = await pull(scratch);
      expect(pulled.code, pulled.output).toBe(0);
      expect(pulled.output).not.toMatch(/failed to decode hosts\.toml|trying next host|x509/);
      const blobGETsAfter = requestsFromClient().filter((l) =>
        String(l['path']).startsWith('/v2/e2e/tiny/blobs/'),
      ).length;
      expect(blobGETsAfter).toBeGreaterThan(blobGETsBefore); // fetched again, not from a cache
      const ready = await ctr(['images', 'check', '--quiet', '--snapshotter', SNAPSHOTTER]);
      expect(ready.stdout.split('\n')).toContain(imageRef);
    });

    it('the Kubernetes node-trust container writes the same trust, and containerd pulls with it', async () => {
      // This machine as the node: the hostPath is its own /etc/containerd/certs.d.
      removeTrust();
      const removed = await ctr(['images', 'rm', '--sync', imageRef]);
      expect(removed.code, removed.output).toBe(0);
      const trust = runCLI(['trust', '--address', registryHost, '--client', 'kubernetes'], {
        RTP_TLS_DIR: proxy!.tlsDir,
      });
      expect(trust.status, trust.stderr).toBe(0);
      const container = startNodeTrust(parseNodeTrust(trust.stdout), '');
      try {
        await eventually(
          'the container to install the CA',
          () => /^done: https:\/\/\S+ is trusted/m.test(container.output()),
          { timeoutMs: 30_000 },
        );
      } finally {
        container.stop();
      }
      expect(readdirSync(trustDir).sort()).toEqual(['ca.crt', 'hosts.toml']);
      const pulled = await pull(CERTS_D);
      expect(pulled.code, pulled.output).toBe(0);
      expect(pulled.output).not.toMatch(/failed to decode hosts\.toml|trying next host|x509/);
      expect(pulled.stdout).toContain(`unpacking linux/amd64 ${pushedDigest}`);
    });

    it('removes exactly the trust it installed', () => {
      removeTrust();
      expect(existsSync(trustDir)).toBe(false);
      for (const dir of etcDirsToRemove) expect(existsSync(dir)).toBe(false);
    });
  },
);
