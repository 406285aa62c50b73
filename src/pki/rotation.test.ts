/**
 * CA rotation as the files in tls.dir show it: `ca rotate` adds a next CA that clients
 * are given to trust, `ca switch` makes it sign, `ca switch --back` undoes that, and the
 * server certificate follows whichever CA is active. Real RSA keys in real temp
 * directories; a few template directories are made once and copied per test, because a
 * 3072-bit CA costs a second or two.
 */
import { spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { cancelRotation, startRotation, switchCA } from './rotation.js';
import {
  FILES,
  clientCABundle,
  loadOrCreateCA,
  readCASet,
  trustBundle,
  type CASet,
  type StoreOptions,
  type TLSMaterial,
} from './store.js';
import { loadOrCreateTLS } from './server-certs.js';

/** Lets a test act just before store.ts opens a file (see switchInAnotherProcessBefore). */
const fsHook = vi.hoisted(() => ({
  beforeRead: undefined as ((path: string) => void) | undefined,
}));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const readFileSync = (...args: Parameters<typeof fs.readFileSync>) => {
    fsHook.beforeRead?.(String(args[0]));
    return fs.readFileSync(...args);
  };
  return { ...fs, readFileSync, default: { ...fs, readFileSync } };
});

const DAY_MS = 24 * 60 * 60 * 1000;
const CA_LIFETIME_MS = 3650 * DAY_MS;
const TIMEOUT_MS = 60_000;
/** How long a read stalls with another process switching meanwhile. */
const STALL_MS = 1500;
const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

const root = mkdtempSync(join(tmpdir(), 'rtp-rotation-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const storeOptions = (dir: string): StoreOptions => ({
  dir,
  sans: { dns: ['localhost'], ips: ['127.0.0.1'] },
  certLifetimeMs: 30 * DAY_MS,
  caLifetimeMs: CA_LIFETIME_MS,
});

const x509 = (dir: string, name: string) => new X509Certificate(readFileSync(join(dir, name)));
const fingerprintOf = (dir: string, name: string) => x509(dir, name).fingerprint256;
const mode = (dir: string, name: string) => statSync(join(dir, name)).mode & 0o777;
const fingerprints = (pem: string) =>
  (pem.match(CERT_BLOCK) ?? []).map((c) => new X509Certificate(c).fingerprint256);
/** The key file belongs to the certificate file. */
const pairMatches = (dir: string, cert: string, key: string) =>
  x509(dir, cert).checkPrivateKey(createPrivateKey(readFileSync(join(dir, key))));

/** A tls.dir with one CA (A) and a server certificate it signed. */
let activeOnly = '';
/** The same, after `ca rotate`: A active, B next. */
let rotating = '';
let fingerprintA = '';
let fingerprintB = '';

let copies = 0;
/** A private copy of a template directory (file modes are kept). */
function copyOf(template: string): string {
  const dir = join(root, `case-${++copies}`);
  cpSync(template, dir, { recursive: true });
  return dir;
}

beforeAll(async () => {
  activeOnly = join(root, 'template-active');
  const material = await loadOrCreateTLS(storeOptions(activeOnly));
  expect(material.created).toMatchObject({ ca: true, server: true });
  fingerprintA = fingerprintOf(activeOnly, FILES.caCert);

  rotating = join(root, 'template-rotating');
  cpSync(activeOnly, rotating, { recursive: true });
  await startRotation({ dir: rotating, caLifetimeMs: CA_LIFETIME_MS });
  fingerprintB = fingerprintOf(rotating, FILES.nextCACert);
  expect(fingerprintB).not.toBe(fingerprintA);
}, TIMEOUT_MS);

