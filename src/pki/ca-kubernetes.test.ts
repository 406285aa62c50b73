/**
 * One CA for every replica (tls.caDir): `ca init` makes it, `ca export
 * --kubernetes-secret` prints a Secret the API accepts, and a proxy issues its own
 * server certificate from a read-only CA directory into tls.dir, never writing to the
 * CA directory, and follows a Secret update (the kubelet's swap) to a new CA.
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Secret } from 'kubernetes-models/v1';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { writeAtomically } from '../../test/helpers/atomic-writer.js';
import { loadConfig } from '../config/load.js';
import { initCA, kubernetesSecret } from './ca-kubernetes.js';
import { rotateCA } from './ca-command.js';
import { loadOrCreateTLS } from './server-certs.js';
import { FILES } from './store.js';

const DAY_MS = 86_400_000;
const root = mkdtempSync(join(tmpdir(), 'rtp-ca-dir-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const configWith = (env: Record<string, string>) => loadConfig({ env });
const mode = (path: string) => statSync(path).mode & 0o777;
/** Every entry of a directory with its bytes or link target: what "unchanged" means. */
const snapshot = (dir: string) =>
  readdirSync(dir, { recursive: true, withFileTypes: true }).map((e) => {
    const path = join(e.parentPath, e.name);
    return [path, e.isFile() ? readFileSync(path, 'base64') : e.isSymbolicLink() ? 'link' : 'dir'];
  });

/** The files of a CA directory, laid out as the kubelet lays out a Secret volume (mode 0440). */
const secretPayload = (caDir: string) =>
  Object.fromEntries(
    readdirSync(caDir).map((f) => [f, { data: readFileSync(join(caDir, f)), mode: 0o440 }]),
  );

describe('ca init and ca export --kubernetes-secret', () => {
  const out = join(root, 'ca');
  it('creates a CA in a new directory (0700, key 0600) and never over an existing one', async () => {
    const text = await initCA(configWith({}), out);
    expect(mode(out)).toBe(0o700);
    expect(mode(join(out, FILES.caKey))).toBe(0o600);
    const ca = new X509Certificate(readFileSync(join(out, FILES.caCert)));
    expect(ca.ca).toBe(true);
    expect(text).toContain(ca.fingerprint256);
    expect(text).toMatch(/ca export --kubernetes-secret/);
    await expect(initCA(configWith({}), out)).rejects.toThrow(/is not empty/);
  });

  it('prints a Secret the Kubernetes API schema accepts, holding the CA files as they are', async () => {
    const text = await kubernetesSecret(configWith({ RTP_TLS_DIR: out }), 'rtp-ca', 'registry');
    const secret = parse(text) as { data: Record<string, string>; metadata: { name: string } };
    expect(() => new Secret(secret as never).validate()).not.toThrow();
    expect(secret.metadata).toMatchObject({ name: 'rtp-ca', namespace: 'registry' });
    expect(Object.keys(secret.data).sort()).toEqual([FILES.caCert, FILES.caKey]);
    for (const f of [FILES.caCert, FILES.caKey]) {
      expect(Buffer.from(secret.data[f]!, 'base64').equals(readFileSync(join(out, f)))).toBe(true);
    }
    // During a rotation the next CA goes in too, so that every replica serves both.
    await rotateCA(configWith({ RTP_TLS_DIR: out }), []);
    const rotating = parse(await kubernetesSecret(configWith({ RTP_TLS_DIR: out }), 'rtp-ca')) as {
      data: Record<string, string>;
    };
    expect(Object.keys(rotating.data).sort()).toEqual(
      [FILES.caCert, FILES.caKey, FILES.nextCACert, FILES.nextCAKey].sort(),
    );
  });

  it('refuses names Kubernetes would refuse, and rotating a read-only CA in place', async () => {
    await expect(kubernetesSecret(configWith({ RTP_TLS_DIR: out }), 'RTP_CA')).rejects.toThrow(
      /not a Kubernetes name/,
    );
    await expect(rotateCA(configWith({ RTP_TLS_CA_DIR: out }), [])).rejects.toThrow(
      /read-only to the proxy.*RTP_TLS_DIR=THAT_DIR/,
    );
  });
});

describe('a proxy with tls.caDir', () => {
  it('issues its server certificate into tls.dir from the read-only CA, and follows a Secret update', async () => {
    const first = join(root, 'first');
    const second = join(root, 'second');
    await initCA(configWith({}), first);
    await initCA(configWith({}), second);
    const secretDir = join(root, 'secret');
    writeAtomically(secretDir, secretPayload(first));
    const tlsDir = join(root, 'tls');
    mkdirSync(tlsDir);
    const opts = {
      dir: tlsDir,
      caDir: secretDir,
      sans: { dns: ['registry.lan'], ips: ['127.0.0.1'] },
      certLifetimeMs: 30 * DAY_MS,
      caLifetimeMs: 3650 * DAY_MS,
    };
    const before = snapshot(secretDir);
    const material = await loadOrCreateTLS(opts);
    expect(snapshot(secretDir)).toEqual(before); // nothing written, not even a lock file
    const caOf = (dir: string) => new X509Certificate(readFileSync(join(dir, FILES.caCert)));
    const leaf = new X509Certificate(material.serverCertPEM);
    expect(leaf.verify(caOf(first).publicKey)).toBe(true);
    expect(material.caFingerprint256).toBe(caOf(first).fingerprint256);
    expect(readdirSync(tlsDir).sort()).toEqual(
      [FILES.serverCert, FILES.serverKey, FILES.serverRSACert, FILES.serverRSAKey].sort(),
    );
    expect(
      material.fallback &&
        new X509Certificate(material.fallback.certPEM).verify(caOf(first).publicKey),
    ).toBe(true);
    expect((await loadOrCreateTLS(opts)).serverCertPEM).toBe(material.serverCertPEM); // kept

    // The Secret now holds another CA: the next load re-issues from it.
    writeAtomically(secretDir, secretPayload(second));
    const after = await loadOrCreateTLS(opts);
    expect(new X509Certificate(after.serverCertPEM).verify(caOf(second).publicKey)).toBe(true);
    expect(after.created).toMatchObject({ ca: false, server: true });
    expect(after.created.reason).toMatch(/signed by another CA/);
  });
});
