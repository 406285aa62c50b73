/**
 * The one command per client platform that installs this proxy's CA after checking its
 * fingerprint. The start-up log, `registry-tls-proxy trust` and the trust page all show
 * these, so a user sees the same command wherever they look.
 *
 * Each command fetches an installer without verifying TLS (the client cannot verify
 * anything yet); the fingerprint in the command, read from the proxy's log or the
 * operator, is what the installer checks the downloaded CA against.
 */
import { RTPError } from '../errors.js';
import { assertHostPort } from './layout.js';

export const PLATFORMS = ['linux', 'macos', 'windows', 'kubernetes'] as const;
export type Platform = (typeof PLATFORMS)[number];

/** Where each platform's installer is served on the public port. */
export const INSTALLER_PATHS: Record<Exclude<Platform, 'kubernetes'>, string> = {
  linux: '/install-ca.sh',
  macos: '/install-ca-macos.sh',
  windows: '/install-ca.ps1',
};

/**
 * sudo where there is one, else nothing: a root shell on a Debian without sudo ran
 * `| sudo sh` into "sudo: not found" (issue 14). macOS always has sudo.
 */
export const AS_ROOT = '$(command -v sudo)';

/** The command to paste on a client of this platform (or, for kubernetes, where kubectl runs). */
export function installerOneLiner(
  platform: Platform,
  hostPortIn: string,
  fingerprint: string,
): string {
  const hostPort = assertHostPort(hostPortIn);
  assertFingerprint(fingerprint);
  // curl reads "[…]" as a glob unless -g.
  const curl = hostPort.startsWith('[') ? 'curl -fsSkg' : 'curl -fsSk';
  switch (platform) {
    case 'linux':
      return `${curl} https://${hostPort}${INSTALLER_PATHS.linux} | ${AS_ROOT} sh -s -- --fingerprint ${fingerprint}`;
    case 'macos':
      return `${curl} https://${hostPort}${INSTALLER_PATHS.macos} | sudo sh -s -- --fingerprint ${fingerprint}`;
    case 'windows':
      // Run from PowerShell (as Administrator for every user): a script block given to
      // powershell.exe runs in a child process, so the "trust any certificate" callback
      // this one download needs (Windows PowerShell 5.1 has no -SkipCertificateCheck)
      // dies with it, and an exit in the script cannot close the user's window.
      return (
        'powershell -NoProfile -Command { [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12;' +
        ' [Net.ServicePointManager]::ServerCertificateValidationCallback = { $true };' +
        ` & ([scriptblock]::Create((New-Object Net.WebClient).DownloadString('https://${hostPort}${INSTALLER_PATHS.windows}'))) -Fingerprint '${fingerprint}' }`
      );
    case 'kubernetes':
      return `registry-tls-proxy trust --address ${hostPort} --client kubernetes | kubectl apply -f -`;
  }
}

/**
 * Throws unless `fingerprint` is what X509Certificate.fingerprint256 prints: it goes
 * into sh, PowerShell and YAML text.
 */
export function assertFingerprint(fingerprint: string): string {
  if (!/^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/.test(fingerprint)) {
    throw new RTPError(
      'TRUST_BAD_FINGERPRINT',
      `trust: ${JSON.stringify(fingerprint)} is not a SHA-256 fingerprint (AB:CD:… as the proxy's log prints it)`,
    );
  }
  return fingerprint;
}
