import { createServer, type AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { parseClientHello } from './client-hello.js';

/** The first bytes a real Node TLS client sends. */
async function captureHello(opts: {
  servername?: string;
  ALPNProtocols?: string[];
}): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const hello = new Promise<Buffer>((resolve) =>
    server.once('connection', (socket) =>
      socket.once('data', (d: Buffer) => (resolve(d), socket.destroy())),
    ),
  );
  const client = connect({ host: '127.0.0.1', port, ...opts });
  client.on('error', () => {});
  const bytes = await hello;
  client.destroy();
  server.close();
  return bytes;
}

describe('parseClientHello', () => {
  it('reads the SNI name and the ALPN list of a tls-alpn-01 validation', async () => {
    const info = parseClientHello(
      await captureHello({ servername: 'registry.example.com', ALPNProtocols: ['acme-tls/1'] }),
    );
    expect(info).toEqual({ serverName: 'registry.example.com', alpn: ['acme-tls/1'] });
  });

  it('reads an ordinary client: no SNI, http/1.1', async () => {
    expect(parseClientHello(await captureHello({ ALPNProtocols: ['h2', 'http/1.1'] }))).toEqual({
      alpn: ['h2', 'http/1.1'],
    });
  });

  it.each([
    ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\n')],
    ['a cut-off hello', Buffer.from([0x16, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3])],
  ])('gives up on %s', (_what, bytes) => {
    expect(parseClientHello(bytes)).toBeUndefined();
  });
});
