/**
 * Why a TLS handshake on the public port failed, in words an operator can act
 * on; each reason carries the fix.
 *
 * What a client said comes first: the TLS alert it sent (its number is fixed by
 * RFC 8446 §6, whatever OpenSSL calls it: 3.0 says "sslv3 alert bad certificate",
 * 3.5 "ssl/tls alert bad certificate"), then the name it asked for (SNI) against
 * the served certificate, then Node's verification of a client certificate. Only
 * failures detected on our side (no shared cipher, a peer without a certificate)
 * are told apart by OpenSSL's error code.
 */
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { commandName } from '../command-name.js';

export type TLSFailureReason =
  | 'untrusted_ca'
  | 'name_not_covered'
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
  /** The TLS alert the client sent, when it sent one (e.g. 42 bad_certificate). */
  alert?: number;
}

/** What the server knew about the failed connection. */
export type HandshakeFacts = Partial<Pick<TLSSocket, 'authorizationError'>> & {
  /** The name the client asked for in its ClientHello (SNI); absent when it connected by IP. */
  servername?: string | false | null;
  /**
   * The address the connection reached. A client that sends no SNI connected by IP, and
   * (unless a balancer's NAT is in between) by this one: Go's "doesn't contain any IP SANs".
   */
  localAddress?: string | undefined;
};

export interface ClassifyOptions {
  /** What to run on an untrusted client, e.g. `registry-tls-proxy trust --address HOST:PORT`. */
  trustCommand: string;
  /** Whether the served certificate covers this name (the SNI name, a DNS name). */
  covers(name: string): boolean;
  /** The served certificate's names, for the message (e.g. ["vm", "localhost", "10.0.0.5"]). */
  coveredNames?: readonly string[];
  /** The certificate is the operator's own (tls.cert): tls.names cannot add a name to it. */
  supplied?: boolean;
  /** Only an ECDSA certificate is served (an ECDSA CA, tls.keyType: ecdsa): no RSA for old clients. */
  ecdsaOnly?: boolean;
}

/**
 * Alerts a client sends when it refuses our certificate. Go (docker, containerd,
 * skopeo) sends bad_certificate for an unknown CA and a name mismatch alike;
 * curl and openssl send unknown_ca, Java certificate_unknown.
 */
const CERTIFICATE_REFUSED: ReadonlyMap<number, string> = new Map([
  [42, 'bad_certificate'],
  [43, 'unsupported_certificate'],
  [44, 'certificate_revoked'],
  [45, 'certificate_expired'],
  [46, 'certificate_unknown'],
  [48, 'unknown_ca'],
]);
const NEGOTIATION_REFUSED: ReadonlyMap<number, string> = new Map([
  [40, 'handshake_failure'],
  [70, 'protocol_version'],
  [71, 'insufficient_security'],
]);
const GAVE_UP: ReadonlyMap<number, string> = new Map([
  [0, 'close_notify'],
  [90, 'user_canceled'],
]);

/** OpenSSL's own findings on our side; these codes are the same in OpenSSL 3.0 and 3.5. */
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
/**
 * Bytes that are no TLS. sniff.ts turns away a first record whose header is not
 * a ClientHello's before OpenSSL sees it; these are what OpenSSL finds after that
 * (OpenSSL 3.0 and 3.5 name some of them differently: both names are here).
 */
