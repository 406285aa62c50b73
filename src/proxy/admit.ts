/**
 * admit: the checks a request passes before the proxy answers it or forwards any of
 * it — its framing and target (request-checks.ts), allowedPaths, the Host header.
 * The proxy's own endpoints pass only the first: they answer whatever allowedPaths
 * says and whatever Host a client sends. Authentication will be checked here too.
 */
import type { Socket } from 'node:net';
import { parseHostHeader } from '../net/address.js';
import type { Exchange } from './exchange.js';
import type { Outcome } from './outcome.js';
import { defaultHost } from './own-response.js';
import type { PathVerdict } from './path-allowlist.js';
import type { RegistryErrorSpec } from './registry-error.js';
import { requestProblem } from './request-checks.js';

/** Why a request was refused: what the client is told, and the outcome the log says. */
export interface Refusal {
  outcome: Outcome;
  spec: RegistryErrorSpec;
}

export interface AdmitRules {
  /** The allowedPaths check; absent when every path is allowed. */
  allowedPath?: ((path: string) => PathVerdict) | undefined;
  /** Whether the served certificate covers a Host (name or IP, no port). */
  coversHost: (host: string) => boolean;
  /** A Host the certificate does not cover (counted, not refused: the client decides). */
  onHostNotCovered: () => void;
}

/**
 * Connections whose request was refused for its framing: what Node parsed after it
 * (a request hidden in its body) is never served; the connection closes after the 400.
 */
const refusedConnections = new WeakSet<Socket>();

/** A request Node parsed out of a refused request's body: never served, not even logged. */
export function isSmuggled(socket: Socket): boolean {
  return refusedConnections.has(socket);
}

const AMBIGUOUS_PATH: Refusal = {
  outcome: 'ambiguous_path',
  spec: {
    status: 400,
    code: 'UNSUPPORTED',
    message:
      "the path contains '%', '\\', ';', '#', an empty or a dot segment, which registry clients never send",
  },
};
const PATH_NOT_ALLOWED: Refusal = {
  outcome: 'path_not_allowed',
  spec: { status: 403, code: 'DENIED', message: 'this path is not served by this proxy' },
};

/** The checks for `ex`; undefined when it may go on. Sets the public Host it was sent to. */
export function admit(ex: Exchange, rules: AdmitRules, ownEndpoint: boolean): Refusal | undefined {
  const problem = requestProblem(ex.req);
  if (problem) {
    refusedConnections.add(ex.req.socket);
    ex.path = ex.path.slice(0, 200);
    const spec = { status: problem.status, code: 'UNSUPPORTED', message: problem.message };
    return { outcome: 'malformed_request', spec: { ...spec, close: true } };
  }
  if (ownEndpoint) return undefined;
  const verdict = rules.allowedPath?.(ex.path);
  if (verdict === 'unsafe') return AMBIGUOUS_PATH;
  if (verdict === 'outside') return PATH_NOT_ALLOWED;
  return admitHost(ex, rules);
}

function admitHost(ex: Exchange, rules: AdmitRules): Refusal | undefined {
  const socket = ex.req.socket;
  const host = ex.req.headers.host ?? defaultHost(socket.localAddress, socket.localPort);
  const parsed = parseHostHeader(host);
  if (!parsed) {
    return {
      outcome: 'bad_host',
      spec: {
        status: 400,
        code: 'UNSUPPORTED',
        message: `the Host header ${JSON.stringify(host.slice(0, 100))} is not a host[:port]`,
      },
    };
  }
  ex.publicHost = host;
  if (!rules.coversHost(parsed.host)) rules.onHostNotCovered();
  return undefined;
}