describe('ca rotate', () => {
  it(
    'creates ca-next.crt (0644) and ca-next.key (0600) and leaves the active CA alone',
    async () => {
      const dir = copyOf(activeOnly);
      const caBefore = readFileSync(join(dir, FILES.caCert), 'utf8');
      const now = new Date();

      const result = await startRotation({ dir, caLifetimeMs: CA_LIFETIME_MS, now });

      expect(mode(dir, FILES.nextCACert)).toBe(0o644);
      expect(mode(dir, FILES.nextCAKey)).toBe(0o600);
      expect(pairMatches(dir, FILES.nextCACert, FILES.nextCAKey)).toBe(true);
      const next = x509(dir, FILES.nextCACert);
      expect(next.ca).toBe(true);
      expect(result.next.fingerprint256).toBe(next.fingerprint256);
      expect(result.next.fingerprint256).not.toBe(fingerprintA);
      expect(
        Math.abs(result.next.notAfter.getTime() - (now.getTime() + CA_LIFETIME_MS)),
      ).toBeLessThan(DAY_MS);
      expect(result.active.fingerprint256).toBe(fingerprintA);
      expect(readFileSync(join(dir, FILES.caCert), 'utf8')).toBe(caBefore);
      // No lock or temporary file left behind.
      expect(readdirSync(dir).sort()).toEqual(
        [
          FILES.caCert,
          FILES.caKey,
          FILES.nextCACert,
          FILES.nextCAKey,
          FILES.serverCert,
          FILES.serverKey,
          FILES.serverRSACert,
          FILES.serverRSAKey,
        ].sort(),
      );
    },
    TIMEOUT_MS,
  );

  it('refuses a second rotation, naming both ways out, and keeps the pending next CA', async () => {
    const dir = copyOf(rotating);
    const error = await startRotation({ dir, caLifetimeMs: CA_LIFETIME_MS }).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'ROTATION_PENDING' });
    expect((error as Error).message).toContain('ca switch');
    expect((error as Error).message).toContain('ca rotate --cancel');
    expect((error as Error).message).toContain(fingerprintB);
    expect(fingerprintOf(dir, FILES.nextCACert)).toBe(fingerprintB);
    expect(existsSync(join(dir, '.lock'))).toBe(false);
  });

  it('trustBundle lists the active CA, then the next one, fingerprints in the same order', async () => {
    const before = trustBundle(await readCASet(activeOnly));
    expect(fingerprints(before.pem)).toEqual([fingerprintA]);
    expect(before.fingerprints).toEqual([fingerprintA]);

    const during = trustBundle(await readCASet(rotating));
    expect(fingerprints(during.pem)).toEqual([fingerprintA, fingerprintB]);
    expect(during.fingerprints).toEqual([fingerprintA, fingerprintB]);
    // Served as is at /ca.crt: LF line ends (the files have forge's CRLF), one newline after each.
    const lf = (name: string) =>
      readFileSync(join(rotating, name), 'utf8').replace(/\r\n/g, '\n').trimEnd() + '\n';
    expect(during.pem).toBe(lf(FILES.caCert) + lf(FILES.nextCACert));
  });

  it(
    'loadOrCreateTLS keeps serving the certificate of the active CA and hands out both CAs',
    async () => {
      const dir = copyOf(rotating);
      const serverBefore = readFileSync(join(dir, FILES.serverCert), 'utf8');

      const material = await loadOrCreateTLS(storeOptions(dir));

      expect(material.created).toEqual({ ca: false, server: false });
      expect(material.serverCertPEM).toBe(serverBefore);
      expect(material.caFingerprint256).toBe(fingerprintA);
      const server = new X509Certificate(material.serverCertPEM);
      expect(server.verify(x509(dir, FILES.caCert).publicKey)).toBe(true);
      expect(fingerprints(material.trustBundlePEM)).toEqual([fingerprintA, fingerprintB]);
      expect(material.trustFingerprints).toEqual([fingerprintA, fingerprintB]);
      expect(fingerprints(material.clientCAsPEM ?? '')).toEqual([fingerprintA, fingerprintB]);
    },
    TIMEOUT_MS,
  );

  it('--cancel removes the next CA; cancelling again finds no rotation', async () => {
    const dir = copyOf(rotating);

    const dropped = await cancelRotation(dir);

    expect(dropped.fingerprint256).toBe(fingerprintB);
    expect(existsSync(join(dir, FILES.nextCACert))).toBe(false);
    expect(existsSync(join(dir, FILES.nextCAKey))).toBe(false);
    expect(fingerprintOf(dir, FILES.caCert)).toBe(fingerprintA);
    expect(trustBundle(await readCASet(dir)).fingerprints).toEqual([fingerprintA]);
    await expect(cancelRotation(dir)).rejects.toMatchObject({ code: 'NO_ROTATION' });
  });

  it('in a directory without a CA, says to start the proxy once', async () => {
    const empty = mkdtempSync(join(root, 'empty-'));
    const emptyError = await startRotation({ dir: empty, caLifetimeMs: CA_LIFETIME_MS }).catch(
      (e: unknown) => e,
    );
    expect(emptyError).toMatchObject({ code: 'CA_MISSING' });
    expect((emptyError as Error).message).toMatch(/start the proxy once/);
    expect(readdirSync(empty)).toEqual([]);

    const missing = join(root, 'does-not-exist');
    const missingError = await startRotation({
      dir: missing,
      caLifetimeMs: CA_LIFETIME_MS,
    }).catch((e: unknown) => e);
    expect(missingError).toMatchObject({
      code: expect.stringMatching(/^(CA_MISSING|TLS_DIR_MISSING)$/),
    });
    expect((missingError as Error).message).toMatch(/start the proxy once/);
    expect(existsSync(missing)).toBe(false);
  });
});

