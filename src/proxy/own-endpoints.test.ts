import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INSTALLER_PATHS } from '../trust/one-liners.js';
import { ownEndpoints } from './own-endpoints.js';

/** GET /install-ca.sh with this Host from a real server answering through the table. */
describe('/install-ca.sh and /ca.crt for names served the ACME certificate', () => {
  let server: Server;
  let port = 0;
  beforeAll(async () => {
    const table = ownEndpoints({
      trustBundlePEM: () => 'OUR CA',
      ownHeaders: {},
      // The trust page has its own tests (trust-endpoints.test.ts).
      trustPage: {
        material: () => {
          throw new Error('the trust page is not under test here');
        },
      },
      acmeTrust: (host) =>
        host === 'registry.example.com'
          ? { kind: 'public' }
          : host === 'registry.internal'
            ? { kind: 'internal', pem: 'INTERNAL ROOT' }
            : undefined,
    });
    server = createServer((req, res) => table.get(req.url ?? '')?.serve(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const script = (host: string, path = '/install-ca.sh') =>
    new Promise<string>((resolve, reject) => {
      const req = request({ port, path, headers: { host } }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject).end();
    });

  it('says there is nothing to install, and installs nothing', async () => {
    const text = await script('registry.example.com:443');
    expect(text).toContain(
      "echo 'registry.example.com:443: publicly trusted: nothing to install on clients'",
    );
    expect(text).not.toContain('ca.crt');
  });

  it('other names and IP addresses get the installer of our CA, and our CA at /ca.crt', async () => {
    for (const host of ['other.example.com:5443', '127.0.0.1:5443']) {
      const text = await script(host);
      expect(text).toContain('ca.crt');
      expect(text).toContain("install this registry's CA");
      expect(text).not.toContain('nothing to install');
      expect(await script(host, '/ca.crt')).toBe('OUR CA');
    }
  });

  it("an internal ACME server's name: the installer pins and installs that server's root, which /ca.crt serves", async () => {
    const text = await script('registry.internal:5443');
    expect(text).toContain("REGISTRY='registry.internal:5443'");
    expect(text).toContain("install the internal ACME server's root");
    expect(await script('registry.internal:5443', '/ca.crt')).toBe('INTERNAL ROOT');
  });

  it.each(Object.values(INSTALLER_PATHS))(
    '%s: no @NAME@ placeholder survives, for any kind of host',
    async (path) => {
      const hosts = ['127.0.0.1:5443', '[fd00::5]:5443', 'registry.lan', 'registry.internal:5443'];
      for (const host of [...hosts, 'registry.example.com:443']) {
        const text = await script(host, path);
        expect(text).not.toMatch(/@[A-Z][A-Z0-9_]*@/);
        expect(text).not.toContain('%{');
        expect(text).toContain(host.includes(':') ? host : `${host}:${port}`);
      }
    },
  );

  it('refuses to put a Host that is not a host:port into an installer', async () => {
    for (const path of Object.values(INSTALLER_PATHS)) {
      expect(await script("x';rm -rf /:1", path)).toMatch(/"code":"UNSUPPORTED"/);
    }
  });
});
