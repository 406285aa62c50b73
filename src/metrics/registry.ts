/**
 * Prometheus metrics, served on the admin listener only. One prefix (rtp_),
 * base units (seconds, bytes), counters ending in _total (and only counters:
 * `promtool check metrics` is clean).
 *
 * One registry for the life of the process (runtime.ts): prom-client's default
 * collectors install observers (GC, event-loop delay) that are never released, and a
 * registry per reload leaked them and reset every counter.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Verdict, VerdictStatus } from '../health/probe.js';
import type { TLSMaterial } from '../pki/store.js';
import { UPSTREAM_ERROR_LABELS } from '../net/errno.js';
import { PROXY_REFUSAL_REASONS } from '../net/proxy-protocol.js';
import type { TLSFailureReason } from '../tls/failures.js';
import { AUTH_RESULTS } from '../proxy/authenticate.js';
import { OPERATIONS, type Operation } from './operation.js';

export const PREFIX = 'rtp_';

/** Handshake failure reasons as metric labels: the classifier's, plus plain HTTP caught before TLS. */
export type HandshakeFailureLabel = TLSFailureReason | 'plain_http';

export interface ProxyMetrics {
  registry: Registry;
  requests: Counter<'operation' | 'status_class'>;
  duration: Histogram<'operation'>;
  receivedBytes: Counter<'operation'>;
  sentBytes: Counter<'operation'>;
  upstreamErrors: Counter<'backend' | 'kind'>;
  /** Per replica (config `backend`): requests it answered or failed, by status class. */
  backendRequests: Counter<'backend' | 'status_class'>;
  handshakes: Counter<'certificate'>;
  handshakeFailures: Counter<'reason'>;
  hostNotCovered: Counter;
  proxyProtocolRefused: Counter<'reason'>;
  acmeOrders: Counter<'result'>;
  authRequests: Counter<'result'>;
  passwordChecks: Counter<'result'>;
}

/** What the gauges read at each scrape: the generation serving now (undefined before the first). */
export interface MetricSources {
  /** Backend sockets carrying a request (active) and kept alive (idle). */
  upstream: () => { active: number; idle: number } | undefined;
  /** The material being served, for certificate expiry. */
  material: () => TLSMaterial | undefined;
  /** The backend verdict. */
  verdict: () => Verdict | undefined;
  /** With tls.acme: the ACME certificate served (if any) and when an order last succeeded. */
  acme?: () => { notAfter?: Date; lastSuccess?: Date } | undefined;
}

const VERDICTS: readonly VerdictStatus[] = ['healthy', 'open', 'down'];
/** From a cached manifest HEAD (ms) to a multi-GB layer (minutes). */
const DURATION_BUCKETS = [
  0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
];

/**
 * The process's registry (never prom-client's global one), every labelled series at
 * zero. Call it once per process: see the file's comment.
 */
