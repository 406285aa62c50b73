/**
 * The renewal loop between two checks of tls.checkInterval (an hour here): a
 * failed check (a half-written pair) is retried soon, and a change seen while a
 * check runs gets a check of its own.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createCA } from '../pki/issue.js';
import type { TLSMaterial } from '../pki/store.js';
import { WATCH_SETTLE_MS } from './file-watch.js';
import { startRenewal } from './renewal.js';

const HOUR_MS = 3_600_000;
const dir = mkdtempSync(join(tmpdir(), 'rtp-renewal-'));
const watched = join(dir, 'tls.crt');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Material around a throwaway self-signed certificate: only its PEM matters here. */
async function material(name: string): Promise<TLSMaterial> {
  const { certPEM, keyPEM } = await createCA({ commonName: name, lifetimeMs: HOUR_MS });
  const cert = new X509Certificate(certPEM);
  return {
    caCertPEM: certPEM,
    caFingerprint256: cert.fingerprint256,
    caNotAfter: new Date(cert.validTo),
    trustBundlePEM: certPEM,
    trustFingerprints: [cert.fingerprint256],
    serverCertPEM: certPEM,
    serverKeyPEM: keyPEM,
    serverNotAfter: new Date(cert.validTo),
    sans: { dns: [name], ips: [] },
    created: { ca: false, server: false },
  };
}

let old: TLSMaterial;
let renewed: TLSMaterial;

/** The loop with checkInterval 1h, serving `old` and watching `watched`. */
function renewalWatching(load: () => Promise<TLSMaterial>) {
  const swap = vi.fn();
  const renewal = startRenewal({
    load,
    checkIntervalMs: HOUR_MS,
    logger: pino({ level: 'silent' }),
    initial: old,
    swap,
    watch: [watched],
  });
  return { swap, renewal };
}

describe('startRenewal', () => {
  beforeAll(async () => {
    [old, renewed] = await Promise.all([material('old'), material('renewed')]);
    writeFileSync(watched, 'first');
  });

  it('retries a failed check soon, without another change and with checkInterval 1h', async () => {
    const load = vi
      .fn<() => Promise<TLSMaterial>>()
      .mockRejectedValueOnce(new Error('[KEY_MISMATCH] the key is not yet the new one'))
      .mockResolvedValue(renewed);
    const { swap, renewal } = renewalWatching(load);
    try {
      writeFileSync(watched, 'the new certificate');
      await vi.waitFor(() => expect(swap).toHaveBeenCalledWith(renewed), { timeout: 5000 });
      expect(load).toHaveBeenCalledTimes(2);
    } finally {
      renewal.stop();
    }
  });

  it('checks again when a change comes while a check is still running', async () => {
    let finishFirst: (m: TLSMaterial) => void = () => undefined;
    const load = vi
      .fn<() => Promise<TLSMaterial>>()
      .mockImplementationOnce(() => new Promise((resolve) => (finishFirst = resolve)))
      .mockResolvedValue(renewed);
    const { swap, renewal } = renewalWatching(load);
    try {
      writeFileSync(watched, 'a change');
      await vi.waitFor(() => expect(load).toHaveBeenCalledTimes(1), { timeout: 5000 });
      writeFileSync(watched, 'another change');
      // Long enough for the second change to settle and find the first check running.
      await new Promise((r) => setTimeout(r, WATCH_SETTLE_MS * 2.5));
      finishFirst(old);
      await vi.waitFor(() => expect(swap).toHaveBeenCalledWith(renewed), { timeout: 5000 });
      expect(load).toHaveBeenCalledTimes(2);
    } finally {
      renewal.stop();
    }
  });
});
