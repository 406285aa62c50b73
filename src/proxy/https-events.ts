/**
 * What the HTTPS server does beside answering requests: it logs and counts the TLS
 * handshakes that fail (with the diagnosis and the fix, tls/failures.ts), and answers
 * the requests Node could not parse, or CONNECT, registry-style instead of dropping
 * the connection without a word.
 */
import type { Server as HTTPSServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../log.js';
import { formatHostPort } from '../net/address.js';
import { clientAddressOf } from '../net/client-address.js';
import type { ProxyMetrics } from '../metrics/registry.js';
import { classifyTLSFailure } from '../tls/failures.js';
import { rawRegistryError } from './registry-error.js';
import { commandName } from '../command-name.js';

export interface HandshakeFailureContext {
  logger: Logger;
  metrics: ProxyMetrics;
  /** Whether the served certificate covers a name (the SNI a client sent). */
  covers: (host: string) => boolean;
  /** The names and IPs on the served certificate now. */
  coveredNames: () => string[];
  /** A supplied certificate (tls.cert): the fix is not `trust`. */
  supplied: boolean;
  /** Whether a client by this SNI name gets our own CA's ECDSA certificate alone (tls.keyType: ecdsa). */
  ownECDSAOnly: (servername: string | false | null | undefined) => boolean;
}

/** The 'tlsClientError' listener: one log line and one count per failed handshake. */
export function handshakeFailureLogger(context: HandshakeFailureContext) {
  const { logger, metrics } = context;
  return (err: NodeJS.ErrnoException, socket: TLSSocket): void => {
    const failure = classifyTLSFailure(err, socket, {
      trustCommand: `${commandName()} trust --address ${localHostPort(socket)}`,
      covers: context.covers,
      coveredNames: context.coveredNames(),
      supplied: context.supplied,
      ecdsaOnly: context.ownECDSAOnly(socket.servername),
    });
    metrics.handshakeFailures.inc({ reason: failure.reason });
    // A name the certificate lacks is the same problem whether the request got through
    // (a client that skips verification) or the handshake did not.
    if (failure.reason === 'name_not_covered') metrics.hostNotCovered.inc();
    logger[failure.routine ? 'debug' : 'warn'](
      {
        client: clientAddressOf(socket),
        reason: failure.reason,
        code: err.code,
        ...(failure.alert !== undefined ? { alert: failure.alert } : {}),
        ...(socket.servername ? { servername: socket.servername } : {}),
      },
      `TLS handshake failed: ${failure.message}`,
    );
  };
}

/** Malformed requests and CONNECT get a registry-style error, then the connection closes. */
export function answerMalformedRequests(
  https: HTTPSServer,
  logger: Logger,
  ownHeaders: Readonly<Record<string, string>>,
): void {
  https.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    logger.debug(
      { client: clientAddressOf(socket), err: { code: err.code, message: err.message } },
      'bad request from client',
    );
    // As Node's default handler: answer only when no response on this connection has begun.
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) {
      socket.end(clientErrorResponse(err, ownHeaders));
      // end() flushes the answer; destroy() right away could drop it on a TLS socket.
      socket.setTimeout(1000, () => socket.destroy());
      return;
    }
    socket.destroy();
  });
  // CONNECT (authority-form) never reaches the request handler; without a listener
  // Node would drop the connection without a word.
  https.on('connect', (_req, socket: Socket) => {
    socket.end(
      rawRegistryError(
        405,
        'Method Not Allowed',
        { code: 'UNSUPPORTED', message: 'CONNECT is not allowed: this is a registry, not a proxy' },
        ownHeaders,
      ),
    );
    socket.setTimeout(1000, () => socket.destroy());
  });
}

/** The address the client connected to, as it would write it: 10.0.0.5:5443, [fd00::5]:5443. */
function localHostPort(socket: Socket): string {
  const address = (socket.localAddress ?? 'HOST').replace(/^::ffff:/, '');
  return formatHostPort(address, socket.localPort ?? 'PORT');
}

/** What a client whose request Node could not parse is told, registry-style. */
function clientErrorResponse(
  err: NodeJS.ErrnoException,
  headers: Readonly<Record<string, string>>,
): string {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return rawRegistryError(
        431,
        'Request Header Fields Too Large',
        { code: 'UNSUPPORTED', message: 'request headers are too large' },
        headers,
      );
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return rawRegistryError(
        408,
        'Request Timeout',
        { code: 'UNSUPPORTED', message: 'request headers were not sent in time' },
        headers,
      );
    default:
      return rawRegistryError(
        400,
        'Bad Request',
        { code: 'UNSUPPORTED', message: 'malformed HTTP request' },
        headers,
      );
  }
}
