/**
 * The PROXY protocol header a TCP balancer (haproxy `send-proxy[-v2]`, an AWS NLB, a
 * Kubernetes LoadBalancer) puts before the client's first byte, so that a proxy
 * that terminates TLS itself learns who the client is
 * (https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt). Both versions:
 * v1, one text line of at most 107 bytes; v2, a 16-byte binary prefix and an
 * address block whose TLVs are walked within their bounds and skipped.
 *
 * The parser is pure and incremental: given the bytes received so far it says
 * "incomplete", "absent" (these bytes are not a PROXY header) or "header", or throws
 * a {@link ProxyHeaderError}. It never reads past `bytes`, and it rejects a claimed
 * length beyond {@link MAX_HEADER_BYTES} before waiting for it.
 */
import { isIP } from 'node:net';
import { canonicalIP } from '../pki/sans.js';

/** v2's signature, chosen to be invalid as the start of any text protocol (spec §2.2). */
export const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/**
 * A whole v2 header for a LOCAL connection (version 2, command LOCAL, family UNSPEC, no
 * addresses): what a balancer's own health check sends, meaning "no client behind me".
 */
export const V2_LOCAL_HEADER = Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0, 0])]);
/** Spec §2.1: the longest v1 line, CRLF included ("PROXY UNKNOWN" plus two full IPv6 addresses). */
export const V1_MAX_BYTES = 107;
const V2_FIXED_BYTES = 16;
/**
 * Our cap on a whole v2 header. Addresses take at most 216 bytes (AF_UNIX); the rest
 * is TLVs (haproxy's unique-id, SSL facts; AWS's VPC endpoint id), which stay far
 * below. The 16-bit length field could claim 64 KiB: refused before it is waited for.
 */
export const MAX_HEADER_BYTES = 4096;

/** Why a header was refused, as metric labels: rtp_proxy_protocol_refused_total{reason}. */
export const PROXY_REFUSAL_REASONS = [
  'untrusted',
  'missing',
  'malformed',
  'too_long',
  'truncated',
  'timeout',
] as const;
export type ProxyRefusalReason = (typeof PROXY_REFUSAL_REASONS)[number];

export class ProxyHeaderError extends Error {
  constructor(
    readonly reason: 'malformed' | 'too_long',
    message: string,
  ) {
    super(message);
    this.name = 'ProxyHeaderError';
  }
}

export interface ProxySource {
  address: string;
  port: number;
}

export type ProxyHeaderResult =
  | { kind: 'incomplete' }
  | { kind: 'absent' }
  /**
   * `length` bytes make the header. `source` is the client; absent for v2 LOCAL (the
   * balancer's own health check), v1 UNKNOWN and families other than TCP over IPv4/6:
   * the spec says to use the connection's own addresses then.
   */
  | { kind: 'header'; version: 1 | 2; length: number; source?: ProxySource };

/**
 * Reads a PROXY header at the start of `bytes`.
 *
 * @example parseProxyHeader(Buffer.from('PROXY TCP4 198.18.0.2 127.0.0.1 40000 5443\r\n'))
 * // → { kind: 'header', version: 1, length: 44, source: { address: '198.18.0.2', port: 40000 } }
 */
export function parseProxyHeader(bytes: Buffer): ProxyHeaderResult {
  if (startsWithPrefixOf(bytes, V2_SIGNATURE)) {
    return bytes.length < V2_SIGNATURE.length ? { kind: 'incomplete' } : parseV2(bytes);
  }
  if (startsWithPrefixOf(bytes, V1_PREFIX)) {
    return bytes.length < V1_PREFIX.length ? { kind: 'incomplete' } : parseV1(bytes);
  }
  return { kind: 'absent' };
}

/**
 * Whether the bytes received so far begin like a PROXY header (of either version),
 * for refusing one from a peer that is not trusted to send it.
 */
export function looksLikeProxyHeader(bytes: Buffer): boolean {
  if (bytes.length === 0) return false;
  return (
    startsWithPrefixOf(bytes, V2_SIGNATURE) ||
    (bytes.length >= 5 && startsWithPrefixOf(bytes, V1_PREFIX))
  );
}

/** Whether `bytes` and `prefix` agree on the bytes both have. */
function startsWithPrefixOf(bytes: Buffer, prefix: Buffer): boolean {
  const n = Math.min(bytes.length, prefix.length);
  return n > 0 && bytes.subarray(0, n).equals(prefix.subarray(0, n));
}

