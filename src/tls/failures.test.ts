/**
 * Handshake failures as the public listener sees them: a real node:tls server with
 * the proxy's TLS settings (serverTLSOptions) and real clients (curl, openssl s_client,
 * node:tls, raw bytes), each error taken from the server's 'tlsClientError' event.
 * What OpenSSL reports is decided by OpenSSL, not by this file; the comments note
 * the codes seen with Node 20 (OpenSSL 3.0).
 */
import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { isIP, connect as netConnect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  connect as tlsConnect,
  createServer,
  type ConnectionOptions,
  type TLSSocket,
  type TlsOptions,
} from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCA, issueClientCertificate, issueServerCertificate } from '../pki/issue.js';
import type { TLSMaterial } from '../pki/store.js';
import { serverTLSOptions } from './context.js';
import { classifyTLSFailure, receivedAlert, type TLSFailure } from './failures.js';
import { notAClientHello } from './sniff.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const TIMEOUT_MS = 60_000;

const tmp = mkdtempSync(join(tmpdir(), 'rtp-failures-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const file = (name: string) => join(tmp, name);

let material: TLSMaterial;
let caPEM = '';
let clientCertPEM = '';
let clientKeyPEM = '';

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: tmp, stdio: 'pipe' });
}

beforeAll(async () => {
  const ca = await createCA({ commonName: 'failures test CA', lifetimeMs: 3650 * DAY_MS });
  const caKey = createPrivateKey(ca.keyPEM);
  const authority = { certPEM: ca.certPEM, key: caKey };
  const sans = { dns: ['localhost'], ips: ['127.0.0.1'] };
  const server = await issueServerCertificate({ ca: authority, sans, lifetimeMs: 30 * DAY_MS });
  const client = await issueClientCertificate({
    ca: authority,
    name: 'ci-runner',
    lifetimeMs: DAY_MS,
  });
  caPEM = ca.certPEM;
  clientCertPEM = client.certPEM;
  clientKeyPEM = client.keyPEM;
  const caCert = new X509Certificate(ca.certPEM);
  material = {
    caCertPEM: ca.certPEM,
    caFingerprint256: caCert.fingerprint256,
    caNotAfter: new Date(caCert.validTo),
    trustBundlePEM: ca.certPEM,
    trustFingerprints: [caCert.fingerprint256],
    clientCAsPEM: ca.certPEM,
    serverCertPEM: server.certPEM,
    serverKeyPEM: server.keyPEM,
    serverNotAfter: new Date(new X509Certificate(server.certPEM).validTo),
    sans,
    created: { ca: true, server: true },
  };
  writeFileSync(file('ca.crt'), ca.certPEM);
  writeFileSync(file('client.cert'), client.certPEM);
  writeFileSync(file('client.key'), client.keyPEM, { mode: 0o600 });

  // Client certificates the proxy must refuse: self-signed, and from a CA of its own.
  openssl(
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-subj', '/CN=self-signed-client', '-addext', 'extendedKeyUsage=clientAuth',
    '-keyout', 'self.key', '-out', 'self.crt',
  ); // prettier-ignore
  openssl(
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-subj', '/CN=some other CA', '-keyout', 'other-ca.key', '-out', 'other-ca.crt',
  ); // prettier-ignore
  openssl(
    'req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=foreign-client',
    '-keyout', 'foreign.key', '-out', 'foreign.csr',
  ); // prettier-ignore
  writeFileSync(file('client.ext'), 'extendedKeyUsage=clientAuth\n');
  openssl(
    'x509', '-req', '-in', 'foreign.csr', '-CA', 'other-ca.crt', '-CAkey', 'other-ca.key',
    '-CAcreateserial', '-days', '1', '-extfile', 'client.ext', '-out', 'foreign.crt',
  ); // prettier-ignore
}, TIMEOUT_MS);

type ServerError = NodeJS.ErrnoException & { reason?: string };

interface Outcome {
  /** The server's 'tlsClientError', or undefined when the handshake succeeded. */
  err?: ServerError;
  socket: TLSSocket;
  port: number;
  /** classifyTLSFailure of the above. */
  failure?: TLSFailure;
}

