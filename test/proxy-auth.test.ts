/**
 * Logins at the proxy (auth.htpasswd) in front of a registry that has none of its
 * own (`docker run registry:2`): the real distribution registry, open, behind the
 * built proxy; skopeo with strict TLS against only the proxy's CA.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { basicAuth, httpsGet } from './helpers/https.js';
import { buildOCIImage, type OCIImage } from './helpers/oci.js';
import { runCLI, tempDir } from './helpers/processes.js';
import { fetchScrape, sampleSum } from './helpers/prometheus.js';
import { skopeo } from './helpers/skopeo.js';

const USER = 'alice';
const PASSWORD = 'correct-horse-battery';

/** An htpasswd line as `htpasswd -B` writes it, at bcrypt cost 10 (the cost the issue names). */
function htpasswdLine(user: string, password: string): string {
  return execFileSync('htpasswd', ['-Bbn', '-C', '10', user, password], { encoding: 'utf8' });
}

/** A directory made now (the fixture's proxy environment is fixed at describe time). */
function authFiles(prefix: string) {
  const dir = tempDir(prefix);
  const htpasswd = join(dir.path, 'htpasswd');
  writeFileSync(htpasswd, htpasswdLine(USER, PASSWORD));
  afterAll(() => dir.remove());
  return { dir: dir.path, htpasswd };
}

