/**
 * `registry-tls-proxy check`: the health probe and the certificate checks, run
 * once, as a readable report with an exit code — for operators, for the
 * Dockerfile's HEALTHCHECK and for docker-compose. It checks what a client
 * would meet: the certificates on disk, the backend's /v2/ verdict, and the
 * running proxy's public port, verified against the proxy's own trust bundle.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as tcpConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { ClientRequestArgs } from 'node:http';
import type { Duplex } from 'node:stream';
import { join, resolve } from 'node:path';
import { acmeCheckLines } from './acme/check.js';
import type { Config } from './config/schema.js';
import { formatHostPort, parseHostPort, unbracketHost } from './net/address.js';
import { RTPError } from './errors.js';
import { probeBackend, PROBE_PATH } from './health/probe.js';
import { V2_LOCAL_HEADER } from './net/proxy-protocol.js';
import { trustedPeerMatcher } from './proxy/trusted-proxies.js';
import { inspectSuppliedCertificate } from './pki/inspect.js';
import { issueClientCertificate } from './pki/issue.js';
import { permissionProblems } from './pki/permissions.js';
import { FILES, certificateSANs, readConfiguredCAs } from './pki/store.js';
import { configuredTrustBundle } from './pki/trust-bundle.js';
import { commandName } from './command-name.js';

const DAY_MS = 86_400_000;

export type CheckLevel = 'ok' | 'warn' | 'fail';
export interface CheckLine {
  level: CheckLevel;
  what: string;
  detail: string;
}

export interface CheckOptions {
  /** The proxy's public URL to test; default: from `listen` (a wildcard address → loopback). */
  url?: string;
  now?: Date;
}

export interface CheckReport {
  lines: CheckLine[];
  ok: boolean;
  text: string;
}

export async function runCheck(config: Config, opts: CheckOptions = {}): Promise<CheckReport> {
  const now = opts.now ?? new Date();
  const lines: CheckLine[] = [];
  const add = (level: CheckLevel, what: string, detail: string) =>
    lines.push({ level, what, detail });

  for (const problem of permissionProblems(config)) add('fail', 'key permissions', problem);
  await checkCertificates(config, now, add);
  for (const line of acmeCheckLines(config, now)) add(line.level, line.what, line.detail);

  // Every replica on its own line; the proxy serves while one is healthy.
  const verdicts = await Promise.all(
    config.backend.map((backend) =>
      probeBackend({
        backend: new URL(backend),
        timeoutMs: config.health.timeout,
        allowAnonymous: config.health.allowAnonymous,
        proxyLogins: config.auth.htpasswd !== '',
      }),
    ),
  );
  const anyHealthy = verdicts.some((v) => v.healthy);
  verdicts.forEach((verdict, i) => {
    const level = verdict.healthy ? 'ok' : anyHealthy ? 'warn' : 'fail';
    add(level, `backend ${config.backend[i]}`, verdict.reason);
  });

  await checkPublicPort(config, opts.url ?? defaultURL(config.listen), add);

  const ok = !lines.some((l) => l.level === 'fail');
  const width = Math.max(...lines.map((l) => l.what.length));
  const text =
    lines.map((l) => `${l.level.padEnd(4)}  ${l.what.padEnd(width)}  ${l.detail}`).join('\n') +
    `\n${ok ? 'healthy' : 'UNHEALTHY'}: ${lines.filter((l) => l.level === 'fail').length} problem(s), ${lines.filter((l) => l.level === 'warn').length} warning(s)\n`;
  return { lines, ok, text };
}

type Add = (level: CheckLevel, what: string, detail: string) => void;

