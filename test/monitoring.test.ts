/**
 * The example monitoring files against a real proxy: monitoring/alerts.yml and
 * monitoring/grafana-dashboard.json may only use metrics the proxy serves, and
 * what it serves must be right. The registry (htpasswd) sits behind the proxy;
 * skopeo pushes and pulls with strict TLS, one curl does not trust the CA; then
 * promtool checks the rules and lints the scrape, and a real Prometheus loads
 * the rules, scrapes the admin listener and runs every dashboard query.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYAML } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useRegistryBehindProxy } from './helpers/fixture.js';
import { buildOCIImage } from './helpers/oci.js';
import { ROOT } from './helpers/processes.js';
import { eventually } from './helpers/eventually.js';
import {
  promtool,
  sampleSum,
  scrapeUntil,
  startPrometheus,
  type PrometheusServer,
  type Scrape,
} from './helpers/prometheus.js';
import { skopeoPull, skopeoPush } from './helpers/skopeo.js';

const USER = 'alice';
const PASSWORD = 'monitoring-pa55';
const JOB = 'registry-tls-proxy'; // the job name alerts.yml's RegistryTLSProxyDown expects
const ALERTS_FILE = join(ROOT, 'monitoring', 'alerts.yml');
const DASHBOARD_FILE = join(ROOT, 'monitoring', 'grafana-dashboard.json');
/** Series that only a proxy with tls.acme serves (test/acme-faults.test.ts scrapes them). */
const ONLY_WITH_ACME = ['rtp_certificate_expiry_timestamp_seconds{certificate="acme"}'];

/** Prometheus's own per-target series, not the proxy's: allowed, and documented in alerts.yml. */
const PROMETHEUS_SERIES = ['up'];

interface Rule {
  alert?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Target {
  expr?: string;
  datasource?: { uid?: string };
}
interface Panel {
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown }> };
}

const rules = (
  parseYAML(readFileSync(ALERTS_FILE, 'utf8')) as { groups: Array<{ rules: Rule[] }> }
).groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const dashboardExprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
const variableQueries = dashboard.templating.list
  .filter((v) => v.type === 'query')
  .map((v) => (typeof v.query === 'string' ? v.query : (v.query as { query: string }).query));
const allExprs = [...rules.map((r) => r.expr), ...dashboardExprs, ...variableQueries];

/** Loose PromQL reading: metric selectors `name{…}` with their label matchers. */
function selectors(
  expr: string,
): Array<{ name: string; matchers: Array<[string, string, string]> }> {
  return [...expr.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g)].map((m) => ({
    name: m[1] as string,
    matchers: [...(m[2] as string).matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)].map(
      (x) => [x[1], x[2], x[3]] as [string, string, string],
    ),
  }));
}

/** The # TYPE of the family a sample name belongs to (histograms expose name_bucket/_sum/_count). */
function familyType(scrape: Scrape, name: string): string | undefined {
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return scrape.types.get(name) ?? (base !== name ? scrape.types.get(base) : undefined);
}