describe('logins at the proxy (auth.htpasswd, anonymous: none)', () => {
  const files = authFiles('auth-files');
  const env = useRegistryBehindProxy(
    'proxy-auth',
    { auth: { kind: 'none' } },
    { RTP_AUTH_HTPASSWD: files.htpasswd, RTP_AUTH_REALM: 'e2e proxy' },
  );
  const certDir = join(files.dir, 'certs');
  let image: OCIImage;
  let dest: string;
  const metrics = () => fetchScrape(`http://127.0.0.1:${env.proxy.adminPort}/metrics`);

  beforeAll(() => {
    mkdirSync(certDir);
    writeFileSync(join(certDir, 'ca.crt'), env.ca);
    // Many small layers: a pull is many requests, each with the same Basic credentials.
    image = buildOCIImage(join(files.dir, 'image'), 'v1', Array(24).fill(20_000));
    dest = `docker://127.0.0.1:${env.proxy.port}/e2e/auth:v1`;
  });

  it('answers GET /v2/ without credentials as the registry does: 401, Basic challenge, JSON', async () => {
    const res = await httpsGet(`${env.proxy.origin}/v2/`, { ca: env.ca });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Basic realm="e2e proxy"');
    expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(JSON.parse(res.body).errors[0].code).toBe('UNAUTHORIZED');
  });

  it('keeps /ca.crt and the health path open, and counts the open backend as healthy', async () => {
    const ca = await httpsGet(`${env.proxy.origin}/ca.crt`, { ca: env.ca });
    expect(ca.status).toBe(200);
    const health = await httpsGet(`${env.proxy.origin}/_proxy/health`, { ca: env.ca });
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body).reason).toMatch(/proxy's logins \(auth\.htpasswd\) protect it/);
  });

  it('`check` passes: the open backend is protected, the public GET /v2/ answers 401', () => {
    const result = runCLI(['check', '--url', env.proxy.origin], {
      RTP_BACKEND: env.registry.url,
      RTP_TLS_DIR: env.proxy.tlsDir,
      RTP_AUTH_HTPASSWD: files.htpasswd,
    });
    expect(result.status, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/proxy's logins \(auth\.htpasswd\) protect it/);
    expect(result.stdout).toMatch(/answered 401/);
  });

  it('skopeo login: a wrong password is refused, the right one logs in', async () => {
    const login = (password: string) =>
      skopeo([
        'login',
        '--authfile',
        join(files.dir, 'auth.json'),
        '--cert-dir',
        certDir,
        '--username',
        USER,
        '--password',
        password,
        `127.0.0.1:${env.proxy.port}`,
      ]);
    const wrong = await login('wrong-password');
    expect(wrong.code).not.toBe(0);
    // containers/image words a 401 on login so; docker says "unauthorized" (docker test).
    expect(wrong.stderr).toMatch(/invalid username\/password/);
    const right = await login(PASSWORD);
    expect(right.code, right.stderr).toBe(0);
    expect(right.stdout).toMatch(/Login Succeeded/i);
  });

  it('lets the right password push and pull, with one bcrypt check for the whole pull', async () => {
    const creds = `${USER}:${PASSWORD}`;
    const push = await skopeo([
      'copy',
      '--dest-cert-dir',
      certDir,
      '--dest-creds',
      creds,
      image.ref,
      dest,
    ]);
    expect(push.code, push.stderr).toBe(0);
    // Forget the push's remembered login: the pull starts with a fresh file version.
    appendFileSync(files.htpasswd, '# touched\n');
    await eventually('the proxy to re-read the file', () =>
      env.proxy.output().includes('auth.htpasswd re-read'),
    );
    const before = await metrics();
    const pull = await skopeo([
      'copy',
      '--src-cert-dir',
      certDir,
      '--src-creds',
      creds,
      dest,
      `dir:${join(files.dir, 'pulled')}`,
    ]);
    expect(pull.code, pull.stderr).toBe(0);
    const after = await metrics();
    const delta = (name: string, labels: Record<string, string>) =>
      sampleSum(after, name, labels) - sampleSum(before, name, labels);
    const logins = delta('rtp_auth_requests_total', { result: 'login' });
    const checks = delta('rtp_auth_password_checks_total', { result: 'ok' });
    expect(logins).toBeGreaterThanOrEqual(25); // the manifest, the config, 24 layers
    expect(checks).toBe(1);
  });

  it('logs who logged in, never the password or the Authorization header', () => {
    const output = env.proxy.output();
    expect(output).not.toContain(PASSWORD);
    expect(output).not.toContain(Buffer.from(`${USER}:${PASSWORD}`).toString('base64'));
    expect(env.proxy.logLines().some((l) => l['msg'] === 'request' && l['user'] === USER)).toBe(
      true,
    );
  });

  it('picks up a change to the htpasswd file: a new user logs in, a changed password stops working', async () => {
    // Its own client address: the wrong passwords above count against 127.0.0.1.
    const ping = (user: string, password: string) =>
      httpsGet(`${env.proxy.origin}/v2/`, {
        ca: env.ca,
        localAddress: '127.0.0.7',
        headers: { authorization: basicAuth(user, password) },
      });
    appendFileSync(files.htpasswd, htpasswdLine('bob', 'bobs-password'));
    await eventually(
      'bob to log in',
      async () => (await ping('bob', 'bobs-password')).status === 200,
    );
    writeFileSync(files.htpasswd, htpasswdLine(USER, 'a-new-password'));
    await eventually(
      "alice's old password to be refused",
      async () => (await ping(USER, PASSWORD)).status === 401,
    );
    expect((await ping(USER, 'a-new-password')).status).toBe(200);
    expect((await ping('bob', 'bobs-password')).status).toBe(401);
    writeFileSync(files.htpasswd, htpasswdLine(USER, PASSWORD));
    await eventually(
      'the first password to work again',
      async () => (await ping(USER, PASSWORD)).status === 200,
    );
  });

  it('answers password guessing with 429 and Retry-After, per client address', async () => {
    const guess = (n: number, localAddress = '127.0.0.5') =>
      httpsGet(`${env.proxy.origin}/v2/`, {
        ca: env.ca,
        localAddress,
        headers: { authorization: basicAuth(USER, `guess-${n}`) },
      });
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<typeof guess>> | undefined;
    for (let n = 0; n < 15 && !limited; n++) {
      const res = await guess(n);
      statuses.push(res.status);
      if (res.status === 429) limited = res;
    }
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(limited?.status).toBe(429);
    expect(Number(limited?.headers['retry-after'])).toBeGreaterThan(0);
    expect(JSON.parse(limited?.body ?? '{}').errors[0].code).toBe('TOOMANYREQUESTS');
    expect(
      env.proxy
        .logLines()
        .some((l) => l['client'] === '127.0.0.5' && /failed logins/.test(String(l['msg']))),
    ).toBe(true);
    // Another address is not affected.
    const other = await httpsGet(`${env.proxy.origin}/v2/`, {
      ca: env.ca,
      localAddress: '127.0.0.6',
      headers: { authorization: basicAuth(USER, PASSWORD) },
    });
    expect(other.status).toBe(200);
  });
});

describe('anonymous pulls (auth.anonymous: pull)', () => {
  const files = authFiles('auth-anon');
  const env = useRegistryBehindProxy(
    'proxy-auth-anon',
    { auth: { kind: 'none' } },
    { RTP_AUTH_HTPASSWD: files.htpasswd, RTP_AUTH_ANONYMOUS: 'pull' },
  );
  const certDir = join(files.dir, 'certs');
  let image: OCIImage;

  beforeAll(() => {
    mkdirSync(certDir);
    writeFileSync(join(certDir, 'ca.crt'), env.ca);
    image = buildOCIImage(join(files.dir, 'image'), 'v1', [50_000, 30_000]);
  });

  it('refuses an anonymous push (denied) and lets a logged-in one through', async () => {
    const dest = `docker://127.0.0.1:${env.proxy.port}/public/app:v1`;
    const anonymous = await skopeo(['copy', '--dest-cert-dir', certDir, image.ref, dest]);
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toMatch(/denied|unauthorized/i);
    const push = await skopeo([
      'copy',
      '--dest-cert-dir',
      certDir,
      '--dest-creds',
      `${USER}:${PASSWORD}`,
      image.ref,
      dest,
    ]);
    expect(push.code, push.stderr).toBe(0);
  });

  it('lets anyone pull without credentials', async () => {
    const pull = await skopeo([
      'copy',
      '--src-cert-dir',
      certDir,
      `docker://127.0.0.1:${env.proxy.port}/public/app:v1`,
      `dir:${join(files.dir, 'pulled')}`,
    ]);
    expect(pull.code, pull.stderr).toBe(0);
  });

  it('answers an anonymous upload start with 403 DENIED, and GET /v2/ still challenges', async () => {
    const upload = await httpsGet(`${env.proxy.origin}/v2/public/app/blobs/uploads/`, {
      ca: env.ca,
      method: 'POST',
    });
    expect(upload.status).toBe(403);
    expect(JSON.parse(upload.body).errors[0].code).toBe('DENIED');
    const ping = await httpsGet(`${env.proxy.origin}/v2/`, { ca: env.ca });
    expect(ping.status).toBe(401);
    const catalog = await httpsGet(`${env.proxy.origin}/v2/_catalog`, { ca: env.ca });
    expect(catalog.status).toBe(401);
  });
});

