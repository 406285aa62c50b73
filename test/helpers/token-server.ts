/**
 * A registry token server (distribution's token auth spec), just enough for tests: Basic
 * credentials in, a JWT signed with the registry's token-root key (x5c: its certificate)
 * granting what `scope` asks. Plain HTTP on loopback, as a token server beside the
 * registry would be.
 */
import { createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';

export interface TokenServer {
  /** http://127.0.0.1:PORT/token, the realm to give the registry. */
  realm: string;
  /** How many tokens it issued for valid credentials. */
  issued(): number;
  stop(): Promise<void>;
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

/** `dir` is the registry's (createRegistry writes token-root.key and token-root.crt there). */
export function startTokenServer(opts: {
  dir: string;
  port: number;
  service: string;
  issuer: string;
  user: string;
  password: string;
}): Promise<TokenServer> {
  let issued = 0;
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token');
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const [user, password] = Buffer.from(basic ?? '', 'base64')
      .toString()
      .split(':');
    if (url.pathname !== '/token' || user !== opts.user || password !== opts.password) {
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end('{"details":"bad credentials"}');
      return;
    }
    // The key and certificate are read per request: createRegistry writes them at start.
    const key = createPrivateKey(readFileSync(join(opts.dir, 'token-root.key')));
    const cert = new X509Certificate(readFileSync(join(opts.dir, 'token-root.crt')));
    const access = url.searchParams.getAll('scope').map((scope) => {
      const [type, name, actions] = scope.split(':');
      return { type, name, actions: (actions ?? '').split(',') };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'ES256', typ: 'JWT', x5c: [cert.raw.toString('base64')] };
    const claims = {
      iss: opts.issuer,
      sub: user,
      aud: opts.service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    const token = `${input}.${b64url(signature)}`;
    issued++;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () =>
      resolve({
        realm: `http://127.0.0.1:${opts.port}/token`,
        issued: () => issued,
        stop: () => new Promise((r) => server.close(() => r())),
      }),
    );
  });
}
