/**
 * Renewal by the clock alone, against a real pebble: pebble issues 30-second
 * certificates (its certificateValidityPeriod), so with the default renewBefore (a
 * third of the lifetime left) a renewal is due 20 s after each issuance. With no
 * command and tls.checkInterval at its default minute, the proxy orders at each
 * renewal time (its timer), new handshakes get the new serial, verified HTTPS
 * requests by name never fail across it, and it orders once per renewal, not in a
 * loop: each order waits for the renewal time the previous certificate set.
 */
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
import { httpsGet } from './helpers/https.js';
import { tempDir, type Proxy } from './helpers/processes.js';

const LIFETIME_S = 30;
/** From the renewal time to the new certificate being served: a timer, one order (about 1 s here). */
const LATE_MS = 6_000;

const lines = (proxy: Proxy, pattern: RegExp) =>
  proxy.logLines().filter((l) => pattern.test(String(l['msg'])));

/** The log line of the nth ACME certificate served (the first comes by an order at start). */
const nthServed = (proxy: Proxy, n: number) =>
  eventually(`ACME certificate ${n} served`, () => lines(proxy, /^serving the ACME/)[n - 1], {
    timeoutMs: n === 1 ? 60_000 : LIFETIME_S * 1000,
    intervalMs: 100,
  });

/** pebble issuing LIFETIME_S certificates and a proxy ordering from it, for one describe. */
function shortLivedCertificates(prefix: string, env: Record<string, string>) {
  const tmp = tempDir(prefix);
  const tlsDir = join(tmp.path, 'tls');
  let acme: ACMESetup | undefined;
  let proxy: Proxy | undefined;
  beforeAll(async () => {
    acme = await setUpACME(tmp.path, {}, undefined, undefined, LIFETIME_S);
    proxy = await acme.start(tlsDir, env);
  });
  afterAll(async () => {
    await proxy?.stop();
    await acme?.close();
    tmp.remove();
  });
  return () => ({ acme: acme as ACMESetup, proxy: proxy as Proxy, tlsDir });
}

describe('ACME renewal when renewBefore comes', () => {
  const env = { RTP_TLS_ACME_CHALLENGES: 'tls-alpn-01' };
  const running = shortLivedCertificates('acme-timer', env);
  let acme: ACMESetup;
  let proxy: Proxy;
  let tlsDir: string;
  beforeAll(() => {
    ({ acme, proxy, tlsDir } = running());
  });

  const ordersSucceeded = async () => {
    const text = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
    return Number(/^rtp_acme_orders_total\{result="success"\} (\d+)$/m.exec(text)?.[1]);
  };

  it('renews by itself at each renewal time; requests never fail; one order per renewal', async () => {
    expect(acme.pebble.output()).toContain(
      `Using certificate validity period of ${LIFETIME_S} seconds`,
    );
    const served = (n: number) => nthServed(proxy, n);
    const first = await served(1);
    expect(await ordersSucceeded()).toBe(1);
    const root = await acme.pebble.root();

    // A client by name, a new connection each time: handshake (its serial) and a GET.
    const seen: string[] = [];
    const failures: string[] = [];
    let stop = false;
    const url = `https://${ACME_NAME}:${acme.proxyPort}/v2/`;
    const loop = (async () => {
      while (!stop) {
        try {
          const cert = await peerCertificate(acme.proxyPort, root, ACME_NAME);
          if (seen.at(-1) !== cert.serialNumber) seen.push(cert.serialNumber);
          const res = await httpsGet(url.replace(ACME_NAME, '127.0.0.1'), {
            ca: root,
            servername: ACME_NAME,
            headers: { host: `${ACME_NAME}:${acme.proxyPort}` },
            timeoutMs: 5_000,
          });
          if (res.status !== 200) failures.push(`GET /v2/: ${res.status}`);
        } catch (err) {
          failures.push(String(err));
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    let previous = first;
    for (const n of [2, 3]) {
      const next = await served(n);
      const renewAt = Date.parse(String(previous['renewAt']));
      const servedAt = Date.parse(String(next['time']));
      // Not before the renewal time the previous certificate set, and not a checkInterval late.
      expect(servedAt).toBeGreaterThanOrEqual(renewAt);
      expect(servedAt - renewAt).toBeLessThan(LATE_MS);
      // Exactly one order per certificate so far: no loop, no second order in between.
      const orders = lines(proxy, /^ACME: ordering/);
      expect(orders.map((o) => o['reason'])).toEqual([
        'no ACME certificate yet',
        ...Array(n - 1).fill('it is due for renewal'),
      ]);
      expect(await ordersSucceeded()).toBe(n);
      await eventually(`certificate ${n} on new handshakes`, () => seen.at(-1) === next['serial'], {
        timeoutMs: 5_000,
        intervalMs: 100,
      });
      console.log(`renewal ${n - 1}: served ${servedAt - renewAt} ms after its renewal time`);
      previous = next;
    }
    stop = true;
    await loop;
    expect(failures).toEqual([]);
    expect(seen).toEqual(lines(proxy, /^serving the ACME/).map((l) => l['serial']));

    // The next renewal is set for later, from the certificate being served.
    const status = await acmeCLI(['status'], { ...acme.env(env), RTP_TLS_DIR: tlsDir });
    expect(status.code, status.stderr).toBe(0);
    const next = Date.parse(/next renewal: (\S+)/.exec(status.stdout)?.[1] ?? '');
    expect(next).toBe(Date.parse(String(previous['renewAt'])));
    expect(next).toBeGreaterThan(Date.now());
    expect(status.stdout).toContain(`serial ${String(previous['serial'])}`);
  });
});

describe('a renewBefore longer than the certificate lives', () => {
  // 1 h before expiry, for 30-second certificates: due the moment each one arrives.
  const env = { RTP_TLS_ACME_CHALLENGES: 'tls-alpn-01', RTP_TLS_ACME_RENEW_BEFORE: '1h' };
  const running = shortLivedCertificates('acme-timer-long', env);
  let proxy: Proxy;
  beforeAll(() => {
    ({ proxy } = running());
  });

  it('is set aside for that certificate, with a warning: a renewal at a third left, not an order loop', async () => {
    const served = (n: number) => nthServed(proxy, n);
    const first = await served(1);
    // Logged right after the serving line, but it may come in the next chunk of output.
    const warning = await eventually('the renewBefore warning', () =>
      lines(proxy, /^tls\.acme\.renewBefore is not shorter than/).at(0),
    );
    expect(String(warning?.['msg'])).toMatch(/renewing when a third of it is left/);
    const lifetime =
      Date.parse(String(first['notAfter'])) - Date.parse(String(warning?.['notBefore']));
    const renewAt = Date.parse(String(first['renewAt']));
    expect(Math.abs(renewAt - (Date.parse(String(first['notAfter'])) - lifetime / 3))).toBeLessThan(
      1,
    );
    const second = await served(2);
    const servedAt = Date.parse(String(second['time']));
    expect(servedAt).toBeGreaterThanOrEqual(renewAt);
    expect(servedAt - renewAt).toBeLessThan(LATE_MS);
    expect(lines(proxy, /^ACME: ordering/)).toHaveLength(2);
  });
});
