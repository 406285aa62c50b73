/**
 * respond: what the client is told. The backend's head as the client gets it
 * (hop-by-hop headers gone, Location and WWW-Authenticate realms pointed at the
 * public address, the API-version header on /v2/ answers, HSTS), and the proxy's
 * own registry-style errors when the backend fails or sends what Node refuses.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import { connectionFailure } from '../net/errno.js';
import type { Exchange, ExchangeStages } from './exchange.js';
import { stripHopByHop } from './headers.js';
import {
  API_VERSION,
  API_VERSION_HEADER,
  sendRegistryError,
  upstreamFailure,
  type RegistryErrorSpec,
} from './registry-error.js';
import { rewriteAuthenticate, rewriteLocation } from './rewrite.js';
import { pinUpload } from './upload-affinity.js';

export interface RespondOptions {
  logger: Logger;
  /** Headers on every response of ours and every response passed on (Strict-Transport-Security). */
  ownHeaders: Readonly<Record<string, string>>;
}

export type Respond = Pick<ExchangeStages, 'answerHead' | 'backendFailed'> & {
  /** A registry-style error of the proxy's own, with the own headers; returns the body bytes sent. */
  error(res: ServerResponse, spec: RegistryErrorSpec): number;
};

const INVALID_RESPONSE: RegistryErrorSpec = {
  status: 502,
  code: 'UNAVAILABLE',
  message: 'the registry behind this proxy sent an invalid response',
};

export function createRespond(opts: RespondOptions): Respond {
  const { logger, ownHeaders } = opts;
  const ownNames = Object.keys(ownHeaders);
  const error = (res: ServerResponse, spec: RegistryErrorSpec) =>
    sendRegistryError(res, spec, ownHeaders);
  return {
    error,
    answerHead(ex, status, message, headers) {
      clientHeaders(headers, ex, ex.isV2);
      for (const name of ownNames) headers[name] = ownHeaders[name];
      try {
        ex.res.writeHead(status, message, headers);
        return true;
      } catch (err) {
        // Invalid characters from the backend: answer 502 in its place.
        logger.warn(
          { err, path: ex.path },
          'backend sent response headers Node refuses to send on',
        );
        ex.outcome = 'backend_invalid';
        ex.bytesOut += error(ex.res, INVALID_RESPONSE);
        return false;
      }
    },
    backendFailed(ex: Exchange, err: NodeJS.ErrnoException) {
      const failure = connectionFailure(err);
      ex.outcome = `backend_${failure.kind}`;
      logger.warn(
        {
          backend: ex.backend.origin,
          err: { code: err.code, message: err.message },
          path: ex.path,
          method: ex.req.method,
        },
        'backend request failed',
      );
      ex.bytesOut += error(ex.res, upstreamFailure(failure));
    },
  };
}

/** The backend's head as the client gets it: hop-by-hop gone, URLs rewritten (in place). */
function clientHeaders(headers: OutgoingHttpHeaders, rewrite: Exchange, isV2: boolean): void {
  stripHopByHop(headers);
  const location = headers['location'];
  if (typeof location === 'string') {
    const rewritten = rewriteLocation(location, rewrite);
    headers['location'] = rewrite.pin === undefined ? rewritten : pinUpload(rewritten, rewrite.pin);
  }
  // Node joins repeated challenges into one string (RFC 9110 §11.6.1 allows a list).
  const challenge = headers['www-authenticate'];
  if (typeof challenge === 'string') {
    headers['www-authenticate'] = rewriteAuthenticate(challenge, rewrite);
  } else if (Array.isArray(challenge)) {
    headers['www-authenticate'] = challenge.map((c) => rewriteAuthenticate(String(c), rewrite));
  }
  if (isV2 && headers[API_VERSION_HEADER] === undefined) {
    headers[API_VERSION_HEADER] = API_VERSION;
  }
}
