/**
 * The trust page, GET /_proxy/trust on the public port: what a person opens in a
 * browser to make a client trust this registry. It shows the CA fingerprints, the
 * served certificate's names and expiry and the registry's health (never the backend's
 * address: the public port must not tell it), offers ca.crt and ca.cer, and one tab per
 * kind of client with the command to paste.
 *
 * No script: tabs are radio inputs styled with :checked, so the page works with
 * JavaScript off, and the Content-Security-Policy allows only the one inline style
 * (by its hash).
 */
import { createHash } from 'node:crypto';
import { markup, rawHTML, type SafeHTML } from './html.js';
import { clientTabs } from './page-tabs.js';
import { PAGE_STYLE, tabStyle } from './page-style.js';

export const TRUST_PAGE_PATH = '/_proxy/trust';

/** What a client by this host installs: our CA, an internal ACME server's roots, or nothing. */
export type PageTrust =
  | {
      kind: 'ours' | 'internal';
      /** SHA-256, colon-hex; the first signs the served certificate (a second: a CA rotation). */
      fingerprints: readonly string[];
    }
  | { kind: 'public' };

export interface TrustPageView {
  /** host:port as the client reached the proxy (its Host header). */
  hostPort: string;
  trust: PageTrust;
  /** The certificate a client by this host is served. */
  certificate: { names: readonly string[]; notAfter: Date };
  /** The cached backend verdict; undefined when health monitoring gives none. */
  registry?: { status: 'healthy' | 'open' | 'down' | 'draining'; checkedAt: Date } | undefined;
  now: Date;
}

// Any valid host:port and fingerprint: only the ids are used.
const TAB_IDS = clientTabs('localhost:1', Array(32).fill('00').join(':')).map((t) => t.id);
const STYLE = PAGE_STYLE + tabStyle(TAB_IDS);
const STYLE_HASH = createHash('sha256').update(STYLE).digest('base64');

/** No script, no frames, no forms; the one inline style by hash, and the data: favicon. */
export const TRUST_PAGE_CSP = [
  "default-src 'none'",
  `style-src 'sha256-${STYLE_HASH}'`,
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The whole page. */
export function trustPageHTML(view: TrustPageView): string {
  const { hostPort, trust } = view;
  const body =
    trust.kind === 'public'
      ? nothingToInstall(hostPort)
      : installSections(hostPort, trust.fingerprints, trust.kind);
  return markup`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Trust ${hostPort}</title>
<link rel="icon" href="data:,">
<style>${rawHTML(STYLE)}</style>
</head>
<body>
<main>
<h1>Trust the registry at <span class="host">${hostPort}</span></h1>
${facts(view)}
${body}
</main>
</body>
</html>
`.text;
}

/** Health, the served certificate, and the fingerprints to compare. */
function facts(view: TrustPageView): SafeHTML {
  const { certificate, registry, trust } = view;
  const days = Math.floor((certificate.notAfter.getTime() - view.now.getTime()) / 86_400_000);
  const names = certificate.names.map((n, i) => markup`${i > 0 ? ', ' : ''}<code>${n}</code>`);
  return markup`<dl>
<dt>Registry</dt><dd>${registry ? registryStatus(registry) : 'not monitored'}</dd>
<dt>Certificate for</dt><dd class="names">${names}</dd>
<dt>Certificate expires</dt><dd>${certificate.notAfter.toISOString()} (${days >= 0 ? `in ${days} days` : 'expired'})</dd>
${trust.kind === 'public' ? '' : fingerprintRows(trust.fingerprints, trust.kind)}
</dl>`;
}

/** The verdict in words; never its reason, which names the backend's address. */
function registryStatus(r: NonNullable<TrustPageView['registry']>): SafeHTML {
  const said = {
    healthy: markup`<span class="ok">healthy</span>`,
    open: markup`<span class="bad">open to anyone</span>: it answers without credentials; tell its operator`,
    down: markup`<span class="bad">not healthy</span>: pulls and pushes fail until it recovers`,
    draining: markup`<span class="bad">this proxy is shutting down or reloading</span>: try again shortly`,
  }[r.status];
  return markup`${said} <span class="note">(checked ${r.checkedAt.toISOString()})</span>`;
}

function fingerprintRows(fingerprints: readonly string[], kind: 'ours' | 'internal'): SafeHTML {
  const what = kind === 'ours' ? 'CA' : 'ACME root';
  const role = (i: number) =>
    fingerprints.length < 2 ? '' : i === 0 ? ' (signs now)' : ' (also in ca.crt: a rotation)';
  return markup`${fingerprints.map(
    (fp, i) => markup`<dt>${what} SHA-256${role(i)}</dt><dd><code class="fp">${fp}</code></dd>`,
  )}`;
}

/** Downloads and tabs, for a client that must install our CA (or the internal ACME server's root). */
function installSections(
  hostPort: string,
  fingerprints: readonly string[],
  kind: 'ours' | 'internal',
): SafeHTML {
  const signing = fingerprints[0] ?? '';
  const tabs = clientTabs(hostPort, signing);
  const radios = tabs.map(
    (t, i) =>
      markup`<input type="radio" name="client" id="tab-${t.id}"${i === 0 ? rawHTML(' checked') : ''}><label for="tab-${t.id}">${t.title}</label>`,
  );
  const panels = tabs.map(
    (t) =>
      markup`<section class="panel" id="panel-${t.id}" aria-label="${t.title}">${t.body}</section>`,
  );
  return markup`<p class="note">This page may have come over a connection your browser could not verify yet. Before installing, compare the fingerprint with the one your registry's operator gives you (the proxy's start-up log, or <code>registry-tls-proxy trust</code> on its host).</p>
${kind === 'internal' ? markup`<p>${hostPort} is served a certificate from an internal ACME server: clients trust that server's root, which the downloads and commands below install.</p>` : ''}
<h2>Download</h2>
<p class="downloads"><a class="button" href="/ca.crt" download="ca.crt">ca.crt</a> <span class="note">PEM: Linux, macOS, Firefox</span></p>
<p class="downloads"><a class="button" href="/ca.cer" download="ca.cer">ca.cer</a> <span class="note">DER: opens with a double-click on Windows</span></p>
${fingerprints.length > 1 ? markup`<p class="note">A CA rotation is in progress: ca.crt holds both certificates above; ca.cer holds one, the one that signs now (<code class="fp">${signing}</code>). Where you install ca.cer, install it again after the switch to the next CA.</p>` : ''}
<h2>Install</h2>
<div class="tabs">
${radios}
${panels}
</div>`;
}

/** With tls.acme, for a name served the publicly trusted ACME certificate. */
function nothingToInstall(hostPort: string): SafeHTML {
  return markup`<h2>Nothing to install</h2>
<p>${hostPort} is served a publicly trusted certificate (ACME): docker, containerd, podman and browsers already trust it.</p>
<p class="note">Clients that reach this registry by IP address or by another name get a certificate from the proxy's own CA: open this page by that address to install it.</p>`;
}
