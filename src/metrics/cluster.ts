/**
 * Metrics of a cluster (workers > 1): each worker keeps its own registry; the
 * primary's admin listener asks them over the cluster's IPC channel and serves the
 * sum (prom-client's AggregatorRegistry; gauges that must not be summed say how
 * they aggregate where they are defined).
 */
import { AggregatorRegistry, type Registry } from 'prom-client';

/** In a worker: answer the primary's requests with this registry. */
export function exposeToClusterMetrics(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // installs the worker's IPC listener
}

/** In the primary: what the admin listener serves at /metrics. */
export function clusterMetricsSource(): { metrics(): Promise<string>; contentType: string } {
  const aggregator = new AggregatorRegistry();
  return {
    metrics: () => aggregator.clusterMetrics(),
    contentType: aggregator.contentType,
  };
}
