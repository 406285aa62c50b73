/** Runs skopeo with strict TLS verification against a cert dir holding only what the test put there. */
import { execFile } from 'node:child_process';

export interface SkopeoResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `hosts`: an /etc/hosts file that this skopeo alone sees (a private mount
 * namespace), so that it reaches the proxy by a DNS name (ACME certificates carry
 * names, never 127.0.0.1) without touching the machine's /etc/hosts.
 */
export function skopeo(args: string[], timeoutMs = 300_000, hosts?: string): Promise<SkopeoResult> {
  const [command, ...argv] = hosts
    ? [
        'unshare',
        '--mount',
        'sh',
        '-c',
        'mount --bind "$1" /etc/hosts && shift && exec skopeo "$@"',
        'sh',
        hosts,
        '--insecure-policy',
        ...args,
      ]
    : ['skopeo', '--insecure-policy', ...args];
  return new Promise((resolve) => {
    execFile(
      command as string,
      argv,
      {
        timeout: timeoutMs,
        maxBuffer: 64 << 20,
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root' },
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** `skopeo copy SRC DEST`, verifying the TLS of one side (the registry's) against only `certDir`. */
function verifiedCopy(
  side: 'src' | 'dest',
  src: string,
  dest: string,
  certDir: string,
  creds: string,
): Promise<SkopeoResult> {
  return skopeo([
    'copy',
    `--${side}-cert-dir`,
    certDir,
    `--${side}-tls-verify=true`,
    `--${side}-creds`,
    creds,
    src,
    dest,
  ]);
}

/** `skopeo copy SRC docker://DEST`, verifying the destination's TLS against only `certDir`. */
export function skopeoPush(src: string, dest: string, certDir: string, creds: string) {
  return verifiedCopy('dest', src, `docker://${dest}`, certDir, creds);
}

/** `skopeo copy docker://SRC DEST`, verifying the source's TLS against only `certDir`. */
export function skopeoPull(src: string, dest: string, certDir: string, creds: string) {
  return verifiedCopy('src', `docker://${src}`, dest, certDir, creds);
}
