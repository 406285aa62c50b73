/**
 * finish: once a response is over (sent or cut), its log line and its metrics. The
 * line's fields stay as operators know them: method, path (no query), status,
 * bytesIn, bytesOut, durationMs, client, the user who logged in at the proxy
 * (auth.htpasswd) and, when it did not end well, error.
 */
import { clientAddressOf } from '../net/client-address.js';
import type { Logger } from '../log.js';
import type { ProxyMetrics } from '../metrics/registry.js';
import type { Exchange } from './exchange.js';
import { OUTCOME_WORDS } from './outcome.js';

export function createFinish(logger: Logger, metrics: ProxyMetrics): (ex: Exchange) => void {
  /**
   * Request lines skip pino's redaction (it walked every key of every line: 10 µs of the
   * ~100 µs a proxied manifest GET costs; 3.7 without). They hold only the fields built
   * here — method, path without query, status, sizes, time, client address — and never
   * a header, so there is nothing to redact.
   */
  const requestLog = logger.child({}, { redact: { paths: [], censor: '' } });
  return function finish(ex: Exchange): void {
    const { req, res, operation } = ex;
    const status = res.headersSent ? res.statusCode : 0;
    const seconds = Number(process.hrtime.bigint() - ex.started) / 1e9;
    const statusClass = status === 0 ? 'none' : `${Math.floor(status / 100)}xx`;
    metrics.requests.inc({ operation, status_class: statusClass });
    // Set once forwarded (forward.ts); the proxy's own endpoints never reach a replica.
    const backend = ex.backend as URL | undefined;
    if (backend)
      metrics.backendRequests.inc({ backend: backend.origin, status_class: statusClass });
    metrics.duration.observe({ operation }, seconds);
    if (ex.bytesIn > 0) metrics.receivedBytes.inc({ operation }, ex.bytesIn);
    if (ex.bytesOut > 0) metrics.sentBytes.inc({ operation }, ex.bytesOut);
    requestLog.info(
      {
        method: req.method,
        path: ex.path,
        status,
        bytesIn: ex.bytesIn,
        bytesOut: ex.bytesOut,
        durationMs: seconds * 1000,
        // Optional: a request stream destroyed by its consumer has let go of its socket
        // by the time the response closes (seen with undici as the upload's reader).
        client: clientAddressOf(req.socket),
        ...(ex.user !== undefined ? { user: ex.user } : {}),
        ...(ex.outcome ? { error: OUTCOME_WORDS[ex.outcome] } : {}),
      },
      'request',
    );
  };
}
