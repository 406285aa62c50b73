/**
 * Why a TLS handshake on the public port failed, in words an operator can act
 * on. OpenSSL's error codes (as Node reports them on 'tlsClientError') map to a
 * few reasons; each carries the fix.
 */
import type { TLSSocket } from 'node:tls';

export type TLSFailureReason =
  | 'untrusted_ca'
  | 'no_shared_protocol'
  | 'client_cert_missing'
  | 'client_cert_rejected'
  | 'not_tls'
  | 'aborted'
  | 'other';

export interface TLSFailure {
  reason: TLSFailureReason;
  /** One sentence for the log: what happened and what to do. */
  message: string;
  /** Routine failures (a client giving up, a port scanner) are logged at debug level. */
  routine: boolean;
}

const UNTRUSTED = new Set([
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
]);
const NO_SHARED = new Set([
  'ERR_SSL_UNSUPPORTED_PROTOCOL',
  'ERR_SSL_VERSION_TOO_LOW',
  'ERR_SSL_NO_SHARED_CIPHER',
  'ERR_SSL_NO_SHARED_GROUPS',
  'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM',
  'ERR_SSL_NO_PROTOCOLS_AVAILABLE',
  // TLS 1.3 with no key-share group in common (e.g. a client offering FFDHE only).
  'ERR_SSL_NO_SUITABLE_KEY_SHARE',
]);
const NOT_TLS = new Set([
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
  'ERR_SSL_RECORD_LENGTH_MISMATCH',
  'ERR_SSL_UNEXPECTED_MESSAGE',
  'ERR_SSL_HTTP_REQUEST',
  'ERR_SSL_UNEXPECTED_RECORD',
  'ERR_SSL_BAD_RECORD_TYPE',
  'ERR_SSL_LENGTH_MISMATCH',
  // A record header followed by a broken ClientHello, as scanners send.
  'ERR_SSL_EXCESSIVE_MESSAGE_SIZE',
  'ERR_SSL_LENGTH_TOO_SHORT',
]);

/** `trustCommand`: what to run on an untrusted client, e.g. `registry-tls-proxy trust --address HOST:PORT`. */
export function classifyTLSFailure(
  err: NodeJS.ErrnoException & { reason?: string },
  socket: Pick<TLSSocket, 'authorizationError'> | undefined,
  trustCommand: string,
): TLSFailure {
  const code = err.code ?? '';
  // Node verifies client certificates after the handshake and closes the connection
  // without an alert; the verification error is all that says why.
  const authError = socket?.authorizationError;
  if (authError) {
    return {
      reason: 'client_cert_rejected',
      message: `client certificate rejected (${String(authError)}): tls.clientAuth accepts only certificates signed by this proxy's CA; issue one with "registry-tls-proxy issue-client NAME" and install client.cert and client.key on the client`,
      routine: false,
    };
  }
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') {
    return {
      reason: 'client_cert_missing',
      message:
        'client sent no certificate but tls.clientAuth requires one (docker and skopeo send only a certificate signed by a CA this proxy names, so one from another CA counts as none): issue it with "registry-tls-proxy issue-client NAME" and put client.cert and client.key in the client\'s certs.d directory for this registry',
      routine: false,
    };
  }
  if (UNTRUSTED.has(code)) {
    return {
      reason: 'untrusted_ca',
      message: `this client does not trust our CA (it answered "${err.reason ?? code}"): run "${trustCommand}" on the proxy's machine and do what it prints on the client`,
      routine: false,
    };
  }
  if (NO_SHARED.has(code)) {
    return {
      reason: 'no_shared_protocol',
      message: `this client offers no TLS version or cipher we accept (${err.reason ?? code}); the proxy speaks TLS 1.2 and 1.3 with AEAD ciphers only: update the client`,
      routine: false,
    };
  }
  if (NOT_TLS.has(code)) {
    return {
      reason: 'not_tls',
      message: `the client did not speak TLS (${err.reason ?? code})`,
      routine: true,
    };
  }
  if (code === 'ECONNRESET' || code === 'ERR_TLS_HANDSHAKE_TIMEOUT' || code === 'ETIMEDOUT') {
    return {
      reason: 'aborted',
      message: 'the client went away during the handshake',
      routine: true,
    };
  }
  return { reason: 'other', message: err.reason ?? err.message, routine: false };
}
