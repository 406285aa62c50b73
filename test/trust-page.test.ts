/**
 * The trust page (/_proxy/trust) in a real browser, Debian's chromium driven by
 * playwright-core, in front of the real registry. The browser trusts the proxy's CA
 * the way a user's Chrome on Linux does, through an NSS database in its HOME (no
 * certificate-error switches): a browser without it must refuse the page, so the
 * test is about the page a user really sees over TLS.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './helpers/eventually.js';
import { httpsGet } from './helpers/https.js';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { ROOT } from './helpers/processes.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts');
const PHONE = { width: 390, height: 844 };

/** A HOME whose NSS database trusts `caFile` for TLS servers (certutil -t C,,), as Chrome reads it. */
function homeTrusting(home: string, caFile: string): void {
  const db = `sql:${join(home, '.pki', 'nssdb')}`;
  mkdirSync(join(home, '.pki', 'nssdb'), { recursive: true });
  execFileSync('certutil', ['-d', db, '-N', '--empty-password'], { stdio: 'pipe' });
  execFileSync('certutil', ['-d', db, '-A', '-t', 'C,,', '-n', 'rtp', '-i', caFile], {
    stdio: 'pipe',
  });
}

function launch(home: string): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    // Root here: chromium's sandbox cannot start as root.
    args: ['--no-sandbox'],
    env: { ...process.env, HOME: home },
    timeout: 60_000,
  });
}

/** Console errors and uncaught page errors (a CSP violation is a console error). */
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return errors;
}

/** Whether the page is wider than its viewport (a phone would scroll sideways); runs in the page. */
const overflows = async (page: Page): Promise<boolean> =>
  (await page.evaluate(
    'document.documentElement.scrollWidth > document.documentElement.clientWidth',
  )) === true;

describe('the trust page in chromium', () => {
  const env = useRegistryBehindProxy(
    'trust-page',
    { auth: { kind: 'htpasswd', user: 'tara', password: 'trust-pa55' } },
    // Own endpoints answer whatever allowedPaths says.
    { RTP_ALLOWED_PATHS: '/v2/', RTP_HEALTH_INTERVAL: '1s', RTP_HEALTH_TIMEOUT: '500ms' },
  );
  const home = join(env.tmp, 'home');
  let browser: Browser;
  let url: string;
  let fingerprint: string;

  beforeAll(async () => {
    homeTrusting(home, env.proxy.caFile);
    browser = await launch(home);
    // 127.0.0.1 is on the certificate: the browser verifies the name as well as the CA.
    url = `https://127.0.0.1:${env.proxy.port}/_proxy/trust`;
    fingerprint = new X509Certificate(env.ca).fingerprint256;
  });
  afterAll(async () => {
    await browser?.close();
  });

  async function open(options: Parameters<Browser['newContext']>[0] = {}) {
    const context: BrowserContext = await browser.newContext(options);
    const page = await context.newPage();
    const errors = watchErrors(page);
    const response = await page.goto(url);
    return { context, page, errors, response };
  }

  it('answers whatever allowedPaths says, as /ca.crt does (which is in force: other paths are refused)', async () => {
    const origin = `https://127.0.0.1:${env.proxy.port}`;
    expect((await httpsGet(`${origin}/elsewhere`, { ca: env.ca })).status).toBe(403);
    for (const path of ['/_proxy/trust', '/ca.cer', '/ca.crt']) {
      expect((await httpsGet(`${origin}${path}`, { ca: env.ca })).status, path).toBe(200);
    }
  });

  it('a browser that does not trust the CA refuses the page', async () => {
    const bare = join(env.tmp, 'home-bare');
    mkdirSync(bare, { recursive: true });
    const untrusting = await launch(bare);
    try {
      const page = await untrusting.newPage();
      await expect(page.goto(url)).rejects.toThrow(/ERR_CERT_AUTHORITY_INVALID/);
    } finally {
      await untrusting.close();
    }
  });

  it('shows the real CA fingerprint and a healthy registry, without errors or CSP violations', async () => {
    const { context, page, errors, response } = await open();
    try {
      expect(response?.status()).toBe(200);
      expect(response?.headers()['content-security-policy']).toMatch(/^default-src 'none'/);
      expect(await page.locator('dd code.fp').first().textContent()).toBe(fingerprint);
      await eventually(
        'the page to say the registry is healthy',
        async () => {
          await page.reload();
          return (await page.locator('dd .ok').textContent()) === 'healthy';
        },
        { timeoutMs: 15_000, intervalMs: 500 },
      );
      expect(await page.locator('.names').textContent()).toContain('127.0.0.1');
      // The stylesheet applied (its CSP hash matched): only the chosen tab's panel shows.
      await expect(page.locator('#panel-linux').isVisible()).resolves.toBe(true);
      await expect(page.locator('#panel-windows').isVisible()).resolves.toBe(false);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'trust-page-desktop.png'), fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('clicking a tab shows its command', async () => {
    const { context, page, errors } = await open();
    try {
      const command = page.locator('#panel-windows pre');
      expect(await command.isVisible()).toBe(false);
      await page.click('label[for="tab-windows"]');
      expect(await command.isVisible()).toBe(true);
      expect(await command.textContent()).toContain(
        `DownloadString('https://127.0.0.1:${env.proxy.port}/install-ca.ps1'))) -Fingerprint '${fingerprint}'`,
      );
      expect(await page.locator('#panel-linux').isVisible()).toBe(false);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('downloads ca.cer, the DER of the CA', async () => {
    const { context, page } = await open({ acceptDownloads: true });
    try {
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.click('a.button[href="/ca.cer"]'),
      ]);
      expect(download.suggestedFilename()).toBe('ca.cer');
      const bytes = readFileSync(await download.path());
      expect(bytes.equals(new X509Certificate(env.ca).raw)).toBe(true);
    } finally {
      await context.close();
    }
  });

  it('works without JavaScript and on a phone, without sideways scrolling', async () => {
    const { context, page, errors } = await open({ javaScriptEnabled: false, viewport: PHONE });
    try {
      expect(await overflows(page)).toBe(false);
      for (const tab of ['macos', 'windows', 'kubernetes', 'browser', 'linux']) {
        await page.click(`label[for="tab-${tab}"]`);
        expect(await page.locator(`#panel-${tab} pre`).first().isVisible()).toBe(true);
        expect(await overflows(page)).toBe(false);
      }
      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, 'trust-page.png');
      rmSync(shot, { force: true });
      await page.screenshot({ path: shot, fullPage: true });
      expect(statSync(shot).size).toBeGreaterThan(1000);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