/** Runs `client` against a fresh server with the proxy's TLS settings; resolves with what the server saw first. */
async function handshake(
  client: (port: number) => Promise<unknown>,
  opts: { clientAuth?: boolean; extra?: TlsOptions } = {},
): Promise<Outcome> {
  const server = createServer({
    ...serverTLSOptions(material, opts.clientAuth ?? false),
    ...opts.extra,
  });
  server.on('secureConnection', (socket) => socket.end());
  const seen = new Promise<Outcome>((resolve) => {
    server.once('tlsClientError', (err: ServerError, socket: TLSSocket) => {
      resolve({ err, socket, port, failure: classifyTLSFailure(err, socket, options(port)) });
      // As https.Server does: a bare tls.Server leaves the socket open after a handshake timeout.
      socket.destroy();
    });
    server.once('secureConnection', (socket: TLSSocket) => resolve({ socket, port }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    const [outcome] = await Promise.all([withTimeout(seen, 15_000), client(port)]);
    return outcome;
  } finally {
    server.close();
  }
}

const trustCommand = (port: number) => `registry-tls-proxy trust --address 127.0.0.1:${port}`;
/** What the proxy passes: the served certificate covers localhost and 127.0.0.1. */
const options = (port: number) => ({
  trustCommand: trustCommand(port),
  covers: (name: string) => {
    const leaf = new X509Certificate(material.serverCertPEM);
    return (isIP(name) ? leaf.checkIP(name) : leaf.checkHost(name)) !== undefined;
  },
  coveredNames: ['localhost', '127.0.0.1'],
});

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no handshake outcome within ${ms} ms`)), ms);
    promise.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e)),
    );
  });
}

/** Runs a command to its end (never blocking this process: the server lives here too). */
function run(command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill(), 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

const sClient =
  (...args: string[]) =>
  (port: number) =>
    run('openssl', [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-servername',
      'localhost',
      ...args,
    ]);

/** A node:tls client; settles when its connection is over, whatever the outcome. */
function nodeClient(options: ConnectionOptions) {
  return (port: number) =>
    new Promise<{ authorized: boolean; error?: string }>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ...options });
      let result: { authorized: boolean; error?: string } = { authorized: false };
      socket.on('secureConnect', () => (result = { authorized: socket.authorized }));
      socket.on(
        'error',
        (e: NodeJS.ErrnoException) => (result = { ...result, error: e.code ?? '' }),
      );
      socket.on('close', () => resolve(result));
      socket.resume();
    });
}

/** A plain TCP client that writes `bytes` (if any) and waits for the server to hang up. */
function rawClient(bytes: Buffer | undefined, how: 'end' | 'destroy' = 'end') {
  return (port: number) =>
    new Promise<void>((resolve) => {
      const socket = netConnect(port, '127.0.0.1', () => {
        if (bytes) socket.write(bytes);
        else if (how === 'end') socket.end();
        else socket.destroy();
      });
      socket.on('error', () => undefined);
      socket.on('close', () => resolve());
      socket.resume();
      setTimeout(() => socket.destroy(), 5000);
    });
}

describe('controls: the same server accepts well-configured clients', () => {
  it('openssl s_client trusting the CA completes the handshake', async () => {
    const outcome = await handshake(sClient('-CAfile', 'ca.crt', '-verify_return_error'));
    expect(outcome.err).toBeUndefined();
  });

  it('with tls.clientAuth, a client certificate issued by the CA is accepted', async () => {
    const outcome = await handshake(
      nodeClient({ ca: caPEM, cert: clientCertPEM, key: clientKeyPEM }),
      { clientAuth: true },
    );
    expect(outcome.err).toBeUndefined();
    expect(outcome.socket.authorized).toBe(true);
    expect(outcome.socket.getPeerX509Certificate()?.subject).toContain('CN=ci-runner');
  });
});

describe('a client that does not trust the CA', () => {
  it.each([
    ['curl without --cacert', (port: number) => run('curl', ['-sS', `https://127.0.0.1:${port}/`])],
    ['openssl s_client -verify_return_error', sClient('-verify_return_error')],
  ])('%s → untrusted_ca, with the trust command to run', async (_name, client) => {
    const outcome = await handshake(client);
    // Both verify inside OpenSSL and send the alert unknown_ca (48) before giving up.
    expect(outcome.failure?.alert).toBe(48);
    expect(outcome.failure?.reason).toBe('untrusted_ca');
    expect(outcome.failure?.routine).toBe(false);
    expect(outcome.failure?.message).toContain(`run "${trustCommand(outcome.port)}"`);
    expect(outcome.failure?.message).toContain('unknown_ca (48)');
  });
});

