/**
 * Responses the proxy generates itself, in the registry's own error format
 * (distribution registry/api/errcode): clients parse these bodies as JSON, and
 * an HTML page breaks them with "invalid character '<'".
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { ConnectionFailure } from '../net/errno.js';

export const API_VERSION_HEADER = 'docker-distribution-api-version';
export const API_VERSION = 'registry/2.0';

export interface RegistryErrorSpec {
  status: number;
  /** A registry error code, e.g. UNAVAILABLE. */
  code: string;
  message: string;
  detail?: Record<string, unknown>;
  /** Close the connection after the answer (the request's framing cannot be trusted). */
  close?: boolean;
  /** More headers on the answer (WWW-Authenticate on a 401, Retry-After on a 429). */
  headers?: Readonly<Record<string, string>>;
}

/** Maps an upstream failure to what the client sees: 504 on timeout, 502 otherwise. */
export function upstreamFailure(failure: ConnectionFailure): RegistryErrorSpec {
  const { status, reason } = failure;
  return {
    status,
    code: 'UNAVAILABLE',
    // The backend's address stays in the proxy's log: clients need not learn the internal network.
    message:
      status === 504
        ? 'the registry behind this proxy did not answer in time'
        : `the registry behind this proxy is unavailable (${reason})`,
    detail: { reason },
  };
}

/**
 * Writes a registry-style JSON error, unless the response has already begun.
 * `headers` go on too (Strict-Transport-Security). Returns the body bytes sent (the
 * request's log line and rtp_sent_bytes_total count them): none for HEAD.
 */
export function sendRegistryError(
  res: ServerResponse,
  spec: RegistryErrorSpec,
  headers: OutgoingHttpHeaders = {},
): number {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return 0;
  }
  const body = JSON.stringify({
    errors: [{ code: spec.code, message: spec.message, detail: spec.detail ?? {} }],
  });
  res.writeHead(spec.status, {
    ...headers,
    ...spec.headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    [API_VERSION_HEADER]: API_VERSION,
    ...(spec.close ? { connection: 'close' } : {}),
  });
  res.end(body);
  return res.req.method === 'HEAD' ? 0 : Buffer.byteLength(body);
}

/**
 * The same error as a raw HTTP/1.1 response, for connections Node's HTTP layer
 * gave up on (malformed requests, oversized headers) where no ServerResponse exists.
 */
export function rawRegistryError(
  status: number,
  reason: string,
  spec: Omit<RegistryErrorSpec, 'status' | 'close'>,
  headers: Readonly<Record<string, string>> = {},
): string {
  const body = JSON.stringify({
    errors: [{ code: spec.code, message: spec.message, detail: spec.detail ?? {} }],
  });
  return (
    `HTTP/1.1 ${status} ${reason}\r\n` +
    Object.entries(headers)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('') +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `Docker-Distribution-API-Version: ${API_VERSION}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}
