/**
 * The http-01 listener (tls.acme.http01Listen, the CA's port 80): answers
 * /.well-known/acme-challenge/TOKEN from the shared directory, so it does not
 * matter which replica ordered; every other request is sent to https (301),
 * which is what a browser or a client typing http:// needs anyway.
 * https://www.rfc-editor.org/rfc/rfc8555#section-8.3
 */
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { bracketHost, parseHostHeader, parseHostPort } from '../../net/address.js';
import { plainListener } from '../../net/listen.js';
import { challengeFile } from '../store.js';

const PREFIX = '/.well-known/acme-challenge/';

export interface HTTP01Listener {
  listen(): Promise<AddressInfo>;
  close(): Promise<void>;
}

/** `target()` says where answers live and which port https is on, read per request (reloads). */
export function createHTTP01Listener(
  listen: string,
  target: () => { dir: string; httpsPort: number },
): HTTP01Listener {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const { dir, httpsPort } = target();
    if (path.startsWith(PREFIX) && (req.method === 'GET' || req.method === 'HEAD')) {
      const file = challengeFile(dir, 'http01', path.slice(PREFIX.length));
      if (!file) return void res.writeHead(404).end();
      readFile(file, 'utf8').then(
        (keyAuthorization) =>
          res.writeHead(200, { 'content-type': 'text/plain' }).end(keyAuthorization),
        () => res.writeHead(404, { 'content-type': 'text/plain' }).end('no such challenge\n'),
      );
      return;
    }
    const host = parseHostHeader(req.headers.host ?? '')?.host;
    if (!host) {
      return void res.writeHead(400, { 'content-type': 'text/plain' }).end('no Host header\n');
    }
    const port = httpsPort === 443 ? '' : `:${httpsPort}`;
    res.writeHead(301, { location: `https://${bracketHost(host)}${port}${req.url ?? '/'}` }).end();
  });
  return plainListener(server, parseHostPort(listen) ?? { host: '0.0.0.0', port: 80 });
}
