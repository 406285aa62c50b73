/**
 * tls-alpn-01 on the public port (RFC 8737): a validation connection offers ALPN
 * `acme-tls/1` and must get the challenge certificate for its SNI name. sniff.ts
 * hands such connections here; the certificate is read from the shared directory,
 * so the replica the CA reaches answers whichever replica ordered.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createSecureContext, createServer, type Server } from 'node:tls';
import { challengeFile } from '../store.js';

export const ACME_TLS_ALPN = 'acme-tls/1';

export function createTLSALPNResponder(dir: () => string): { answer(socket: Socket): void } {
  const server: Server = createServer({
    ALPNProtocols: [ACME_TLS_ALPN],
    SNICallback: (servername, cb) => {
      const file = challengeFile(dir(), 'tlsALPN', servername);
      try {
        const pem = readFileSync(file ?? '', 'utf8');
        cb(null, createSecureContext({ key: pem, cert: pem }));
      } catch {
        cb(new Error(`no tls-alpn-01 challenge pending for ${servername}`));
      }
    },
  });
  // The handshake is the answer (RFC 8737 §3): nothing is sent after it.
  server.on('secureConnection', (socket) => socket.end());
  server.on('tlsClientError', (_err, socket) => socket.destroy());
  return { answer: (socket) => server.emit('connection', socket) };
}
