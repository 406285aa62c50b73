/**
 * TSIG (RFC 8945): signs our DNS messages with an HMAC key shared with the server, and
 * verifies the server's signature on its answer, so that a forged "NOERROR" cannot make
 * us ask the CA to validate a record that was never written. No maintained npm library
 * signs DNS messages; the HMAC itself is node:crypto's.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { CLASS, TYPE, encodeName, encodeRecord, normalizeName } from './wire.js';

export interface TSIGAlgorithm {
  /** BIND's name, as in named.conf's `algorithm` (hmac-sha256). */
  name: string;
  /** The name on the wire (RFC 8945 §6; hmac-md5 keeps its historic name). */
  wireName: string;
  hash: string;
}

const ALGORITHMS: readonly TSIGAlgorithm[] = [
  { name: 'hmac-sha256', wireName: 'hmac-sha256', hash: 'sha256' },
  { name: 'hmac-sha512', wireName: 'hmac-sha512', hash: 'sha512' },
  { name: 'hmac-sha384', wireName: 'hmac-sha384', hash: 'sha384' },
  { name: 'hmac-sha224', wireName: 'hmac-sha224', hash: 'sha224' },
  { name: 'hmac-sha1', wireName: 'hmac-sha1', hash: 'sha1' },
  { name: 'hmac-md5', wireName: 'hmac-md5.sig-alg.reg.int', hash: 'md5' },
];

export const DEFAULT_TSIG_ALGORITHM = 'hmac-sha256';
export const TSIG_ALGORITHM_NAMES = ALGORITHMS.map((a) => a.name);

/** Seconds of clock difference the server may allow (RFC 8945 §10: 300 recommended). */
const FUDGE_S = 300;

/** TSIG error codes (RFC 8945 §3) by number. */
export const TSIG_ERRORS: Readonly<Record<number, string>> = {
  16: 'BADSIG',
  17: 'BADKEY',
  18: 'BADTIME',
  22: 'BADTRUNC',
};

/**
 * The algorithm for a name as BIND writes it, with or without a trailing dot, in any
 * case; '' or undefined means the default. undefined when unknown.
 */
export function tsigAlgorithm(name: string | undefined): TSIGAlgorithm | undefined {
  const wanted = normalizeName(name || DEFAULT_TSIG_ALGORITHM);
  return ALGORITHMS.find((a) => a.name === wanted || a.wireName === wanted);
}

export interface TSIGKey {
  name: string;
  algorithm: TSIGAlgorithm;
  secret: Buffer;
}

/** The fields that a MAC covers after the message itself (RFC 8945 §4.3.3). */
function variables(
  key: TSIGKey,
  timeSigned: number,
  fudge: number,
  error: number,
  other: Buffer,
): Buffer {
  const time = Buffer.alloc(6);
  time.writeUIntBE(timeSigned, 0, 6);
  const classAndTTL = Buffer.alloc(6);
  classAndTTL.writeUInt16BE(CLASS.ANY, 0); // TTL 0 as allocated
  const tail = Buffer.alloc(6);
  tail.writeUInt16BE(fudge, 0);
  tail.writeUInt16BE(error, 2);
  tail.writeUInt16BE(other.length, 4);
  return Buffer.concat([
    encodeName(key.name),
    classAndTTL,
    encodeName(key.algorithm.wireName),
    time,
    tail,
    other,
  ]);
}

function mac(key: TSIGKey, parts: readonly Buffer[]): Buffer {
  const hmac = createHmac(key.algorithm.hash, key.secret);
  for (const part of parts) hmac.update(part);
  return hmac.digest();
}

/**
 * The message with a TSIG record appended (ARCOUNT raised by one), and the MAC, which
 * the response's signature covers.
 */
export function signMessage(
  message: Buffer,
  key: TSIGKey,
  nowS = Math.floor(Date.now() / 1000),
): { signed: Buffer; mac: Buffer } {
  const digest = mac(key, [message, variables(key, nowS, FUDGE_S, 0, Buffer.alloc(0))]);
  const rdata = Buffer.alloc(16 + digest.length);
  rdata.writeUIntBE(nowS, 0, 6);
  rdata.writeUInt16BE(FUDGE_S, 6);
  rdata.writeUInt16BE(digest.length, 8);
  digest.copy(rdata, 10);
  rdata.writeUInt16BE(message.readUInt16BE(0), 10 + digest.length); // original ID
  // error 0 and other length 0 stay as allocated
  const record = encodeRecord({
    name: key.name,
    type: TYPE.TSIG,
    class: CLASS.ANY,
    ttl: 0,
    rdata: Buffer.concat([encodeName(key.algorithm.wireName), rdata]),
  });
  const signed = Buffer.concat([message, record]);
  signed.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return { signed, mac: digest };
}