function parseV1(bytes: Buffer): ProxyHeaderResult {
  const window = bytes.subarray(0, V1_MAX_BYTES);
  const end = window.indexOf('\r\n', 0, 'latin1');
  if (end === -1) {
    // Printable ASCII only, so that garbage is refused now rather than at the timeout.
    for (const byte of window) {
      if ((byte < 0x20 || byte > 0x7e) && byte !== 0x0d) {
        throw new ProxyHeaderError('malformed', `v1 header holds byte 0x${hex(byte)}`);
      }
    }
    if (window.length < V1_MAX_BYTES) return { kind: 'incomplete' };
    throw new ProxyHeaderError('too_long', `v1 header has no CRLF within ${V1_MAX_BYTES} bytes`);
  }
  const line = window.subarray(0, end).toString('latin1');
  const length = end + 2;
  const parts = line.split(' ');
  if (parts[1] === 'UNKNOWN') return { kind: 'header', version: 1, length };
  const [, family, source, destination, sourcePort, destinationPort, ...rest] = parts;
  const version = family === 'TCP4' ? 4 : family === 'TCP6' ? 6 : 0;
  if (version === 0) {
    throw new ProxyHeaderError(
      'malformed',
      `v1 protocol ${quote(family)} is not TCP4, TCP6 or UNKNOWN`,
    );
  }
  if (rest.length > 0 || destinationPort === undefined) {
    throw new ProxyHeaderError('malformed', 'v1 header is not "PROXY TCPn SRC DST SPORT DPORT"');
  }
  for (const address of [source, destination]) {
    if (isIP(address ?? '') !== version || (address ?? '').includes('%')) {
      throw new ProxyHeaderError('malformed', `v1 address ${quote(address)} is not ${family}`);
    }
  }
  for (const port of [sourcePort, destinationPort]) {
    if (!/^(0|[1-9]\d{0,4})$/.test(port ?? '') || Number(port) > 65535) {
      throw new ProxyHeaderError('malformed', `v1 port ${quote(port)} is not 0-65535`);
    }
  }
  return {
    kind: 'header',
    version: 1,
    length,
    source: { address: canonicalIP(source as string), port: Number(sourcePort) },
  };
}

const AF_UNSPEC = 0x0;
const AF_INET = 0x1;
const AF_INET6 = 0x2;
const AF_UNIX = 0x3;
const STREAM = 0x1;
/** Spec §2.2: the address block's size for each family. */
const ADDRESS_BYTES: Readonly<Record<number, number>> = {
  [AF_UNSPEC]: 0,
  [AF_INET]: 12,
  [AF_INET6]: 36,
  [AF_UNIX]: 216,
};

function parseV2(bytes: Buffer): ProxyHeaderResult {
  if (bytes.length < V2_FIXED_BYTES) return { kind: 'incomplete' };
  const versionCommand = bytes[12] as number;
  const familyTransport = bytes[13] as number;
  const blockLength = bytes.readUInt16BE(14);
  const length = V2_FIXED_BYTES + blockLength;
  if (versionCommand >> 4 !== 2) {
    throw new ProxyHeaderError('malformed', `v2 version ${versionCommand >> 4} is not 2`);
  }
  const command = versionCommand & 0x0f;
  if (command > 1)
    throw new ProxyHeaderError('malformed', `v2 command ${command} is not LOCAL or PROXY`);
  if (length > MAX_HEADER_BYTES) {
    throw new ProxyHeaderError(
      'too_long',
      `v2 header claims ${length} bytes, more than ${MAX_HEADER_BYTES}`,
    );
  }
  const family = familyTransport >> 4;
  const transport = familyTransport & 0x0f;
  const addressBytes = ADDRESS_BYTES[family];
  if (addressBytes === undefined || transport > 2) {
    throw new ProxyHeaderError(
      'malformed',
      `v2 family/transport 0x${hex(familyTransport)} is not defined`,
    );
  }
  // LOCAL carries no addresses that count; a PROXY block must hold its family's addresses.
  if (command === 1 && blockLength < addressBytes) {
    throw new ProxyHeaderError(
      'malformed',
      `v2 address block of ${blockLength} bytes cannot hold a family ${family} address (${addressBytes})`,
    );
  }
  if (bytes.length < length) return { kind: 'incomplete' };
  const block = bytes.subarray(V2_FIXED_BYTES, length);
  if (command === 1) checkTLVs(block.subarray(addressBytes));
  if (command === 0 || transport !== STREAM || (family !== AF_INET && family !== AF_INET6)) {
    return { kind: 'header', version: 2, length };
  }
  return { kind: 'header', version: 2, length, source: v2Source(block, family) };
}

/** The source address and port of an AF_INET or AF_INET6 block (spec §2.2). */
function v2Source(block: Buffer, family: number): ProxySource {
  if (family === AF_INET) {
    return { address: [...block.subarray(0, 4)].join('.'), port: block.readUInt16BE(8) };
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(block.readUInt16BE(i).toString(16));
  return { address: canonicalIP(groups.join(':')), port: block.readUInt16BE(32) };
}

/** TLVs (type, 16-bit length, value) must tile what follows the addresses exactly. */
function checkTLVs(tlvs: Buffer): void {
  let at = 0;
  while (at < tlvs.length) {
    if (at + 3 > tlvs.length) {
      throw new ProxyHeaderError(
        'malformed',
        `v2 TLV header cut short at byte ${at} of ${tlvs.length}`,
      );
    }
    const valueLength = tlvs.readUInt16BE(at + 1);
    if (at + 3 + valueLength > tlvs.length) {
      throw new ProxyHeaderError(
        'malformed',
        `v2 TLV type 0x${hex(tlvs[at] as number)} claims ${valueLength} bytes, ${tlvs.length - at - 3} are there`,
      );
    }
    at += 3 + valueLength;
  }
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}

function quote(text: string | undefined): string {
  return JSON.stringify((text ?? '').slice(0, 60));
}
