/**
 * How an exchange ended when it did not simply get its answer: a typed value the
 * stages set and compare, and, in one table, the words the log line's `error` field
 * has always used for it.
 */
import { CONNECTION_FAILURES, type ConnectionFailureKind } from '../net/errno.js';

export type Outcome =
  /** Refused by admit.ts before anything was forwarded. */
  | 'malformed_request'
  | 'ambiguous_path'
  | 'path_not_allowed'
  | 'bad_host'
  /** Refused by authenticate.ts (auth.htpasswd). */
  | 'login_required'
  | 'login_failed'
  | 'login_denied'
  | 'login_rate_limited'
  /** An unauthenticated GET /v2/ while the backend is down (503, not the 401 balancers count as up). */
  | 'backend_unhealthy'
  /** The backend could not be reached or did not answer (502/504, net/errno.ts). */
  | `backend_${ConnectionFailureKind}`
  /** The backend's head had what Node refuses to send on (502). */
  | 'backend_invalid'
  /** The backend broke off its body after the head. */
  | 'backend_aborted'
  /** The client went away (or was cut) before the whole answer was sent. */
  | 'client_aborted'
  | 'internal_error';

export const OUTCOME_WORDS: Readonly<Record<Outcome, string>> = {
  malformed_request: 'malformed request',
  ambiguous_path: 'ambiguous path',
  path_not_allowed: 'path not allowed',
  bad_host: 'bad host header',
  login_required: 'login required',
  login_failed: 'login failed',
  login_denied: 'anonymous write denied',
  login_rate_limited: 'too many failed logins',
  backend_unhealthy: 'backend unhealthy',
  backend_refused: CONNECTION_FAILURES.refused.reason,
  backend_reset: CONNECTION_FAILURES.reset.reason,
  backend_timeout: CONNECTION_FAILURES.timeout.reason,
  backend_unresolved: CONNECTION_FAILURES.unresolved.reason,
  backend_unreachable: CONNECTION_FAILURES.unreachable.reason,
  backend_failed: CONNECTION_FAILURES.failed.reason,
  backend_invalid: 'backend sent an invalid response head',
  backend_aborted: 'backend aborted the response',
  client_aborted: 'client aborted',
  internal_error: 'internal error',
};