describe('a htpasswd file the proxy refuses at start-up', () => {
  const dir = tempDir('auth-bad');
  afterAll(() => dir.remove());

  it.each([
    ['an Apache MD5 hash', ['-mbn'], /\$apr1\$/],
    ['a SHA-1 hash', ['-sbn'], /\{SHA\}/],
    ['plain text', ['-pbn'], /plain text/],
  ])('names the line of %s and says to re-hash with htpasswd -B', (_what, flags, kind) => {
    const file = join(dir.path, `htpasswd-${flags[0]}`);
    writeFileSync(
      file,
      htpasswdLine(USER, PASSWORD) +
        execFileSync('htpasswd', [...flags, 'carol', 'pw'], { encoding: 'utf8' }),
    );
    const result = runCLI(['serve'], {
      RTP_AUTH_HTPASSWD: file,
      RTP_TLS_DIR: join(dir.path, 'tls'),
      RTP_ADMIN_LISTEN: '',
    });
    expect(result.status).not.toBe(0);
    const text = result.stdout + result.stderr;
    expect(text).toContain(`${file}:3`);
    expect(text).toMatch(kind);
    expect(text).toContain('htpasswd -B');
  });

  it('says a missing file is missing', () => {
    const result = runCLI(['serve'], {
      RTP_AUTH_HTPASSWD: join(dir.path, 'nope'),
      RTP_TLS_DIR: join(dir.path, 'tls'),
    });
    expect(result.status).not.toBe(0);
    expect(result.stdout + result.stderr).toMatch(/auth\.htpasswd: .*nope: file not found/);
  });
});

describe('logins in a cluster (workers: 2)', () => {
  const files = authFiles('auth-cluster');
  const env = useRegistryBehindProxy(
    'proxy-auth-cluster',
    { auth: { kind: 'none' } },
    { RTP_AUTH_HTPASSWD: files.htpasswd, RTP_WORKERS: '2' },
  );

  it('every worker asks for the login and accepts it; the primary sums their counts', async () => {
    const agentless = (authorization?: string) =>
      httpsGet(`${env.proxy.origin}/v2/`, {
        ca: env.ca,
        ...(authorization ? { headers: { authorization } } : {}),
      });
    // New connections are handed to the workers in turn: several reach both.
    for (let i = 0; i < 6; i++) {
      expect((await agentless()).status).toBe(401);
      expect((await agentless(basicAuth(USER, PASSWORD))).status).toBe(200);
    }
    const scrape = await fetchScrape(`http://127.0.0.1:${env.proxy.adminPort}/metrics`);
    expect(sampleSum(scrape, 'rtp_auth_requests_total', { result: 'login' })).toBe(6);
    expect(sampleSum(scrape, 'rtp_auth_requests_total', { result: 'challenged' })).toBe(6);
    // One check per worker at most: each remembers its own logins.
    const checks = sampleSum(scrape, 'rtp_auth_password_checks_total', { result: 'ok' });
    expect(checks).toBeGreaterThanOrEqual(1);
    expect(checks).toBeLessThanOrEqual(2);
  });
});

describe('logins at the proxy in front of a registry with logins of its own', () => {
  const files = authFiles('auth-both');
  const env = useRegistryBehindProxy(
    'proxy-auth-both',
    { auth: { kind: 'htpasswd', user: USER, password: PASSWORD } },
    { RTP_AUTH_HTPASSWD: files.htpasswd },
  );

  it('warns at start-up that both are on', async () => {
    const line = await eventually('the warning', () =>
      env.proxy
        .logLines()
        .find((l) => /proxy's logins \(auth\.htpasswd\) are on too/.test(String(l['msg']))),
    );
    expect(line['level']).toBe('warn');
    expect(line['verdict']).toBe('healthy');
  });
});
