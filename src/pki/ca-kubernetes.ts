/**
 * One CA for every replica, from outside (tls.caDir): `ca init --out DIR` makes it
 * once, in a directory of its own that the operator keeps; `ca export
 * --kubernetes-secret NAME` prints the Secret that mounts it into the pods. The same
 * directory is where a rotation happens (`ca rotate` / `ca switch` with tls.dir
 * pointing at it), and exporting again after each step updates the Secret, which
 * running pods pick up from the kubelet's `..data` swap.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { commandName } from '../command-name.js';
import type { Config } from '../config/schema.js';
import { RTPError } from '../errors.js';
import { caHome, ensurePrivateDir, FILES, readCASet, writeNewCA } from './store.js';

/** What a Secret for tls.caDir holds, when present: the CA, a rotation's next CA, the previous CA. */
const SECRET_FILES = [
  FILES.caCert,
  FILES.caKey,
  FILES.nextCACert,
  FILES.nextCAKey,
  FILES.previousCACert,
] as const;

/** A Kubernetes object name (RFC 1123 subdomain, as Secrets need). */
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** `ca init --out DIR`: a new CA in a new (or empty) directory, 0700, key 0600. */
export async function initCA(config: Config, out: string): Promise<string> {
  const dir = resolve(out);
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new RTPError(
      'CA_INIT_EXISTS',
      `${dir} is not empty; ca init writes only into a new or empty directory (an existing CA is never replaced: clients trust it)`,
    );
  }
  ensurePrivateDir(dir);
  const ca = await writeNewCA(dir, FILES.caCert, FILES.caKey, {
    caLifetimeMs: config.tls.caLifetime,
    keyType: config.tls.keyType,
  });
  const name = commandName();
  return [
    `created a CA in ${dir} (${FILES.caCert}, and ${FILES.caKey} mode 0600)`,
    `  SHA-256 fingerprint: ${ca.fingerprint256}`,
    `  expires: ${new Date(ca.validTo).toISOString()}`,
    'Keep this directory: it is the CA every client will trust. Next:',
    `  Kubernetes: RTP_TLS_DIR=${dir} ${name} ca export --kubernetes-secret registry-tls-proxy-ca | kubectl apply -f -`,
    `  elsewhere:  mount ${dir} read-only into each replica and set tls.caDir (RTP_TLS_CA_DIR) to it`,
    `  rotation:   RTP_TLS_DIR=${dir} ${name} ca rotate (then ca switch), exporting again after each step`,
    '',
  ].join('\n');
}

/**
 * `ca export --kubernetes-secret NAME [--namespace NS]`: the Secret manifest (YAML) of
 * the CA directory (tls.caDir, else tls.dir), every CA file in it. It holds the CA key:
 * pipe it to `kubectl apply -f -`, do not keep it in a file.
 */
export async function kubernetesSecret(
  config: Config,
  name: string,
  namespace?: string,
): Promise<string> {
  for (const [what, value] of [
    ['NAME', name],
    ['--namespace', namespace],
  ] as const) {
    if (value !== undefined && !OBJECT_NAME.test(value)) {
      throw new RTPError(
        'USAGE',
        `${what} ${JSON.stringify(value)} is not a Kubernetes name: lower-case letters, digits, '-' and '.'`,
      );
    }
  }
  const { dir, readOnly } = caHome(config.tls);
  await readCASet(dir, { readOnly }); // a whole, matching CA, or the error that says what is wrong
  const data: Record<string, string> = {};
  for (const file of SECRET_FILES) {
    const path = join(dir, file);
    if (existsSync(path)) data[file] = readFileSync(path).toString('base64');
  }
  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name,
      ...(namespace ? { namespace } : {}),
      labels: {
        'app.kubernetes.io/name': 'registry-tls-proxy',
        'app.kubernetes.io/component': 'ca',
      },
    },
    type: 'Opaque',
    data,
  };
  return (
    `# The CA of ${dir} for tls.caDir, with its private key: kubectl apply -f - (do not keep it in a file).\n` +
    stringify(secret)
  );
}

/** Refuses to change a read-only CA (tls.caDir) in place, naming where it is changed instead. */
export function refuseReadOnlyCA(config: Config, step: string): void {
  if (config.tls.caDir === '') return;
  throw new RTPError(
    'CA_READ_ONLY',
    `tls.caDir ${resolve(config.tls.caDir)} is read-only to the proxy (a Secret, or a copy); run "${step}" where the CA is kept: RTP_TLS_DIR=THAT_DIR ${commandName()} ${step}, then update the replicas' copy (Kubernetes: ca export --kubernetes-secret NAME | kubectl apply -f -)`,
  );
}
