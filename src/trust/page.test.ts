import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { escapeHTML, markup } from './html.js';
import { installerOneLiner, type Platform } from './one-liners.js';
import { TRUST_PAGE_CSP, trustPageHTML, type TrustPageView } from './page.js';

const FP_A = Array.from({ length: 32 }, (_, i) => (i + 16).toString(16).toUpperCase()).join(':');
const FP_B = Array.from({ length: 32 }, () => 'AB').join(':');

function view(overrides: Partial<TrustPageView> = {}): TrustPageView {
  return {
    hostPort: 'registry.lan:5443',
    trust: { kind: 'ours', fingerprints: [FP_A] },
    certificate: {
      names: ['registry.lan', '10.0.0.5'],
      notAfter: new Date('2027-03-01T00:00:00Z'),
    },
    registry: { status: 'healthy', checkedAt: new Date('2026-12-02T10:00:00Z') },
    now: new Date('2026-12-02T10:00:05Z'),
    ...overrides,
  };
}

/** The markup of one tab's panel. */
function panel(page: string, id: string): string {
  const start = page.indexOf(`<section class="panel" id="panel-${id}"`);
  expect(start).toBeGreaterThan(-1);
  return page.slice(start, page.indexOf('</section>', start));
}

describe('escaping', () => {
  it.each([
    ['<script>alert(1)</script>', '&lt;script&gt;alert(1)&lt;/script&gt;'],
    ['"><img src=x onerror=alert(1)>', '&quot;&gt;&lt;img src=x onerror=alert(1)&gt;'],
    ["' onmouseover='x", '&#39; onmouseover=&#39;x'],
    ['a & b', 'a &amp; b'],
  ])('escapeHTML(%j)', (input, escaped) => {
    expect(escapeHTML(input)).toBe(escaped);
    expect(markup`<p title="${input}">${input}</p>`.text).toBe(
      `<p title="${escaped}">${escaped}</p>`,
    );
  });

  it('a certificate name with <script> or quotes is shown as text, never as markup', () => {
    const page = trustPageHTML(
      view({
        certificate: {
          names: ['<script>alert(1)</script>', '"quoted\'.lan'],
          notAfter: new Date('2027-01-01T00:00:00Z'),
        },
      }),
    );
    expect(page).not.toContain('<script');
    expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page).toContain('&quot;quoted&#39;.lan');
  });

  it('refuses a host:port that is not one rather than putting it into commands', () => {
    expect(() => trustPageHTML(view({ hostPort: '"><script>x</script>:5443' }))).toThrow(
      /is not a host:port/,
    );
  });
});

describe('the page', () => {
  it('has no script, and the CSP allows exactly its inline style by hash', () => {
    const page = trustPageHTML(view());
    expect(page).not.toMatch(/<script|\son\w+=|style="/i);
    const style = /<style>([\s\S]*?)<\/style>/.exec(page)?.[1] ?? '';
    const hash = createHash('sha256').update(style).digest('base64');
    expect(TRUST_PAGE_CSP).toContain(`style-src 'sha256-${hash}'`);
    expect(TRUST_PAGE_CSP).toMatch(/^default-src 'none'/);
    expect(TRUST_PAGE_CSP).not.toMatch(/script-src|unsafe/);
    expect(page).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
  });

  it.each<[string, Platform]>([
    ['linux', 'linux'],
    ['macos', 'macos'],
    ['windows', 'windows'],
    ['kubernetes', 'kubernetes'],
  ])(
    'the %s tab carries its installer command for this host:port and fingerprint',
    (id, platform) => {
      const page = trustPageHTML(view());
      const command = installerOneLiner(platform, 'registry.lan:5443', FP_A);
      expect(panel(page, id)).toContain(`<pre><code>${escapeHTML(command)}</code></pre>`);
      // Exactly one tab carries each command.
      expect(page.split(escapeHTML(command)).length).toBe(2);
    },
  );

  it('the browser tab says how to import into Chrome and Firefox and to restart', () => {
    const browser = panel(trustPageHTML(view()), 'browser');
    expect(browser).toContain('href="/ca.crt"');
    expect(browser).toContain('href="/ca.cer"');
    expect(browser).toContain('Firefox');
    expect(browser).toContain('certutil -d sql:$HOME/.pki/nssdb');
    expect(browser).toContain('update-ca-certificates');
    expect(browser).toMatch(/Restart the browser/);
    expect(browser).toContain(FP_A);
  });

  it('shows health, names and expiry, and the first tab is chosen', () => {
    const page = trustPageHTML(view());
    expect(page).toContain('<span class="ok">healthy</span>');
    expect(page).toContain('<code>registry.lan</code>, <code>10.0.0.5</code>');
    expect(page).toContain('2027-03-01T00:00:00.000Z (in 88 days)');
    expect(page).toContain('<input type="radio" name="client" id="tab-linux" checked>');
    expect(page.match(/ checked>/g)).toHaveLength(1);
  });

  it('during a CA rotation lists both fingerprints and says which one ca.cer holds', () => {
    const page = trustPageHTML(view({ trust: { kind: 'ours', fingerprints: [FP_A, FP_B] } }));
    expect(page).toContain(`CA SHA-256 (signs now)</dt><dd><code class="fp">${FP_A}</code>`);
    expect(page).toContain(`<code class="fp">${FP_B}</code>`);
    expect(page).toMatch(
      /ca\.cer holds one, the one that signs now \(<code class="fp">[0-9A-F:]+<\/code>\)/,
    );
    expect(panel(page, 'linux')).toContain(`--fingerprint ${FP_A}`);
  });

  it('a name served the publicly trusted ACME certificate: nothing to install', () => {
    const page = trustPageHTML(view({ trust: { kind: 'public' } }));
    expect(page).toContain('Nothing to install');
    expect(page).not.toContain('/ca.cer');
    expect(page).not.toContain('--fingerprint');
    expect(page).not.toContain('SHA-256');
  });

  it("an internal ACME server's name: its root's fingerprint, and the commands pin it", () => {
    const page = trustPageHTML(view({ trust: { kind: 'internal', fingerprints: [FP_B] } }));
    expect(page).toContain(`ACME root SHA-256</dt><dd><code class="fp">${FP_B}</code>`);
    expect(page).toContain('internal ACME server');
    expect(panel(page, 'linux')).toContain(`--fingerprint ${FP_B}`);
  });

  it.each([
    ['open', 'open to anyone'],
    ['down', 'not healthy'],
    ['draining', 'this proxy is shutting down or reloading'],
  ] as const)('a registry %s is said so', (status, words) => {
    const page = trustPageHTML(
      view({ registry: { status, checkedAt: new Date('2026-12-02T10:00:00Z') } }),
    );
    expect(page).toContain(`<span class="bad">${words}`);
  });
});
