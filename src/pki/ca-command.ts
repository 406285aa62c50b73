/**
 * `registry-tls-proxy ca show|export|rotate|switch`: what the proxy's CAs and
 * server certificate are, a backup of the CA (certificate and key, 0600), and
 * the two steps of a CA rotation (rotation.ts).
 */
import { acmeShowLines } from '../acme/which-certificate.js';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { RTPError } from '../errors.js';
import { formatDuration } from '../config/schema.js';
import { cancelRotation, startRotation, switchCA } from './rotation.js';
import { FILES, caHome, certificateSANs, pemBundle } from './store.js';
import { refuseReadOnlyCA } from './ca-kubernetes.js';
import { commandName } from '../command-name.js';

function read(dir: string, name: string): string {
  const file = join(dir, name);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new RTPError(
      'CA_MISSING',
      `reading ${file}: ${(err as Error).message}; start the proxy once (it creates the CA) or point tls.dir / RTP_TLS_DIR at its directory`,
      { cause: err },
    );
  }
}

/** PEM, fingerprint and expiry of the CA, then the server certificate's serial, expiry and SANs. */
export function showCA(config: Config): string {
  const dir = caHome(config.tls).dir;
  const caPEM = read(dir, FILES.caCert);
  const ca = new X509Certificate(caPEM);
  const lines = describeCA('CA', ca);
  const next = readOptional(dir, FILES.nextCACert);
  if (next) {
    lines.push(
      ...describeCA(
        'next CA (rotation in progress: clients are given both; "ca switch" makes it sign)',
        next,
      ),
    );
  }
  const previous = readOptional(dir, FILES.previousCACert);
  if (previous) {
    lines.push(
      ...describeCA(
        'previous CA (before the last switch; its client certificates are still accepted)',
        previous,
      ),
    );
  }
  try {
    const leaf = new X509Certificate(readFileSync(join(resolve(config.tls.dir), FILES.serverCert)));
    const sans = certificateSANs(leaf);
    lines.push(
      'server certificate',
      `  serial: ${leaf.serialNumber}`,
      `  expires: ${new Date(leaf.validTo).toISOString()}`,
      `  DNS names: ${sans.dns.join(', ')}`,
      `  IP addresses: ${sans.ips.join(', ')}`,
    );
  } catch {
    lines.push('server certificate: none yet (issued on the next start)');
  }
  lines.push(...acmeShowLines(config));
  const pems = [caPEM, ...(next ? [next.toString()] : [])];
  return `${lines.join('\n')}\n\n${pemBundle(pems)}`;
}

function describeCA(title: string, ca: X509Certificate): string[] {
  return [
    `${title}: ${ca.subject.replace(/\n/g, ', ')}`,
    `  SHA-256 fingerprint: ${ca.fingerprint256}`,
    `  expires: ${new Date(ca.validTo).toISOString()}`,
  ];
}

function readOptional(dir: string, name: string): X509Certificate | undefined {
  try {
    return new X509Certificate(readFileSync(join(dir, name)));
  } catch {
    return undefined;
  }
}

const PICKUP = (config: Config) =>
  `running proxies on this machine pick this up within seconds (they watch tls.dir), others sharing the directory within tls.checkInterval (${formatDuration(config.tls.checkInterval)})`;

/** `ca rotate [--cancel]`: step 1 of a rotation, or dropping it. */
export async function rotateCA(config: Config, args: readonly string[]): Promise<string> {
  refuseReadOnlyCA(config, 'ca rotate');
  const dir = resolve(config.tls.dir);
  if (args.length === 1 && args[0] === '--cancel') {
    const dropped = await cancelRotation(dir);
    return `dropped the next CA ${dropped.fingerprint256}; /ca.crt serves the current CA alone (${PICKUP(config)})\n`;
  }
  if (args.length > 0) throw new RTPError('USAGE', `usage: ${commandName()} ca rotate [--cancel]`);
  const { active, next } = await startRotation({
    dir,
    caLifetimeMs: config.tls.caLifetime,
    keyType: config.tls.keyType,
  });
  return [
    'CA rotation, step 1 of 2: created the next CA',
    `  next CA SHA-256 fingerprint: ${next.fingerprint256}`,
    `  expires: ${next.notAfter.toISOString()}`,
    `The current CA (${active.fingerprint256}) keeps signing. From now on every proxy`,
    `serves both CAs at https://HOST:PORT/ca.crt (${PICKUP(config)}).`,
    '',
    'Next:',
    `  1. Have every client trust the new bundle: run "${commandName()} trust --address HOST:PORT"`,
    '     and do what it prints on each client (the installer takes the current fingerprint).',
    `  2. When every client trusts both, run "${commandName()} ca switch": the next CA`,
    '     starts signing and proxies re-issue their server certificate from it.',
    `To abandon the rotation: ${commandName()} ca rotate --cancel`,
    '',
  ].join('\n');
}

/** `ca switch [--back]`: step 2 of a rotation, or its undo. */
export async function switchCACommand(config: Config, args: readonly string[]): Promise<string> {
  refuseReadOnlyCA(config, 'ca switch');
  const dir = resolve(config.tls.dir);
  const back = args.length === 1 && args[0] === '--back';
  if (args.length > 0 && !back) {
    throw new RTPError('USAGE', `usage: ${commandName()} ca switch [--back]`);
  }
  const { active, retired } = await switchCA(dir, back ? 'back' : 'forward');
  return [
    `CA ${active.fingerprint256} now signs (expires ${active.notAfter.toISOString()}).`,
    back
      ? `The CA it replaced (${retired.fingerprint256}) is the next CA again: clients keep getting both; "ca switch" re-does the switch.`
      : `The CA it replaced (${retired.fingerprint256}) is kept as ${FILES.previousCACert}: client certificates it signed stay accepted until the next switch.`,
    `Proxies re-issue their server certificate from it: ${PICKUP(config)}.`,
    back
      ? ''
      : `Clients that trust only the old CA now fail with "certificate signed by unknown authority": run "${commandName()} trust" for them.`,
    '',
  ].join('\n');
}

/**
 * Writes the CA certificate and key to `out` (0600), refusing to overwrite; during a
 * rotation the next CA too. Each pair is preceded by a line saying where it goes back.
 */
export function exportCA(config: Config, out: string): string {
  const dir = caHome(config.tls).dir;
  const pairs: Array<[string, string, string]> = [['the CA', FILES.caCert, FILES.caKey]];
  if (readOptional(dir, FILES.nextCACert)) {
    pairs.push(['the next CA (rotation in progress)', FILES.nextCACert, FILES.nextCAKey]);
  }
  const bundle = pairs
    .map(
      ([what, cert, key]) =>
        `# ${what}: restore the certificate as ${cert} and the key as ${key} (mode 0600)\n` +
        pemBundle([read(dir, cert), read(dir, key)]),
    )
    .join('');
  try {
    writeFileSync(out, bundle, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    throw new RTPError(
      'CA_EXPORT_FAILED',
      `writing ${out}: ${(err as Error).message}; choose a new file (existing files are never overwritten)`,
      { cause: err },
    );
  }
  const what =
    pairs.length > 1
      ? 'the CA and the next CA (certificates and keys)'
      : 'the CA certificate and private key';
  return `wrote ${what} to ${out} (mode 0600); keep it offline\n`;
}
