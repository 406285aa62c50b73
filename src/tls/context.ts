/**
 * TLS settings of the public listener: Mozilla's "intermediate" profile
 * (https://ssl-config.mozilla.org/guidelines/5.7.json): TLS 1.2 and 1.3, ECDHE
 * with AEAD ciphers only. Node's default list still offers CBC suites, which
 * scanners flag (LUCKY13).
 */
import { constants } from 'node:crypto';
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import type { TLSMaterial } from '../pki/store.js';

export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];
/**
 * Signature algorithms, in the server's order of preference: every one OpenSSL 3
 * offers by default except SHA-1 ones, so that a supplied certificate (P-384, P-521,
 * Ed25519, an RSA-PSS key) and client certificates keep working.
 */
export const SIGALGS = [
  'ecdsa_secp256r1_sha256',
  'ecdsa_secp384r1_sha384',
  'ecdsa_secp521r1_sha512',
  'ed25519',
  'ed448',
  'rsa_pss_pss_sha256',
  'rsa_pss_pss_sha384',
  'rsa_pss_pss_sha512',
  'rsa_pss_rsae_sha256',
  'rsa_pss_rsae_sha384',
  'rsa_pss_rsae_sha512',
  'rsa_pkcs1_sha256',
  'rsa_pkcs1_sha384',
  'rsa_pkcs1_sha512',
];
export const TLS13_CIPHERSUITES = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
];

/**
 * The secure context for every handshake. It is the default context (no SNI
 * callback), so clients that connect by IP and send no SNI get the same full
 * chain with every IP SAN.
 */
export function secureContextOptions(
  material: TLSMaterial,
  clientAuth = false,
): SecureContextOptions {
  return {
    // tls.clientAuth: the CAs whose client certificates are accepted (named in the CertificateRequest).
    ...(clientAuth ? { ca: material.clientCAsPEM ?? material.caCertPEM } : {}),
    // The ECDSA certificate, and the RSA one beside it: OpenSSL serves the first the
    // client's signature algorithms allow, in the server's order (PROFILE.sigalgs).
    key: material.fallback
      ? [material.serverKeyPEM, material.fallback.keyPEM]
      : material.serverKeyPEM,
    // The full chains: leaf, then the CA. Clients that hold the CA verify either way;
    // tools that print the chain (openssl s_client -showcerts) show where it comes from.
    cert: material.fallback
      ? [chainOf(material.serverCertPEM, material), chainOf(material.fallback.certPEM, material)]
      : (material.servedChainPEM ?? chainOf(material.serverCertPEM, material)),
    ...PROFILE,
  };
}

function chainOf(leafPEM: string, material: TLSMaterial): string {
  return leafPEM.trimEnd() + '\n' + material.caCertPEM;
}

/** The protocol profile alone, for every context (the ACME certificate's too). */
export const PROFILE: SecureContextOptions = {
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.3',
  ciphers: [...TLS13_CIPHERSUITES, ...TLS12_CIPHERS].join(':'),
  ecdhCurve: 'X25519:prime256v1:secp384r1',
  // The server's order (AES-GCM first): every suite offered is strong either way, but
  // scanners (testssl.sh) rate "no server order" as a HIGH finding.
  honorCipherOrder: true,
  // Also the server's order of signature algorithms (OpenSSL follows it with the option
  // above): ECDSA first, so every client that offers ECDSA gets the ECDSA certificate,
  // whose signature costs a fraction of an RSA one; RSA for the rest.
  sigalgs: SIGALGS.join(':'),
  // No TLS 1.2 renegotiation at all (Node would allow a client 3 per 10 minutes): it
  // only serves to make the server redo handshake work.
  secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
};

export function serverTLSOptions(material: TLSMaterial, clientAuth = false): TlsOptions {
  return {
    ...secureContextOptions(material, clientAuth),
    // Mutual TLS: OpenSSL refuses a handshake without a client certificate (alert
    // "certificate required"); Node checks the certificate's signer after the handshake.
    ...(clientAuth ? { requestCert: true, rejectUnauthorized: true } : {}),
    // Registry clients speak HTTP/1.1; offering only it avoids an h2 attempt we cannot serve.
    ALPNProtocols: ['http/1.1'],
  };
}
