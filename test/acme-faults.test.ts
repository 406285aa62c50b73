/**
 * ACME when things go wrong, against a real pebble: a failed http-01 challenge
 * (nothing listens where the CA validates) logs pebble's own words and the likely
 * fix, counts the failure and backs off, while the proxy keeps serving our own CA's
 * certificate and says so in /readyz; pebble down, then back: the proxy keeps
 * serving, retries, and succeeds once pebble answers; pebble rejecting half the
 * nonces still ends in a certificate; a pebble that has forgotten the account (its
 * state reset) gets a new one registered, and the renewal goes through.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACME_NAME,
  acmeCLI,
  peerCertificate,
  setUpACME,
  type ACMESetup,
} from './helpers/acme-setup.js';
import { eventually } from './helpers/eventually.js';
import { freePort, runCLI, tempDir, type Proxy } from './helpers/processes.js';

const logged = (proxy: Proxy, pattern: RegExp) =>
  proxy.logLines().filter((l) => pattern.test(String(l['msg'])));

async function admin(proxy: Proxy, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${proxy.adminPort}${path}`);
  return { status: res.status, body: await res.text() };
}

describe('a failed http-01 challenge', () => {
  const tmp = tempDir('acme-fail');
  let acme: ACMESetup;
  let proxy: Proxy;
  beforeAll(async () => {
    // pebble validates at a port nobody listens on: "port 80" is closed.
    acme = await setUpACME(tmp.path, {}, await freePort());
    proxy = await acme.start(join(tmp.path, 'tls'), { RTP_TLS_ACME_CHALLENGES: 'http-01' });
  });
  afterAll(async () => {
    await proxy?.stop();
    await acme?.close();
    tmp.remove();
  });

  it("logs pebble's reason and the likely fix, counts it, backs off, keeps serving our CA", async () => {
    const failures = await eventually(
      'two failed orders',
      () => {
        const lines = logged(proxy, /^ACME order failed/);
        return lines.length >= 2 && lines;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    const first = failures[0] as Record<string, unknown>;
    // Pebble's words, every time: its VA could not connect to the http-01 port.
    for (const failure of failures) {
      expect(String(failure['caSays'])).toMatch(/connection refused|Connecting to 127\.0\.0\.1/i);
    }
    expect(String(first['likelyFix'])).toMatch(/port 80 is not reachable from the CA/);
    expect(failures[1]?.['failures']).toBe(2);
    // Backoff: the second try waited at least the first delay (2 s).
    const gap = Date.parse(String(failures[1]?.['time'])) - Date.parse(String(first['time']));
    expect(gap).toBeGreaterThanOrEqual(2000);
    const metrics = (await admin(proxy, '/metrics')).body;
    expect(metrics).toMatch(/^rtp_acme_orders_total\{result="failure"\} [2-9]/m);
    expect(metrics).toMatch(/^rtp_acme_orders_total\{result="success"\} 0$/m);
    const ready = JSON.parse((await admin(proxy, '/readyz')).body) as { reason: string };
    expect(ready.reason).toMatch(
      /serving our own CA's certificate: the ACME certificate for registry\.acme\.test has not arrived/,
    );
    const check = runCLI(['check', '--url', `https://127.0.0.1:${acme.proxyPort}`], {
      ...acme.env({ RTP_TLS_ACME_CHALLENGES: 'http-01' }),
      RTP_TLS_DIR: proxy.tlsDir,
    });
    expect(check.stdout).toMatch(
      /ACME certificate \(registry\.acme\.test\).*none yet: our own CA's certificate is served .*last order failed .*port 80 is not reachable from the CA/,
    );
    // Clients by name still get a certificate, our CA's.
    const ours = readFileSync(proxy.caFile, 'utf8');
    const cert = await peerCertificate(acme.proxyPort, ours, ACME_NAME);
    expect(cert.issuer.CN).toMatch(/^registry-tls-proxy CA/);
  });
});

describe('pebble down, then back', () => {
  const tmp = tempDir('acme-down');
  let acme: ACMESetup;
  let proxy: Proxy;
  beforeAll(async () => {
    acme = await setUpACME(tmp.path);
    await acme.pebble.stop();
    proxy = await acme.start(join(tmp.path, 'tls'), { RTP_TLS_ACME_CHALLENGES: 'tls-alpn-01' });
  });
  afterAll(async () => {
    await proxy?.stop();
    await acme?.close();
    tmp.remove();
  });

  it('keeps serving, backs off, and gets the certificate once pebble answers', async () => {
    await eventually('a failed order', () => logged(proxy, /^ACME order failed/)[0], {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    const ours = readFileSync(proxy.caFile, 'utf8');
    expect((await peerCertificate(acme.proxyPort, ours, ACME_NAME)).issuer.CN).toMatch(
      /^registry-tls-proxy CA/,
    );
    await acme.pebble.start({ PEBBLE_WFE_NONCEREJECT: '50' });
    await eventually(
      'the ACME certificate',
      () => logged(proxy, /^serving the ACME certificate/)[0],
      {
        timeoutMs: 90_000,
        intervalMs: 200,
      },
    );
    const root = await acme.pebble.root();
    expect((await peerCertificate(acme.proxyPort, root, ACME_NAME)).issuer.CN).toMatch(
      /^Pebble Intermediate CA/,
    );
    const metrics = (await admin(proxy, '/metrics')).body;
    expect(metrics).toMatch(/^rtp_acme_orders_total\{result="success"\} 1$/m);
    expect(metrics).toMatch(/^rtp_acme_orders_total\{result="failure"\} [1-9]/m);
    expect(metrics).toMatch(/^rtp_certificate_expiry_timestamp_seconds\{certificate="acme"\} \d/m);
    const ready = JSON.parse((await admin(proxy, '/readyz')).body) as { reason: string };
    expect(ready.reason).not.toMatch(/our own CA/);
  });
});

describe('an ACME server that forgets the account', () => {
  const tmp = tempDir('acme-forgot');
  let acme: ACMESetup;
  let proxy: Proxy;
  const env = { RTP_TLS_ACME_CHALLENGES: 'tls-alpn-01' };
  beforeAll(async () => {
    acme = await setUpACME(tmp.path);
    proxy = await acme.start(join(tmp.path, 'tls'), env);
  });
  afterAll(async () => {
    await proxy?.stop();
    await acme?.close();
    tmp.remove();
  });

  it('registers a new account and renews, instead of failing every order', async () => {
    await eventually(
      'the first ACME certificate',
      () => logged(proxy, /^serving the ACME certificate/)[0],
    );
    // A restarted pebble keeps nothing: the stored account URL names no account now.
    await acme.pebble.stop();
    await acme.pebble.start();
    const renew = await acmeCLI(['renew', '--force'], {
      ...acme.env(env),
      RTP_TLS_DIR: proxy.tlsDir,
    });
    expect(renew.code, renew.stdout + renew.stderr).toBe(0);
    expect(renew.stdout + renew.stderr).toMatch(/no longer knows the stored account/);
    const serial = /serial ([0-9A-F]+)/.exec(renew.stdout)?.[1];
    expect(serial, renew.stdout).toBeDefined();
    // Issued by the new pebble: its new root verifies what new handshakes get.
    const root = await acme.pebble.root();
    await eventually('the renewed certificate on new handshakes', async () =>
      (await peerCertificate(acme.proxyPort, root, ACME_NAME)).serialNumber === serial
        ? true
        : undefined,
    );
  });
});

describe('bad tls.acme configuration through the CLI', () => {
  it('stops at start-up listing every problem', () => {
    const tmp = tempDir('acme-cli');
    const result = runCLI(['serve'], {
      RTP_TLS_DIR: join(tmp.path, 'tls'),
      RTP_ADMIN_LISTEN: '',
      RTP_TLS_ACME_DIRECTORY: 'letsencrypt',
      RTP_TLS_ACME_NAMES: '10.0.0.5,registry.example.com',
      RTP_TLS_ACME_CHALLENGES: 'http-01,dns-01',
      RTP_TLS_ACME_CA_BUNDLE: join(tmp.path, 'nope.pem'),
      RTP_TLS_ACME_EAB_KID: 'k',
      RTP_TLS_ACME_EAB_HMAC_KEY: 'a+b/c',
    });
    tmp.remove();
    expect(result.status).toBe(2);
    for (const line of [
      /- tls\.acme\.agreeToTerms: must be true/,
      /- tls\.acme\.names: "10\.0\.0\.5" is not a DNS name/,
      /- tls\.acme\.http01Listen: http-01 is chosen but has nowhere to listen/,
      /- tls\.acme\.dns: dns-01 is chosen but has no way to write TXT records/,
      /- tls\.acme\.caBundle: cannot read .*nope\.pem/,
      /- tls\.acme\.eab\.hmacKey: must be the base64url key/,
    ]) {
      expect(result.stderr).toMatch(line);
    }
    expect(result.stderr).toMatch(/has 6 problems/);
  });
});
