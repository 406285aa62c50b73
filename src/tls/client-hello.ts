/**
 * What a ClientHello asks for, read before OpenSSL sees it: the server name (SNI)
 * and the ALPN protocols. OpenSSL picks the certificate (SNI callback) before it
 * looks at ALPN, so an ACME tls-alpn-01 validation (ALPN `acme-tls/1`, RFC 8737),
 * which needs its own certificate, has to be told apart here.
 */

const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;

export interface ClientHelloInfo {
  serverName?: string;
  alpn: string[];
}

/**
 * Parses the first TLS record; undefined when it is not a whole ClientHello (split
 * over records or segments: then it is just not an ACME validation we can see).
 *
 * @example parseClientHello(firstBytes)?.alpn // → ['acme-tls/1']
 */
export function parseClientHello(record: Buffer): ClientHelloInfo | undefined {
  try {
    if (record[0] !== 0x16 || record[5] !== 0x01) return undefined;
    const end = Math.min(record.length, 5 + record.readUInt16BE(3));
    let at = 5 + 4 + 2 + 32; // handshake header, client_version, random
    at += 1 + (record[at] as number); // session_id
    at += 2 + record.readUInt16BE(at); // cipher_suites
    at += 1 + (record[at] as number); // compression_methods
    const extensionsEnd = Math.min(end, at + 2 + record.readUInt16BE(at));
    at += 2;
    const info: ClientHelloInfo = { alpn: [] };
    while (at + 4 <= extensionsEnd) {
      const type = record.readUInt16BE(at);
      const length = record.readUInt16BE(at + 2);
      const body = record.subarray(at + 4, at + 4 + length);
      if (type === EXT_ALPN) info.alpn = readALPN(body);
      if (type === EXT_SERVER_NAME) {
        const name = readServerName(body);
        if (name !== undefined) info.serverName = name;
      }
      at += 4 + length;
    }
    return info;
  } catch {
    return undefined; // RangeError from a truncated hello
  }
}

function readALPN(body: Buffer): string[] {
  const protocols: string[] = [];
  let at = 2;
  const end = Math.min(body.length, 2 + body.readUInt16BE(0));
  while (at < end) {
    const length = body[at] as number;
    protocols.push(body.subarray(at + 1, at + 1 + length).toString('latin1'));
    at += 1 + length;
  }
  return protocols;
}

function readServerName(body: Buffer): string | undefined {
  // server_name_list: one host_name (type 0) in practice
  if (body[2] !== 0) return undefined;
  const length = body.readUInt16BE(3);
  return body.subarray(5, 5 + length).toString('latin1');
}
