/**
 * One CA for every replica, from a Kubernetes Secret (tls.caDir). Two proxies (the
 * pods), each with a tls.dir of its own (the emptyDir), mount one kubelet-style CA
 * volume (test/helpers/atomic-writer.ts, mode 0440). Each issues its own server
 * certificate from that CA and writes nothing to the volume. A rotation done where the
 * operator keeps the CA (`ca init`, `ca rotate`, `ca switch`) and applied as Secret
 * updates (`ca export --kubernetes-secret`, then the kubelet's `..data` swap) reaches
 * both running proxies within seconds, with tls.checkInterval an hour; skopeo pushes
 * through one and pulls through the other before and after. A Secret left at the
 * default mode 0644 is refused, with the defaultMode advice.
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { writeAtomically } from './helpers/atomic-writer.js';
import { eventually } from './helpers/eventually.js';
import { httpsGet } from './helpers/https.js';
import { buildOCIImage } from './helpers/oci.js';
import {
  createRegistry,
  runCLI,
  startProxy,
  tempDir,
  type Proxy,
  type Registry,
} from './helpers/processes.js';
import { skopeoPull, skopeoPush } from './helpers/skopeo.js';

const USER = 'kube';
const PASSWORD = 'ca-dir-e2e-pa55';
/** The README's promise for a Secret update, "within seconds", as a number. */
const WITHIN_MS = 10_000;

describe('tls.caDir: one CA from a Secret for two proxies', () => {
  const tmp = tempDir('ca-dir');
  const admin = join(tmp.path, 'ca-admin');
  const volume = join(tmp.path, 'secret-volume');
  let registry: Registry;
  const proxies: Proxy[] = [];

  const cli = (args: string[], env: Record<string, string> = {}) => {
    const r = runCLI(args, { RTP_TLS_DIR: admin, ...env });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout;
  };
  /** `ca export --kubernetes-secret`, applied: the kubelet writes the Secret's data into `into`. */
  const applySecret = (into = volume, mode = 0o440) => {
    const secret = parse(cli(['ca', 'export', '--kubernetes-secret', 'rtp-ca'])) as {
      data: Record<string, string>;
    };
    const files = Object.entries(secret.data).map(([f, b64]) => [
      f,
      { data: Buffer.from(b64, 'base64'), mode },
    ]);
    writeAtomically(into, Object.fromEntries(files));
  };
  const adminCA = (name = 'ca.crt') => readFileSync(join(admin, name), 'utf8');
  const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;
  const certDirWith = (name: string, pem: string) => {
    const dir = join(tmp.path, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'ca.crt'), pem);
    return dir;
  };
  /** skopeo pushes an image through one proxy and pulls it through the other, trusting only `ca`. */
  const pushThenPull = async (tag: string, through: [Proxy, Proxy], ca: string) => {
    const certs = certDirWith(`certs-${tag}`, ca);
    const creds = `${USER}:${PASSWORD}`;
    const ref = (p: Proxy) => `127.0.0.1:${p.port}/cadir/app:${tag}`;
    const image = buildOCIImage(join(tmp.path, `image-${tag}`), tag, [100_000]);
    const push = await skopeoPush(image.ref, ref(through[0]), certs, creds);
    expect(push.code, push.stderr).toBe(0);
    const pull = await skopeoPull(
      ref(through[1]),
      `dir:${join(tmp.path, `pulled-${tag}`)}`,
      certs,
      creds,
    );
    expect(pull.code, pull.stderr).toBe(0);
  };

  beforeAll(async () => {
    registry = await createRegistry(
      { auth: { kind: 'htpasswd', user: USER, password: PASSWORD } },
      tmp.path,
    );
    await registry.start();
    expect(cli(['ca', 'init', '--out', admin])).toMatch(/created a CA/);
    applySecret();
    for (const pod of ['pod-a', 'pod-b']) {
      proxies.push(
        await startProxy({
          backend: registry.url,
          tlsDir: join(tmp.path, pod),
          env: { RTP_TLS_CA_DIR: volume, RTP_TLS_CHECK_INTERVAL: '1h' },
        }),
      );
    }
  });
  afterAll(async () => {
    for (const p of proxies) await p.stop();
    await registry?.stop();
    tmp.remove();
  });

  it('each proxy serves its own certificate from the shared CA, and writes nothing to the volume', async () => {
    const volumeBefore = readdirSync(volume).sort();
    for (const proxy of proxies) {
      const answer = await httpsGet(`${proxy.origin}/v2/`, { ca: adminCA() });
      expect(answer.status).toBe(401);
      expect(readdirSync(proxy.tlsDir).sort()).toEqual([
        'server-rsa.crt',
        'server-rsa.key',
        'server.crt',
        'server.key',
      ]);
    }
    const [a, b] = proxies.map((p) => readFileSync(join(p.tlsDir, 'server.crt'), 'utf8'));
    expect(a).not.toBe(b); // each pod issued its own
    expect(readdirSync(volume).sort()).toEqual(volumeBefore);
    await pushThenPull('v1', [proxies[0]!, proxies[1]!], adminCA());
  });

  it('a CA rotation applied as Secret updates reaches both running proxies within seconds', async () => {
    const old = adminCA();
    cli(['ca', 'rotate']);
    const next = adminCA('ca-next.crt');
    applySecret();
    let t = Date.now();
    // Step 1: every proxy hands clients both CAs, still serving from the old one.
    for (const proxy of proxies) {
      await eventually(
        `${proxy.origin}/ca.crt to serve both CAs`,
        async () => {
          const bundle = (await httpsGet(`${proxy.origin}/ca.crt`, { ca: old })).body;
          const served = bundle.match(
            /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g,
          );
          return served?.map(fingerprint).join() === [old, next].map(fingerprint).join();
        },
        { timeoutMs: WITHIN_MS },
      );
    }
    console.log(`rotation step 1 served by both proxies after ${Date.now() - t} ms`);
    // Step 2: the next CA signs; each proxy re-issues from it, and a client that trusts
    // only the new CA verifies both.
    cli(['ca', 'switch']);
    applySecret();
    t = Date.now();
    for (const proxy of proxies) {
      await eventually(
        `${proxy.origin} to serve a certificate from the new CA`,
        async () => (await httpsGet(`${proxy.origin}/v2/`, { ca: next })).status === 401,
        { timeoutMs: WITHIN_MS },
      );
    }
    console.log(`rotation step 2 served by both proxies after ${Date.now() - t} ms`);
    await pushThenPull('v2', [proxies[1]!, proxies[0]!], next);
    // In the pods the CA is read-only: rotating there says where to do it instead.
    const refused = runCLI(['ca', 'rotate'], {
      RTP_TLS_CA_DIR: volume,
      RTP_TLS_DIR: proxies[0]!.tlsDir,
    });
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/read-only to the proxy.*ca export --kubernetes-secret/);
  });

  it("refuses a Secret volume left at Kubernetes' default mode 0644, naming defaultMode", () => {
    const open = join(tmp.path, 'open-volume');
    applySecret(open, 0o644);
    const serve = runCLI(['serve'], {
      RTP_BACKEND: registry.url,
      RTP_TLS_CA_DIR: open,
      RTP_TLS_DIR: join(tmp.path, 'pod-c'),
      RTP_LISTEN: '127.0.0.1:0',
      RTP_ADMIN_LISTEN: '127.0.0.1:0',
    });
    expect(serve.status).not.toBe(0);
    expect(serve.stderr).toMatch(
      /tls\.caDir .*ca\.key is a private key readable by others \(mode 0644\)/,
    );
    expect(serve.stderr).toMatch(/defaultMode: 0440/);
  });
});