describe('ca switch', () => {
  it(
    'makes the next CA active, keeps the old one as previous, and the server certificate follows',
    async () => {
      const dir = copyOf(rotating);

      const result = await switchCA(dir);

      expect(result.active.fingerprint256).toBe(fingerprintB);
      expect(result.retired.fingerprint256).toBe(fingerprintA);
      expect(fingerprintOf(dir, FILES.caCert)).toBe(fingerprintB);
      expect(pairMatches(dir, FILES.caCert, FILES.caKey)).toBe(true);
      expect(fingerprintOf(dir, FILES.previousCACert)).toBe(fingerprintA);
      expect(pairMatches(dir, FILES.previousCACert, FILES.previousCAKey)).toBe(true);
      expect(existsSync(join(dir, FILES.nextCACert))).toBe(false);
      expect(existsSync(join(dir, FILES.nextCAKey))).toBe(false);
      expect(mode(dir, FILES.caKey)).toBe(0o600);
      expect(mode(dir, FILES.previousCAKey)).toBe(0o600);

      const material = await loadOrCreateTLS(storeOptions(dir));

      expect(material.created).toEqual({
        ca: false,
        server: true,
        reason: 'it was signed by another CA',
      });
      const server = new X509Certificate(material.serverCertPEM);
      const active = x509(dir, FILES.caCert);
      const previous = x509(dir, FILES.previousCACert);
      expect(server.verify(active.publicKey)).toBe(true);
      expect(server.checkIssued(active)).toBe(true);
      expect(server.verify(previous.publicKey)).toBe(false);
      expect(server.checkPrivateKey(createPrivateKey(material.serverKeyPEM))).toBe(true);
      expect(readFileSync(join(dir, FILES.serverCert), 'utf8')).toBe(material.serverCertPEM);
      expect(material.caFingerprint256).toBe(fingerprintB);
      expect(material.trustFingerprints).toEqual([fingerprintB]);
      expect(fingerprints(material.clientCAsPEM ?? '')).toEqual([fingerprintB, fingerprintA]);
      expect(fingerprints(clientCABundle(await readCASet(dir)))).toEqual([
        fingerprintB,
        fingerprintA,
      ]);

      // Settled: the next start reuses what was just issued.
      const again = await loadOrCreateTLS(storeOptions(dir));
      expect(again.created).toEqual({ ca: false, server: false });
      expect(again.serverCertPEM).toBe(material.serverCertPEM);
    },
    TIMEOUT_MS,
  );

  it('without a pending rotation fails with NO_ROTATION and changes nothing', async () => {
    const dir = copyOf(activeOnly);
    const error = await switchCA(dir).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'NO_ROTATION' });
    expect((error as Error).message).toContain('ca rotate');
    expect(fingerprintOf(dir, FILES.caCert)).toBe(fingerprintA);
    expect(existsSync(join(dir, FILES.previousCACert))).toBe(false);
  });

  it(
    '--back restores the previous CA as active and offers the other as next',
    async () => {
      const dir = copyOf(rotating);
      await switchCA(dir);
      await loadOrCreateTLS(storeOptions(dir)); // now signed by B

      const result = await switchCA(dir, 'back');

      expect(result.active.fingerprint256).toBe(fingerprintA);
      expect(result.retired.fingerprint256).toBe(fingerprintB);
      expect(fingerprintOf(dir, FILES.caCert)).toBe(fingerprintA);
      expect(pairMatches(dir, FILES.caCert, FILES.caKey)).toBe(true);
      expect(fingerprintOf(dir, FILES.nextCACert)).toBe(fingerprintB);
      expect(pairMatches(dir, FILES.nextCACert, FILES.nextCAKey)).toBe(true);
      expect(existsSync(join(dir, FILES.previousCACert))).toBe(false);
      expect(existsSync(join(dir, FILES.previousCAKey))).toBe(false);

      const material = await loadOrCreateTLS(storeOptions(dir));
      expect(material.created.reason).toBe('it was signed by another CA');
      expect(
        new X509Certificate(material.serverCertPEM).verify(x509(dir, FILES.caCert).publicKey),
      ).toBe(true);
      expect(material.trustFingerprints).toEqual([fingerprintA, fingerprintB]);
    },
    TIMEOUT_MS,
  );

  it('--back without a previous CA fails with NO_PREVIOUS_CA', async () => {
    const dir = copyOf(activeOnly);
    const error = await switchCA(dir, 'back').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'NO_PREVIOUS_CA' });
    expect((error as Error).message).toContain(FILES.previousCACert);
    expect(fingerprintOf(dir, FILES.caCert)).toBe(fingerprintA);
  });

  it(
    '--back while a next CA is pending fails with ROTATION_PENDING and changes nothing',
    async () => {
      const dir = copyOf(rotating);
      await switchCA(dir);
      // A new rotation on top of the switch: A is previous, B active, C next.
      await startRotation({ dir, caLifetimeMs: CA_LIFETIME_MS });
      const fingerprintC = fingerprintOf(dir, FILES.nextCACert);

      const error = await switchCA(dir, 'back').catch((e: unknown) => e);

      expect(error).toMatchObject({ code: 'ROTATION_PENDING' });
      expect((error as Error).message).toContain('ca rotate --cancel');
      expect(fingerprintOf(dir, FILES.caCert)).toBe(fingerprintB);
      expect(fingerprintOf(dir, FILES.previousCACert)).toBe(fingerprintA);
      expect(fingerprintOf(dir, FILES.nextCACert)).toBe(fingerprintC);
    },
    TIMEOUT_MS,
  );
});