export function createMetrics(sources: MetricSources): ProxyMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: PREFIX });
  renameTotalGauges(registry);
  const registers = [registry];
  const requests = new Counter({
    name: `${PREFIX}requests_total`,
    help: 'Requests answered on the public port, by registry operation and status class (2xx…5xx; none when the client left before an answer).',
    labelNames: ['operation', 'status_class'] as const,
    registers,
  });
  const duration = new Histogram({
    name: `${PREFIX}request_duration_seconds`,
    help: 'Time from request to the end of the response, by registry operation.',
    labelNames: ['operation'] as const,
    buckets: DURATION_BUCKETS,
    registers,
  });
  const receivedBytes = new Counter({
    name: `${PREFIX}received_bytes_total`,
    help: 'Request body bytes received from clients, by registry operation.',
    labelNames: ['operation'] as const,
    registers,
  });
  const sentBytes = new Counter({
    name: `${PREFIX}sent_bytes_total`,
    help: 'Response body bytes sent to clients, by registry operation.',
    labelNames: ['operation'] as const,
    registers,
  });
  const upstreamErrors = new Counter({
    name: `${PREFIX}upstream_errors_total`,
    help: 'Failed requests to the backend registry, by replica (its origin) and kind (refused, reset, timeout, other); a request then sent to another replica counts too.',
    labelNames: ['backend', 'kind'] as const,
    registers,
  });
  const backendRequests = new Counter({
    name: `${PREFIX}backend_requests_total`,
    help: 'Requests sent to each backend replica (its origin), by the status class the client got (none: no answer).',
    labelNames: ['backend', 'status_class'] as const,
    registers,
  });
  const handshakes = new Counter({
    name: `${PREFIX}tls_handshakes_total`,
    help: 'Completed TLS handshakes on the public port, by the certificate served: ecdsa, rsa (the client offered no ECDSA), other (a supplied Ed25519 key), resumed (a resumed session: none sent).',
    labelNames: ['certificate'] as const,
    registers,
  });
  for (const certificate of ['ecdsa', 'rsa', 'resumed']) handshakes.labels({ certificate }).inc(0);
  const handshakeFailures = new Counter({
    name: `${PREFIX}tls_handshake_failures_total`,
    help: 'Failed TLS handshakes on the public port, by reason: untrusted_ca (the client does not trust our CA), name_not_covered (the client asked for a name the certificate lacks), no_shared_protocol, plain_http, client_cert_missing, client_cert_rejected, not_tls, aborted, other.',
    labelNames: ['reason'] as const,
    registers,
  });
  const hostNotCovered = new Counter({
    name: `${PREFIX}requests_host_not_covered_total`,
    help: "Requests whose Host is not covered by the served certificate's SANs (such clients skip verification or will fail it).",
    registers,
  });
  const acmeOrders = new Counter({
    name: `${PREFIX}acme_orders_total`,
    help: 'ACME orders this process made, by result (success, failure).',
    labelNames: ['result'] as const,
    registers,
  });
  const proxyProtocolRefused = new Counter({
    name: `${PREFIX}proxy_protocol_refused_total`,
    help: 'Connections closed for their PROXY protocol header, by reason: untrusted (from a peer not in proxyProtocol.trustedFrom), missing (required and not sent), malformed, too_long, truncated, timeout.',
    labelNames: ['reason'] as const,
    registers,
  });
  for (const reason of PROXY_REFUSAL_REASONS) proxyProtocolRefused.inc({ reason }, 0);
  const authRequests = new Counter({
    name: `${PREFIX}auth_requests_total`,
    help: 'Requests the proxy decided a login for (auth.htpasswd), by result: login (credentials accepted), anonymous (a pull allowed by auth.anonymous), challenged (401, no credentials), refused (401, wrong credentials), denied (403, an anonymous write), rate_limited (429).',
    labelNames: ['result'] as const,
    registers,
  });
  const passwordChecks = new Counter({
    name: `${PREFIX}auth_password_checks_total`,
    help: 'bcrypt checks of passwords against auth.htpasswd, by result (ok, failed); remembered logins need none.',
    labelNames: ['result'] as const,
    registers,
  });
  for (const result of AUTH_RESULTS) authRequests.inc({ result }, 0);
  passwordChecks.inc({ result: 'ok' }, 0);
  passwordChecks.inc({ result: 'failed' }, 0);
  acmeOrders.inc({ result: 'success' }, 0);
  acmeOrders.inc({ result: 'failure' }, 0);
  defineStateGauges(registers, sources);
  defineACMEGauge(registers, sources);
  const metrics = {
    registry,
    requests,
    duration,
    receivedBytes,
    sentBytes,
    upstreamErrors,
    backendRequests,
    handshakes,
    handshakeFailures,
    hostNotCovered,
    proxyProtocolRefused,
    acmeOrders,
    authRequests,
    passwordChecks,
  };
  initSeries(metrics, OPERATIONS);
  return metrics;
}

