/**
 * A proxy with tls.acme against a real pebble, in front of a real registry: the
 * ports are chosen first, because pebble must know where to validate (http-01 at the
 * proxy's http01Listen, tls-alpn-01 at its public port).
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { buildOCIImage } from './oci.js';
import { startPebble, type Pebble } from './pebble.js';
import { skopeo } from './skopeo.js';
import {
  CLI,
  createRegistry,
  freePort,
  startProxy,
  type Proxy,
  type Registry,
} from './processes.js';

export const ACME_NAME = 'registry.acme.test';

export interface ACMESetup {
  pebble: Pebble;
  registry: Registry;
  proxyPort: number;
  http01Port: number;
  /** An /etc/hosts naming ACME_NAME 127.0.0.1, for skopeo (see skopeo.ts). */
  hosts: string;
  /** The proxy's environment for tls.acme against this pebble. */
  env(extra?: Record<string, string>): Record<string, string>;
  start(tlsDir: string, extra?: Record<string, string>, port?: number): Promise<Proxy>;
  close(): Promise<void>;
}

export async function setUpACME(
  dir: string,
  pebbleEnv: Record<string, string> = {},
  /** Where pebble validates http-01, when not at the proxy's listener (a failure test). */
  http01ValidationPort?: number,
  /** The DNS server pebble asks for dns-01 TXT records (default: challtestsrv). */
  dnsServer?: string,
  /** The lifetime of pebble's certificates, for renewals that come by themselves. */
  certificateValiditySeconds?: number,
): Promise<ACMESetup> {
  const [proxyPort, http01Port] = [await freePort(), await freePort()];
  const pebble = await startPebble(dir, {
    httpPort: http01ValidationPort ?? http01Port,
    tlsPort: proxyPort,
    env: pebbleEnv,
    ...(dnsServer ? { dnsServer } : {}),
    ...(certificateValiditySeconds ? { certificateValiditySeconds } : {}),
  });
  const registry = await createRegistry({ auth: { kind: 'none' } }, dir);
  await registry.start();
  const hosts = join(dir, 'hosts');
  writeFileSync(hosts, `127.0.0.1 localhost ${ACME_NAME}\n`);
  const env = (extra: Record<string, string> = {}) => ({
    RTP_TLS_NAMES: `${ACME_NAME},127.0.0.1`,
    RTP_TLS_ACME_DIRECTORY: pebble.directory,
    RTP_TLS_ACME_AGREE_TO_TERMS: 'true',
    RTP_TLS_ACME_CA_BUNDLE: pebble.caBundle,
    RTP_TLS_ACME_HTTP01_LISTEN: `127.0.0.1:${http01Port}`,
    RTP_LOG_LEVEL: 'debug',
    ...extra,
  });
  return {
    pebble,
    registry,
    proxyPort,
    http01Port,
    hosts,
    env,
    start: (tlsDir, extra, port = proxyPort) =>
      startProxy({ backend: registry.url, tlsDir, port, env: env(extra) }),
    async close() {
      await registry.stop();
      await pebble.close();
    },
  };
}

/**
 * skopeo pushes `imageRef` to ACME_NAME:proxyPort/`repo` by name, then pulls it back into
 * `pulled`, each verifying TLS against only what `certDir` holds (pebble's root).
 */
export async function pushAndPullByName(
  acme: ACMESetup,
  certDir: string,
  imageRef: string,
  repo: string,
  pulled: string,
) {
  const ref = `docker://${ACME_NAME}:${acme.proxyPort}/${repo}`;
  const push = await skopeo(
    ['copy', '--dest-cert-dir', certDir, '--dest-tls-verify=true', imageRef, ref],
    120_000,
    acme.hosts,
  );
  const pull = await skopeo(
    ['copy', '--src-cert-dir', certDir, '--src-tls-verify=true', ref, `dir:${pulled}`],
    120_000,
    acme.hosts,
  );
  return { push, pull };
}

/**
 * A fresh image (in `dir`) pushed and pulled by name as pushAndPullByName does, with what a
 * user looks at: each copy's exit code and stderr, and the manifest pulled back.
 */
export async function pushAndPullAnImage(acme: ACMESetup, certDir: string, dir: string) {
  const image = buildOCIImage(join(dir, 'image'), 'v1', [1 << 20, 100_000]);
  const pulled = join(dir, 'pulled');
  const { push, pull } = await pushAndPullByName(acme, certDir, image.ref, 'acme/app:v1', pulled);
  const manifest = pull.code === 0 ? readFileSync(join(pulled, 'manifest.json'), 'utf8') : '';
  return {
    push: { code: push.code, stderr: push.stderr },
    pull: { code: pull.code, stderr: pull.stderr },
    manifest,
  };
}

/** The certificate a client gets from 127.0.0.1:port, with SNI `servername` or none, verified against `ca`. */
export function peerCertificate(
  port: number,
  ca: string,
  servername?: string,
): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      {
        host: '127.0.0.1',
        port,
        ca,
        ...(servername ? { servername } : {}),
        ALPNProtocols: ['http/1.1'],
      },
      () => {
        resolve(socket.getPeerCertificate());
        socket.end();
      },
    );
    socket.on('error', reject);
  });
}

/** `registry-tls-proxy acme ARGS` with the proxy's environment, without blocking the test's event loop. */
export function acmeCLI(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, 'acme', ...args],
      { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env }, timeout: 120_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** A plain-HTTP GET to the http-01 listener at 127.0.0.1:port, with the Host a CA (or a browser) sends. */
export function http01Get(port: number, path: string) {
  return new Promise<{ status: number; location?: string; body: string }>((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers: { host: ACME_NAME } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          ...(res.headers.location ? { location: res.headers.location } : {}),
          body,
        }),
      );
    })
      .on('error', reject)
      .end();
  });
}
