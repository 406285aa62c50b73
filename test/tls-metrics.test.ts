/**
 * What the TLS side of the metrics shows for real clients: completed handshakes,
 * failures by reason (plain HTTP, an old protocol, an untrusted CA), requests whose
 * Host the certificate does not cover, and the certificates' expiry.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { httpsGet } from './helpers/https.js';

function scrape(adminPort: number): Promise<string> {
  return new Promise((resolve, reject) => {
    request(`http://127.0.0.1:${adminPort}/metrics`, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve(text));
    })
      .on('error', reject)
      .end();
  });
}

/** The value of one series, e.g. value(text, 'rtp_tls_handshake_failures_total{reason="plain_http"}'). */
function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? NaN : Number(line.slice(series.length + 1));
}

function run(command: string, args: string[], input = ''): Promise<string> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { timeout: 10_000 }, (_err, stdout, stderr) =>
      resolve(stdout + stderr),
    );
    child.stdin?.end(input);
  });
}

/** Failures are counted when the server gives up on the connection: poll briefly. */
function settle(adminPort: number, series: string, atLeast: number): Promise<number> {
  return eventually(
    `${series} to reach ${atLeast}`,
    async () => {
      const v = value(await scrape(adminPort), series);
      return v >= atLeast && v;
    },
    { intervalMs: 100 },
  );
}

describe('TLS metrics', () => {
  const env = useRegistryBehindProxy('tls-metrics', { auth: { kind: 'none' } });

  it('count handshakes and each kind of failure by its reason', async () => {
    const { adminPort, port } = env.proxy;
    const before = await scrape(adminPort);
    // Node's client (OpenSSL) offers ECDSA: it gets the ECDSA certificate.
    const ecdsa = 'rtp_tls_handshakes_total{certificate="ecdsa"}';
    const handshakes = value(before, ecdsa);
    for (const reason of ['plain_http', 'no_shared_protocol', 'untrusted_ca']) {
      expect(value(before, `rtp_tls_handshake_failures_total{reason="${reason}"}`)).toBe(0);
    }

    await httpsGet(`${env.proxy.origin}/v2/`, { ca: env.ca });
    expect(value(await scrape(adminPort), ecdsa)).toBe(handshakes + 1);

    // Plain HTTP on the TLS port.
    expect(await run('curl', ['-s', `http://127.0.0.1:${port}/v2/`])).toMatch(
      /This port speaks HTTPS/,
    );
    expect(
      await settle(adminPort, 'rtp_tls_handshake_failures_total{reason="plain_http"}', 1),
    ).toBe(1);
    // A client that offers only TLS 1.1.
    await run('openssl', [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-tls1_1',
      '-cipher',
      'DEFAULT@SECLEVEL=0',
    ]);
    expect(
      await settle(adminPort, 'rtp_tls_handshake_failures_total{reason="no_shared_protocol"}', 1),
    ).toBe(1);
    // A client that does not trust the CA (curl's system store).
    expect(await run('curl', ['-sS', `https://127.0.0.1:${port}/v2/`])).toMatch(/certificate/);
    expect(
      await settle(adminPort, 'rtp_tls_handshake_failures_total{reason="untrusted_ca"}', 1),
    ).toBe(1);
    // None of them completed a handshake.
    expect(value(await scrape(adminPort), ecdsa)).toBe(handshakes + 1);
  });

  it('count requests whose Host the certificate does not cover', async () => {
    const { adminPort } = env.proxy;
    const series = 'rtp_requests_host_not_covered_total';
    const start = value(await scrape(adminPort), series);
    await httpsGet(`${env.proxy.origin}/v2/`, { ca: env.ca }); // Host 127.0.0.1:PORT
    await httpsGet(`${env.proxy.origin}/v2/`, {
      ca: env.ca,
      headers: { host: `localhost:${env.proxy.port}` },
    });
    expect(value(await scrape(adminPort), series)).toBe(start);
    await httpsGet(`${env.proxy.origin}/v2/`, {
      ca: env.ca,
      headers: { host: `registry.elsewhere.example:${env.proxy.port}` },
      servername: 'localhost', // verify the certificate as localhost; send another Host
    });
    await httpsGet(`${env.proxy.origin}/v2/`, {
      ca: env.ca,
      headers: { host: '10.77.0.1' },
      servername: 'localhost',
    });
    expect(value(await scrape(adminPort), series)).toBe(start + 2);
  });

  it("export the server certificate's and the CA's expiry", async () => {
    const text = await scrape(env.proxy.adminPort);
    const leaf = new X509Certificate(readFileSync(join(env.proxy.tlsDir, 'server.crt')));
    const ca = new X509Certificate(env.ca);
    expect(value(text, 'rtp_certificate_expiry_timestamp_seconds{certificate="server"}')).toBe(
      Date.parse(leaf.validTo) / 1000,
    );
    expect(value(text, 'rtp_certificate_expiry_timestamp_seconds{certificate="ca"}')).toBe(
      Date.parse(ca.validTo) / 1000,
    );
  });
});
