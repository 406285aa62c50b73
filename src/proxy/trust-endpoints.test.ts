import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Verdict } from '../health/probe.js';
import { createCA, issueServerCertificate } from '../pki/issue.js';
import type { TLSMaterial } from '../pki/store.js';
import { installerOneLiner } from '../trust/one-liners.js';
import { ownEndpoints } from './own-endpoints.js';

const DAY_MS = 86_400_000;

/** DER from PEM by hand (base64 between the armour lines), not by the code under test. */
function derOf(pem: string): Buffer {
  const body = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem)?.[1];
  return Buffer.from((body ?? '').replace(/\s+/g, ''), 'base64');
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** The trust page and /ca.cer from a real HTTP server answering through the own-endpoint table. */
describe('/_proxy/trust and /ca.cer', () => {
  let server: Server;
  let port = 0;
  let caA: string;
  let caB: string;
  let acmeLeaf: X509Certificate;
  let verdict: Verdict;

  beforeAll(async () => {
    const [a, b] = await Promise.all([
      createCA({ commonName: 'page test CA A', lifetimeMs: 365 * DAY_MS }),
      createCA({ commonName: 'page test CA B', lifetimeMs: 365 * DAY_MS }),
    ]);
    caA = a.certPEM;
    caB = b.certPEM;
    // A name no config would let through: the page must show it as text.
    const sans = { dns: ['registry.lan', '<script>alert(1)</script>'], ips: ['10.0.0.5'] };
    const leaf = await issueServerCertificate({
      ca: { certPEM: caA, key: createPrivateKey(a.keyPEM) },
      sans: { dns: ['registry.lan'], ips: ['10.0.0.5'] },
      lifetimeMs: 30 * DAY_MS,
    });
    const acme = await issueServerCertificate({
      ca: { certPEM: caB, key: createPrivateKey(b.keyPEM) },
      sans: { dns: ['registry.example.com'], ips: [] },
      lifetimeMs: 90 * DAY_MS,
    });
    acmeLeaf = new X509Certificate(acme.certPEM);
    const fpA = new X509Certificate(caA).fingerprint256;
    const fpB = new X509Certificate(caB).fingerprint256;
    // A rotation whose bundle lists the next CA first: A signs, and ca.cer must be A.
    const material: TLSMaterial = {
      caCertPEM: caA,
      caFingerprint256: fpA,
      caNotAfter: new Date(Date.now() + 365 * DAY_MS),
      trustBundlePEM: caB + caA,
      trustFingerprints: [fpB, fpA],
      serverCertPEM: leaf.certPEM,
      serverKeyPEM: leaf.keyPEM,
      serverNotAfter: new Date(new X509Certificate(leaf.certPEM).validTo),
      sans,
      created: { ca: false, server: false },
    };
    verdict = {
      status: 'healthy',
      healthy: true,
      reason:
        'healthy: http://10.9.8.7:5000/v2/ requires authentication (401 with a Basic challenge)',
      checkedAt: new Date(),
      durationMs: 3,
    };
    const table = ownEndpoints({
      trustBundlePEM: () => material.trustBundlePEM,
      ownHeaders: { 'strict-transport-security': 'max-age=600' },
      trustPage: {
        material: () => material,
        acmeCertificate: (host) =>
          host === 'registry.example.com' || host === 'registry.internal' ? acmeLeaf : undefined,
        verdict: () => verdict,
      },
      acmeTrust: (host) =>
        host === 'registry.example.com'
          ? { kind: 'public' }
          : host === 'registry.internal'
            ? { kind: 'internal', pem: caB }
            : undefined,
    });
    server = createServer((req, res) => {
      const endpoint = table.get(req.url ?? '');
      if (endpoint) endpoint.serve(req, res);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const get = (path: string, host: string, method = 'GET') =>
    new Promise<Answer>((resolve, reject) => {
      const req = request({ port, path, method, headers: { host } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
      });
      req.on('error', reject).end();
    });

  it('serves HTML with a strict CSP, nosniff, no-cache and HSTS', async () => {
    const page = await get('/_proxy/trust', 'registry.lan:5443');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toMatch(
      /^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]+=*'; img-src data:/,
    );
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.headers['cache-control']).toBe('no-cache');
    expect(page.headers['strict-transport-security']).toBe('max-age=600');
  });

  it('HEAD answers the same headers without a body', async () => {
    const [got, head] = await Promise.all([
      get('/_proxy/trust', 'registry.lan:5443'),
      get('/_proxy/trust', 'registry.lan:5443', 'HEAD'),
    ]);
    expect(head.status).toBe(200);
    expect(head.body).toHaveLength(0);
    expect(head.headers['content-length']).toBe(String(got.body.length));
    expect(head.headers['content-security-policy']).toBe(got.headers['content-security-policy']);
  });

  it('shows the signing CA first, both fingerprints, the names escaped, and health without the backend', async () => {
    const page = (await get('/_proxy/trust', 'registry.lan:5443')).body.toString();
    const fpA = new X509Certificate(caA).fingerprint256;
    const fpB = new X509Certificate(caB).fingerprint256;
    expect(page).toContain(`CA SHA-256 (signs now)</dt><dd><code class="fp">${fpA}</code>`);
    expect(page).toContain(fpB);
    expect(page).toContain('<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>');
    expect(page).not.toContain('<script');
    expect(page).toContain('<span class="ok">healthy</span>');
    expect(page).not.toContain('10.9.8.7');
    expect(page).toContain(
      installerOneLiner('linux', 'registry.lan:5443', fpA).replace(/&/g, '&amp;'),
    );
  });

  it('uses the host:port the client came by, adding the port it connected to', async () => {
    const page = (await get('/_proxy/trust', '10.0.0.5')).body.toString();
    expect(page).toContain(`https://10.0.0.5:${port}/install-ca.sh`);
  });

  it.each(['"><script>alert(1)</script>', "reg'istry.lan:5443", 'a b:1'])(
    'a Host that is not a host[:port] (%j) gets the registry-style 400, not a page',
    async (host) => {
      const answer = await get('/_proxy/trust', host);
      expect(answer.status).toBe(400);
      expect(answer.headers['content-type']).toMatch(/^application\/json/);
      expect(answer.body.toString()).not.toContain('<script');
    },
  );

  it('/ca.cer is the DER of the CA that signs the served certificate, as an attachment', async () => {
    const cer = await get('/ca.cer', 'registry.lan:5443');
    expect(cer.status).toBe(200);
    expect(cer.headers['content-type']).toBe('application/pkix-cert');
    expect(cer.headers['content-disposition']).toBe('attachment; filename="ca.cer"');
    expect(cer.headers['strict-transport-security']).toBe('max-age=600');
    expect(cer.body.equals(derOf(caA))).toBe(true);
    const head = await get('/ca.cer', 'registry.lan:5443', 'HEAD');
    expect(head.body).toHaveLength(0);
    expect(head.headers['content-length']).toBe(String(derOf(caA).length));
  });

  it('by a name served the public ACME certificate: nothing to install, and its names and expiry', async () => {
    const page = (await get('/_proxy/trust', 'registry.example.com:443')).body.toString();
    expect(page).toContain('Nothing to install');
    expect(page).toContain('<code>registry.example.com</code>');
    expect(page).not.toContain('registry.lan');
    expect(page).toContain(new Date(acmeLeaf.validTo).toISOString());
    expect(page).not.toContain('--fingerprint');
  });

  it("by an internal ACME server's name: its root's fingerprint on the page and in ca.cer", async () => {
    const fpB = new X509Certificate(caB).fingerprint256;
    const page = (await get('/_proxy/trust', 'registry.internal:5443')).body.toString();
    expect(page).toContain(`ACME root SHA-256</dt><dd><code class="fp">${fpB}</code>`);
    expect(page).toContain(`--fingerprint ${fpB}`);
    expect(page).not.toContain(new X509Certificate(caA).fingerprint256);
    expect((await get('/ca.cer', 'registry.internal:5443')).body.equals(derOf(caB))).toBe(true);
  });

  it('says when the registry is unhealthy, still without its address', async () => {
    const healthy = verdict;
    verdict = {
      ...healthy,
      status: 'down',
      healthy: false,
      reason: 'backend down: http://10.9.8.7:5000/v2/: refused',
    };
    try {
      const page = (await get('/_proxy/trust', 'registry.lan:5443')).body.toString();
      expect(page).toContain('<span class="bad">not healthy</span>');
      expect(page).not.toContain('10.9.8.7');
    } finally {
      verdict = healthy;
    }
  });
});
