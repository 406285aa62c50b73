/**
 * Which certificate a finished handshake served, for rtp_tls_handshakes_total's
 * `certificate` label: an operator sees how many clients still need the RSA one (and
 * so whether an ECDSA CA, tls.keyType, would lock anyone out). Node does not say which
 * of a context's certificates OpenSSL chose, and reading the certificate back costs
 * ~50 µs a handshake; the negotiation says it for ~3 µs: in TLS 1.2 the cipher names
 * the certificate's key type (ECDHE-ECDSA-… / ECDHE-RSA-…), in TLS 1.3 OpenSSL takes
 * the first shared signature algorithm (in the server's order) that a certificate of
 * the context can make.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';

export type ServedKey = 'ecdsa' | 'rsa' | 'other' | 'resumed';

/** The key types of the certificates a context serves, from their PEMs. */
export function keyTypesOf(certPEMs: readonly string[]): ReadonlySet<ServedKey> {
  return new Set(
    certPEMs.map((pem) => {
      const type = new X509Certificate(pem).publicKey.asymmetricKeyType;
      return type === 'ec' ? 'ecdsa' : type === 'rsa' || type === 'rsa-pss' ? 'rsa' : 'other';
    }),
  );
}

/** Node's names of shared signature algorithms ('ECDSA+SHA256', 'RSA-PSS+SHA256', 'RSA+SHA256'). */
function familyOf(sigalg: string): ServedKey {
  if (sigalg.startsWith('ECDSA+')) return 'ecdsa';
  if (sigalg.startsWith('RSA')) return 'rsa';
  return 'other';
}

/** The key type of the certificate `socket`'s handshake was served, of those `served` holds. */
export function servedKeyType(socket: TLSSocket, served: ReadonlySet<ServedKey>): ServedKey {
  if (socket.isSessionReused()) return 'resumed'; // no certificate was sent
  if (served.size === 1) return served.values().next().value as ServedKey;
  const cipher = socket.getCipher();
  if (cipher.version === 'TLSv1.2') return cipher.name.includes('ECDSA') ? 'ecdsa' : 'rsa';
  for (const sigalg of socket.getSharedSigalgs()) {
    const family = familyOf(sigalg);
    if (served.has(family)) return family;
  }
  return 'other';
}
