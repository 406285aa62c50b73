/**
 * The request path, as named stages (each its own file):
 *   admit (admit.ts) → the proxy's own endpoints (own-endpoints.ts) →
 *   authenticate (authenticate.ts, with auth.htpasswd) → forward
 *   (forward.ts, through one Upstream: the relay or http-proxy) → respond
 *   (respond.ts) → finish (finish.ts).
 * One Exchange (exchange.ts) carries each request through them: its state, its
 * timers and its outcome.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Verdict } from '../health/probe.js';
import type { ACMETrust } from '../acme/which-certificate.js';
import type { Logger } from '../log.js';
import { initBackendSeries, type ProxyMetrics } from '../metrics/registry.js';
import { connectionFailure } from '../net/errno.js';
import { admit, isSmuggled, type AdmitRules, type Refusal } from './admit.js';
import type { Authenticate } from './authenticate.js';
import { Exchange, exchangeOf, type ExchangeStages } from './exchange.js';
import { createFinish } from './finish.js';
import { createForward } from './forward.js';
import { findOwnEndpoint, ownEndpoints } from './own-endpoints.js';
import type { PathVerdict } from './path-allowlist.js';
import type { Replicas } from './replicas.js';
import type { TrustPageSource } from './trust-endpoints.js';
import { createRespond } from './respond.js';

export interface HandlerOptions {
  /** The backend's replicas (one for a single backend), each with its two transports. */
  replicas: Replicas;
  clientIdleMs: number;
  backendIdleMs: number;
  logger: Logger;
  metrics: ProxyMetrics;
  /** The CA bundle served at GET /ca.crt (public information): during a rotation, both CAs. */
  trustBundlePEM: () => string;
  /** With tls.acme: what clients by this host install, when they get the ACME certificate. */
  acmeTrust?: (host: string) => ACMETrust | undefined;
  /** What the trust page (/_proxy/trust) shows and /ca.cer serves. */
  trustPage: TrustPageSource;
  /** Whether the served certificate covers a Host (name or IP, no port). */
  coversHost: (host: string) => boolean;
  /** health.publicPath and the cached backend verdict; absent when turned off. */
  health?: { path: string; verdict: () => Verdict; backends: readonly string[] };
  /** Headers on every response of ours and every response passed on (Strict-Transport-Security). */
  ownHeaders: Readonly<Record<string, string>>;
  /** Whether a peer is a trusted proxy (trustedProxies); absent when none is. */
  isTrustedProxy?: (address: string) => boolean;
  /** The allowedPaths check; absent when every path is allowed. */
  allowedPath?: (path: string) => PathVerdict;
  /** Logins at the proxy (auth.htpasswd); absent when the proxy asks for none. */
  authenticate?: Authenticate;
}

export function createRequestHandler(
  opts: HandlerOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const respond = createRespond(opts);
  initBackendSeries(
    opts.metrics,
    opts.replicas.all.map((r) => r.url.origin),
  );
  const forward = createForward({
    replicas: opts.replicas,
    isTrustedProxy: opts.isTrustedProxy,
  });
  const stages: ExchangeStages = {
    clientIdleMs: opts.clientIdleMs,
    backendIdleMs: opts.backendIdleMs,
    answerHead: respond.answerHead,
    // Counted against the replica that failed; a request it never received (or a GET or
    // HEAD) goes once to another before the client hears of it.
    backendFailed: (ex, err) => {
      const failed = ex.backend.origin;
      opts.metrics.upstreamErrors.inc({ backend: failed, kind: connectionFailure(err).label });
      if (!forward.retry(ex, err)) return respond.backendFailed(ex, err);
      opts.logger.warn(
        {
          backend: failed,
          retriedOn: ex.backend.origin,
          err: { code: err.code, message: err.message },
          path: ex.path,
          method: ex.req.method,
        },
        'backend request failed before any answer; sent to another replica',
      );
    },
    finish: createFinish(opts.logger, opts.metrics),
  };
  const rules: AdmitRules = {
    allowedPath: opts.allowedPath,
    coversHost: opts.coversHost,
    onHostNotCovered: () => opts.metrics.hostNotCovered.inc(),
  };
  const endpoints = ownEndpoints(opts);

  const { authenticate } = opts;
  /** After authenticate: refused, or forwarded (unless the client left during a bcrypt check). */
  const proceed = (ex: Exchange, refusal: Refusal | undefined) => {
    if (refusal) {
      ex.outcome = refusal.outcome;
      ex.bytesOut = respond.error(ex.res, refusal.spec);
    } else if (!ex.clientGone) {
      forward(ex);
    }
  };

  function handle(req: IncomingMessage, res: ServerResponse): void {
    if (isSmuggled(req.socket)) return;
    const ex = new Exchange(stages, req, res, (req.url ?? '/').split('?', 1)[0] ?? '/');
    const endpoint = findOwnEndpoint(endpoints, ex.path, req.method);
    const refusal = admit(ex, rules, endpoint !== undefined);
    if (refusal) {
      proceed(ex, refusal);
    } else if (endpoint) {
      ex.bytesOut = endpoint.serve(req, res);
    } else if (authenticate) {
      const verdict = authenticate(ex);
      if (verdict instanceof Promise) {
        verdict.then(
          (r) => proceed(ex, r),
          (err: unknown) => internalError(err, req, res),
        );
      } else {
        proceed(ex, verdict);
      }
    } else {
      forward(ex);
    }
  }

  const internalError = (err: unknown, req: IncomingMessage, res: ServerResponse) =>
    answerInternalError(opts.logger, respond, err, req, res);

  return function handleRequest(req, res) {
    try {
      handle(req, res);
    } catch (err) {
      internalError(err, req, res);
    }
  };
}

/** A bug of ours on some input must cost one request, never the process. */
function answerInternalError(
  logger: Logger,
  respond: ReturnType<typeof createRespond>,
  err: unknown,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  logger.error({ err, method: req.method, path: req.url?.split('?', 1)[0] }, 'internal error');
  const ex = exchangeOf(res);
  const sent = respond.error(res, {
    status: 500,
    code: 'UNKNOWN',
    message: 'internal proxy error',
  });
  if (ex) {
    ex.outcome = 'internal_error';
    ex.bytesOut += sent;
  }
}