/** Gauges read at each scrape from whichever generation serves now. */
function defineStateGauges(registers: Registry[], sources: MetricSources): void {
  const verdict = sources.verdict;
  new Gauge({
    name: `${PREFIX}upstream_sockets`,
    help: 'Sockets to the backend registry, by state (active: carrying a request; idle: kept alive).',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const { active, idle } = sources.upstream() ?? { active: 0, idle: 0 };
      this.set({ state: 'active' }, active);
      this.set({ state: 'idle' }, idle);
    },
  });
  new Gauge({
    name: `${PREFIX}certificate_expiry_timestamp_seconds`,
    aggregator: 'min', // a cluster's workers serve the same files: the soonest, not the sum
    help: 'When the served certificate (certificate="server"), the CA that signed it (certificate="ca") and the ACME certificate served by SNI (certificate="acme") expire, Unix time.',
    labelNames: ['certificate'] as const,
    registers,
    collect() {
      const m = sources.material();
      if (!m) return;
      this.set({ certificate: 'server' }, m.serverNotAfter.getTime() / 1000);
      this.set({ certificate: 'ca' }, m.caNotAfter.getTime() / 1000);
      const acme = sources.acme?.()?.notAfter;
      if (acme) this.set({ certificate: 'acme' }, acme.getTime() / 1000);
    },
  });
  new Gauge({
    name: `${PREFIX}backend_up`,
    aggregator: 'min',
    help: 'Whether the last probe of the backend found it healthy (401 with a challenge; 200 only with health.allowAnonymous or auth.htpasswd).',
    registers,
    collect() {
      this.set(verdict()?.healthy ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}replica_up`,
    aggregator: 'min',
    help: 'Per backend replica (its origin): whether its last probe found it healthy, so in rotation.',
    labelNames: ['backend'] as const,
    registers,
    collect() {
      this.reset(); // a reload may have changed the list
      const v = verdict();
      if (!v) return;
      for (const r of v.replicas ?? []) {
        this.set({ backend: new URL(r.backend).origin }, r.verdict.healthy ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: `${PREFIX}backend_verdict`,
    aggregator: 'max',
    help: 'The last probe verdict as a state set: healthy, open (answers anonymous users), down.',
    labelNames: ['verdict'] as const,
    registers,
    collect() {
      const current = verdict()?.status;
      for (const v of VERDICTS) this.set({ verdict: v }, v === current ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}backend_probe_timestamp_seconds`,
    aggregator: 'max',
    help: 'When the backend was last probed, Unix time.',
    registers,
    collect() {
      const v = verdict();
      if (v) this.set(v.checkedAt.getTime() / 1000);
    },
  });
}

function defineACMEGauge(registers: Registry[], sources: MetricSources): void {
  if (!sources.acme) return;
  const acme = sources.acme;
  new Gauge({
    name: `${PREFIX}acme_last_success_timestamp_seconds`,
    aggregator: 'max',
    help: 'When an ACME order last succeeded (by any replica sharing tls.dir), Unix time; 0 = never.',
    registers,
    collect() {
      this.set((acme()?.lastSuccess?.getTime() ?? 0) / 1000);
    },
  });
}

/**
 * prom-client's nodejs_active_{handles,requests,resources}_total are gauges, and a
 * `_total` suffix says "counter" to Prometheus (promtool flags them;
 * https://github.com/siimon/prom-client/issues/283). Served as ..._all instead, with
 * the same value: the count over every type (the unlabelled series stays there when
 * no handle of any type is open, which `sum()` over the typed series would not give).
 */
function renameTotalGauges(registry: Registry): void {
  for (const metric of registry.getMetricsAsArray()) {
    const { name, help } = metric as unknown as { name: string; help: string };
    if (!(metric instanceof Gauge) || !name.endsWith('_total')) continue;
    registry.removeSingleMetric(name);
    new Gauge({
      name: `${name.slice(0, -'_total'.length)}_all`,
      help: `${help} (Every type; was ${name}.)`,
      registers: [registry],
      async collect() {
        const { values } = await metric.get();
        this.set(values[0]?.value ?? 0);
      },
    });
  }
}

/** The backend's series at zero, per replica (its origin), before its first error. */
export function initBackendSeries(metrics: ProxyMetrics, origins: readonly string[]): void {
  for (const backend of origins) {
    for (const kind of UPSTREAM_ERROR_LABELS) metrics.upstreamErrors.inc({ backend, kind }, 0);
  }
}

/** Creates every labelled series at zero, so dashboards and alerts see them before the first event. */
function initSeries(metrics: ProxyMetrics, operations: readonly Operation[]): void {
  for (const operation of operations) {
    metrics.receivedBytes.inc({ operation }, 0);
    metrics.sentBytes.inc({ operation }, 0);
  }
  const reasons: HandshakeFailureLabel[] = [
    'untrusted_ca',
    'no_shared_protocol',
    'plain_http',
    'client_cert_missing',
    'client_cert_rejected',
    'not_tls',
    'aborted',
    'other',
  ];
  for (const reason of reasons) metrics.handshakeFailures.inc({ reason }, 0);
}
