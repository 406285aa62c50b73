/** An HTTPS client that trusts exactly the proxy's CA (strict verification, no fallbacks). */
import { request as httpsRequest, type Agent } from 'node:https';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

export interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export function httpsGet(
  url: string,
  opts: {
    ca: string;
    method?: string;
    headers?: OutgoingHttpHeaders;
    body?: Buffer | string;
    servername?: string;
    /** Fail with "no answer within N ms" instead of waiting for ever. */
    timeoutMs?: number;
    /** A keep-alive agent to reuse connections; by default each request has its own. */
    agent?: Agent;
    /** The client's own address, e.g. 127.0.0.5 for a second client on loopback. */
    localAddress?: string;
  },
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: opts.method ?? 'GET',
        ca: opts.ca,
        headers: opts.headers ?? {},
        agent: opts.agent ?? false,
        ...(opts.servername !== undefined ? { servername: opts.servername } : {}),
        ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (opts.timeoutMs !== undefined) {
      req.setTimeout(opts.timeoutMs, () =>
        req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)),
      );
    }
    req.end(opts.body);
  });
}

export function basicAuth(user: string, password: string): string {
  return 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
}