const NOT_TLS = new Set([
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
  'ERR_SSL_DATA_LENGTH_TOO_LONG',
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

/** OpenSSL 3 packs library and reason into one number: `error:0A000412:SSL routines::…`. */
const PACKED_ERROR = /\berror:([0-9A-F]{8}):/i;
const ERR_LIB_SSL = 20;
/** ssl.h: the reason code of a received alert is SSL_AD_REASON_OFFSET + its number. */
const SSL_AD_REASON_OFFSET = 1000;

/** The TLS alert number the peer sent, from OpenSSL's error, or undefined when none came. */
export function receivedAlert(err: Error): number | undefined {
  const packed = PACKED_ERROR.exec(err.message);
  if (packed) {
    const code = parseInt(packed[1] as string, 16);
    const reason = code & 0x7fffff;
    if (code >>> 23 === ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET && reason < 1256) {
      return reason - SSL_AD_REASON_OFFSET;
    }
  }
  // OpenSSL adds this text to every error raised by a received alert.
  const text = /SSL alert number (\d+)/.exec(err.message);
  return text ? Number(text[1]) : undefined;
}

export function classifyTLSFailure(
  err: NodeJS.ErrnoException & { reason?: string },
  facts: HandshakeFacts | undefined,
  options: ClassifyOptions,
): TLSFailure {
  const code = err.code ?? '';
  // Node verifies client certificates after the handshake and closes the connection
  // without an alert; the verification error is all that says why.
  const authError = facts?.authorizationError;
  if (authError) {
    return {
      reason: 'client_cert_rejected',
      message: `client certificate rejected (${String(authError)}): tls.clientAuth accepts only certificates signed by this proxy's CA; issue one with "${commandName()} issue-client NAME" and install client.cert and client.key on the client`,
      routine: false,
    };
  }
  const alert = receivedAlert(err);
  if (alert !== undefined) return classifyAlert(alert, askedFor(facts), options);
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') {
    return {
      reason: 'client_cert_missing',
      message: `client sent no certificate but tls.clientAuth requires one (docker and skopeo send only a certificate signed by a CA this proxy names, so one from another CA counts as none): issue it with "${commandName()} issue-client NAME" and put client.cert and client.key in the client's certs.d directory for this registry`,
      routine: false,
    };
  }
  if (options.ecdsaOnly && WITHOUT_ECDSA.has(code)) return withoutECDSA(err.reason ?? code);
  if (NO_SHARED.has(code)) return noSharedProtocol(err.reason ?? code);
  if (NOT_TLS.has(code)) {
    return { reason: 'not_tls', message: notTLSMessage(err.reason ?? code), routine: true };
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

/** The name (SNI) or, without one, the IP address the client meant to reach. */
function askedFor(facts: HandshakeFacts | undefined): string | undefined {
  if (typeof facts?.servername === 'string' && facts.servername !== '') return facts.servername;
  const local = facts?.localAddress?.replace(/^::ffff:/, '');
  return local && isIP(local) ? local : undefined;
}

function classifyAlert(
  alert: number,
  servername: string | undefined,
  options: ClassifyOptions,
): TLSFailure {
  const said = `it sent the alert ${alertName(alert)} (${alert})`;
  const refused = CERTIFICATE_REFUSED.get(alert);
  if (refused !== undefined) {
    // The client asked for a name the certificate lacks: whatever else is wrong, a
    // verifying client refuses it until the name is added, so that is the fix to give.
    if (servername !== undefined && !options.covers(servername)) {
      return {
        reason: 'name_not_covered',
        message: nameNotCoveredMessage(servername, said, options),
        routine: false,
        alert,
      };
    }
    return {
      reason: 'untrusted_ca',
      message: `this client does not trust our CA (${said}): run "${options.trustCommand}" on the proxy's machine and do what it prints on the client`,
      routine: false,
      alert,
    };
  }
  if (NEGOTIATION_REFUSED.has(alert)) return { ...noSharedProtocol(said), alert };
  if (GAVE_UP.has(alert)) {
    return { reason: 'aborted', message: `the client gave up (${said})`, routine: true, alert };
  }
  return {
    reason: 'other',
    message: `the client refused the handshake (${said})`,
    routine: false,
    alert,
  };
}

/** `registry.lan` is not covered; add it to tls.names. */
function nameNotCoveredMessage(name: string, said: string, options: ClassifyOptions): string {
  const covered = options.coveredNames?.length
    ? ` (it covers ${options.coveredNames.join(', ')})`
    : '';
  const fix = options.supplied
    ? `the certificate is the one supplied in tls.cert: replace it with one that names ${name}`
    : `add it to tls.names (RTP_TLS_NAMES), and the proxy issues a certificate that covers it`;
  const asked = isIP(name)
    ? `the client connected to ${name} with no name (no SNI) and refused the certificate, which has no IP SAN for it (${said})`
    : `the client asked for it and refused the certificate (${said})`;
  return `${name} is not covered by the served certificate${covered}; ${asked}: ${fix}`;
}

/** What a client that offers no ECDSA (signature algorithm, or TLS 1.2 cipher) fails with. */
const WITHOUT_ECDSA = new Set([
  'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM',
  'ERR_SSL_NO_SHARED_CIPHER',
]);

function withoutECDSA(detail: string): TLSFailure {
  return {
    reason: 'no_shared_protocol',
    message: `this client offers no ECDSA (${detail}), and the proxy's CA and certificate are ECDSA only (tls.keyType: ecdsa); update the client, or move to an RSA CA (tls.keyType: rsa, then ca rotate and ca switch), beside which the proxy also serves an RSA certificate`,
    routine: false,
  };
}

function noSharedProtocol(detail: string): TLSFailure {
  return {
    reason: 'no_shared_protocol',
    message: `this client offers no TLS version or cipher we accept (${detail}); the proxy speaks TLS 1.2 and 1.3 with AEAD ciphers only: update the client`,
    routine: false,
  };
}

export function notTLSMessage(detail: string): string {
  return `the client did not speak TLS (${detail})`;
}

function alertName(alert: number): string {
  return (
    CERTIFICATE_REFUSED.get(alert) ??
    NEGOTIATION_REFUSED.get(alert) ??
    GAVE_UP.get(alert) ??
    'unknown'
  );
}