describe('a client asking for a name the certificate does not cover', () => {
  /*
   * curl --resolve sends SNI registry.lan to 127.0.0.1. Without our CA it fails the CA
   * check first (unknown_ca, 48), but it would refuse the name next: that is the fix to
   * log. (curl holding our CA checks the name only after the handshake and hangs up
   * without an alert: the server sees a completed handshake and nothing else.)
   */
  it('curl without the CA → name_not_covered, naming the name and tls.names', async () => {
    const outcome = await handshake((port) =>
      run('curl', ['-sS', '--resolve', `registry.lan:${port}:127.0.0.1`, `https://registry.lan:${port}/`]),
    ); // prettier-ignore
    expect(outcome.socket.servername).toBe('registry.lan');
    expect(outcome.failure?.alert).toBe(48);
    expect(outcome.failure?.reason).toBe('name_not_covered');
    expect(outcome.failure?.message).toMatch(
      /^registry\.lan is not covered .*add it to tls\.names/,
    );
    expect(outcome.failure?.message).toContain('it covers localhost, 127.0.0.1');
  });

  it('openssl s_client checking the name → name_not_covered', async () => {
    const outcome = await handshake((port) =>
      run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'registry.lan',
        '-verify_hostname', 'registry.lan', '-CAfile', 'ca.crt', '-verify_return_error']),
    ); // prettier-ignore
    expect(outcome.failure?.reason).toBe('name_not_covered');
  });
});