describe('monitoring/: alert rules and dashboard against a real proxy', () => {
  const env = useRegistryBehindProxy(
    'monitoring',
    { auth: { kind: 'htpasswd', user: USER, password: PASSWORD } },
    { RTP_HEALTH_INTERVAL: '1s', RTP_HEALTH_TIMEOUT: '500ms' },
  );
  let prometheus: PrometheusServer | undefined;
  let scrape: Scrape;
  let layerBytes = 0;
  let imageBytes = 0;
  let untrustedCurl: number | null = null;

  beforeAll(async () => {
    const { proxy, tmp } = env;
    const metricsURL = `http://127.0.0.1:${proxy.adminPort}/metrics`;
    // Prometheus first: the alert on untrusted clients needs a sample from before the failure.
    prometheus = await startPrometheus({
      dir: join(tmp, 'prometheus'),
      target: `127.0.0.1:${proxy.adminPort}`,
      job: JOB,
      ruleFiles: [ALERTS_FILE],
    });
    const server = prometheus;
    await eventually(
      'Prometheus to scrape the proxy',
      async () => (await server.query(`rtp_tls_handshake_failures_total{job="${JOB}"}`)).length > 0,
      { timeoutMs: 30_000, intervalMs: 250 },
    );

    const image = buildOCIImage(join(tmp, 'image'), 'v1', [200_000, 50_000]);
    const blobs = join(tmp, 'image', 'layout', 'blobs', 'sha256');
    const size = (hex: string) => statSync(join(blobs, hex)).size;
    layerBytes = image.layerDigests.reduce((n, d) => n + size(d.slice(7)), 0);
    // Layers, config and manifest: no blob transfer of this image can be larger.
    imageBytes = readdirSync(blobs).reduce((n, hex) => n + size(hex), 0);

    const certDir = join(tmp, 'certs');
    mkdirSync(certDir);
    writeFileSync(join(certDir, 'ca.crt'), env.ca);
    const ref = `127.0.0.1:${proxy.port}/monitoring/app:v1`;
    const creds = `${USER}:${PASSWORD}`;
    const push = await skopeoPush(image.ref, ref, certDir, creds);
    expect(push.code, push.stderr).toBe(0);
    const pull = await skopeoPull(ref, `dir:${join(tmp, 'pulled')}`, certDir, creds);
    expect(pull.code, pull.stderr).toBe(0);
    // A client that does not trust the proxy's CA (curl with the system store only).
    untrustedCurl = spawnSync('curl', ['-s', '-o', '/dev/null', `${proxy.origin}/v2/`], {
      timeout: 30_000,
    }).status;

    scrape = await scrapeUntil(
      metricsURL,
      'an untrusted_ca handshake failure',
      (s) => sampleSum(s, 'rtp_tls_handshake_failures_total', { reason: 'untrusted_ca' }) >= 1,
    );
  });

  afterAll(async () => {
    await prometheus?.stop();
  });

  it('has alert rules that promtool accepts', () => {
    const result = promtool(['check', 'rules', ALERTS_FILE]);
    expect(result.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(result.status, result.output).toBe(0);
  });

  it('serves a scrape that promtool lints clean', () => {
    const result = promtool(['check', 'metrics'], scrape.text);
    // prom-client's gauges named *_total are served as *_all (metrics/registry.ts).
    expect(scrape.types.get('rtp_nodejs_active_handles_all')).toBe('gauge');
    expect(result.output).toBe('');
    expect(result.status).toBe(0); // 3 would be lint findings; 1 a scrape it cannot parse
  });

  it('uses only metrics the proxy serves, with labels and types that match', () => {
    const served = new Set(scrape.samples.map((s) => s.name));
    const used = new Set(allExprs.flatMap((e) => e.match(/\brtp_[a-z0-9_]+/g) ?? []));
    expect(used.size).toBeGreaterThan(15);
    expect([...used].filter((name) => !served.has(name))).toEqual([]);

    for (const expr of allExprs) {
      for (const { name, matchers } of selectors(expr)) {
        if (!name.startsWith('rtp_')) {
          expect(PROMETHEUS_SERIES, `${name} in ${expr}`).toContain(name);
          continue;
        }
        const series = scrape.samples.filter((s) => s.name === name);
        for (const [label, op, value] of matchers) {
          if (label === 'job' || label === 'instance') continue; // added by Prometheus
          const values = series.flatMap((s) => s.labels[label] ?? []);
          expect(values.length, `${name} has no label ${label}`).toBeGreaterThan(0);
          if (label === 'status_class') {
            // Only classes that traffic produced are in the scrape.
            for (const v of value.split('|')) expect(v).toMatch(/^([1-5]xx|none)$/);
          } else if (op === '=' || (op === '=~' && /^[\w|]+$/.test(value))) {
            for (const v of value.split('|')) {
              if (ONLY_WITH_ACME.includes(`${name}{${label}="${v}"}`)) continue;
              expect(values, `${name}{${label}}`).toContain(v);
            }
          }
        }
      }
      for (const [, name] of expr.matchAll(/\b(?:rate|irate|increase)\(\s*(rtp_[a-z0-9_]+)/g)) {
        expect(['counter', 'histogram'], `rate() of ${name}`).toContain(
          familyType(scrape, name as string),
        );
      }
    }
  });

  it('has a dashboard whose panels all query the data source variable', () => {
    const variable = dashboard.templating.list.find((v) => v.type === 'datasource');
    expect(variable?.query).toBe('prometheus');
    const ref = `\${${variable?.name}}`;
    const contentPanels = panels.filter((p) => p.type !== 'row');
    expect(contentPanels.length).toBeGreaterThan(10);
    for (const panel of contentPanels) {
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: ref });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect(target.expr, panel.title).toMatch(/\S/);
        expect(target.datasource?.uid, panel.title).toBe(ref);
      }
    }
  });

  it('has alerts that each carry a severity and say what to do', () => {
    const alerts = rules.filter((r) => r.alert !== undefined);
    expect(alerts.map((r) => r.alert)).toEqual([...new Set(alerts.map((r) => r.alert))]);
    for (const rule of alerts) {
      expect(['critical', 'warning'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toMatch(/\S/);
      expect(rule.annotations?.description?.length, rule.alert).toBeGreaterThan(80);
    }
  });

  it('counts the push, the pull and their bytes by registry operation', () => {
    const ok = (operation: string) =>
      sampleSum(scrape, 'rtp_requests_total', { operation, status_class: '2xx' });
    for (const op of [
      'upload_start',
      'upload_complete',
      'manifest_put',
      'blob_get',
      'manifest_get',
    ]) {
      expect(ok(op), op).toBeGreaterThan(0);
    }
    // skopeo uploads each blob (layers and config) in a PATCH, then a PUT without a body.
    const uploaded =
      sampleSum(scrape, 'rtp_received_bytes_total', { operation: 'upload_chunk' }) +
      sampleSum(scrape, 'rtp_received_bytes_total', { operation: 'upload_complete' });
    expect(uploaded).toBeGreaterThanOrEqual(layerBytes);
    expect(uploaded).toBeLessThanOrEqual(imageBytes);
    const pulled = sampleSum(scrape, 'rtp_sent_bytes_total', { operation: 'blob_get' });
    expect(pulled).toBeGreaterThanOrEqual(layerBytes);
    expect(pulled).toBeLessThanOrEqual(imageBytes);
    // Every answered request is also one histogram observation.
    expect(sampleSum(scrape, 'rtp_request_duration_seconds_count', { operation: 'blob_get' })).toBe(
      sampleSum(scrape, 'rtp_requests_total', { operation: 'blob_get' }),
    );
    expect(sampleSum(scrape, 'rtp_tls_handshakes_total')).toBeGreaterThan(0);
  });

  it('counts the untrusted client, and sees the backend healthy with certificates in date', () => {
    expect(untrustedCurl).toBe(60); // curl: peer certificate cannot be authenticated
    expect(
      sampleSum(scrape, 'rtp_tls_handshake_failures_total', { reason: 'untrusted_ca' }),
    ).toBeGreaterThanOrEqual(1);
    expect(sampleSum(scrape, 'rtp_backend_up')).toBe(1);
    expect(sampleSum(scrape, 'rtp_backend_verdict', { verdict: 'healthy' })).toBe(1);
    expect(sampleSum(scrape, 'rtp_backend_verdict', { verdict: 'open' })).toBe(0);
    expect(sampleSum(scrape, 'rtp_backend_verdict', { verdict: 'down' })).toBe(0);
    const now = Date.now() / 1000;
    const server = sampleSum(scrape, 'rtp_certificate_expiry_timestamp_seconds', {
      certificate: 'server',
    });
    const ca = sampleSum(scrape, 'rtp_certificate_expiry_timestamp_seconds', { certificate: 'ca' });
    expect(server - now).toBeGreaterThan(29 * 86400); // tls.certLifetime 30d
    expect(server - now).toBeLessThan(31 * 86400);
    expect(ca).toBeGreaterThan(server);
  });

  it('fires only the untrusted-client alert in a real Prometheus, and runs every dashboard query', async () => {
    const server = prometheus as PrometheusServer;
    await eventually(
      'RegistryTLSProxyUntrustedClients to fire',
      async () =>
        (await server.alerts()).some(
          (a) =>
            a.labels['alertname'] === 'RegistryTLSProxyUntrustedClients' && a.state === 'firing',
        ),
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    const active = (await server.alerts()).map((a) => `${a.labels['alertname']} ${a.state}`);
    expect(active).toEqual(['RegistryTLSProxyUntrustedClients firing']);

    const substitute = (expr: string) =>
      expr
        .replaceAll('$__rate_interval', '1m')
        .replaceAll('$job', JOB)
        .replaceAll('$instance', '.*');
    for (const expr of dashboardExprs) await server.query(substitute(expr)); // throws on a bad query
    for (const query of variableQueries) {
      const [, selector, label] = /^label_values\((.+),\s*(\w+)\)$/.exec(query) ?? [];
      const result = await server.query(substitute(selector ?? query));
      expect(result.map((r) => r.metric[label ?? '']).filter(Boolean), query).not.toEqual([]);
    }
    expect(await server.query(`up{job="${JOB}"}`)).toMatchObject([
      { value: [expect.anything(), '1'] },
    ]);
  });
});
