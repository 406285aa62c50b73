/**
 * `registry-tls-proxy issue-client NAME [--out DIR] [--lifetime DURATION]`: a client
 * certificate for mutual TLS (tls.clientAuth), written in the layout docker and
 * podman/skopeo read from certs.d/HOST:PORT/: client.cert, client.key (0600) and
 * ca.crt (what verifies the proxy). Existing files are never overwritten.
 */
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { formatDuration, parseDuration, type Config } from '../config/schema.js';
import { RTPError } from '../errors.js';
import { CERTS_DIRS } from '../trust/layout.js';
import { issueClientCertificate } from './issue.js';
import { readConfiguredCAs } from './store.js';
import { configuredTrustBundle } from './trust-bundle.js';
import { commandName } from '../command-name.js';

const DEFAULT_LIFETIME_MS = 365 * 86_400_000;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
export const CLIENT_FILES = { cert: 'client.cert', key: 'client.key', ca: 'ca.crt' } as const;

export interface IssueClientArgs {
  name: string;
  out: string;
  lifetimeMs: number;
}

export function parseIssueClientArgs(args: readonly string[]): IssueClientArgs {
  const usage = `usage: ${commandName()} issue-client NAME [--out DIR] [--lifetime DURATION]`;
  let name: string | undefined;
  let out: string | undefined;
  let lifetimeMs = DEFAULT_LIFETIME_MS;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--out') {
      out = args[++i];
      if (!out) throw new RTPError('USAGE', `--out needs a directory\n${usage}`);
    } else if (arg === '--lifetime') {
      const value = args[++i] ?? '';
      const ms = parseDuration(value);
      if (ms === undefined || ms < 60_000) {
        throw new RTPError(
          'USAGE',
          `--lifetime takes a duration of at least 1m such as 90d or 8760h, got ${JSON.stringify(value)}`,
        );
      }
      lifetimeMs = ms;
    } else if (arg.startsWith('-') || name !== undefined) {
      throw new RTPError(
        'USAGE',
        `issue-client: unexpected argument ${JSON.stringify(arg)}\n${usage}`,
      );
    } else name = arg;
  }
  if (name === undefined) {
    throw new RTPError(
      'USAGE',
      `issue-client needs the client's NAME (its certificate's common name, e.g. ci-runner-1)\n${usage}`,
    );
  }
  if (!NAME.test(name)) {
    throw new RTPError(
      'USAGE',
      `client name ${JSON.stringify(name)}: use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit`,
    );
  }
  return { name, out: out ?? join('client-certs', name), lifetimeMs };
}

export async function issueClient(config: Config, args: IssueClientArgs): Promise<string> {
  const dir = resolve(args.out);
  const files = {
    cert: join(dir, CLIENT_FILES.cert),
    key: join(dir, CLIENT_FILES.key),
    ca: join(dir, CLIENT_FILES.ca),
  };
  const existing = Object.values(files).filter((f) => existsSync(f));
  if (existing.length > 0) {
    throw new RTPError(
      'CLIENT_CERT_EXISTS',
      `${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''}; choose another --out directory (existing files are never overwritten)`,
    );
  }
  // Never a new CA here: a client certificate from a CA the proxy does not use is useless
  // (a wrong working directory with the relative default tls.dir would do just that).
  const cas = await readConfiguredCAs(config.tls);
  const trust = await configuredTrustBundle(config);
  const issued = await issueClientCertificate({
    ca: { certPEM: cas.active.certPEM, key: cas.active.key },
    name: args.name,
    lifetimeMs: args.lifetimeMs,
  });
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(files.key, issued.keyPEM, { mode: 0o600, flag: 'wx' });
    chmodSync(files.key, 0o600);
    writeFileSync(files.cert, issued.certPEM.replace(/\r\n/g, '\n'), { mode: 0o644, flag: 'wx' });
    // What verifies the proxy; for an auto-issued certificate the CA bundle of tls.dir.
    writeFileSync(files.ca, trust.pem, { mode: 0o644, flag: 'wx' });
  } catch (err) {
    throw new RTPError(
      'CLIENT_CERT_WRITE_FAILED',
      `writing the client certificate to ${dir}: ${(err as Error).message}; choose a directory this user can write (--out DIR)`,
      { cause: err },
    );
  }
  const cert = new X509Certificate(issued.certPEM);
  const lines = [
    `issued a client certificate for ${JSON.stringify(args.name)}, signed by CA ${cas.active.cert.fingerprint256}`,
    `  expires: ${new Date(cert.validTo).toISOString()} (${formatDuration(args.lifetimeMs)})`,
    `  wrote ${files.cert}`,
    `  wrote ${files.key} (mode 0600: keep it secret)`,
    `  wrote ${files.ca} (verifies the proxy)`,
    '',
    'On the client, copy the three files to the directory for the address it uses (HOST:PORT):',
    `  docker:                  ${CERTS_DIRS.docker}/HOST:PORT/`,
    `  podman, skopeo, buildah: ${CERTS_DIRS.containers}/HOST:PORT/   (or skopeo --cert-dir ${dir})`,
    `  containerd:              ${CERTS_DIRS.containerd}/HOST:PORT/ and in its hosts.toml:`,
    `                           client = [["${CERTS_DIRS.containerd}/HOST:PORT/client.cert", "${CERTS_DIRS.containerd}/HOST:PORT/client.key"]]`,
    `  curl:                    curl --cacert ca.crt --cert client.cert --key client.key https://HOST:PORT/v2/`,
  ];
  if (!config.tls.clientAuth) {
    lines.push(
      '',
      'Note: tls.clientAuth is off in this configuration, so the proxy does not ask for client',
      'certificates yet; set tls.clientAuth: true (or RTP_TLS_CLIENTAUTH=true) to require them.',
    );
  }
  return `${lines.join('\n')}\n`;
}
