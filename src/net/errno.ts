/**
 * What a failed connection to the backend means, from its error code: one table for
 * the client's error body (status and reason), the log, the metric label
 * (rtp_upstream_errors_total{backend,kind}) and the health probe's verdict.
 */

/** The error code the proxy gives a backend that sent nothing for its idle limit. */
export const BACKEND_TIMEOUT = 'RTP_BACKEND_TIMEOUT';

export type ConnectionFailureKind =
  'refused' | 'reset' | 'timeout' | 'unresolved' | 'unreachable' | 'failed';

/** The kind label of rtp_upstream_errors_total: its four values stay as dashboards know them. */
export const UPSTREAM_ERROR_LABELS = ['refused', 'reset', 'timeout', 'other'] as const;

export interface ConnectionFailure {
  kind: ConnectionFailureKind;
  label: (typeof UPSTREAM_ERROR_LABELS)[number];
  /** What the client is answered: 504 when the backend was too slow, else 502. */
  status: 502 | 504;
  /** Words for the client's error body and the log line. */
  reason: string;
  /** What an operator checks first (the health probe adds it). */
  hint?: string;
}

export const CONNECTION_FAILURES: Readonly<Record<ConnectionFailureKind, ConnectionFailure>> = {
  refused: {
    kind: 'refused',
    label: 'refused',
    status: 502,
    reason: 'connection refused',
    hint: 'is the registry running and listening there?',
  },
  reset: { kind: 'reset', label: 'reset', status: 502, reason: 'connection reset by the backend' },
  timeout: { kind: 'timeout', label: 'timeout', status: 504, reason: 'backend timeout' },
  unresolved: {
    kind: 'unresolved',
    label: 'other',
    status: 502,
    reason: 'backend name does not resolve',
    hint: 'check the name in backend and the DNS servers',
  },
  unreachable: {
    kind: 'unreachable',
    label: 'other',
    status: 502,
    reason: 'backend unreachable',
    hint: 'no route to it: check the address in backend',
  },
  failed: { kind: 'failed', label: 'other', status: 502, reason: 'backend connection failed' },
};

const BY_CODE: Readonly<Record<string, ConnectionFailureKind>> = {
  ECONNREFUSED: 'refused',
  ECONNRESET: 'reset',
  [BACKEND_TIMEOUT]: 'timeout',
  ENOTFOUND: 'unresolved',
  EAI_AGAIN: 'unresolved',
  EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable',
};

/**
 * What an error code means; `failed` for a code the table does not know.
 *
 * @example connectionFailure({ code: 'ECONNREFUSED' }).reason // → 'connection refused'
 */
export function connectionFailure(err: { code?: string | undefined }): ConnectionFailure {
  return CONNECTION_FAILURES[knownKind(err) ?? 'failed'];
}

/** The kind of a code the table knows; undefined for any other (its message says more). */
export function knownKind(err: { code?: string | undefined }): ConnectionFailureKind | undefined {
  return err.code === undefined ? undefined : BY_CODE[err.code];
}

/** An error with BACKEND_TIMEOUT's code. */
export function backendTimeout(idleMs: number): NodeJS.ErrnoException {
  return Object.assign(new Error(`backend sent nothing for ${idleMs} ms`), {
    code: BACKEND_TIMEOUT,
  });
}