describe('readers during a switch', () => {
  /** What a reader may see: a known CA with its own key, and the other CA as next or previous. */
  function checkSet(set: CASet): string[] {
    const problems: string[] = [];
    const active = set.active.cert.fingerprint256;
    if (![fingerprintA, fingerprintB].includes(active)) {
      problems.push(`unknown active CA ${active}`);
    }
    if (!set.active.cert.checkPrivateKey(set.active.key)) {
      problems.push('active CA without its key');
    }
    const others = [set.next, set.previous].flatMap((c) => (c ? [c.cert.fingerprint256] : []));
    if (others.length !== 1 || others[0] === active) {
      problems.push(`inconsistent set: active ${active}, others ${others.join(', ')}`);
    }
    return problems;
  }

  function checkMaterial(m: TLSMaterial): string[] {
    const server = new X509Certificate(m.serverCertPEM);
    const problems: string[] = [];
    if (!server.checkPrivateKey(createPrivateKey(m.serverKeyPEM))) {
      problems.push('server key mismatch');
    }
    if (!server.verify(new X509Certificate(m.caCertPEM).publicKey)) {
      problems.push('wrong signer');
    }
    return problems;
  }

  /*
   * In one process the switch's renames run without a pause (synchronous fs calls after
   * its only await), so readers here can only land before or after it: this guards the
   * lock and the re-issue, not torn reads. Torn reads need a second process: below.
   */
  it(
    'in this process: readCASet, loadOrCreateCA and loadOrCreateTLS never fail and never see a CA without its key',
    async () => {
      const dir = copyOf(rotating);
      const problems: string[] = [];
      let switched = false;
      const switching = switchCA(dir).then((r) => {
        switched = true;
        return r;
      });
      let rounds = 0;
      do {
        rounds++;
        const results = await Promise.allSettled([
          ...Array.from({ length: 20 }, () => readCASet(dir)),
          ...Array.from({ length: 3 }, () => loadOrCreateCA({ dir, caLifetimeMs: CA_LIFETIME_MS })),
          ...Array.from({ length: 2 }, () => loadOrCreateTLS(storeOptions(dir))),
        ]);
        for (const r of results) {
          if (r.status === 'rejected') problems.push(String(r.reason));
          else if ('active' in r.value) problems.push(...checkSet(r.value));
          else problems.push(...checkMaterial(r.value));
        }
      } while (!switched || rounds < 3);
      await switching;
      expect(problems).toEqual([]);
      expect(fingerprintOf(dir, FILES.caCert)).toBe(fingerprintB);
      const after = await loadOrCreateTLS(storeOptions(dir));
      expect(after.caFingerprint256).toBe(fingerprintB);
    },
    TIMEOUT_MS,
  );

  /**
   * Another replica runs `ca switch` (the real one, from dist/, built by the global set-up)
   * in a child process started at an exact point of this process's read: just before it
   * opens `file`. This process then stalls there for a while (as a slow disk or the
   * scheduler might), giving the switch every chance to run in the middle of the read.
   */
  function switchInAnotherProcessBefore(dir: string, file: string): Promise<number | null> {
    const rotationModule = fileURLToPath(new URL('../../dist/pki/rotation.js', import.meta.url));
    return new Promise((resolveExit) => {
      fsHook.beforeRead = (path) => {
        if (path !== join(dir, file)) return;
        fsHook.beforeRead = undefined;
        const child = spawn(
          process.execPath,
          [
            '--input-type=module',
            '-e',
            `const { switchCA } = await import(${JSON.stringify(rotationModule)});
             await switchCA(process.argv[1]);`,
            dir,
          ],
          { stdio: 'ignore' },
        );
        child.on('exit', (code) => resolveExit(code));
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, STALL_MS);
      };
    });
  }
  afterEach(() => {
    fsHook.beforeRead = undefined;
  });

  it.each([
    ['ca.crt and ca.key', FILES.caKey],
    ['ca.crt and ca-next.crt', FILES.nextCACert],
  ])(
    'a switch by another process between reading %s waits for the read: the set is the one from before, then the one from after',
    async (_between, file) => {
      const dir = copyOf(rotating);
      const switched = switchInAnotherProcessBefore(dir, file);
      const set = await readCASet(dir);
      expect(fsHook.beforeRead).toBeUndefined(); // the other process did start mid-read
      expect(checkSet(set)).toEqual([]);
      expect(trustBundle(set).fingerprints).toEqual([fingerprintA, fingerprintB]);
      expect(await switched).toBe(0);
      const after = await readCASet(dir);
      expect(checkSet(after)).toEqual([]);
      expect(after.active.cert.fingerprint256).toBe(fingerprintB);
      expect(after.previous?.cert.fingerprint256).toBe(fingerprintA);
    },
    TIMEOUT_MS,
  );
});
