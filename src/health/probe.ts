/**
 * The registry's own rule for health checks (distribution's deployment guide):
 * a properly secured registry answers 401 on /v2/ without credentials, so a
 * load balancer should treat 401 as healthy, and a 200 — an auth
 * misconfiguration that opened the registry to anyone — as a reason to take it
 * out of rotation. One probe of the backend, turned into a verdict with a
 * reason a human can act on.
 */
import { request, type Agent } from 'node:http';
import { CONNECTION_FAILURES, knownKind } from '../net/errno.js';

export type VerdictStatus = 'healthy' | 'open' | 'down';

export interface Verdict {
  /** healthy: 401 with a challenge (or 200 when anonymous access is allowed); open: 200 to anyone; down: anything else. */
  status: VerdictStatus;
  healthy: boolean;
  /** What was seen and, when unhealthy, what to do. */
  reason: string;
  /** When the probe started. */
  checkedAt: Date;
  /** The backend's HTTP status, when it answered. */
  httpStatus?: number;
  durationMs: number;
  /** Set while the process drains (report.ts): readiness fails whatever the backend says. */
  draining?: boolean;
  /** With several replicas (replicas.ts): each one's own verdict. */
  replicas?: Array<{ backend: string; verdict: Verdict }>;
}

export interface ProbeOptions {
  backend: URL;
  timeoutMs: number;
  allowAnonymous: boolean;
  /** auth.htpasswd is set: the proxy's logins protect an open backend. */
  proxyLogins?: boolean;
  agent?: Agent;
}

export const PROBE_PATH = '/v2/';

/** GET /v2/ without credentials, never rejecting: every failure is a verdict. */
export function probeBackend(opts: ProbeOptions): Promise<Verdict> {
  const checkedAt = new Date();
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const done = (v: Omit<Verdict, 'checkedAt' | 'durationMs' | 'healthy'>) => {
      if (settled) return;
      settled = true;
      resolve({
        ...v,
        healthy: v.status === 'healthy',
        checkedAt,
        durationMs: performance.now() - started,
      });
    };
    const url = new URL(PROBE_PATH, opts.backend);
    const req = request(
      url,
      {
        method: 'GET',
        headers: { 'user-agent': 'registry-tls-proxy health probe' },
        ...(opts.agent ? { agent: opts.agent } : {}),
      },
      (res) => {
        res.resume(); // the body does not matter; let the socket go back to the pool
        done(verdictOf(res.statusCode ?? 0, res.headers['www-authenticate'], opts));
      },
    );
    req.setTimeout(opts.timeoutMs, () => {
      req.destroy();
      done({
        status: 'down',
        reason: `backend down: ${url.origin}${PROBE_PATH} did not answer within ${opts.timeoutMs} ms`,
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      done({
        status: 'down',
        reason: `backend down: ${url.origin}${PROBE_PATH}: ${describeError(err)}`,
      });
    });
    req.end();
  });
}

function verdictOf(
  status: number,
  challenge: string | undefined,
  opts: ProbeOptions,
): Omit<Verdict, 'checkedAt' | 'durationMs' | 'healthy'> {
  const where = `${opts.backend.origin}${PROBE_PATH}`;
  if (status === 401) {
    if (challenge && /^\s*(Basic|Bearer)\b/i.test(challenge)) {
      const scheme = /^\s*(\w+)/.exec(challenge)?.[1] ?? 'a';
      return {
        status: 'healthy',
        httpStatus: status,
        reason: `healthy: ${where} requires authentication (401 with a ${scheme} challenge)${opts.proxyLogins ? BOTH_LOGINS : ''}`,
      };
    }
    return {
      status: 'down',
      httpStatus: status,
      reason: `backend misconfigured: ${where} answered 401 without a WWW-Authenticate challenge, so clients cannot log in; check the registry's auth section`,
    };
  }
  if (status === 200 && opts.proxyLogins) {
    return {
      status: 'healthy',
      httpStatus: status,
      reason: `healthy: ${where} answers without credentials, and the proxy's logins (auth.htpasswd) protect it`,
    };
  }
  if (status === 200) {
    return opts.allowAnonymous
      ? {
          status: 'healthy',
          httpStatus: status,
          reason: `healthy: ${where} answers anonymous users (allowed by health.allowAnonymous)`,
        }
      : {
          status: 'open',
          httpStatus: status,
          reason: `backend is open to anonymous pulls and pushes: ${where} answered 200 without credentials; configure auth in the registry (htpasswd or token), or set health.allowAnonymous: true if that is intended`,
        };
  }
  if (status >= 500) {
    return {
      status: 'down',
      httpStatus: status,
      reason: `backend erroring: ${where} answered ${status}; see the registry's log`,
    };
  }
  return {
    status: 'down',
    httpStatus: status,
    reason: `backend is not a registry: ${where} answered ${status} (a registry answers 401 or 200); check backend`,
  };
}

/** The backend has logins of its own as well as the proxy's: clients must pass both. */
export const BOTH_LOGINS =
  "; the proxy's logins (auth.htpasswd) are on too, so clients must pass both with the same credentials: turn one of them off";

function describeError(err: NodeJS.ErrnoException): string {
  const kind = knownKind(err);
  if (kind === undefined) return err.message;
  const { reason, hint } = CONNECTION_FAILURES[kind];
  return hint === undefined ? reason : `${reason} (${hint})`;
}