async function checkCertificates(config: Config, now: Date, add: Add): Promise<void> {
  if (config.tls.cert !== '') {
    let inspection;
    try {
      inspection = inspectSuppliedCertificate(
        {
          certPEM: readFileSync(config.tls.cert, 'utf8'),
          keyPEM: readFileSync(config.tls.key, 'utf8'),
          certFile: config.tls.cert,
          keyFile: config.tls.key,
          ...(config.tls.ca !== ''
            ? { caPEM: readFileSync(config.tls.ca, 'utf8'), caFile: config.tls.ca }
            : {}),
        },
        { names: config.tls.names, now, warnBeforeMs: config.tls.certWarnBefore },
      );
    } catch (err) {
      add('fail', 'supplied certificate', (err as Error).message);
      return;
    }
    for (const f of inspection.findings) {
      add(
        f.severity === 'error' ? 'fail' : 'warn',
        'supplied certificate',
        `[${f.code}] ${f.message}`,
      );
    }
    if (inspection.leaf && !inspection.findings.some((f) => f.severity === 'error')) {
      add(
        'ok',
        'supplied certificate',
        `${inspection.leaf.subject}, expires ${day(inspection.leaf.notAfter)} (${daysLeft(inspection.leaf.notAfter, now)}), covers ${[...inspection.leaf.sans.dns, ...inspection.leaf.sans.ips].join(', ')}`,
      );
    }
    return;
  }
  const dir = resolve(config.tls.dir);
  let cas;
  try {
    cas = await readConfiguredCAs(config.tls);
  } catch (err) {
    add('fail', 'CA', (err as Error).message);
    return;
  }
  const caNotAfter = new Date(cas.active.cert.validTo);
  const caLeft = caNotAfter.getTime() - now.getTime();
  add(
    caLeft <= 0 ? 'fail' : caLeft < config.tls.caWarnBefore ? 'warn' : 'ok',
    'CA',
    `${cas.active.cert.fingerprint256}, expires ${day(caNotAfter)} (${daysLeft(caNotAfter, now)})` +
      (caLeft <= 0
        ? `: clients reject this proxy; rotate it (${commandName()} ca rotate, then ca switch)`
        : caLeft < config.tls.caWarnBefore
          ? `; rotate it soon: ${commandName()} ca rotate`
          : ''),
  );
  if (cas.next) {
    add(
      'warn',
      'next CA',
      `${cas.next.cert.fingerprint256}: a rotation is in progress; run "${commandName()} ca switch" once every client trusts both`,
    );
  }
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(readFileSync(join(dir, FILES.serverCert)));
  } catch (err) {
    add(
      'fail',
      'server certificate',
      `${(err as Error).message}; the proxy issues it when it starts`,
    );
    return;
  }
  const from = new Date(leaf.validFrom).getTime();
  const to = new Date(leaf.validTo);
  const left = to.getTime() - now.getTime();
  const sans = certificateSANs(leaf);
  const missing = config.tls.names.filter((n) =>
    isIP(n) ? leaf.checkIP(n) === undefined : leaf.checkHost(n) === undefined,
  );
  const detail = `serial ${leaf.serialNumber}, expires ${day(to)} (${daysLeft(to, now)}), covers ${[...sans.dns, ...sans.ips].join(', ')}`;
  if (left <= 0) {
    add('fail', 'server certificate', `${detail}: expired; is the proxy running? it renews it`);
  } else if (!leaf.verify(cas.active.cert.publicKey)) {
    add(
      'warn',
      'server certificate',
      `${detail}; signed by another CA: the proxy re-issues it at its next check`,
    );
  } else if (left < (to.getTime() - from) / 3) {
    add('warn', 'server certificate', `${detail}; renewal is overdue: is the proxy running?`);
  } else if (missing.length > 0) {
    add(
      'warn',
      'server certificate',
      `${detail}; does not cover ${missing.join(', ')} yet: re-issued at the proxy's next check`,
    );
  } else {
    add('ok', 'server certificate', detail);
  }
}

