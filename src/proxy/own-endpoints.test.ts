import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownEndpoints } from './own-endpoints.js';

/** GET /install-ca.sh with this Host from a real server answering through the table. */
describe('/install-ca.sh for names served a publicly trusted ACME certificate', () => {
  let server: Server;
  let port = 0;
  beforeAll(async () => {
    const table = ownEndpoints({
      trustBundlePEM: () => '',
      ownHeaders: {},
      publiclyTrusted: (host) => host === 'registry.example.com',
    });
    server = createServer((req, res) => table.get('/install-ca.sh')?.serve(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const script = (host: string) =>
    new Promise<string>((resolve, reject) => {
      const req = request({ port, path: '/install-ca.sh', headers: { host } }, (res) => {
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

  it('other names and IP addresses get the installer of our CA', async () => {
    for (const host of ['other.example.com:5443', '127.0.0.1:5443']) {
      const text = await script(host);
      expect(text).toContain('ca.crt');
      expect(text).not.toContain('nothing to install');
    }
  });
});
