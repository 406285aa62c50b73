/**
 * What the registry says about its own address reaches clients as the public
 * https origin, and the proxy's own errors look like the registry's.
 */
import { request as httpRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { basicAuth, httpsGet } from './helpers/https.js';

describe('registry that names its backend address (http.host) behind the proxy', () => {
  // The registry is told its own plain-HTTP address, so every Location it writes points there.
  const env = useRegistryBehindProxy('http-host', {
    auth: { kind: 'htpasswd', user: 'u', password: 'p' },
    httpHost: 'self',
  });

  it('rewrites a 202 upload Location from the backend address to the public https origin', async () => {
    const direct = await new Promise<string>((resolve, reject) => {
      httpRequest(
        `${env.registry.url}/v2/r/blobs/uploads/`,
        { method: 'POST', headers: { authorization: basicAuth('u', 'p') } },
        (res) => {
          res.resume();
          resolve(res.headers.location ?? '');
        },
      )
        .on('error', reject)
        .end();
    });
    expect(direct.startsWith(`${env.registry.url}/v2/r/blobs/uploads/`)).toBe(true);

    const res = await httpsGet(`${env.proxy.origin}/v2/r/blobs/uploads/`, {
      ca: env.ca,
      method: 'POST',
      headers: { authorization: basicAuth('u', 'p') },
    });
    expect(res.status).toBe(202);
    const location = res.headers.location ?? '';
    expect(location).toMatch(
      new RegExp(
        `^https://127\\.0\\.0\\.1:${env.proxy.port}/v2/r/blobs/uploads/[0-9a-f-]+\\?_state=`,
      ),
    );
    expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
  });
});

describe('registry with token auth whose realm is the backend address', () => {
  // The realm names the registry's own plain-HTTP address, as a token server beside it would.
  const env = useRegistryBehindProxy('token', {
    auth: { kind: 'token', realm: '{self}/token', service: 'e2e-registry', issuer: 'e2e' },
  });

  it('rewrites the Bearer realm and keeps service and scope', async () => {
    const res = await httpsGet(`${env.proxy.origin}/v2/team/app/manifests/latest`, { ca: env.ca });
    expect(res.status).toBe(401);
    const challenge = res.headers['www-authenticate'] ?? '';
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain('service="e2e-registry"');
    expect(challenge).toContain('scope="repository:team/app:pull"');
    expect(challenge).toContain(`realm="https://127.0.0.1:${env.proxy.port}/token"`);
  });
});

describe('proxy-generated answers', () => {
  const env = useRegistryBehindProxy('errors', { auth: { kind: 'none' } });

  it('answers a plain-HTTP request on the HTTPS port with a short 400 saying to use https', async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      httpRequest(`http://127.0.0.1:${env.proxy.port}/v2/`, (r) => {
        let body = '';
        r.setEncoding('utf8').on('data', (d: string) => (body += d));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
      })
        .on('error', reject)
        .end();
    });
    expect(res.status).toBe(400);
    expect(res.body).toMatch(/speaks HTTPS/);
    expect(res.body).toContain(`https://127.0.0.1:${env.proxy.port}/`);
  });

  it('answers registry-style JSON 502 with the API version header when the registry is down', async () => {
    const up = await httpsGet(`${env.proxy.origin}/v2/`, { ca: env.ca });
    expect(up.status).toBe(200);
    await env.registry.stop();
    const res = await httpsGet(`${env.proxy.origin}/v2/`, { ca: env.ca });
    expect(res.status).toBe(502);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
    const body = JSON.parse(res.body) as { errors: Array<{ code: string; message: string }> };
    expect(body.errors[0]?.code).toBe('UNAVAILABLE');
    expect(body.errors[0]?.message).toMatch(/connection refused/);
    // The proxy is still alive and recovers when the registry returns.
    await env.registry.start();
    const again = await httpsGet(`${env.proxy.origin}/v2/`, { ca: env.ca });
    expect(again.status).toBe(200);
  });
});
