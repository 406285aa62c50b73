/**
 * Metrics of a cluster (workers > 1): each worker keeps its own registry; the
 * primary's admin listener asks them over the cluster's IPC channel and serves the
 * sum (prom-client's AggregatorRegistry.aggregate; gauges that must not be summed say
 * how they aggregate where they are defined).
 *
 * A reload replaces every worker, and a dead worker is replaced: their counters must
 * not leave the sum with them, or rtp_requests_total would go down (Prometheus reads
 * that as a counter reset, and rate() over it is wrong). So the primary keeps each
 * worker's last answer; a draining worker sends its final counts before it exits
 * (requests it finished after the reload included), and once it has exited its
 * counters and histograms are added into a "retired" sum that every scrape includes.
 * A worker killed between two scrapes takes only what it counted since the last one.
 * Gauges (sockets, expiry, verdict, memory) come from the workers serving now.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { Registry } from 'prom-client';
import type { MetricsSource } from '../admin/server.js';
import { sendToWorker } from '../cluster-send.js';

type MetricsJSON = Array<MetricObjectWithValues<MetricValue<string>>>;

const REQUEST = 'registry-tls-proxy:metrics?';
const ANSWER = 'registry-tls-proxy:metrics';
/** How long a scrape waits for a worker; one that is slower (busy, starting) counts with its last answer. */
const ANSWER_MS = 2000;

interface Answer {
  type: typeof ANSWER;
  requestId: number;
  metrics: MetricsJSON;
}

function isAnswer(message: unknown): message is Answer {
  return (message as { type?: unknown } | null)?.type === ANSWER;
}

/** The id of a worker's last answer, sent once it has drained: newer than any other. */
const FINAL = Number.MAX_SAFE_INTEGER;

/** In a worker: answers the primary's requests; `final()` sends the last counts before exit. */
export function answerPrimaryMetrics(registry: Registry): { final(): Promise<void> } {
  const send = async (requestId: number) => {
    const answer: Answer = { type: ANSWER, requestId, metrics: await registry.getMetricsAsJSON() };
    return new Promise<void>((resolve) => {
      if (!process.connected || !process.send) return resolve();
      process.send(answer, undefined, {}, () => resolve());
    });
  };
  process.on('message', (message: { type?: unknown; requestId?: unknown } | null) => {
    if (message?.type === REQUEST) void send(Number(message.requestId));
  });
  return { final: () => send(FINAL) };
}

/** In the primary: the workers' sum. `watch` every worker at fork; `isServing` tells the current set. */
export function workersMetricsSum(isServing: (worker: Worker) => boolean): MetricsSource & {
  watch(worker: Worker): void;
} {
  /** Each live worker's latest answer. */
  const last = new Map<Worker, { requestId: number; metrics: MetricsJSON }>();
  const waiting = new Map<Worker, Array<() => void>>();
  /** Counters and histograms of the workers that have exited, one sum per metric name. */
  const retired = new Map<string, MetricsJSON[number]>();
  const live = new Set<Worker>();
  let requestId = 0;

  const retire = (metrics: MetricsJSON) => {
    for (const metric of cumulative(metrics)) {
      const sum = retired.get(metric.name);
      retired.set(metric.name, sum ? addValues(sum, metric) : metric);
    }
  };
  const answered = (worker: Worker) => {
    for (const resolve of waiting.get(worker) ?? []) resolve();
    waiting.delete(worker);
  };
  const ask = (worker: Worker, id: number) =>
    new Promise<void>((resolve) => {
      setTimeout(resolve, ANSWER_MS).unref();
      waiting.set(worker, [...(waiting.get(worker) ?? []), resolve]);
      // A worker that has gone counts with its last answer.
      sendToWorker(worker, { type: REQUEST, requestId: id }, () => answered(worker));
    });

  return {
    contentType: AggregatorRegistry.PROMETHEUS_CONTENT_TYPE,
    watch(worker) {
      live.add(worker);
      worker.on('message', (message: unknown) => {
        if (!isAnswer(message)) return;
        // Answers may cross: never replace counts with older ones.
        if (message.requestId >= (last.get(worker)?.requestId ?? -1)) last.set(worker, message);
        answered(worker);
      });
      worker.once('exit', () => {
        live.delete(worker);
        answered(worker);
        const final = last.get(worker);
        last.delete(worker);
        if (final) retire(final.metrics);
      });
    },
    async metrics() {
      const id = requestId++;
      await Promise.all([...live].map((w) => ask(w, id)));
      // Every part read now, in one go: each worker's numbers are in `last` or in `retired`.
      const parts: MetricsJSON[] = [[...retired.values()]];
      for (const [worker, { metrics }] of last) {
        parts.push(isServing(worker) ? metrics : cumulative(metrics));
      }
      return AggregatorRegistry.aggregate(parts).metrics();
    },
  };
}

/** Counters and histograms: what only grows, so it may be kept once its worker is gone. */
function cumulative(metrics: MetricsJSON): MetricsJSON {
  return metrics.filter((m) => String(m.type) === 'counter' || String(m.type) === 'histogram');
}

/** `a` + `b`, sample by sample (name suffix and labels), as prom-client's sum aggregator. */
function addValues(a: MetricsJSON[number], b: MetricsJSON[number]): MetricsJSON[number] {
  const key = (v: MetricValue<string> & { metricName?: string }) =>
    `${v.metricName ?? ''}${JSON.stringify(Object.entries(v.labels).sort())}`;
  const sums = new Map(a.values.map((v) => [key(v), { ...v }]));
  for (const v of b.values) {
    const sum = sums.get(key(v));
    if (sum) sum.value += v.value;
    else sums.set(key(v), { ...v });
  }
  return { ...a, values: [...sums.values()] };
}