describe('alert numbers, whatever OpenSSL calls them', () => {
  // As OpenSSL 3.0 (Node 20) and 3.5 (Node 24, 26) report a Go client's bad_certificate.
  it.each([
    ['OpenSSL 3.0', 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../ssl/record/rec_layer_s3.c:1601:SSL alert number 42'],
    ['OpenSSL 3.5', 'ERR_SSL_SSL/TLS_ALERT_BAD_CERTIFICATE', 'error:0A000412:SSL routines::ssl/tls alert bad certificate:../ssl/record/rec_layer_s3.c:918:SSL alert number 42'],
    ['no packed code', 'ERR_SSL_SOMETHING_NEW', 'alert bad certificate: SSL alert number 42'],
  ])('%s: bad_certificate (42) → untrusted_ca, or name_not_covered for an uncovered SNI name', (_n, code, message) => {
    const err = Object.assign(new Error(message), { code });
    expect(receivedAlert(err)).toBe(42);
    expect(classifyTLSFailure(err, { servername: 'localhost' }, options(1)).reason).toBe('untrusted_ca');
    expect(classifyTLSFailure(err, {}, options(1)).reason).toBe('untrusted_ca');
    const uncovered = classifyTLSFailure(err, { servername: 'registry.lan' }, options(1));
    expect(uncovered.reason).toBe('name_not_covered');
  }); // prettier-ignore

  it('no SNI: the address the client reached is the name it asked for (an IP SAN missing)', () => {
    const err = Object.assign(new Error('SSL alert number 42'), { code: 'ERR_SSL_X' });
    const ipAware = { ...options(1), covers: (name: string) => name === '127.0.0.1' };
    expect(classifyTLSFailure(err, { localAddress: '127.0.0.1' }, ipAware).reason).toBe(
      'untrusted_ca',
    );
    const missing = classifyTLSFailure(err, { localAddress: '::ffff:198.18.0.2' }, ipAware);
    expect(missing.reason).toBe('name_not_covered');
    expect(missing.message).toMatch(/^198\.18\.0\.2 is not covered .*no IP SAN for it/);
    // A name the client sent wins over the address.
    expect(
      classifyTLSFailure(err, { servername: 'registry.lan', localAddress: '127.0.0.1' }, ipAware)
        .message,
    ).toMatch(/^registry\.lan is not covered/);
  });

  it('an error that is no received alert has no alert number', () => {
    const err = new Error('error:0A0000C1:SSL routines::no shared cipher');
    expect(receivedAlert(err)).toBeUndefined();
  });

  /*
   * node:tls checks the server's certificate after OpenSSL's handshake and closes
   * without an alert, so the server sees nothing but a hang-up: such a client is
   * logged as routine ("went away"), at debug level.
   */
  it('node:tls without ca → no alert reaches the server: aborted', async () => {
    let clientSaw: { authorized: boolean; error?: string } | undefined;
    const outcome = await handshake(async (port) => {
      clientSaw = await nodeClient({ rejectUnauthorized: true })(port);
    });
    // The proxy sends its CA along with the leaf, so node:tls finds a self-signed CA in the chain.
    expect(clientSaw?.error).toBe('SELF_SIGNED_CERT_IN_CHAIN');
    expect(outcome.err?.code).toBe('ECONNRESET');
    expect(outcome.failure).toMatchObject({ reason: 'aborted', routine: true });
  });
});

describe('a client with nothing in common with the proxy', () => {
  it.each([
    // SECLEVEL=0: distributions that raise OpenSSL's default level stop the client offering TLS 1.1 at all.
    ['TLS 1.1 only', ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'], 'ERR_SSL_UNSUPPORTED_PROTOCOL'],
    [
      'TLS 1.2 with a CBC cipher only',
      ['-tls1_2', '-cipher', 'AES128-SHA'],
      'ERR_SSL_NO_SHARED_CIPHER',
    ],
    [
      'TLS 1.2 with FFDHE groups only',
      ['-tls1_2', '-groups', 'ffdhe2048'],
      'ERR_SSL_NO_SHARED_CIPHER',
    ],
    [
      'TLS 1.3 with CCM only',
      ['-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_SHA256'],
      'ERR_SSL_NO_SHARED_CIPHER',
    ],
  ])('%s → no_shared_protocol', async (_name, args, code) => {
    const outcome = await handshake(sClient('-CAfile', 'ca.crt', ...args));
    expect(outcome.err?.code).toBe(code);
    expect(outcome.failure?.reason).toBe('no_shared_protocol');
    expect(outcome.failure?.routine).toBe(false);
    expect(outcome.failure?.message).toContain(outcome.err?.reason);
  });

  /*
   * BUG: a TLS 1.3 client whose key-share groups are all FFDHE fails with
   * ERR_SSL_NO_SUITABLE_KEY_SHARE, missing from NO_SHARED: classified 'other'.
   * Remove `.fails` once fixed.
   */
  it('TLS 1.3 with FFDHE groups only → no_shared_protocol', async () => {
    const outcome = await handshake(
      sClient('-CAfile', 'ca.crt', '-tls1_3', '-groups', 'ffdhe2048'),
    );
    expect(outcome.err?.code).toBe('ERR_SSL_NO_SUITABLE_KEY_SHARE');
    expect(outcome.failure?.reason).toBe('no_shared_protocol');
  });
});

describe('tls.clientAuth', () => {
  it.each([['-tls1_3'], ['-tls1_2']])(
    'no client certificate (%s) → client_cert_missing',
    async (version) => {
      const outcome = await handshake(sClient('-CAfile', 'ca.crt', version), { clientAuth: true });
      expect(outcome.err?.code).toBe('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE');
      expect(outcome.failure?.reason).toBe('client_cert_missing');
      expect(outcome.failure?.routine).toBe(false);
      expect(outcome.failure?.message).toContain('issue-client');
    },
  );

  it.each([
    ['self-signed', 'self.crt', 'self.key', 'DEPTH_ZERO_SELF_SIGNED_CERT'],
    ['signed by another CA', 'foreign.crt', 'foreign.key', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
  ])(
    'a %s client certificate → client_cert_rejected, naming the verification error',
    async (_name, cert, key, authorizationError) => {
      const outcome = await handshake(sClient('-CAfile', 'ca.crt', '-cert', cert, '-key', key), {
        clientAuth: true,
      });
      // Node verifies after the handshake and hangs up: the error itself is a bare ECONNRESET.
      expect(outcome.err?.code).toBe('ECONNRESET');
      expect(outcome.socket.authorizationError).toBe(authorizationError);
      expect(outcome.failure?.reason).toBe('client_cert_rejected');
      expect(outcome.failure?.routine).toBe(false);
      expect(outcome.failure?.message).toContain(authorizationError);
    },
  );
});

describe('a client that does not speak TLS, or gives up', () => {
  const record = (...bytes: number[]) => Buffer.from(bytes);
  it.each([
    ['plain HTTP', Buffer.from('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n'), 'ERR_SSL_HTTP_REQUEST'],
  ])('%s → not_tls, routine', async (_name, bytes, code) => {
    const outcome = await handshake(rawClient(bytes));
    expect(outcome.err?.code).toBe(code);
    expect(outcome.failure?.reason).toBe('not_tls');
    expect(outcome.failure?.routine).toBe(true);
  });

  /*
   * sniff.ts turns these away before OpenSSL reads them: a 64 KiB record was
   * ERR_SSL_PACKET_LENGTH_TOO_LONG in OpenSSL 3.0 and is ERR_SSL_DATA_LENGTH_TOO_LONG in 3.5.
   */
  it.each([
    ['a version that is none', record(0x16, 0x99, 0x99, 0, 4, 1), /record version 153/],
    ['a record of 64 KiB', record(0x16, 3, 1, 0xff, 0xff, 1), /a record of 65535 bytes/],
    ['an empty record', record(0x16, 3, 1, 0, 0), /a record of 0 bytes/],
    ['an unknown handshake message', record(0x16, 3, 3, 0, 32, 0xab), /message type 171/],
  ])('0x16 then %s: not a ClientHello (sniff.ts)', (_name, bytes, why) => {
    expect(notAClientHello(bytes)).toMatch(why);
  });

  it.each([
    ['a ClientHello header', record(0x16, 3, 1, 0x02, 0x00, 1)],
    ['a header cut short', record(0x16, 3)],
  ])('0x16 then %s: left to OpenSSL', (_name, bytes) => {
    expect(notAClientHello(bytes)).toBeUndefined();
  });

  /*
   * BUG: a TLS record header followed by a malformed ClientHello (what fuzzers and some
   * scanners send) fails with ERR_SSL_EXCESSIVE_MESSAGE_SIZE or ERR_SSL_LENGTH_TOO_SHORT,
   * missing from NOT_TLS: classified 'other', routine false, so it is logged as a warning.
   * Remove `.fails` once fixed.
   */
  it.each([
    ['a ClientHello claiming 132 KiB', record(0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5)],
    ['an empty ClientHello', record(0x16, 3, 1, 0, 4, 1, 0, 0, 0)],
  ])('0x16 then %s → not_tls, routine', async (_name, bytes) => {
    const outcome = await handshake(rawClient(bytes));
    expect(outcome.err?.code).toMatch(/^ERR_SSL_(EXCESSIVE_MESSAGE_SIZE|LENGTH_TOO_SHORT)$/);
    expect(outcome.failure?.reason).toBe('not_tls');
    expect(outcome.failure?.routine).toBe(true);
  });

  it.each([['end'], ['destroy']] as const)(
    'connects and closes (%s) → aborted, routine',
    async (how) => {
      const outcome = await handshake(rawClient(undefined, how));
      expect(outcome.err?.code).toBe('ECONNRESET');
      expect(outcome.failure).toMatchObject({ reason: 'aborted', routine: true });
    },
  );

  it('connects and says nothing until the handshake timeout → aborted, routine', async () => {
    const outcome = await handshake(
      (port) =>
        new Promise<void>((resolve) => {
          const socket = netConnect(port, '127.0.0.1');
          socket.on('error', () => undefined);
          socket.on('close', () => resolve());
        }),
      { extra: { handshakeTimeout: 300 } },
    );
    expect(outcome.err?.code).toBe('ERR_TLS_HANDSHAKE_TIMEOUT');
    expect(outcome.failure).toMatchObject({ reason: 'aborted', routine: true });
  });
});
