/**
 * Refusing to serve with keys others can read, as ssh refuses a private key that
 * others can read (and sshd a home directory others can write): a CA key readable
 * by every local user lets any of them mint certificates every client trusts, and
 * a TLS directory writable by others lets them swap the CA or the server key.
 *
 * Only the bits for "others" count. A group may legitimately read a supplied key
 * (Debian's ssl-cert group, certbot deployments with 0640 keys), and the files the
 * proxy writes itself are 0600 in a 0700 directory anyway (store.ts).
 */
import { accessSync, constants, readlinkSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import type { Config } from '../config/schema.js';
import { PKIError } from '../errors.js';
import { FILES } from './store.js';

const OTHERS_WRITE = 0o002;
const OTHERS_READ_WRITE = 0o006;
/** The symlink the kubelet swaps on every update of a Secret volume (atomic_writer.go). */
const KUBELET_DATA_DIR = '..data';

/** Keys in tls.dir, when present: the CA, the server key, and a rotation's next and previous CA. */
const DIR_KEYS = [
  FILES.caKey,
  FILES.serverKey,
  FILES.serverRSAKey,
  FILES.nextCAKey,
  FILES.previousCAKey,
];

/**
 * Every key file and directory of `config` that others can get at, one message
 * each naming the path, its mode and the command that fixes it. Missing files
 * are not problems here (the proxy creates them, 0600).
 *
 * @example permissionProblems(config) // → ['tls.dir /srv/tls is writable by others (mode 0777); fix: chmod o-w /srv/tls']
 */
export function permissionProblems(config: Config): string[] {
  const problems: string[] = [];
  // tls.dir is used unless a supplied certificate is served without mutual TLS.
  if (config.tls.cert === '' || config.tls.clientAuth) {
    const dir = resolve(config.tls.dir);
    const mode = modeOf(dir);
    if (mode !== undefined && mode & OTHERS_WRITE) {
      problems.push(
        `tls.dir ${dir} is writable by others (mode ${octal(mode)}): anyone on this machine could replace the CA or the server key; fix: chmod o-w ${dir}`,
      );
    }
    for (const name of DIR_KEYS) {
      const file = join(dir, name);
      const keyMode = modeOf(file);
      if (keyMode !== undefined && keyMode & OTHERS_READ_WRITE) {
        problems.push(`${keyProblem(file, keyMode)}; fix: ${keyFix(file, `chmod 600 ${file}`)}`);
      }
    }
  }
  if (config.tls.caDir !== '') {
    // Read-only and someone else's (a Secret volume): its keys are checked, not its directory.
    for (const name of [FILES.caKey, FILES.nextCAKey, FILES.previousCAKey]) {
      const file = join(resolve(config.tls.caDir), name);
      const keyMode = modeOf(file);
      if (keyMode !== undefined && keyMode & OTHERS_READ_WRITE) {
        problems.push(
          `tls.caDir ${keyProblem(file, keyMode)}; fix: ${keyFix(file, `chmod 600 ${file}`)}`,
        );
      }
    }
  }
  if (config.tls.key !== '') {
    const file = resolve(config.tls.key);
    const mode = modeOf(file);
    if (mode !== undefined && mode & OTHERS_READ_WRITE) {
      const chmod = `chmod o-rwx ${file} (a group such as ssl-cert may keep reading it)`;
      problems.push(`tls.key ${keyProblem(file, mode)}; fix: ${keyFix(file, chmod)}`);
    }
  }
  return problems;
}

/** Throws one error listing every problem of {@link permissionProblems}. */
export function assertPrivateKeys(config: Config): void {
  const problems = permissionProblems(config);
  if (problems.length === 0) return;
  throw new PKIError(
    'KEY_PERMISSIONS',
    `refusing to serve with keys other users can reach (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
  );
}

function keyProblem(file: string, mode: number): string {
  const what = [mode & 0o004 ? 'readable' : '', mode & OTHERS_WRITE ? 'writable' : '']
    .filter(Boolean)
    .join(' and ');
  return `${file} is a private key ${what} by others (mode ${octal(mode)})`;
}

/**
 * The modes of a Kubernetes Secret volume are the volume's `defaultMode` (0644
 * unless set), and the volume is read-only: there, and on any read-only file
 * system, chmod fails, so the fix named is the one that works.
 * https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-files-from-a-pod
 */
const SECRET_VOLUME_FIX =
  "set defaultMode: 0440 on the Secret volume and the pod's securityContext.fsGroup to the group the proxy runs as (1000 in the image), or defaultMode: 0400 if it runs as root";

function keyFix(file: string, chmod: string): string {
  if (inKubeletVolume(file)) {
    return `the key is in a Kubernetes Secret volume, where chmod cannot change it: ${SECRET_VOLUME_FIX}`;
  }
  if (onReadOnlyFileSystem(file)) {
    return `the file system is read-only, so chmod cannot change it: make the key private where it comes from (a Kubernetes Secret volume: ${SECRET_VOLUME_FIX})`;
  }
  return chmod;
}

/** The kubelet's layout: the key is `..data/NAME`, or a link into it (tls.key -> ..data/tls.key). */
function inKubeletVolume(file: string): boolean {
  if (file.split(sep).includes(KUBELET_DATA_DIR)) return true;
  try {
    return readlinkSync(file).split(sep)[0] === KUBELET_DATA_DIR;
  } catch {
    return false; // not a link
  }
}

function onReadOnlyFileSystem(file: string): boolean {
  try {
    accessSync(file, constants.W_OK);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EROFS';
  }
}

/** The permission bits of `path` (following symbolic links, as certbot's live/ files are), or undefined when absent. */
function modeOf(path: string): number | undefined {
  try {
    return statSync(path).mode & 0o7777;
  } catch {
    return undefined;
  }
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}
