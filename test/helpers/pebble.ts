/**
 * Let's Encrypt's test ACME server, for real: pebble and pebble-challtestsrv (Debian's
 * `pebble` package) on free loopback ports in a temporary directory. challtestsrv is
 * pebble's DNS server and answers every name with 127.0.0.1, so pebble validates at
 * the ports this fixture is told: `httpPort` (http-01) and `tlsPort` (tls-alpn-01),
 * which a test points at the proxy's http01Listen and public port.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { freePort, stopProcess, waitForOutput } from './processes.js';

export interface PebbleOptions {
  /** Where pebble connects for http-01 (the proxy's tls.acme.http01Listen port). */
  httpPort: number;
  /** Where pebble connects for tls-alpn-01 (the proxy's public port). */
  tlsPort: number;
  /** More environment for pebble, e.g. { PEBBLE_WFE_NONCEREJECT: '50' }. */
  env?: Record<string, string>;
  /** The DNS server pebble asks (dns-01 TXT lookups), host:port; default challtestsrv. */
  dnsServer?: string;
  /** The lifetime of the certificates pebble issues (its certificateValidityPeriod); default 5 years. */
  certificateValiditySeconds?: number;
}

export interface Pebble {
  /** The ACME directory: tls.acme.directory. */
  directory: string;
  /** The PEM that pebble's own HTTPS is verified with: tls.acme.caBundle. */
  caBundle: string;
  /** The root that signs what pebble issues (new on every start of pebble). */
  root(): Promise<string>;
  /** The challtestsrv management address (POST /set-txt, for dns-01 hooks). */
  challtestsrv: string;
  /** The DNS server (challtestsrv) pebble resolves names with, host:port. */
  dnsServer: string;
  output(): string;
  /** Stops pebble alone (challtestsrv stays), for outage tests; `start` brings it back. */
  stop(): Promise<void>;
  start(env?: Record<string, string>): Promise<void>;
  close(): Promise<void>;
}

/** Starts challtestsrv and pebble; `dir` holds pebble's HTTPS certificate and config. */
export async function startPebble(dir: string, opts: PebbleOptions): Promise<Pebble> {
  const [acmePort, managementPort, dnsPort, challPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const caBundle = makeHTTPSCertificate(dir);
  const configFile = join(dir, 'pebble.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: join(dir, 'pebble-https.crt'),
        privateKey: join(dir, 'pebble-https.key'),
        httpPort: opts.httpPort,
        tlsPort: opts.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(opts.certificateValiditySeconds
          ? { certificateValidityPeriod: opts.certificateValiditySeconds }
          : {}),
      },
    }),
  );
  const chall = spawnLogged('pebble-challtestsrv', [
    ...['-defaultIPv4', '127.0.0.1', '-defaultIPv6', ''],
    ...['-dns01', `127.0.0.1:${dnsPort}`, '-http01', '', '-https01', '', '-tlsalpn01', ''],
    ...['-management', `127.0.0.1:${challPort}`],
  ]);
  await waitForOutput(chall.child, chall.output, /Starting management server/);
  let pebble: ReturnType<typeof spawnLogged> | undefined;
  let earlier = '';
  const agent = new Agent({ ca: caBundle });
  const start = async (env: Record<string, string> = opts.env ?? {}) => {
    earlier += pebble?.output() ?? '';
    const dnsServer = opts.dnsServer ?? `127.0.0.1:${dnsPort}`;
    pebble = spawnLogged('pebble', ['-config', configFile, '-dnsserver', dnsServer], {
      // No artificial validation delays; every order gets fresh authorizations (a
      // reused one would skip the challenge the test is about).
      PEBBLE_VA_NOSLEEP: '1',
      PEBBLE_AUTHZREUSE: '0',
      ...env,
    });
    await waitForOutput(pebble.child, pebble.output, /ACME directory available/);
  };
  await start();
  return {
    directory: `https://127.0.0.1:${acmePort}/dir`,
    caBundle: join(dir, 'pebble-https-ca.crt'),
    root: () => getText(`https://127.0.0.1:${managementPort}/roots/0`, agent),
    challtestsrv: `http://127.0.0.1:${challPort}`,
    dnsServer: `127.0.0.1:${dnsPort}`,
    output: () => earlier + (pebble?.output() ?? '') + chall.output(),
    async stop() {
      if (pebble) await stopProcess(pebble.child);
    },
    start,
    async close() {
      agent.destroy();
      if (pebble) await stopProcess(pebble.child);
      await stopProcess(chall.child);
    },
  };
}

function spawnLogged(command: string, args: string[], env: Record<string, string> = {}) {
  const child: ChildProcess = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env },
  });
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (text += d));
  return { child, output: () => text };
}

/** A CA and, signed by it, pebble's HTTPS certificate for 127.0.0.1; returns the CA's PEM. */
function makeHTTPSCertificate(dir: string): string {
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(
    ...['req', '-x509', ...ec, '-days', '2', '-subj', '/CN=pebble HTTPS test CA'],
    ...['-keyout', file('pebble-https-ca.key'), '-out', file('pebble-https-ca.crt')],
  );
  openssl(
    ...['req', ...ec, '-subj', '/CN=127.0.0.1'],
    ...['-keyout', file('pebble-https.key'), '-out', file('pebble-https.csr')],
  );
  writeFileSync(file('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    ...['x509', '-req', '-in', file('pebble-https.csr'), '-days', '2'],
    ...['-CA', file('pebble-https-ca.crt'), '-CAkey', file('pebble-https-ca.key')],
    ...['-CAcreateserial', '-extfile', file('ext.cnf'), '-out', file('pebble-https.crt')],
  );
  return readFileSync(file('pebble-https-ca.crt'), 'utf8');
}

function getText(url: string, agent: Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    request(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode}`)),
      );
    })
      .on('error', reject)
      .end();
  });
}
