/**
 * Prometheus metrics, served on the admin listener only. One prefix, base units.
 */
import type { Agent } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export const PREFIX = 'rtp_';

export interface ProxyMetrics {
  registry: Registry;
  requests: Counter<'method' | 'status_class'>;
  upstreamErrors: Counter<'kind'>;
}

/** A fresh registry per proxy (never prom-client's global one), so tests and reloads start clean. */
export function createMetrics(agent: Agent): ProxyMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: PREFIX });
  const requests = new Counter({
    name: `${PREFIX}requests_total`,
    help: 'Requests answered on the public port, by method and status class.',
    labelNames: ['method', 'status_class'] as const,
    registers: [registry],
  });
  const upstreamErrors = new Counter({
    name: `${PREFIX}upstream_errors_total`,
    help: 'Failed requests to the backend registry, by kind.',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  new Gauge({
    name: `${PREFIX}upstream_sockets`,
    help: 'Sockets to the backend registry, by state (active: carrying a request; idle: kept alive).',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      this.set({ state: 'active' }, countSockets(agent.sockets));
      this.set({ state: 'idle' }, countSockets(agent.freeSockets));
    },
  });
  return { registry, requests, upstreamErrors };
}

function countSockets(pool: NodeJS.ReadOnlyDict<unknown[]>): number {
  let n = 0;
  for (const list of Object.values(pool)) n += list?.length ?? 0;
  return n;
}