/** What the server's TSIG record says about our request and its own answer. */
export type TSIGVerdict =
  | { status: 'verified' }
  | { status: 'unsigned' }
  | { status: 'error'; error: string } // the server refused our signature (BADSIG, BADKEY, BADTIME)
  | { status: 'mismatch'; reason: string }; // the answer's signature is wrong

interface ParsedTSIG {
  start: number;
  algorithm: string;
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  other: Buffer;
}

/** Reads an uncompressed name (TSIG's names are never compressed, RFC 8945 §4.2). */
function readName(buf: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let at = offset;
  for (;;) {
    const length = buf.readUInt8(at);
    if (length === 0) return { name: labels.join('.'), end: at + 1 };
    if (length > 63) throw new RangeError('compressed name in TSIG record');
    labels.push(buf.toString('ascii', at + 1, at + 1 + length));
    at += 1 + length;
  }
}

/**
 * The TSIG record at the end of `response`, whose owner and data dns-packet decoded, or
 * undefined when the last additional record is no TSIG.
 */
function parseTSIG(response: Buffer, owner: string, rdata: Buffer): ParsedTSIG | undefined {
  const start = response.length - (encodeName(owner).length + 10 + rdata.length);
  if (start < 12 || response.readUInt16BE(start + encodeName(owner).length) !== TYPE.TSIG)
    return undefined;
  const algorithm = readName(rdata, 0);
  let at = algorithm.end;
  const timeSigned = rdata.readUIntBE(at, 6);
  const fudge = rdata.readUInt16BE(at + 6);
  const macSize = rdata.readUInt16BE(at + 8);
  at += 10;
  const macBytes = rdata.subarray(at, at + macSize);
  at += macSize;
  const originalId = rdata.readUInt16BE(at);
  const error = rdata.readUInt16BE(at + 2);
  const otherLength = rdata.readUInt16BE(at + 4);
  const other = rdata.subarray(at + 6, at + 6 + otherLength);
  return {
    start,
    algorithm: algorithm.name,
    timeSigned,
    fudge,
    mac: macBytes,
    originalId,
    error,
    other,
  };
}

/**
 * Checks the TSIG record of a response to a request whose MAC was `requestMAC`
 * (RFC 8945 §5.3, §4.3.1: the response's MAC covers the request's).
 */
export function verifyResponse(
  response: Buffer,
  additionals: ReadonlyArray<{ type: string; name: string; data?: unknown }>,
  key: TSIGKey,
  requestMAC: Buffer,
  nowS = Math.floor(Date.now() / 1000),
): TSIGVerdict {
  const last = additionals[additionals.length - 1];
  if (!last || last.type !== 'TSIG' || !Buffer.isBuffer(last.data)) return { status: 'unsigned' };
  let tsig: ParsedTSIG | undefined;
  try {
    tsig = parseTSIG(response, last.name, last.data);
  } catch {
    tsig = undefined;
  }
  if (!tsig) return { status: 'mismatch', reason: 'its TSIG record is malformed' };
  if (tsig.error !== 0)
    return { status: 'error', error: TSIG_ERRORS[tsig.error] ?? `TSIG error ${tsig.error}` };
  if (normalizeName(last.name) !== normalizeName(key.name))
    return { status: 'mismatch', reason: `it is signed with key ${last.name}, not ${key.name}` };
  if (normalizeName(tsig.algorithm) !== key.algorithm.wireName)
    return {
      status: 'mismatch',
      reason: `it is signed with ${tsig.algorithm}, not ${key.algorithm.name}`,
    };
  const unsigned = Buffer.from(response.subarray(0, tsig.start));
  unsigned.writeUInt16BE(tsig.originalId, 0);
  unsigned.writeUInt16BE(unsigned.readUInt16BE(10) - 1, 10);
  const expected = mac(key, [
    Buffer.from([requestMAC.length >> 8, requestMAC.length & 0xff]),
    requestMAC,
    unsigned,
    variables(key, tsig.timeSigned, tsig.fudge, tsig.error, tsig.other),
  ]);
  if (tsig.mac.length !== expected.length || !timingSafeEqual(tsig.mac, expected))
    return { status: 'mismatch', reason: 'its TSIG MAC does not verify with our key' };
  if (Math.abs(nowS - tsig.timeSigned) > tsig.fudge)
    return {
      status: 'mismatch',
      reason: `it was signed ${nowS - tsig.timeSigned} s ago (clock skew?)`,
    };
  return { status: 'verified' };
}