async function checkPublicPort(config: Config, url: string, add: Add): Promise<void> {
  const what = `proxy ${url}`;
  let trust: string;
  try {
    trust = (await configuredTrustBundle(config)).pem;
  } catch (err) {
    add('fail', what, `no CA to verify it with: ${(err as Error).message}`);
    return;
  }
  // With tls.clientAuth the proxy wants a client certificate: a short-lived one from its CA.
  let client: { cert: string; key: string } | undefined;
  if (config.tls.clientAuth) {
    try {
      const cas = await readConfiguredCAs(config.tls);
      const issued = await issueClientCertificate({
        ca: { certPEM: cas.active.certPEM, key: cas.active.key },
        name: 'registry-tls-proxy check',
        lifetimeMs: 10 * 60_000,
      });
      client = { cert: issued.certPEM, key: issued.keyPEM };
    } catch (err) {
      add(
        'fail',
        what,
        `cannot make a client certificate for tls.clientAuth: ${(err as Error).message}`,
      );
      return;
    }
  }
  const target = new URL(PROBE_PATH, url);
  const host = unbracketHost(target.hostname);
  try {
    const status = await new Promise<number>((resolveStatus, reject) => {
      const req = httpsRequest(
        target,
        {
          ca: trust,
          agent: false,
          ...(isIP(host) ? {} : { servername: host }),
          ...(client ?? {}),
          ...(config.proxyProtocol.trustedFrom.length > 0
            ? { agent: undefined, createConnection: sendingLocalHeader(config) }
            : {}),
        },
        (res) => {
          res.resume();
          resolveStatus(res.statusCode ?? 0);
        },
      );
      req.setTimeout(config.health.timeout + 1000, () =>
        req.destroy(new Error(`no answer within ${config.health.timeout + 1000} ms`)),
      );
      req.on('error', reject);
      req.end();
    });
    const expected = status === 401 || (status === 200 && config.health.allowAnonymous);
    add(
      expected ? 'ok' : 'fail',
      what,
      `TLS verified with the proxy's CA; GET ${PROBE_PATH} answered ${status}` +
        (expected
          ? ''
          : status === 200
            ? ' (open to anonymous users)'
            : ' (a secured registry answers 401)'),
    );
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const hint =
      e.code === 'ECONNREFUSED'
        ? 'nothing listens there: is the proxy running? (or pass --url https://HOST:PORT)'
        : e.message;
    add('fail', what, hint);
  }
}

/**
 * With proxyProtocol, the proxy reads a PROXY header first from a trusted peer (and with
 * `required` closes the connection without one). Where it trusts the address `check`
 * connects from (loopback, for the image's HEALTHCHECK, when trustedFrom covers it),
 * check sends a v2 LOCAL header first, as a balancer's own health check does.
 */
function sendingLocalHeader(config: Config) {
  const isTrusted = trustedPeerMatcher(config.proxyProtocol.trustedFrom);
  return (options: ClientRequestArgs, done: (err: Error | null, socket: Duplex) => void) => {
    const tcp: Socket = tcpConnect({
      host: options.host ?? 'localhost',
      port: Number(options.port ?? 443),
    });
    const failed = (err: Error) => done(err, tcp);
    tcp.once('error', failed);
    tcp.once('connect', () => {
      tcp.off('error', failed); // from here on, errors are the TLS socket's
      if (isTrusted(tcp.localAddress ?? '')) tcp.write(V2_LOCAL_HEADER);
      done(null, tlsConnect({ ...(options as ConnectionOptions), socket: tcp }));
    });
    return undefined;
  };
}

/** https://HOST:PORT from `listen`; a wildcard address is checked on loopback. */
export function defaultURL(listen: string): string {
  const parsed = parseHostPort(listen);
  if (!parsed) throw new RTPError('USAGE', `listen ${listen} is not host:port; pass --url`);
  const host = parsed.host === '0.0.0.0' ? '127.0.0.1' : parsed.host === '::' ? '::1' : parsed.host;
  return `https://${formatHostPort(host, parsed.port)}`;
}

function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}

function daysLeft(d: Date, now: Date): string {
  const days = Math.floor((d.getTime() - now.getTime()) / DAY_MS);
  return days < 0 ? `${-days} days ago` : `${days} days left`;
}
