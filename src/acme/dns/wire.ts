/**
 * DNS messages on the wire, for the few we send: an SOA query and an RFC 2136 UPDATE.
 * We encode them ourselves because an UPDATE needs class NONE (RFC 2136 §2.5.4, delete
 * one RR), which dns-packet cannot write; responses are decoded with dns-packet, where
 * the hard part (name compression) lives. Every exchange goes over TCP (RFC 7766): a
 * signed UPDATE needs no truncation retry, and a server that is down refuses at once
 * instead of leaving a UDP query to time out.
 */
import { randomInt } from 'node:crypto';
import { createRequire } from 'node:module';
import { connect, isIP } from 'node:net';
import type * as DNSPacket from 'dns-packet';
import { formatHostPort, isDNSName, parseHostPort } from '../../net/address.js';
import { DNSError } from './errors.js';

export const TYPE = { SOA: 6, TXT: 16, TSIG: 250 } as const;
export const CLASS = { IN: 1, NONE: 254, ANY: 255 } as const;
export const OPCODE = { QUERY: 0, UPDATE: 5 } as const;

/** Response codes (RFC 1035 §4.1.1, RFC 2136 §2.2) by number, for messages. */
export const RCODE_NAMES: Readonly<Record<number, string>> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  6: 'YXDOMAIN',
  7: 'YXRRSET',
  8: 'NXRRSET',
  9: 'NOTAUTH',
  10: 'NOTZONE',
};

/** A name without its trailing dot, lower case: how we compare and print names. */
export function normalizeName(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

/** A name in wire form, uncompressed (TSIG requires it; RFC 8945 §4.2). */
export function encodeName(name: string): Buffer {
  const labels = normalizeName(name)
    .split('.')
    .filter((l) => l !== '');
  const parts = labels.map((label) => {
    const bytes = Buffer.from(label, 'ascii');
    if (bytes.length > 63) throw new DNSError('DNS_NAME', `DNS label "${label}" is over 63 bytes`);
    return Buffer.concat([Buffer.from([bytes.length]), bytes]);
  });
  return Buffer.concat([...parts, Buffer.from([0])]);
}

function u16(value: number): Buffer {
  const buf = Buffer.alloc(2);
  buf.writeUInt16BE(value);
  return buf;
}

/** A TXT record's data: the value as character-strings of at most 255 bytes each. */
export function txtRdata(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  const parts: Buffer[] = [];
  for (let i = 0; i === 0 || i < bytes.length; i += 255) {
    const chunk = bytes.subarray(i, i + 255);
    parts.push(Buffer.from([chunk.length]), chunk);
  }
  return Buffer.concat(parts);
}

export interface ResourceRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  rdata: Buffer;
}

export function encodeRecord(rr: ResourceRecord): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(rr.type, 0);
  fixed.writeUInt16BE(rr.class, 2);
  fixed.writeUInt32BE(rr.ttl, 4);
  fixed.writeUInt16BE(rr.rdata.length, 8);
  return Buffer.concat([encodeName(rr.name), fixed, rr.rdata]);
}

/**
 * A message with one question (the zone section of an UPDATE) and the given records in
 * the third section (an UPDATE's update section; RFC 2136 §2).
 */
export function encodeMessage(
  opcode: number,
  question: { name: string; type: number },
  records: readonly ResourceRecord[] = [],
): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(randomInt(0x10000), 0);
  header.writeUInt16BE(opcode << 11, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 8);
  const q = Buffer.concat([encodeName(question.name), u16(question.type), u16(CLASS.IN)]);
  return Buffer.concat([header, q, ...records.map(encodeRecord)]);
}

export type DecodedMessage = DNSPacket.DecodedPacket & { rcode?: string };

/**
 * dns-packet, loaded on the first response with require(): an ESM import of this
 * CommonJS package runs Node's export scanner (cjs-module-lexer) over its 1,700 lines
 * at every start-up, hot enough for V8 to optimise the scanner on its compiler
 * threads, whose freed memory stays resident: 5–10 MiB of RSS (Node 20: 64 → 74 MiB at
 * start), paid by every proxy, dns-01 or not.
 */
let dnsPacket: typeof DNSPacket | undefined;

/** Decodes a response, or throws a DNSError naming the server that sent garbage. */
export function decodeMessage(message: Buffer, server: string): DecodedMessage {
  try {
    dnsPacket ??= createRequire(import.meta.url)('dns-packet') as typeof DNSPacket;
    return dnsPacket.decode(message) as DecodedMessage;
  } catch (err) {
    throw new DNSError('DNS_BAD_RESPONSE', `${server} sent a DNS message we cannot decode`, {
      cause: err,
    });
  }
}

export interface Server {
  host: string;
  port: number;
}

export const DNS_PORT = 53;

/**
 * `host`, `host:port` or `[v6]:port` (a bare IPv6 address too), port 53 by default;
 * undefined when malformed.
 *
 * @example parseDNSServer('[2001:db8::53]:5353') // → { host: '2001:db8::53', port: 5353 }
 */
export function parseDNSServer(value: string): Server | undefined {
  if (isIP(value) !== 0 || isDNSName(value)) return { host: value, port: DNS_PORT };
  const bracketed = /^\[([0-9a-fA-F:.]+)\]$/.exec(value);
  if (bracketed?.[1] && isIP(bracketed[1]) === 6) return { host: bracketed[1], port: DNS_PORT };
  const parsed = parseHostPort(value);
  if (!parsed || parsed.port === 0 || value.startsWith(':')) return undefined;
  return parsed;
}

export function formatServer(server: Server): string {
  return formatHostPort(server.host, server.port);
}

/**
 * Sends one message over TCP and resolves with the response (the two-byte length prefix
 * removed). Rejects with a DNSError on a refused connection, a timeout or an abort.
 */
export function exchangeTCP(
  server: Server,
  message: Buffer,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Buffer> {
  const where = formatServer(server);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: server.host, port: server.port });
    let received = Buffer.alloc(0);
    const finish = (err: Error | undefined, response?: Buffer) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err) reject(err);
      else resolve(response as Buffer);
    };
    const timer = setTimeout(
      () =>
        finish(
          new DNSError(
            'DNS_TIMEOUT',
            `DNS server ${where} did not answer within ${timeoutMs} ms: is it up, and does a firewall let TCP port ${server.port} through?`,
          ),
        ),
      timeoutMs,
    );
    const onAbort = () =>
      finish(
        new DNSError('DNS_ABORTED', `DNS exchange with ${where} aborted`, {
          cause: signal?.reason,
        }),
      );
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (err: NodeJS.ErrnoException) =>
      finish(
        new DNSError(
          'DNS_UNREACHABLE',
          `cannot reach DNS server ${where} (${err.code ?? err.message}): is it up and listening on TCP port ${server.port}?`,
          { cause: err },
        ),
      ),
    );
    socket.on('connect', () => socket.write(Buffer.concat([u16(message.length), message])));
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 2) return;
      const length = received.readUInt16BE(0);
      if (received.length >= 2 + length) finish(undefined, received.subarray(2, 2 + length));
    });
    socket.on('end', () =>
      finish(
        new DNSError(
          'DNS_BAD_RESPONSE',
          `DNS server ${where} closed the connection without an answer`,
        ),
      ),
    );
  });
}
