/**
 * authenticate: with auth.htpasswd, the login a request needs before it is
 * forwarded (after admit and the proxy's own endpoints, which stay open: a client
 * fetches the CA before it can log in). Answers as the registry's htpasswd access
 * controller does (registry/auth/htpasswd): 401 with `WWW-Authenticate: Basic
 * realm="…"` and a JSON UNAUTHORIZED body, so `docker login` works unchanged.
 *
 * With auth.anonymous: pull, reads of repository content (manifests, blobs, tag
 * lists, referrers: GET and HEAD) need no login — the "public read, authenticated
 * write" set-up of moby#12972. Writes without a login get 403 DENIED, and GET /v2/
 * and the catalog still challenge, so that clients know to log in.
 *
 * The Authorization header never reaches the backend: the proxy consumed it.
 * Returns synchronously unless a bcrypt check has to run.
 */
import type { IncomingMessage } from 'node:http';
import { basicCredentials, type CheckResult, type HtpasswdLogins } from '../auth/htpasswd.js';
import type { LoginLimit } from '../auth/login-limit.js';
import type { Verdict } from '../health/probe.js';
import type { Logger } from '../log.js';
import type { Operation } from '../metrics/operation.js';
import type { Refusal } from './admit.js';
import type { Exchange } from './exchange.js';

/** What rtp_auth_requests_total counts, by result. */
export const AUTH_RESULTS = [
  'anonymous',
  'login',
  'challenged',
  'refused',
  'denied',
  'rate_limited',
] as const;
export type AuthResult = (typeof AUTH_RESULTS)[number];

/** Reads anyone may make with auth.anonymous: pull. */
const PULLS: ReadonlySet<Operation> = new Set<Operation>([
  'manifest_get',
  'manifest_head',
  'blob_get',
  'blob_head',
  'tags_list',
  'referrers',
]);
/** Writes: an anonymous one is refused (403) rather than challenged when pulls are open. */
const WRITES: ReadonlySet<Operation> = new Set<Operation>([
  'manifest_put',
  'manifest_delete',
  'blob_delete',
  'upload_start',
  'upload_status',
  'upload_chunk',
  'upload_complete',
  'upload_cancel',
]);

export interface AuthenticateOptions {
  logins: HtpasswdLogins;
  limit: LoginLimit;
  anonymousPull: boolean;
  realm: string;
  logger: Logger;
  count: (result: AuthResult) => void;
  /** The client's address for the failed-login limit (a trusted balancer's client, not the balancer). */
  clientAddress: (req: IncomingMessage) => string;
  /** The cached backend verdict: an unauthenticated GET /v2/ says 503 while the backend is down. */
  verdict?: (() => Verdict) | undefined;
}

export type Authenticate = (ex: Exchange) => Refusal | undefined | Promise<Refusal | undefined>;

export function createAuthenticate(opts: AuthenticateOptions): Authenticate {
  const { logins, limit, count } = opts;
  const challenge = { 'www-authenticate': `Basic realm="${opts.realm}"` };
  const unauthorized = (outcome: Refusal['outcome'], message: string): Refusal => ({
    outcome,
    spec: { status: 401, code: 'UNAUTHORIZED', message, headers: challenge },
  });
  const LOGIN_REQUIRED = unauthorized('login_required', 'authentication required');
  const LOGIN_FAILED = unauthorized('login_failed', 'authentication required');
  const PUSH_DENIED: Refusal = {
    outcome: 'login_denied',
    spec: {
      status: 403,
      code: 'DENIED',
      message: 'requested access to the resource is denied: log in to push or delete',
    },
  };

  const anonymous = (ex: Exchange): Refusal | undefined => {
    if (opts.anonymousPull && PULLS.has(ex.operation)) {
      count('anonymous');
      return undefined;
    }
    if (opts.anonymousPull && WRITES.has(ex.operation)) {
      count('denied');
      return PUSH_DENIED;
    }
    const verdict = ex.operation === 'ping' ? opts.verdict?.() : undefined;
    if (verdict?.status === 'down') return backendDown();
    count('challenged');
    return LOGIN_REQUIRED;
  };

  const checked = (ex: Exchange, address: string, result: CheckResult) => {
    if (ex.clientGone) return undefined;
    if (result.ok) {
      ex.user = result.user;
      count('login');
      return undefined;
    }
    count('refused');
    if (limit.failed(address)) {
      opts.logger.warn(
        { client: address, user: result.user },
        'failed logins from this address: further attempts get 429 for a while',
      );
    }
    return LOGIN_FAILED;
  };

  return function authenticate(ex) {
    const authorization = ex.req.headers.authorization;
    delete ex.req.headers.authorization;
    if (authorization === undefined || isAnonymous(authorization)) return anonymous(ex);
    const user = logins.remembered(authorization);
    if (user !== undefined) {
      ex.user = user;
      count('login');
      return undefined;
    }
    const address = opts.clientAddress(ex.req);
    const wait = limit.blockedFor(address);
    if (wait !== undefined) {
      count('rate_limited');
      return rateLimited(wait);
    }
    return logins.check(authorization).then((result) => checked(ex, address, result));
  };
}

/**
 * No credentials to check: another scheme (a Bearer token meant for some registry), or
 * Basic with an empty name — containers/image (skopeo, podman) sends `Basic Og==`
 * (":") after a Basic challenge when it has no login for the registry.
 */
function isAnonymous(authorization: string): boolean {
  if (!/^\s*Basic\s/i.test(authorization)) return true;
  return basicCredentials(authorization)?.user === '';
}

function rateLimited(seconds: number): Refusal {
  return {
    outcome: 'login_rate_limited',
    spec: {
      status: 429,
      code: 'TOOMANYREQUESTS',
      message: `too many failed logins from this address; try again in ${seconds} s`,
      headers: { 'retry-after': String(seconds) },
    },
  };
}

function backendDown(): Refusal {
  return {
    outcome: 'backend_unhealthy',
    spec: {
      status: 503,
      code: 'UNAVAILABLE',
      message: 'the registry behind this proxy is unavailable',
    },
  };
}
