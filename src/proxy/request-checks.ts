/**
 * Requests whose meaning another HTTP parser could read differently (request
 * smuggling) or that no registry client sends. Node's parser (llhttp, strict:
 * `insecureHTTPParser` stays off) already refuses most — both Content-Length and
 * Transfer-Encoding, duplicate or non-numeric Content-Length, obs-fold, bare CR
 * or LF, NUL and other control characters, bad chunk sizes — and server.ts
 * answers those 400. These are what it lets through.
 * https://www.rfc-editor.org/rfc/rfc9112#section-6.1
 */
import type { IncomingMessage } from 'node:http';

export interface RequestProblem {
  status: 400 | 405;
  message: string;
}

const DIGITS = /^\d+$/;

/** What is wrong with a request's framing or target, checked before anything is forwarded. */
export function requestProblem(req: IncomingMessage): RequestProblem | undefined {
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) {
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
    if (req.httpVersionMinor === 0) {
      return bad('Transfer-Encoding is not allowed in an HTTP/1.0 request');
    }
    // Node decodes `gzip, chunked` and `Chunked` as chunked; a backend might not.
    if (te !== 'chunked') {
      return bad(`Transfer-Encoding must be "chunked", got ${JSON.stringify(te.slice(0, 64))}`);
    }
  }
  const length = req.headers['content-length'];
  if (length !== undefined && !DIGITS.test(length)) {
    return bad('Content-Length must be a decimal number');
  }
  if (req.httpVersionMajor !== 1) return bad('only HTTP/1.0 and HTTP/1.1 are spoken here');
  const url = req.url ?? '';
  // Absolute-form (GET http://other/…), authority-form (CONNECT) and asterisk-form (OPTIONS *):
  // registry clients send paths; a backend would take the host from an absolute URL.
  if (url.charCodeAt(0) !== 0x2f /* / */) {
    return bad('the request target must be a path starting with /');
  }
  if (req.method === 'TRACE' || req.method === 'TRACK') {
    return { status: 405, message: `${req.method} is not allowed` };
  }
  if (hasDuplicateHost(req.rawHeaders)) return bad('more than one Host header');
  return undefined;
}

function bad(message: string): RequestProblem {
  return { status: 400, message };
}

/** RFC 9112 §3.2: more than one Host is a 400; Node keeps the first and drops the rest. */
function hasDuplicateHost(raw: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      if (seen) return true;
      seen = true;
    }
  }
  return false;
}
